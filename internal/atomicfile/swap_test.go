package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no inode numbers here")
	}
	return st.Ino
}

// Once a path and its spare exist, a swap neither creates nor deletes a
// file: the two inodes take turns.
func TestSwapReusesTwoFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the exchange is Linux's; elsewhere SwapUnsynced is WriteUnsynced")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "index.json")
	if err := SwapUnsynced(p, []byte("first, the longest content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sparePath(p)); !os.IsNotExist(err) {
		t.Fatalf("after the first write the spare should not exist yet: %v", err)
	}
	if err := SwapUnsynced(p, []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	inodes := map[uint64]bool{inode(t, p): true, inode(t, sparePath(p)): true}
	for i := range 10 {
		want := fmt.Sprint("write ", i)
		if err := SwapUnsynced(p, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
		if !inodes[inode(t, p)] || !inodes[inode(t, sparePath(p))] {
			t.Fatalf("write %d made a new file", i)
		}
	}
	if got, _ := os.ReadFile(sparePath(p)); string(got) != "write 8" {
		t.Fatalf("spare holds %q, want the content before the last", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files left: %v", entries)
	}
}

// Readers through ReadFile never see a mix of two writes, with writers
// racing each other (each on its own open file, as another process is).
func TestSwapReadersSeeWholeWrites(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "profile.json")
	content := func(w, i int) []byte {
		// Lengths differ, so a torn read shows as a wrong length or byte.
		return bytes.Repeat([]byte{byte('a' + w)}, 100+((w*131+i*977)%9000))
	}
	if err := SwapUnsynced(p, content(0, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	whole := func(data []byte) bool {
		if len(data) == 0 {
			return false
		}
		for _, b := range data {
			if b != data[0] {
				return false
			}
		}
		w := int(data[0] - 'a')
		for i := range 200 {
			if bytes.Equal(data, content(w, i)) {
				return true
			}
		}
		return false
	}
	const writers, readers, writes, reads = 3, 3, 200, 400
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				if err := SwapUnsynced(p, content(w, i), 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for range reads {
				data, err := ReadFile(p)
				if err != nil {
					errs <- err
					return
				}
				if !whole(data) {
					errs <- fmt.Errorf("torn read: %d bytes starting %q", len(data), data[:min(8, len(data))])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data, _ := ReadFile(p)
	if !whole(data) {
		t.Fatalf("final content torn")
	}
}

func TestReadFileMissing(t *testing.T) {
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none")); !os.IsNotExist(err) {
		t.Fatalf("got %v, want not exist", err)
	}
}
