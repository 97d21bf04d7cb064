package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "f.json")
	if err := WriteJSON(p, map[string]any{"name": "高二<1>"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "{\n  \"name\": \"高二<1>\"\n}\n" {
		t.Fatalf("content %q", got)
	}
	if err := WriteFile(p, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(got) != "second" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("content %q mode %v", got, fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

// A write that cannot complete leaves the old content and no temp file.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(p, map[string]any{"bad": func() {}}); err == nil {
		t.Fatal("unencodable value written")
	}
	// The target is a directory: the rename must fail.
	sub := filepath.Join(dir, "sub")
	os.MkdirAll(filepath.Join(sub, "x"), 0o755)
	if err := WriteFile(sub, []byte("new"), 0o644); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	got, _ := os.ReadFile(p)
	entries, _ := os.ReadDir(dir)
	if string(got) != "old" || len(entries) != 2 {
		t.Fatalf("content %q, entries %v", got, entries)
	}
}
