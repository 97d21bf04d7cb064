package tenancy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/tenantapp"
)

// fakeInstance is an Instance with no tenant app behind it: it answers
// every request with its name (tenant#generation) and the llm_total its
// record asks for, and logs its starts and stops in its registry's trace.
type fakeInstance struct {
	name  string
	rec   Record
	trace *trace
	busy  atomic.Bool
	// startCtx is the context Start was given, startErr its Err then.
	startCtx context.Context
	startErr error

	mu               sync.Mutex
	started, stopped int
}

func (f *fakeInstance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s llm_total=%d", f.name, f.limits().LLMTotal)
}

func (f *fakeInstance) limits() limits.Config {
	lim, err := Limits(f.rec.Extra)
	if err != nil {
		return limits.Config{}
	}
	return lim
}

func (f *fakeInstance) Start(ctx context.Context) error {
	f.mu.Lock()
	f.started++
	f.startCtx, f.startErr = ctx, ctx.Err()
	f.mu.Unlock()
	f.trace.add("start " + f.name)
	return nil
}

func (f *fakeInstance) Stop(ctx context.Context) error {
	f.mu.Lock()
	f.stopped++
	f.mu.Unlock()
	f.trace.add("stop " + f.name)
	return nil
}

func (f *fakeInstance) Busy() bool { return f.busy.Load() }

func (f *fakeInstance) Status() tenantapp.Status { return tenantapp.Status{Limits: f.limits()} }

func (f *fakeInstance) counts() (started, stopped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started, f.stopped
}

// trace is the ordered log of a fake registry's instances.
type trace struct {
	mu    sync.Mutex
	lines []string
}

func (t *trace) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
}

func (t *trace) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, ", ")
}

// fakeRegistry is a registry of fake instances over a real store.
type fakeRegistry struct {
	*RegistryOf[*fakeInstance]
	store *Store
	path  string // the store's file
	trace *trace
	// buildHook, when set, runs at the start of each build (with the
	// record); an error it returns fails the build.
	buildHook func(Record) error

	mu    sync.Mutex
	built []*fakeInstance
}

