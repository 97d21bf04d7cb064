package exams

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCatalogList(t *testing.T) {
	dir := t.TempDir()
	c := NewCatalog(dir)
	c.ttl = 0 // check the files on every read
	body, err := c.ListJSON()
	if err != nil || string(body) != `{"exams":[]}` {
		t.Fatalf("missing dir: %s %v", body, err)
	}
	exams := filepath.Join(dir, "exams")
	write(t, filepath.Join(exams, "folder_a", "manifest.json"), `{"exam_id":"A","generated_at":"2026-02-01T00:00:00","counts":{"students":3,"responses":30}}`)
	write(t, filepath.Join(exams, "folder_b", "manifest.json"), `{"generated_at":"2026-03-01T00:00:00","counts":{"students":2.5}}`)
	write(t, filepath.Join(exams, "broken", "manifest.json"), `{not json`)
	write(t, filepath.Join(exams, "stray.txt"), `ignored`)
	write(t, filepath.Join(exams, ".confirm-job_x", "manifest.json"), `{"exam_id":"STAGING"}`)
	if err := os.MkdirAll(filepath.Join(exams, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	body, err = c.ListJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"exams":[{"exam_id":"folder_b","generated_at":"2026-03-01T00:00:00","students":2.5,"responses":null},` +
		`{"exam_id":"A","generated_at":"2026-02-01T00:00:00","students":3,"responses":30},` +
		`{"exam_id":"broken","generated_at":null,"students":null,"responses":null},` +
		`{"exam_id":"empty","generated_at":null,"students":null,"responses":null}]}`
	if string(body) != want {
		t.Fatalf("got  %s\nwant %s", body, want)
	}
	// Unchanged files: the cached body is served as is.
	again, _ := c.ListJSON()
	if &again[0] != &body[0] {
		t.Fatal("unchanged catalogue was rebuilt")
	}
	write(t, filepath.Join(exams, "folder_a", "manifest.json"), `{"exam_id":"A2","generated_at":"2026-02-01T00:00:00"}`)
	third, _ := c.ListJSON()
	if &third[0] == &body[0] || !contains(string(third), `"exam_id":"A2"`) {
		t.Fatalf("changed manifest not noticed: %s", third)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Within Revalidate the listing is served without touching the disk; an
// Invalidate makes the next read look.
func TestCatalogRevalidates(t *testing.T) {
	dir := t.TempDir()
	c := NewCatalog(dir)
	c.ttl = time.Hour
	first, _ := c.ListJSON()
	write(t, filepath.Join(dir, "exams", "E1", "manifest.json"), `{"exam_id":"E1"}`)
	if again, _ := c.ListJSON(); string(again) != string(first) {
		t.Fatalf("revalidated early: %s", again)
	}
	c.Invalidate()
	if after, _ := c.ListJSON(); !strings.Contains(string(after), `"E1"`) {
		t.Fatalf("invalidate ignored: %s", after)
	}
}
