package tenancy

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/tenantapp"
)

// fakeClock is the idle clock of a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newIdleRegistry is a registry with idle eviction after idle on clock;
// its own sweeper sleeps an hour, so the tests sweep by hand. sheetParses
// (may be nil) is shared by its tenants.
func newIdleRegistry(t *testing.T, idle time.Duration, clock *fakeClock, sheetParses *limits.Sem) *testRegistry {
	t.Helper()
	root := t.TempDir()
	store := openTestStore(t, filepath.Join(root, "_system", "tenants.db"))
	global := limits.NewSet(limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4})
	tr := &testRegistry{store: store, root: root}
	tr.Registry = NewRegistry(store, func(rec Record) (*tenantapp.App, error) {
		tr.builds.Add(1)
		return tenantapp.New(tenantapp.Settings{TenantID: rec.TenantID, DataDir: rec.DataDir,
			UploadsDir: rec.UploadsDir, Prefix: "/t/" + rec.TenantID, Limits: limits.TenantDefaults()},
			tenantapp.Shared{Global: global, SheetParses: sheetParses})
	}, nil, RegistryOptions{IdleUnload: idle, SweepEvery: time.Hour, Now: clock.Now})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func (tr *testRegistry) upsert(t *testing.T, id string) {
	t.Helper()
	if _, err := tr.store.Upsert(context.Background(), tr.record(id)); err != nil {
		t.Fatal(err)
	}
}

