// Package atomicfile writes files so that readers see either the old content
// or the new content, never a torn mix: write a temporary file in the same
// directory, fsync it, rename it over the target, then fsync the directory.
package atomicfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data. Parent directories are
// created as needed.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, perm, data, nil, true)
}

// Write atomically replaces path with what write writes (through a
// buffer), so a large file need not be held in memory first. If write
// fails, path is left as it was.
func Write(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	return replace(path, perm, nil, write, true)
}

// WriteUnsynced replaces path with data atomically for readers (a
// reader sees the old content or the new, never a mix) but without the
// fsyncs: after a machine crash path may hold either. For what a crash may
// lose (an intermediate state, an index that is rebuilt) and nothing that
// was acknowledged.
func WriteUnsynced(path string, data []byte, perm os.FileMode) error {
	return replace(path, perm, data, nil, false)
}

// replace writes data, or what write writes (through a buffer), to a
// temporary file renamed over path; durable adds the fsyncs.
func replace(path string, perm os.FileMode, data []byte, write func(io.Writer) error, durable bool) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if write == nil {
		if _, err = f.Write(data); err != nil {
			return err
		}
	} else {
		bw := bufio.NewWriterSize(f, 64<<10)
		if err = write(bw); err != nil {
			return err
		}
		if err = bw.Flush(); err != nil {
			return err
		}
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if durable {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

// WriteJSON atomically writes v as JSON indented with two spaces, with
// non-ASCII text kept as is (the predecessor's on-disk convention).
func WriteJSON(path string, v any) error {
	data, err := MarshalJSON(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return WriteFile(path, data, 0o644)
}

// MarshalJSON encodes v the way WriteJSON stores it.
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some filesystems refuse fsync on directories; the rename is still
	// atomic there, so that refusal is not an error worth failing on.
	_ = d.Sync()
	return nil
}

// Sync makes a file written without syncing durable: its content, then its
// directory entry.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// SyncDir makes the entries of dir (a file created or renamed in it)
// durable.
func SyncDir(dir string) error { return syncDir(dir) }
