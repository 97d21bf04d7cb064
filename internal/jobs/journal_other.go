//go:build !linux

package jobs

import "os"

// datasync is a full fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

// lockFile does not lock across processes here: one process per data
// directory, the supported setup.
func lockFile(f *os.File) (unlock func(), ok bool) { return func() {}, true }

func isSyncUnsupported(error) bool { return false }