func newFakeRegistry(t *testing.T, opts OptionsOf[*fakeInstance]) *fakeRegistry {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tenants.sqlite3")
	fr := &fakeRegistry{store: openTestStore(t, path), path: path, trace: &trace{}}
	fr.RegistryOf = NewRegistryOf(fr.store, func(rec Record) (*fakeInstance, error) {
		if fr.buildHook != nil {
			if err := fr.buildHook(rec); err != nil {
				return nil, err
			}
		}
		fr.mu.Lock()
		defer fr.mu.Unlock()
		n := 1
		for _, b := range fr.built {
			if b.rec.TenantID == rec.TenantID {
				n++
			}
		}
		f := &fakeInstance{name: fmt.Sprintf("%s#%d", rec.TenantID, n), rec: rec, trace: fr.trace}
		fr.built = append(fr.built, f)
		return f, nil
	}, nil, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := fr.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return fr
}

func (fr *fakeRegistry) builds() int {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return len(fr.built)
}

func fakeRecord(id string, llmTotal int) Record {
	return Record{TenantID: id, DataDir: "/srv/" + id + "/data", UploadsDir: "/srv/" + id + "/uploads", Enabled: true,
		Extra: map[string]any{"limits": map[string]any{"llm_total": float64(llmTotal)}}}
}

// body is what tenant id answers at /, or the registry's error.
func (fr *fakeRegistry) body(t *testing.T, id string) string {
	t.Helper()
	w := httptest.NewRecorder()
	if err := fr.Serve(w, httptest.NewRequest("GET", "/", nil), id); err != nil {
		return "error: " + err.Error()
	}
	return w.Body.String()
}

type ctxKey struct{}

// The registry alone, over fake instances: built on first use from the
// store, started under a context of its own (not the first request's:
// its values and its end do not reach the instance), stopped on Close.
func TestRegistryOfLoadsFakeInstance(t *testing.T) {
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{WatchEvery: -1})
	if _, err := fr.store.Upsert(context.Background(), fakeRecord("t1", 3)); err != nil {
		t.Fatal(err)
	}
	// The first request has hung up already: the load goes on for the
	// others that may wait for it.
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "request values"))
	cancel()
	w := httptest.NewRecorder()
	if err := fr.Serve(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx), "t1"); err != nil {
		t.Fatal(err)
	}
	if got := w.Body.String(); got != "t1#1 llm_total=3" {
		t.Fatalf("served %q", got)
	}
	inst := fr.built[0]
	if inst.startCtx.Value(ctxKey{}) != nil {
		t.Fatal("the instance was started under the first request's context")
	}
	if inst.startErr != nil {
		t.Fatalf("the instance was started under an ended context: %v", inst.startErr)
	}
	if info, ok := fr.Info("t1"); !ok || info.Status.Limits.LLMTotal != 3 {
		t.Fatalf("Info = %+v, %v", info, ok)
	}
	if st := fr.Statuses(); len(st) != 1 || st["t1"].Limits.LLMTotal != 3 {
		t.Fatalf("Statuses = %+v", st)
	}
	if err := fr.Use(context.Background(), "t1", func(f *fakeInstance) error {
		if f != inst {
			return errors.New("Use gave another instance")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := fr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := fr.trace.String(), "start t1#1, stop t1#1"; got != want {
		t.Fatalf("trace %q, want %q", got, want)
	}
}

// Put builds the new instance, swaps it in, stops the old one and only
// then starts the new one; a build that fails stores nothing and keeps
// the old instance serving.
func TestRegistryOfPutOrder(t *testing.T) {
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{WatchEvery: -1})
	ctx := context.Background()
	if _, err := fr.Put(ctx, fakeRecord("t1", 3)); err != nil {
		t.Fatal(err)
	}
	stored, err := fr.Put(ctx, fakeRecord("t1", 4))
	if err != nil {
		t.Fatal(err)
	}
	if stored.UpdatedAt == "" {
		t.Fatalf("Put answered %+v", stored)
	}
	if got, want := fr.trace.String(), "start t1#1, stop t1#1, start t1#2"; got != want {
		t.Fatalf("trace %q, want %q", got, want)
	}
	fr.buildHook = func(Record) error { return errors.New("no") }
	if _, err := fr.Put(ctx, fakeRecord("t1", 5)); err == nil {
		t.Fatal("a config that does not build was accepted")
	}
	fr.buildHook = nil
	if rec, err := fr.store.Get(ctx, "t1"); err != nil || fmt.Sprint(rec.Extra) != fmt.Sprint(fakeRecord("t1", 4).Extra) {
		t.Fatalf("stored %+v, %v", rec, err)
	}
	if got := fr.body(t, "t1"); got != "t1#2 llm_total=4" {
		t.Fatalf("served %q", got)
	}
	// Disabled: unloaded, refused.
	off := fakeRecord("t1", 4)
	off.Enabled = false
	if _, err := fr.Put(ctx, off); err != nil {
		t.Fatal(err)
	}
	if fr.IsLoaded("t1") || !strings.Contains(fr.body(t, "t1"), ErrNotFound.Error()) {
		t.Fatal("a disabled tenant still serves")
	}
}

// Idle eviction asks the instance whether it is busy: a busy one stays.
func TestRegistryOfIdleAsksBusy(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{IdleUnload: time.Minute, SweepEvery: time.Hour, Now: clock.Now, WatchEvery: -1})
	if _, err := fr.Put(context.Background(), fakeRecord("t1", 3)); err != nil {
		t.Fatal(err)
	}
	inst := fr.built[0]
	inst.busy.Store(true)
	clock.Advance(time.Hour)
	if n := fr.sweepIdle(); n != 0 || !fr.IsLoaded("t1") {
		t.Fatal("a busy instance was unloaded")
	}
	inst.busy.Store(false)
	if n := fr.sweepIdle(); n != 1 || fr.IsLoaded("t1") {
		t.Fatal("an idle instance stayed loaded")
	}
	if _, stopped := inst.counts(); stopped != 1 {
		t.Fatalf("stopped %d times", stopped)
	}
}

// otherProcess is a second Store on the registry's file, as another
// process (another server, `lectern tenants put`) holds one: its own
// connections, its own commits.
func (fr *fakeRegistry) otherProcess(t *testing.T) *Store {
	t.Helper()
	return openTestStore(t, fr.path)
}

// waitFor polls cond until it holds or 5 s pass, and returns how long it
// took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > 5*time.Second {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(began)
}

// A config changed in the store by another connection reaches the loaded
// tenant within a second: rebuilt, swapped in, the old instance stopped
// before the new one starts. The same watcher unloads a tenant disabled or
// deleted there. Tenants not loaded are not built. So it goes woken by the
// store's file events, and polling.
func TestWatchSeesOtherProcessChanges(t *testing.T) {
	t.Run("file events", func(t *testing.T) { testWatchSeesOtherProcessChanges(t, OptionsOf[*fakeInstance]{}) })
	t.Run("polling", func(t *testing.T) { testWatchSeesOtherProcessChanges(t, OptionsOf[*fakeInstance]{pollOnly: true}) })
}

