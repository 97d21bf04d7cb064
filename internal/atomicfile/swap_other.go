//go:build !linux

package atomicfile

import "os"

func swap(path string, data []byte, perm os.FileMode) error { return WriteUnsynced(path, data, perm) }

func readStable(path string) ([]byte, error) { return os.ReadFile(path) }
