//go:build unix

package tenantapp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// creatable checks that dir is, or can be made, a directory this process
// writes: the directory itself when it exists, else its nearest existing
// ancestor, must be a directory it may write and enter. Nothing is made:
// a tenant's directories are created by their first write (each a mkdir,
// ~0.2 ms on this VM's ext4: the bulk of a tenant's load when made at
// once).
func creatable(dir string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("%s: no existing ancestor", dir)
		}
		p = parent
	}
}
