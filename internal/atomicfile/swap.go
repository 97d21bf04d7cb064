package atomicfile

import (
	"os"
	"path/filepath"
)

// SwapUnsynced replaces path's content with data, like WriteUnsynced
// (not synced: after a machine crash path may hold either content), but
// without creating or deleting a file once path and its spare exist: data
// is written into the spare (".<name>.spare" beside path), which is then
// exchanged with path in one rename (renameat2 RENAME_EXCHANGE), so the
// old content becomes the next write's spare.
//
// Why: a file rewritten on every chat turn (a history index, a student
// profile) otherwise costs an inode allocated and one freed per write; on
// ext4 without a journal (this project's test machine) every allocation
// then scans the inodes freed in the last minutes, and a rename over an
// existing file forces the new file's blocks allocated first (auto_da_alloc).
//
// The spare is rewritten in place, so a reader must read path with
// [ReadFile] to be sure of a whole content: a plain read that is still
// going on two writes later can see a mix. Writers of one path, in this
// process or another, exclude each other through the spare's file lock.
// Where the exchange is not supported (another OS, a filesystem without
// it) this is WriteUnsynced.
func SwapUnsynced(path string, data []byte, perm os.FileMode) error {
	return swap(path, data, perm)
}

// ReadFile reads path whole: the content of one write, never a mix of two
// SwapUnsynced ones (it holds a shared lock on the file it reads, which a
// writer needs exclusive before it reuses that file as its spare).
// Elsewhere than Linux it is os.ReadFile.
func ReadFile(path string) ([]byte, error) { return readStable(path) }

// ReadPrevious reads the content path held before its last SwapUnsynced
// (its spare), as ReadFile does: what to fall back on when path was torn
// by a machine crash (a spare is rewritten in place, unsynced, so after
// a power loss the file it became may hold a mix of two contents).
func ReadPrevious(path string) ([]byte, error) { return readStable(sparePath(path)) }

// sparePath is where SwapUnsynced keeps path's other copy.
func sparePath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".spare")
}
