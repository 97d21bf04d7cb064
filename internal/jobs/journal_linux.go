package jobs

import (
	"errors"
	"os"
	"syscall"
)

// datasync flushes f's data (not its timestamps): for a zero-filled
// segment overwritten in place, no filesystem journal commit.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func isSyncUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}
