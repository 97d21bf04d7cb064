//go:build !linux

package filelock

import "os"

// Elsewhere nothing is locked across processes: one process per data
// directory, the supported setup there.
func lock(*os.File, bool) error { return nil }

func unlockFile(*os.File) {}
