// Package datapath resolves the paths data files hold (a manifest's
// files, a question's stem_ref, answer_ref or rubric) inside a tenant's
// DATA_DIR. Relative paths are taken from DATA_DIR, and the predecessor's
// APP_ROOT-relative form ("data/assignments/…") is accepted too; absolute
// paths must lie inside DATA_DIR. Every check is made after resolving
// symlinks, so a link never leads out.
package datapath

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// ErrOutside is returned for a path that resolves outside DATA_DIR.
var ErrOutside = errors.New("path resolves outside the data directory")

// candidates are the places a ref may name: itself when absolute, else
// under dataDir, and under dataDir without a leading "data/".
func candidates(dataDir, ref string) []string {
	if filepath.IsAbs(ref) {
		return []string{ref}
	}
	out := []string{filepath.Join(dataDir, ref)}
	if rest, ok := strings.CutPrefix(filepath.ToSlash(ref), "data/"); ok {
		out = append(out, filepath.Join(dataDir, rest))
	}
	return out
}

func bad(ref string) bool {
	return ref == "" || !utf8.ValidString(ref) || strings.ContainsFunc(ref, func(r rune) bool { return r < ' ' })
}

// Resolve returns the real path of the existing file or directory ref
// names inside dataDir. A missing one is an fs.ErrNotExist error; one
// resolving outside dataDir (or to dataDir itself) is ErrOutside.
func Resolve(dataDir, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if bad(ref) {
		return "", fs.ErrNotExist
	}
	root, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return "", err
	}
	firstErr := error(fs.ErrNotExist)
	for _, c := range candidates(dataDir, ref) {
		real, err := filepath.EvalSymlinks(filepath.Clean(c))
		if err != nil {
			firstErr = err
			continue
		}
		if !Within(root, real) || real == root {
			return "", ErrOutside
		}
		return real, nil
	}
	return "", firstErr
}

// Rel returns ref relative to dataDir, slash-separated. An existing path
// is judged after symlinks (as Resolve); one that does not exist yet by
// its lexical form. "" stays "".
func Rel(dataDir, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", nil
	}
	if bad(ref) {
		return "", ErrOutside
	}
	root, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return "", err
	}
	real, err := Resolve(dataDir, ref)
	switch {
	case err == nil:
		rel, err := filepath.Rel(root, real)
		if err != nil {
			return "", ErrOutside
		}
		return filepath.ToSlash(rel), nil
	case errors.Is(err, ErrOutside):
		return "", err
	}
	p := filepath.Clean(candidates(dataDir, ref)[0])
	for _, base := range []string{filepath.Clean(dataDir), root} {
		if Within(base, p) && p != base {
			if rel, err := filepath.Rel(base, p); err == nil {
				return filepath.ToSlash(rel), nil
			}
		}
	}
	return "", ErrOutside
}

// Within reports whether p is root or lies under it (both cleaned, and
// resolved when they must be compared after symlinks).
func Within(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}
