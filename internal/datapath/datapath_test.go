package datapath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveAndRel(t *testing.T) {
	data := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(data, "assignments", "A1"), 0o755)
	os.WriteFile(filepath.Join(data, "assignments", "A1", "q.md"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(data, "link"))
	real, _ := filepath.EvalSymlinks(filepath.Join(data, "assignments", "A1", "q.md"))
	for _, tc := range []struct {
		ref  string
		want string
		err  error
	}{
		{"assignments/A1/q.md", real, nil},
		{"data/assignments/A1/q.md", real, nil},
		{filepath.Join(data, "assignments/A1/q.md"), real, nil},
		{"link", "", ErrOutside},
		{filepath.Join(outside, "secret"), "", ErrOutside},
		{"../" + filepath.Base(outside) + "/secret", "", ErrOutside},
		{"missing.md", "", fs.ErrNotExist},
		{"", "", fs.ErrNotExist},
		{"a\x00b", "", fs.ErrNotExist},
	} {
		got, err := Resolve(data, tc.ref)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Resolve(%q) = %q, %v; want %q, %v", tc.ref, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct{ ref, want string }{
		{"assignments/A1/q.md", "assignments/A1/q.md"},
		{"assignments/A1/new.md", "assignments/A1/new.md"}, // not there yet
		{"data/assignments/A1/q.md", "assignments/A1/q.md"},
		{"", ""},
	} {
		if got, err := Rel(data, tc.ref); got != tc.want || err != nil {
			t.Errorf("Rel(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	for _, ref := range []string{"link", "../x/new.md", filepath.Join(outside, "new.md")} {
		if _, err := Rel(data, ref); !errors.Is(err, ErrOutside) {
			t.Errorf("Rel(%q) = %v, want ErrOutside", ref, err)
		}
	}
}
