//go:build !linux

package jobs

import "os"

// datasync is a full fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

func isSyncUnsupported(error) bool { return false }

// syncVouched syncs what a retired segment vouches for, file by file.
func syncVouched(files []string) error { return syncFiles(files) }