func testWatchSeesOtherProcessChanges(t *testing.T, opts OptionsOf[*fakeInstance]) {
	fr := newFakeRegistry(t, opts)
	other := fr.otherProcess(t)
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		if _, err := other.Upsert(ctx, fakeRecord(id, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if got := fr.body(t, "t1"); got != "t1#1 llm_total=3" {
		t.Fatalf("served %q", got)
	}

	if _, err := other.Upsert(ctx, fakeRecord("t1", 7)); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "the changed limits never reached t1", func() bool {
		info, ok := fr.Info("t1")
		return ok && info.Status.Limits.LLMTotal == 7
	})
	t.Logf("a change made by another connection reached the loaded tenant in %v", took)
	if took > time.Second {
		t.Fatalf("the change took %v, more than 1 s", took)
	}
	if got := fr.body(t, "t1"); got != "t1#2 llm_total=7" {
		t.Fatalf("served %q", got)
	}
	waitFor(t, "t1#1 never stopped", func() bool { return strings.Contains(fr.trace.String(), "stop t1#1, start t1#2") })

	// t2 changed but was never loaded: nothing built for it.
	if _, err := other.Upsert(ctx, fakeRecord("t2", 9)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * DefaultWatchEvery)
	if fr.IsLoaded("t2") || fr.builds() != 2 {
		t.Fatalf("t2 loaded=%v, %d builds", fr.IsLoaded("t2"), fr.builds())
	}
	if got := fr.body(t, "t2"); got != "t2#1 llm_total=9" {
		t.Fatalf("t2 served %q", got)
	}

	// Disabled there: unloaded here.
	if err := other.Disable(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "disabled t1 stayed loaded", func() bool { return !fr.IsLoaded("t1") })
	// Deleted there: unloaded here.
	if err := other.Delete(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deleted t2 stayed loaded", func() bool { return !fr.IsLoaded("t2") })
	if got := fr.body(t, "t2"); !strings.Contains(got, ErrNotFound.Error()) {
		t.Fatalf("deleted t2 served %q", got)
	}
	if got, want := fr.trace.String(), "start t1#1, stop t1#1, start t1#2, start t2#1, stop t1#2, stop t2#1"; got != want {
		t.Fatalf("trace %q, want %q", got, want)
	}
}

// The registry's own Put and a write that changes nothing are seen by the
// watcher too, and rebuild nothing.
func TestWatchIgnoresUnchangedConfig(t *testing.T) {
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{WatchEvery: 10 * time.Millisecond})
	other := fr.otherProcess(t)
	ctx := context.Background()
	if _, err := fr.Put(ctx, fakeRecord("t1", 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Upsert(ctx, fakeRecord("t1", 3)); err != nil { // the same config again
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := fr.builds(); n != 1 {
		t.Fatalf("%d builds, want 1 (trace %s)", n, fr.trace)
	}
}

// A load that read the record just before another process changed it is
// not left stale: the watcher's refresh waits for the load, then rebuilds.
func TestWatchRefreshesALoadThatReadTheOldRecord(t *testing.T) {
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{WatchEvery: 10 * time.Millisecond})
	other := fr.otherProcess(t)
	ctx := context.Background()
	if _, err := other.Upsert(ctx, fakeRecord("t1", 3)); err != nil {
		t.Fatal(err)
	}
	building, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fr.buildHook = func(rec Record) error {
		once.Do(func() { close(building); <-release })
		return nil
	}
	served := make(chan string, 1)
	go func() { served <- fr.body(t, "t1") }()
	<-building // the load read llm_total=3 and is building
	if _, err := other.Upsert(ctx, fakeRecord("t1", 8)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the watcher sees the change meanwhile
	close(release)
	// The first request gets the instance its load built, or, when the
	// refresh waiting for the tenant's lock swapped it in first (enter then
	// looks again), the refreshed one: either, never another.
	if got := <-served; got != "t1#1 llm_total=3" && got != "t1#2 llm_total=8" {
		t.Fatalf("first request served %q", got)
	}
	waitFor(t, "the load that read the old record stayed stale", func() bool {
		info, ok := fr.Info("t1")
		return ok && info.Status.Limits.LLMTotal == 8
	})
}

// A change that does not build leaves the loaded instance serving.
func TestWatchKeepsInstanceWhenChangeDoesNotBuild(t *testing.T) {
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{WatchEvery: 10 * time.Millisecond})
	other := fr.otherProcess(t)
	ctx := context.Background()
	if _, err := fr.Put(ctx, fakeRecord("t1", 3)); err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	fr.buildHook = func(rec Record) error {
		refused.Add(1)
		return errors.New("does not build")
	}
	if _, err := other.Upsert(ctx, fakeRecord("t1", 4)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watcher never tried the change", func() bool { return refused.Load() > 0 })
	if got := fr.body(t, "t1"); got != "t1#1 llm_total=3" {
		t.Fatalf("served %q", got)
	}
}

// Many tenants loaded, one watcher: the number of goroutines does not
// grow with them (no loop per tenant), and Close stops it.
func TestWatchIsOneGoroutine(t *testing.T) {
	fr := newFakeRegistry(t, OptionsOf[*fakeInstance]{})
	ctx := context.Background()
	for i := range 200 {
		if _, err := fr.store.Upsert(ctx, fakeRecord(fmt.Sprintf("t%d", i), 3)); err != nil {
			t.Fatal(err)
		}
	}
	before := runtimeGoroutines()
	for i := range 200 {
		fr.body(t, fmt.Sprintf("t%d", i))
	}
	time.Sleep(3 * DefaultWatchEvery) // refreshes of the upserts above, if any, are done
	if after := runtimeGoroutines(); after > before+2 {
		t.Fatalf("%d goroutines with 200 tenants loaded, %d before", after, before)
	}
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }
