package tenancy

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// The feed reports each tenant changed since its last read once, by any
// connection (its own Store's pool, another Store on the file), inserts,
// updates, disables and deletes alike; nothing when nothing changed.
func TestChangeFeed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenants.sqlite3")
	s := openTestStore(t, path)
	other := openTestStore(t, path)
	if _, err := s.Upsert(ctx, fakeRecord("before", 1)); err != nil {
		t.Fatal(err)
	}
	f, err := s.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := func() ([]string, bool) {
		t.Helper()
		ids, all, err := f.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ids, all
	}
	if ids, all := next(); ids != nil || all {
		t.Fatalf("nothing changed, got %q all=%v", ids, all)
	}
	for _, id := range []string{"a", "b", "a"} {
		if _, err := other.Upsert(ctx, fakeRecord(id, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Upsert(ctx, fakeRecord("c", 2)); err != nil { // the feed's own Store
		t.Fatal(err)
	}
	if ids, all := next(); !reflect.DeepEqual(ids, []string{"a", "b", "c"}) || all {
		t.Fatalf("got %q all=%v", ids, all)
	}
	if ids, _ := next(); ids != nil {
		t.Fatalf("read twice: %q", ids)
	}
	if err := other.Disable(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := next(); !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Fatalf("got %q", ids)
	}
	// A write that fails or changes no row logs nothing.
	if err := other.Disable(ctx, "nobody"); err == nil {
		t.Fatal("disabled a tenant that does not exist")
	}
	if err := other.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, _ := next(); ids != nil {
		t.Fatalf("got %q", ids)
	}
}

// A feed further behind than the log keeps says so (all), and is in step
// again after.
func TestChangeFeedFellBehind(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "tenants.sqlite3"))
	f, err := s.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// 5,000 rows in one statement: the log's triggers run for each.
	if _, err := s.db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
		INSERT INTO tenants (tenant_id, data_dir, uploads_dir, enabled, updated_at) SELECT 't' || i, '/d', '/u', 1, '' FROM n`); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tenant_changes`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept > 4096 || kept < 3072 {
		t.Fatalf("the log keeps %d entries", kept)
	}
	ids, all, err := f.Next(ctx)
	if err != nil || !all || len(ids) != kept {
		t.Fatalf("%d ids, all=%v, err %v", len(ids), all, err)
	}
	if _, err := s.Upsert(ctx, fakeRecord("late", 1)); err != nil {
		t.Fatal(err)
	}
	if ids, all, err := f.Next(ctx); err != nil || all || !reflect.DeepEqual(ids, []string{"late"}) {
		t.Fatalf("got %q all=%v err %v", ids, all, err)
	}
}

// What the watcher costs while nothing changes: one Next is one PRAGMA.
func BenchmarkChangeFeedIdle(b *testing.B) {
	ctx := context.Background()
	s, err := OpenStore(ctx, filepath.Join(b.TempDir(), "tenants.sqlite3"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	f, err := s.Changes(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, _, err := f.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// The idle cost of the watcher in a process: the CPU time the process
// spends over 2 s with 1,000 loaded (fake) tenants and nothing changing,
// without the watcher, with it woken by file events (it does not look at
// the store at all), and with it polling.
func TestWatchIdleCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for 6 s")
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	const span = 2 * time.Second
	idle := func(opts OptionsOf[*fakeInstance]) (time.Duration, int64) {
		fr := newFakeRegistry(t, opts)
		ctx := context.Background()
		if _, err := fr.store.db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
			INSERT INTO tenants (tenant_id, data_dir, uploads_dir, enabled, updated_at) SELECT 't' || i, '/d/' || i, '/u/' || i, 1, '' FROM n`); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			fr.body(t, fmt.Sprintf("t%d", i))
		}
		time.Sleep(300 * time.Millisecond) // the watcher's look at the insert ends
		c0, l0 := cpu(), fr.watch.looks.Load()
		time.Sleep(span)
		used, looks := cpu()-c0, fr.watch.looks.Load()-l0
		if err := fr.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return used, looks
	}
	off, _ := idle(OptionsOf[*fakeInstance]{WatchEvery: -1})
	events, eventLooks := idle(OptionsOf[*fakeInstance]{})
	polling, pollLooks := idle(OptionsOf[*fakeInstance]{pollOnly: true})
	t.Logf("idle %v with 1,000 tenants loaded, process CPU: %v without the watcher, %v with it on file events (%d looks), %v polling (%d looks, %.3f%% of one core)",
		span, off, events, eventLooks, polling, pollLooks, 100*float64(polling)/float64(span))
	if eventLooks != 0 {
		t.Errorf("the watcher looked at an unchanged store %d times in %v", eventLooks, span)
	}
	// The CPU figures are logged, not checked (a timing is no unit test's
	// business: other tests of the package run meanwhile); what is checked
	// is the number of looks, which is what costs.
	if max := int64(span/(250*time.Millisecond)) + 2; pollLooks > max {
		t.Errorf("polling looked %d times in %v, want at most %d", pollLooks, span, max)
	}
}
