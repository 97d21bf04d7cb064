//go:build unix

package ocr

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts cmd in a process group of its own and makes its
// cancellation kill the whole group, so that children of the binary (or of
// a wrapper script) die with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
}
