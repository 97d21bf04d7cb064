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

// lockFile takes an exclusive, non-blocking flock on f; ok is false when
// another process holds it. The lock goes with the file's descriptor.
func lockFile(f *os.File) (unlock func(), ok bool) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, false
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, true
}

func isSyncUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}
