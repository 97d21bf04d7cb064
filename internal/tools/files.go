package tools

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/datapath"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/upload"
)

// errNotAllowed is a file a tool may not read: missing, not a regular
// file, or outside the places tools read from.
var errNotAllowed = errors.New("file not found or not allowed")

// fileRoots are the places the tools that take file paths (lesson.capture,
// core_example.register) read from: what POST /upload stored
// (UPLOADS_DIR/uploads/<upload_id>/, named "uploads/<upload_id>/<file>" as
// that route answers), lesson material (DATA_DIR/lessons/) and core
// examples (DATA_DIR/core_examples/). Nothing else: the rest of DATA_DIR
// holds other teachers' memory and settings, which a path the model
// supplies must never reach.
type fileRoots struct {
	dataDir, uploadsDir string
}

// paths is the tenant's layout.
func (f fileRoots) paths() layout.Tenant { return layout.New(f.dataDir, f.uploadsDir) }

func (f fileRoots) roots() []string {
	out := []string{f.paths().Lessons(), f.paths().CoreExamples()}
	if f.uploadsDir != "" {
		out = append(out, f.paths().Uploads())
	}
	return out
}

// resolve returns the real path of the regular file ref names: absolute,
// or relative to UPLOADS_DIR, or to DATA_DIR (with or without the
// predecessor's leading "data/"). errNotAllowed otherwise.
func (f fileRoots) resolve(ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" || !utf8.ValidString(ref) || strings.ContainsFunc(ref, unicode.IsControl) {
		return "", errNotAllowed
	}
	var cands []string
	if filepath.IsAbs(ref) {
		cands = []string{ref}
	} else {
		if f.uploadsDir != "" {
			cands = append(cands, filepath.Join(f.uploadsDir, ref))
		}
		cands = append(cands, filepath.Join(f.dataDir, ref))
		if rest, ok := strings.CutPrefix(filepath.ToSlash(ref), "data/"); ok {
			cands = append(cands, filepath.Join(f.dataDir, rest))
		}
	}
	var roots []string
	for _, r := range f.roots() {
		if real, err := filepath.EvalSymlinks(r); err == nil {
			roots = append(roots, real)
		}
	}
	for _, c := range cands {
		real, err := filepath.EvalSymlinks(filepath.Clean(c))
		if err != nil {
			continue
		}
		inside := false
		for _, root := range roots {
			if datapath.Within(root, real) && real != root {
				inside = true
			}
		}
		if !inside {
			continue
		}
		if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
			return "", errNotAllowed
		}
		return real, nil
	}
	return "", errNotAllowed
}

// readText reads at most limit bytes of a text file, decoded (UTF-8 or
// GB18030); ok is false for a missing, unreadable or longer file.
func readText(path string, limit int64) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil || int64(len(data)) > limit {
		return "", false
	}
	return upload.DecodeText(data), true
}

// copyFile copies src to dst (created, not replaced), refusing more than
// limit bytes.
func copyFile(dst, src string, limit int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, io.LimitReader(in, limit+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

var errTooLarge = errors.New("file too large")

// head is the first 512 bytes of a file, for upload.DocumentKind.
func head(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 512)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// plainText: valid UTF-8 of at most n characters without control
// characters.
func plainText(s string, n int) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= n && !strings.ContainsFunc(s, unicode.IsControl)
}
