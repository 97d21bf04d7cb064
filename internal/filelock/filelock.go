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
