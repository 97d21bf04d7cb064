// Package filelock holds the file locks that order Lectern's processes
// (flock on Linux): a job's claim, a tenant's profile writes, its core
// examples. Unlike internal/keyedlock, which orders one process's
// goroutines, these locks are seen by every process sharing the files,
// and the kernel drops them when their holder dies.
//
// A lock is taken on an open file or directory and goes with that open
// file: two opens of one path, in one process or two, exclude each other.
package filelock

import "os"

// Lock takes an exclusive lock on f, waiting for it; unlock gives it up
// (f stays open: its owner closes it).
func Lock(f *os.File) (unlock func(), err error) {
	if err := lock(f, true); err != nil {
		return nil, err
	}
	return func() { unlockFile(f) }, nil
}

// TryLock takes an exclusive lock on f unless another open file holds
// one; ok is false then.
func TryLock(f *os.File) (unlock func(), ok bool) {
	if lock(f, false) != nil {
		return nil, false
	}
	return func() { unlockFile(f) }, true
}

// LockPath opens path (flag and perm as for os.OpenFile; a directory is
// opened with os.O_RDONLY) and takes its lock, waiting for it; unlock
// gives the lock up and closes the file.
func LockPath(path string, flag int, perm os.FileMode) (unlock func(), err error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	release, err := Lock(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		release()
		f.Close()
	}, nil
}

// TryLockPath opens path read-only and takes its lock unless another open
// file holds it (ok is false then); err is the open's error. unlock gives
// the lock up and closes the file.
func TryLockPath(path string) (unlock func(), ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	release, ok := TryLock(f)
	if !ok {
		f.Close()
		return nil, false, nil
	}
	return func() {
		release()
		f.Close()
	}, true, nil
}
