package filelock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Two opens of one directory exclude each other: TryLock fails while the
// other holds it, Lock waits until it is released.
func TestLockExcludesAnotherOpen(t *testing.T) {
	dir := t.TempDir()
	open := func() *os.File {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open(), open()
	unlock, err := Lock(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := TryLock(b); ok {
		t.Fatal("TryLock succeeded while another open file held the lock")
	}
	got := make(chan struct{})
	go func() {
		u, err := Lock(b)
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("Lock did not wait for the holder")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-got
	f, err := os.Create(filepath.Join(dir, "x.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if u, ok := TryLock(f); !ok {
		t.Error("TryLock of a free file failed")
	} else {
		u()
	}
}
