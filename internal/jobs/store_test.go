package jobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/textcut"
)

func TestValidID(t *testing.T) {
	valid := []string{
		"job_1a2b3c4d5e6f", "cjob_0123456789ab", "a", "A-b_c", "задача_1",
		"٣", "x-", strings.Repeat("a", 128), strings.Repeat("я", 127),
	}
	invalid := []string{
		"", "..", ".", ".hidden", "-x", "a/b", `a\b`, "x\x00y", "a b", "a.b",
		"a:b", "\xff", strings.Repeat("a", 129), strings.Repeat("я", 128),
	}
	for _, id := range valid {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false, want true", id)
		}
	}
	for _, id := range invalid {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true, want false", id)
		}
	}
}

func TestStoreRejectsInvalidIDs(t *testing.T) {
	s := NewStore(t.TempDir())
	for _, id := range []string{"..", "a/b", "", "x\x00y", ".hidden", "-x"} {
		if _, err := s.JobDir(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("JobDir(%q) error = %v, want ErrInvalidID", id, err)
		}
		if err := s.Create(id, nil); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Create(%q) error = %v, want ErrInvalidID", id, err)
		}
		if _, err := s.Load(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Load(%q) error = %v, want ErrInvalidID", id, err)
		}
		_, err := s.Update(id, func(map[string]any) error { return nil })
		if !errors.Is(err, ErrInvalidID) {
			t.Errorf("Update(%q) error = %v, want ErrInvalidID", id, err)
		}
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil || len(entries) != 0 {
		t.Errorf("store dir after invalid ids: %v entries, err %v; want none", len(entries), err)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "chat_jobs"))
	in := map[string]any{"title": "Задача №1", "n": 1}
	before := time.Now().Truncate(time.Second)
	if err := s.Create("job_1", in); err != nil {
		t.Fatal(err)
	}
	if len(in) != 2 {
		t.Errorf("Create modified its argument: %v", in)
	}

	rec, err := s.Load("job_1")
	if err != nil {
		t.Fatal(err)
	}
	if rec["job_id"] != "job_1" || rec["status"] != "queued" || rec["title"] != "Задача №1" || rec["n"] != 1.0 {
		t.Errorf("loaded record = %v", rec)
	}
	created, err := time.ParseInLocation(TimeLayout, rec["created_at"].(string), time.Local)
	if err != nil || created.Before(before) || created.After(time.Now()) {
		t.Errorf("created_at = %v (%v), want a local timestamp of now", rec["created_at"], err)
	}
	if rec["updated_at"] != rec["created_at"] {
		t.Errorf("updated_at = %v, want %v", rec["updated_at"], rec["created_at"])
	}
	data, err := os.ReadFile(filepath.Join(s.Dir(), "job_1", "job.json"))
	if err != nil || !strings.Contains(string(data), "Задача №1") {
		t.Errorf("job.json = %s (%v), want non-ASCII text kept", data, err)
	}

	got, err := s.Update("job_1", func(rec map[string]any) error {
		rec["status"] = "done"
		rec["result"] = []any{"a", "b"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err = s.Load("job_1")
	if err != nil {
		t.Fatal(err)
	}
	if rec["status"] != "done" || !slices.Equal(toStrings(rec["result"]), []string{"a", "b"}) {
		t.Errorf("record after update = %v", rec)
	}
	if fmt.Sprint(got) != fmt.Sprint(rec) {
		t.Errorf("Update returned %v, stored %v", got, rec)
	}

	if err := s.Create("job_1", nil); !errors.Is(err, ErrExists) {
		t.Errorf("second Create error = %v, want ErrExists", err)
	}
	if _, err := s.Load("job_2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of missing job error = %v, want ErrNotFound", err)
	}
	_, err = s.Update("job_2", func(map[string]any) error { return nil })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of missing job error = %v, want ErrNotFound", err)
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestStoreCreateKeepsGivenFields(t *testing.T) {
	s := NewStore(t.TempDir())
	in := map[string]any{"job_id": "other", "status": "processing", "created_at": "2024-05-01T10:00:00"}
	if err := s.Create("job_1", in); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Load("job_1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"job_id": "job_1", "status": "processing", "created_at": "2024-05-01T10:00:00"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
}

func TestStoreUpdateErrorWritesNothing(t *testing.T) {
	s := NewStore(t.TempDir())
	if err := s.Create("job_1", map[string]any{"updated_at": "2000-01-01T00:00:00"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir(), "job_1", "job.json")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	_, err = s.Update("job_1", func(rec map[string]any) error {
		rec["status"] = "done"
		return errStop
	})
	if err != errStop {
		t.Errorf("Update error = %v, want %v", err, errStop)
	}
	after, err := os.ReadFile(path)
	if err != nil || string(after) != string(before) {
		t.Errorf("job.json changed by a failed update:\n%s\nwant\n%s", after, before)
	}
}

func TestStoreConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	shared := NewStore(dir)
	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		// Half share a Store (in-process lock), half use their own, as
		// separate processes would.
		s := shared
		if i%2 == 1 {
			s = NewStore(dir)
		}
		wg.Go(func() {
			errs <- s.Create("job_x", map[string]any{"creator": i})
		})
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrExists):
			t.Errorf("Create error = %v, want nil or ErrExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent Creates succeeded, want 1", won)
	}
	if _, err := shared.Load("job_x"); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "job_x"))
	if len(entries) != 1 {
		t.Errorf("job dir holds %d entries, want only job.json", len(entries))
	}
}

