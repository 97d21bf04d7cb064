package students

import (
	"os"

	"github.com/lectern/lectern/internal/filelock"
)

// lockDir takes an exclusive lock on dir (created when missing), waiting
// for it: every process writing the tenant's profiles takes it around a
// read-change-write, so two processes never lose each other's update.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return filelock.LockPath(dir, os.O_RDONLY, 0)
}
