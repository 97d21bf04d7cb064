package filelock

import (
	"errors"
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

// LockPath and TryLockPath open the path themselves and close it with the
// lock: a held path is refused, a released one taken, a missing one is
// the open's error.
func TestLockPath(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockPath(dir, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := TryLockPath(dir); ok || err != nil {
		t.Fatalf("TryLockPath of a held directory = %v, %v", ok, err)
	}
	unlock()
	again, ok, err := TryLockPath(dir)
	if !ok || err != nil {
		t.Fatalf("TryLockPath after unlock = %v, %v", ok, err)
	}
	again()
	if _, _, err := TryLockPath(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("TryLockPath of a missing path: %v", err)
	}
}