func TestStoreConcurrentUpdate(t *testing.T) {
	s := NewStore(t.TempDir())
	if err := s.Create("job_1", map[string]any{"n": 0}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.Update("job_1", func(rec map[string]any) error {
				rec["n"] = rec["n"].(float64) + 1
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rec, err := s.Load("job_1")
	if err != nil {
		t.Fatal(err)
	}
	if rec["n"] != float64(n) {
		t.Errorf("n = %v after %d concurrent increments", rec["n"], n)
	}
	if n := s.locks.Len(); n != 0 {
		t.Errorf("%d job locks left after all updates", n)
	}
}

func TestStoreScan(t *testing.T) {
	root := t.TempDir()
	s := NewStore(filepath.Join(root, "exam_jobs"))
	if ids, err := s.Scan("queued"); err != nil || ids != nil {
		t.Fatalf("Scan of missing dir = %v, %v; want nil, nil", ids, err)
	}
	jobs := []struct{ id, status, created string }{
		{"job_c", "queued", "2024-01-01T10:00:02"},
		{"job_a", "processing", "2024-01-01T10:00:03"},
		{"job_b", "queued", "2024-01-01T10:00:02"}, // same second as job_c
		{"job_d", "done", "2024-01-01T09:00:00"},
		{"job_e", "queued", "2024-01-01T09:59:59"},
		{"job_f", "failed", "2024-01-01T10:00:00"},
	}
	for _, j := range jobs {
		if err := s.Create(j.id, map[string]any{"status": j.status, "created_at": j.created}); err != nil {
			t.Fatal(err)
		}
	}
	// Noise that Scan must skip.
	writeFile(t, filepath.Join(s.Dir(), "job_bad", "job.json"), "{not json")
	writeFile(t, filepath.Join(s.Dir(), "job_null", "job.json"), "null")
	writeFile(t, filepath.Join(s.Dir(), "job_list", "job.json"), `["queued"]`)
	writeFile(t, filepath.Join(s.Dir(), ".hidden", "job.json"), `{"job_id":".hidden","status":"queued"}`)
	writeFile(t, filepath.Join(s.Dir(), "loose_file"), `{"status":"queued"}`)
	if err := os.MkdirAll(filepath.Join(s.Dir(), "job_empty"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		statuses []string
		want     []string
	}{
		{[]string{"queued", "processing"}, []string{"job_e", "job_b", "job_c", "job_a"}},
		{[]string{"failed"}, []string{"job_f"}},
		{[]string{"cancelled"}, nil},
		{nil, []string{"job_d", "job_e", "job_f", "job_b", "job_c", "job_a"}},
	}
	for _, tt := range tests {
		got, err := s.Scan(tt.statuses...)
		if err != nil {
			t.Errorf("Scan(%v): %v", tt.statuses, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Scan(%v) = %v, want %v", tt.statuses, got, tt.want)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc"},
		{"жжжж", 2, "жж"},
		{"ab", 0, ""},
	}
	for _, tt := range tests {
		if got := textcut.Head(tt.s, tt.n); got != tt.want {
			t.Errorf("textcut.Head(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestWriteExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job.json")
	if err := writeExclusive(path, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := writeExclusive(path, []byte(`{"a":2}`)); !errors.Is(err, os.ErrExist) {
		t.Errorf("second writeExclusive = %v, want os.ErrExist", err)
	}
	if data, _ := os.ReadFile(path); string(data) != `{"a":1}` {
		t.Errorf("file = %s, want the first write", data)
	}
}
