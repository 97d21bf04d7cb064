//go:build !linux

package tenancy

import "errors"

// fileWake has no implementation here: the store watcher polls.
type fileWake struct{}

var errWakeClosed = errors.New("file wake closed")

func openFileWake(string) (*fileWake, error) { return nil, errors.ErrUnsupported }

func (*fileWake) wait() error { return errWakeClosed }

func (*fileWake) Close() error { return nil }