// adminLoaded is what GET /admin/tenants/{id} says of "loaded".
func adminLoaded(t *testing.T, tr *testRegistry, id string) bool {
	t.Helper()
	h := NewAdmin(tr.store, tr.Registry, AdminOptions{Key: "k"}).Handler()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/admin/tenants/"+id, nil)
	r.Header.Set("X-Admin-Key", "k")
	h.ServeHTTP(w, r)
	var body struct {
		Tenant struct {
			Loaded *bool `json:"loaded"`
		} `json:"tenant"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 200 || body.Tenant.Loaded == nil {
		t.Fatalf("admin GET: %d %s (%v)", w.Code, w.Body, err)
	}
	return *body.Tenant.Loaded
}

func TestIdleTenantIsUnloadedAndComesBack(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tr := newIdleRegistry(t, time.Minute, clock, nil)
	tr.upsert(t, "t1")
	tr.upsert(t, "t2")
	if w := tr.get(t, "t1", "/health"); w.Code != 200 {
		t.Fatalf("health: %d %s", w.Code, w.Body)
	}
	clock.Advance(40 * time.Second)
	if w := tr.get(t, "t2", "/health"); w.Code != 200 {
		t.Fatalf("health: %d %s", w.Code, w.Body)
	}
	if n := tr.sweepIdle(); n != 0 || !adminLoaded(t, tr, "t1") {
		t.Fatalf("unloaded %d tenants before the idle limit", n)
	}
	clock.Advance(30 * time.Second) // t1 idle 70 s, t2 30 s
	if n := tr.sweepIdle(); n != 1 {
		t.Fatalf("sweep unloaded %d tenants, want 1", n)
	}
	if adminLoaded(t, tr, "t1") || !adminLoaded(t, tr, "t2") {
		t.Fatalf("loaded: t1 %v t2 %v, want false true", tr.IsLoaded("t1"), tr.IsLoaded("t2"))
	}
	// Its next request loads it again (data kept: the record is enabled).
	if w := tr.get(t, "t1", "/health"); w.Code != 200 {
		t.Fatalf("health after unload: %d %s", w.Code, w.Body)
	}
	if !adminLoaded(t, tr, "t1") || tr.builds.Load() != 3 {
		t.Fatalf("loaded %v, builds %d (want true, 3)", tr.IsLoaded("t1"), tr.builds.Load())
	}
	if rec, err := tr.store.Get(context.Background(), "t1"); err != nil || !rec.Enabled {
		t.Fatalf("record after idle unload: %+v %v", rec, err)
	}
}

// A request still inside a tenant keeps it loaded, however long it takes;
// the time counts from when it leaves.
func TestIdleKeepsTenantWithRequestInside(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tr := newIdleRegistry(t, time.Minute, clock, nil)
	tr.upsert(t, "t1")
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- tr.Use(context.Background(), "t1", func(*tenantapp.App) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	clock.Advance(time.Hour)
	if n := tr.sweepIdle(); n != 0 || !tr.IsLoaded("t1") {
		t.Fatal("a tenant with a request inside was unloaded")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	if n := tr.sweepIdle(); n != 0 {
		t.Fatal("unloaded before the limit counted from the request's end")
	}
	clock.Advance(time.Second)
	if n := tr.sweepIdle(); n != 1 || tr.IsLoaded("t1") {
		t.Fatal("idle tenant not unloaded")
	}
}

// A queued or running job keeps a tenant loaded; once it has finished the
// tenant is unloaded.
func TestIdleKeepsTenantWithQueuedJob(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	parses := limits.NewSem(1)
	if err := parses.Acquire(context.Background()); err != nil { // the exam worker waits for it
		t.Fatal(err)
	}
	held := true
	defer func() {
		if held {
			parses.Release()
		}
	}()
	tr := newIdleRegistry(t, time.Minute, clock, parses)
	tr.upsert(t, "t1")

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("score_files", "s.csv")
	fw.Write([]byte("姓名,总分\n张三,90\n"))
	mw.Close()
	for i := range 2 { // one running (waiting for the parse slot), one queued
		r := httptest.NewRequest("POST", "/exam/upload/start", bytes.NewReader(buf.Bytes()))
		r.Header.Set("Content-Type", mw.FormDataContentType())
		r = r.WithContext(caller.WithTenant(r.Context(), "t1"))
		w := httptest.NewRecorder()
		if err := tr.Serve(w, r, "t1"); err != nil || w.Code != 200 {
			t.Fatalf("upload %d: %v %d %s", i, err, w.Code, w.Body)
		}
	}
	var app *tenantapp.App
	if err := tr.Use(context.Background(), "t1", func(a *tenantapp.App) error { app = a; return nil }); err != nil {
		t.Fatal(err)
	}
	if !app.Busy() {
		t.Fatalf("tenant not busy with two uploads: %+v", app.Status().Workers)
	}
	clock.Advance(time.Hour)
	if n := tr.sweepIdle(); n != 0 || !adminLoaded(t, tr, "t1") {
		t.Fatal("a tenant with queued jobs was unloaded")
	}
	parses.Release()
	held = false
	deadline := time.Now().Add(20 * time.Second)
	for app.Busy() {
		if time.Now().After(deadline) {
			t.Fatalf("uploads never finished: %+v", app.Status().Workers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The jobs ran without a request: the tenant is idle since the last one.
	if n := tr.sweepIdle(); n != 1 || adminLoaded(t, tr, "t1") {
		t.Fatal("tenant not unloaded once its jobs were done")
	}
}

func TestIdleZeroDisables(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tr := newIdleRegistry(t, 0, clock, nil)
	if tr.idle.stop != nil {
		t.Fatal("a sweeper was started with IdleUnload 0")
	}
	tr.upsert(t, "t1")
	if w := tr.get(t, "t1", "/health"); w.Code != 200 {
		t.Fatalf("health: %d", w.Code)
	}
	clock.Advance(1000 * time.Hour)
	if n := tr.sweepIdle(); n != 0 || !tr.IsLoaded("t1") {
		t.Fatal("tenant unloaded with idle eviction off")
	}
	// Nor does the plain constructor start a sweeper (its one goroutine is
	// the store watcher).
	r := NewRegistry(tr.store, nil, nil)
	defer r.Close(context.Background())
	if r.idle.stop != nil || r.idle.after != 0 {
		t.Fatal("NewRegistry without options turned idle eviction on")
	}
}

func TestIdleSweepInterval(t *testing.T) {
	for _, c := range []struct{ idle, every, want time.Duration }{
		{30 * time.Minute, 0, 7*time.Minute + 30*time.Second},
		{2 * time.Second, 0, MinSweepEvery},
		{time.Minute, 10 * time.Millisecond, 10 * time.Millisecond},
	} {
		var r Registry
		r.initIdle(RegistryOptions{IdleUnload: c.idle, SweepEvery: c.every})
		if r.idle.every != c.want {
			t.Errorf("idle %v every %v: sweeps every %v, want %v", c.idle, c.every, r.idle.every, c.want)
		}
		r.stopSweeper()
		r.idle.wg.Wait()
	}
}

// The registry's one sweeper, on the real clock, unloads an idle tenant by
// itself; Close stops it (goleak checks in TestMain).
func TestIdleSweeperRuns(t *testing.T) {
	root := t.TempDir()
	store := openTestStore(t, filepath.Join(root, "_system", "tenants.db"))
	global := limits.NewSet(limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4})
	var builds atomic.Int32
	reg := NewRegistry(store, func(rec Record) (*tenantapp.App, error) {
		builds.Add(1)
		return tenantapp.New(tenantapp.Settings{TenantID: rec.TenantID, DataDir: rec.DataDir,
			UploadsDir: rec.UploadsDir, Limits: limits.TenantDefaults()}, tenantapp.Shared{Global: global})
	}, nil, RegistryOptions{IdleUnload: 30 * time.Millisecond, SweepEvery: 5 * time.Millisecond})
	tr := &testRegistry{Registry: reg, store: store, root: root}
	tr.upsert(t, "t1")
	if w := tr.get(t, "t1", "/health"); w.Code != 200 {
		t.Fatalf("health: %d", w.Code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reg.IsLoaded("t1") {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never unloaded the idle tenant")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if w := tr.get(t, "t1", "/health"); w.Code != 200 || builds.Load() != 2 {
		t.Fatalf("health after unload: %d, builds %d", w.Code, builds.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(ctx); err != nil { // twice is fine
		t.Fatal(err)
	}
}

func TestStoreCheck(t *testing.T) {
	store := openTestStore(t, filepath.Join(t.TempDir(), "tenants.db"))
	ctx := context.Background()
	if err := store.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Upsert(ctx, Record{TenantID: "t1", DataDir: "/d", UploadsDir: "/u", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := store.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if recs, err := store.List(ctx, false); err != nil || len(recs) != 1 {
		t.Fatalf("after check: %v %v", recs, err)
	}
	store.Close()
	if err := store.Check(ctx); err == nil {
		t.Fatal("a closed store passed the check")
	}
}

// RegistryOptions.Handler wraps each loaded instance once: here the
// readiness routes, with the store's check, reach every tenant.
func TestRegistryHandlerOption(t *testing.T) {
	root := t.TempDir()
	store := openTestStore(t, filepath.Join(root, "_system", "tenants.db"))
	global := limits.NewSet(limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4})
	var wraps atomic.Int32
	reg := NewRegistry(store, func(rec Record) (*tenantapp.App, error) {
		return tenantapp.New(tenantapp.Settings{TenantID: rec.TenantID, DataDir: rec.DataDir,
			UploadsDir: rec.UploadsDir, Limits: limits.TenantDefaults()}, tenantapp.Shared{Global: global})
	}, nil, RegistryOptions{Handler: func(a *tenantapp.App) http.Handler {
		wraps.Add(1)
		return tenantapp.WithReadiness(a, tenantapp.ReadyOptions{Strict: true,
			Checks: []tenantapp.Check{{Name: "config_store", Run: store.Check}}})
	}})
	tr := &testRegistry{Registry: reg, store: store, root: root}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := reg.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	tr.upsert(t, "t1")
	for range 3 {
		if w := tr.get(t, "t1", "/ready"); w.Code != 200 || w.Body.String() != `{"status":"ready"}` {
			t.Fatalf("/ready: %d %s", w.Code, w.Body)
		}
	}
	if w := tr.get(t, "t1", "/health"); w.Code != 200 {
		t.Fatalf("/health: %d %s", w.Code, w.Body)
	}
	if wraps.Load() != 1 {
		t.Fatalf("wrapped %d times, want once per instance", wraps.Load())
	}
}

// Stamping activity adds no allocation to a request.
func TestIdleStampAllocatesNothing(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tr := newIdleRegistry(t, time.Minute, clock, nil)
	tr.upsert(t, "t1")
	ctx := context.Background()
	if err := tr.Use(ctx, "t1", func(*tenantapp.App) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		h, err := tr.enter(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		tr.leave(h)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}
