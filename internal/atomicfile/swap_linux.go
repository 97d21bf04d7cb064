package atomicfile

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// swapAttempts bounds the retries of a writer or reader that found the
// file it locked moved by another writer meanwhile.
const swapAttempts = 8

func swap(path string, data []byte, perm os.FileMode) error {
	spare := sparePath(path)
	for range swapAttempts {
		f, err := os.OpenFile(spare, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Lstat(path); errors.Is(serr, os.ErrNotExist) {
				// The first content: a temporary file renamed into place
				// (as cheap; the spare is made by the next write).
				return WriteUnsynced(path, data, perm)
			}
			f, err = os.OpenFile(spare, os.O_RDWR|os.O_CREATE, perm)
		}
		if err != nil {
			return WriteUnsynced(path, data, perm) // a read-only spare, a name too long: the plain way
		}
		done, err := swapVia(f, spare, path, data)
		f.Close() // drops the lock
		if done {
			return err
		}
		if err != nil {
			os.Remove(spare)
			return WriteUnsynced(path, data, perm)
		}
	}
	return WriteUnsynced(path, data, perm)
}

// swapVia writes data into the spare f (under its exclusive lock) and
// exchanges it with path. done false with no error: f stopped being the
// spare before the lock was had (try again); done false with an error:
// the exchange is not possible here (do it the plain way).
func swapVia(f *os.File, spare, path string, data []byte) (done bool, err error) {
	if err := flock(f, unix.LOCK_EX); err != nil {
		return false, err
	}
	if !samePath(f, spare) {
		return false, nil
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return true, err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		return true, err
	}
	switch err := unix.Renameat2(unix.AT_FDCWD, spare, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return true, os.Rename(spare, path) // path's first content: the spare is made anew next time
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return false, err
	default:
		return true, err
	}
}

func readStable(path string) ([]byte, error) {
	for range swapAttempts {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if err := flock(f, unix.LOCK_SH); err != nil {
			f.Close()
			return os.ReadFile(path)
		}
		if !samePath(f, path) {
			f.Close() // exchanged meanwhile: read what path is now
			continue
		}
		data, err := io.ReadAll(f)
		f.Close()
		return data, err
	}
	return os.ReadFile(path)
}

// samePath reports whether the open file f is still the one at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
