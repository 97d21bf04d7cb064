package tenancy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreUpsertGet(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "nested", "dir", "tenants.sqlite3"))
	in := Record{TenantID: "t1", DataDir: "/d/t1", UploadsDir: "/u/t1", Enabled: true,
		Extra: map[string]any{"limits": map[string]any{"llm_total": float64(3)}, "名": "学校"}}
	if _, err := s.Upsert(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got.DataDir != "/d/t1" || got.UploadsDir != "/u/t1" || !got.Enabled || got.UpdatedAt == "" {
		t.Fatalf("got %+v", got)
	}
	if fmt.Sprint(got.Extra) != fmt.Sprint(in.Extra) {
		t.Fatalf("extra = %v, want %v", got.Extra, in.Extra)
	}
	// Upsert replaces.
	in.DataDir = "/d/t1b"
	in.Enabled = false
	if _, err := s.Upsert(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, "t1")
	if got.DataDir != "/d/t1b" || got.Enabled {
		t.Fatalf("after second upsert: %+v", got)
	}
}

func TestStoreDeleteDisable(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "t.db"))
	for _, id := range []string{"a", "b"} {
		if _, err := s.Upsert(ctx, Record{TenantID: id, DataDir: "/d/" + id, UploadsDir: "/u/" + id, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.Disable(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disable unknown: %v", err)
	}
	if err := s.Disable(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(ctx, "b"); r.Enabled {
		t.Fatal("b still enabled")
	}
}

func TestStoreListEnabled(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "t.db"))
	for i, id := range []string{"c", "a", "b"} {
		if _, err := s.Upsert(ctx, Record{TenantID: id, DataDir: "/d/" + id, UploadsDir: "/u/" + id, Enabled: i != 1}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	enabled, err := s.List(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rs []Record) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.TenantID)
		}
		return strings.Join(out, ",")
	}
	if ids(all) != "a,b,c" || ids(enabled) != "b,c" {
		t.Fatalf("all=%s enabled=%s", ids(all), ids(enabled))
	}
}

func TestStoreCorruptExtraReadsEmpty(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	s, err := OpenStore(ctx, filepath.Join(t.TempDir(), "t.db"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.db.Exec(`INSERT INTO tenants VALUES ('bad','/d','/u',1,'2026-01-01T00:00:00','{not json')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO tenants VALUES ('arr','/d2','/u2',1,'2026-01-01T00:00:00','[1,2]')`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"bad", "arr"} {
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Extra == nil || len(r.Extra) != 0 {
			t.Fatalf("%s extra = %v", id, r.Extra)
		}
	}
	if !strings.Contains(logs.String(), "tenant_id=bad") {
		t.Fatalf("corrupt row not logged: %q", logs.String())
	}
}

// Two stores on one file (as two processes would have) writing at once lose
// nothing and leave a sound database.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a := openTestStore(t, path)
	b := openTestStore(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		for j, s := range []*Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("t%d-%d", j, i)
				if _, err := s.Upsert(ctx, Record{TenantID: id, DataDir: "/d/" + id, UploadsDir: "/u/" + id, Enabled: true}); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		all, err := s.List(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 200 {
			t.Fatalf("listed %d tenants, want 200", len(all))
		}
	}
	var check string
	if err := a.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var mode string
	if err := a.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
}
