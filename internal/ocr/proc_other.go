//go:build !unix

package ocr

import "os/exec"

// setProcessGroup leaves cmd as it is: exec.CommandContext kills the
// process itself on cancellation.
func setProcessGroup(cmd *exec.Cmd) {}
