//go:build !unix

package tenantapp

import "os"

// creatable makes dir where the writability of an ancestor cannot be
// asked.
func creatable(dir string) error { return os.MkdirAll(dir, 0o755) }
