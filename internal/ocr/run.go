package ocr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/fault"
)

// waitDelay is how long a killed subprocess's pipes may stay open before
// Wait gives up on them.
const waitDelay = 2 * time.Second

// errOutputLimit is the cause of a subprocess whose output went over its
// bound.
var errOutputLimit = errors.New("subprocess output over limit")

// limitedBuffer keeps at most max bytes; past that it records the overflow
// and calls over (which kills the process) instead of blocking the child.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int64
	over func()
	full bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.full {
		return len(p), nil
	}
	if room := b.max - int64(b.buf.Len()); int64(len(p)) > room {
		b.buf.Write(p[:max(room, 0)])
		b.full = true
		if b.over != nil {
			b.over()
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

// runResult is what one subprocess printed.
type runResult struct {
	stdout []byte
	stderr string
}

// run runs bin with args under a timeout, its output bounded by maxOut
// bytes (stderr by 64 KiB), killing its process group when ctx ends, the
// timeout passes or the output goes over the bound. A missing binary is an
// ErrUnavailable. A timeout is a fault.Upstream "ocr_timeout"; the end of
// ctx itself is returned as ctx's error.
func run(ctx context.Context, timeout time.Duration, maxOut int64, env []string, bin string, args ...string) (runResult, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return runResult{}, unavailable(err, "%s not found", bin)
	}
	if err := ctx.Err(); err != nil {
		return runResult{}, err
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	overCtx, over := context.WithCancel(callCtx)
	defer over()

	cmd := exec.CommandContext(overCtx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	setProcessGroup(cmd)
	cmd.WaitDelay = waitDelay
	stdout := &limitedBuffer{max: maxOut, over: over}
	stderr := &limitedBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	res := runResult{stdout: stdout.buf.Bytes(), stderr: strings.TrimSpace(stderr.buf.String())}
	switch {
	case err == nil && !stdout.full:
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: %w", bin, ctx.Err())
	case callCtx.Err() != nil:
		return res, fault.Wrap(fault.Upstream, fmt.Errorf("%s: %w", bin, callCtx.Err()), map[string]any{
			"error":   "ocr_timeout",
			"message": fmt.Sprintf("%s did not finish within %s", bin, timeout),
		})
	case stdout.full:
		return res, fault.Wrap(fault.Upstream, fmt.Errorf("%s: %w (%d bytes)", bin, errOutputLimit, maxOut), map[string]any{
			"error":   "ocr_failed",
			"message": fmt.Sprintf("%s printed more than %d bytes", bin, maxOut),
		})
	}
	return res, fmt.Errorf("%s: %w: %s", bin, err, lastLines(res.stderr, 5))
}

// lastLines is the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
