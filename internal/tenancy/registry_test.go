package tenancy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/tenantapp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testRegistry is a registry over a real store whose builder makes real
// tenant apps and counts how many it built.
type testRegistry struct {
	*Registry
	store  *Store
	builds atomic.Int32
	root   string
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	root := t.TempDir()
	store := openTestStore(t, filepath.Join(root, "_system", "tenants.db"))
	global := limits.NewSet(limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4})
	tr := &testRegistry{store: store, root: root}
	tr.Registry = NewRegistry(store, func(rec Record) (*tenantapp.App, error) {
		tr.builds.Add(1)
		lim, err := Limits(rec.Extra)
		if err != nil {
			return nil, err
		}
		return tenantapp.New(tenantapp.Settings{TenantID: rec.TenantID, DataDir: rec.DataDir,
			UploadsDir: rec.UploadsDir, Prefix: "/t/" + rec.TenantID, Limits: lim}, tenantapp.Shared{Global: global})
	}, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func (tr *testRegistry) record(id string) Record {
	return Record{TenantID: id, DataDir: filepath.Join(tr.root, id, "data"),
		UploadsDir: filepath.Join(tr.root, id, "uploads"), Enabled: true, Extra: map[string]any{}}
}

func (tr *testRegistry) get(t *testing.T, id, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", path, nil)
	if err := tr.Serve(w, r, id); err != nil {
		w.Code = 0
		w.Body.WriteString(err.Error())
	}
	return w
}

func TestRegistryLoadsFromStoreOnFirstUse(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	if _, err := tr.store.Upsert(ctx, tr.record("t1")); err != nil {
		t.Fatal(err)
	}
	if tr.IsLoaded("t1") {
		t.Fatal("loaded before first use")
	}
	if w := tr.get(t, "t1", "/health"); w.Code != 200 || w.Body.String() != healthBody {
		t.Fatalf("health: %d %s", w.Code, w.Body)
	}
	if !tr.IsLoaded("t1") || tr.builds.Load() != 1 {
		t.Fatalf("loaded=%v builds=%d", tr.IsLoaded("t1"), tr.builds.Load())
	}
}

func TestRegistryUnknownAndDisabled(t *testing.T) {
	tr := newTestRegistry(t)
	rec := tr.record("off")
	rec.Enabled = false
	if _, err := tr.store.Upsert(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"nobody", "off", "../x", ""} {
		err := tr.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/health", nil), id)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: err = %v", id, err)
		}
	}
	if tr.builds.Load() != 0 {
		t.Fatalf("built %d instances for missing tenants", tr.builds.Load())
	}
}

// 50 concurrent first requests to one new tenant build exactly one instance.
func TestRegistryConcurrentFirstRequestsBuildOnce(t *testing.T) {
	tr := newTestRegistry(t)
	if _, err := tr.store.Upsert(context.Background(), tr.record("t1")); err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range codes {
		wg.Go(func() {
			<-start
			codes[i] = tr.get(t, "t1", "/health").Code
		})
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: status %d", i, c)
		}
	}
	if n := tr.builds.Load(); n != 1 {
		t.Fatalf("built %d instances, want 1", n)
	}
}

// A request inside the old instance keeps it alive across a replace, while
// new requests already reach the new one.
func TestRegistryReplaceLetsInFlightRequestsFinish(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	if _, err := tr.Put(ctx, tr.record("t1")); err != nil {
		t.Fatal(err)
	}
	old := tr.current("t1")
	if !old.enter(0) { // a request inside the old instance
		t.Fatal("could not enter")
	}
	replaced := make(chan error, 1)
	go func() {
		_, err := tr.Put(ctx, tr.record("t1"))
		replaced <- err
	}()
	// New requests reach the new instance while the old one drains.
	deadline := time.Now().Add(5 * time.Second)
	for tr.current("t1") == old {
		if time.Now().After(deadline) {
			t.Fatal("new instance never swapped in")
		}
		time.Sleep(time.Millisecond)
	}
	if w := tr.get(t, "t1", "/health"); w.Code != 200 {
		t.Fatalf("request during replace: %d", w.Code)
	}
	select {
	case err := <-replaced:
		t.Fatalf("replace finished (%v) while a request was still inside the old instance", err)
	case <-time.After(50 * time.Millisecond):
	}
	old.leave(0)
	if err := <-replaced; err != nil {
		t.Fatal(err)
	}
	if tr.builds.Load() != 2 {
		t.Fatalf("builds = %d, want 2", tr.builds.Load())
	}
}

// Building tenant A never blocks tenant B: while A's load is stuck, B loads
// and answers.
func TestRegistrySlowBuildDoesNotBlockOthers(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	for _, id := range []string{"slow", "fast"} {
		if _, err := tr.store.Upsert(ctx, tr.record(id)); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	inner := tr.build
	tr.build = func(rec Record) (*tenantapp.App, error) {
		if rec.TenantID == "slow" {
			<-release
		}
		return inner(rec)
	}
	slowDone := make(chan int)
	go func() { slowDone <- tr.get(t, "slow", "/health").Code }()
	if w := tr.get(t, "fast", "/health"); w.Code != 200 {
		t.Fatalf("fast tenant: %d", w.Code)
	}
	close(release)
	if c := <-slowDone; c != 200 {
		t.Fatalf("slow tenant: %d", c)
	}
}

// A config that cannot start is refused and nothing is stored.
func TestRegistryPutRefusesUnstartableConfig(t *testing.T) {
	tr := newTestRegistry(t)
	blocker := filepath.Join(tr.root, "file")
	if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := tr.record("t1")
	rec.DataDir = filepath.Join(blocker, "data") // a path below a regular file
	if _, err := tr.Put(context.Background(), rec); err == nil {
		t.Fatal("put succeeded")
	}
	if _, err := tr.store.Get(context.Background(), "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store: %v", err)
	}
}

// Unloading a tenant (Disable, as DELETE does) stops all of its goroutines.
func TestRegistryDisableLeavesNoGoroutines(t *testing.T) {
	tr := newTestRegistry(t)
	before := goleak.IgnoreCurrent()
	ctx := context.Background()
	if _, err := tr.Put(ctx, tr.record("t1")); err != nil {
		t.Fatal(err)
	}
	if w := tr.get(t, "t1", "/exams"); w.Code != 200 {
		t.Fatalf("exams: %d", w.Code)
	}
	if err := tr.Disable(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
	if w := tr.get(t, "t1", "/health"); w.Code != 0 {
		t.Fatalf("disabled tenant answered %d", w.Code)
	}
	if err := tr.Disable(ctx, "never"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disable unknown: %v", err)
	}
}

func TestRegistryCloseRefusesLoads(t *testing.T) {
	tr := newTestRegistry(t)
	ctx := context.Background()
	if _, err := tr.Put(ctx, tr.record("t1")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 0 {
		t.Fatalf("%d tenants still loaded", tr.Len())
	}
	err := tr.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/health", nil), "t1")
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("serve after close: %v", err)
	}
}

var _ http.Handler = (*Dispatcher)(nil)

// healthBody is GET /health of a server without an LLM.
const healthBody = `{"status":"ok","llm":"not_configured","hint":"set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (or LLM_PROVIDERS_FILE) to enable chat"}`
