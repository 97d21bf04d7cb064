package tenancy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lectern/lectern/internal/keyedlock"
	"github.com/lectern/lectern/internal/tenantapp"
)

// ErrClosed is returned once the registry is shutting down.
var ErrClosed = errors.New("tenant registry is closed")

// RegistryOf holds the loaded tenants, instances of I (see [Instance];
// the server's is [Registry], of tenant apps). A tenant is built on first
// use from the store, replaced when its config changes (through Put, or
// in the store by another process: see watch.go) and unloaded when
// disabled or deleted.
//
// Locking: mu guards the map and is only held for map operations. Loading,
// replacing and unloading one tenant take that tenant's own lock, so a slow
// build of tenant A never delays tenant B, and concurrent first requests to
// one tenant build it once. The tenant locks are process-local: another
// process on the same store has its own instances, and learns of a change
// through the store's change log.
type RegistryOf[I Instance] struct {
	store *Store
	build BuilderOf[I]
	log   *slog.Logger
	// drainTimeout bounds how long a replaced or unloaded tenant waits for
	// its in-flight requests before its workers are stopped anyway.
	drainTimeout time.Duration

	mu      sync.Mutex
	loaded  map[string]*handle[I]
	locks   keyedlock.Map[string] // one per tenant: load, replace, unload
	closed  bool
	retired sync.WaitGroup

	// idle is the idle-eviction state (idle.go); idle.after == 0 when
	// eviction is off.
	idle idleState
	// watch is the store watcher's state (watch.go).
	watch watchState
	// wrap is OptionsOf.Handler.
	wrap   func(I) http.Handler
	events func(Event) // OptionsOf.Events; nil: none
}

// NewRegistryOf returns an empty registry over store. opts (at most one
// is read) turn on idle eviction and set the store watcher; without them
// a tenant stays loaded until it is disabled, replaced or deleted (here or
// by another process) or the registry closes.
func NewRegistryOf[I Instance](store *Store, build BuilderOf[I], log *slog.Logger, opts ...OptionsOf[I]) *RegistryOf[I] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &RegistryOf[I]{
		store:        store,
		build:        build,
		log:          log,
		drainTimeout: 30 * time.Second,
		loaded:       map[string]*handle[I]{},
	}
	var o OptionsOf[I]
	if len(opts) > 0 {
		o = opts[0]
	}
	r.wrap = o.Handler
	r.events = o.Events
	r.initIdle(o)
	r.initWatch(o.WatchEvery, o.pollOnly)
	return r
}

// handle is one loaded instance with the count of requests inside it.
type handle[I Instance] struct {
	app I
	// serve is what requests reach: app, or OptionsOf.Handler's wrapping
	// of it.
	serve    http.Handler
	rec      Record
	loadedAt time.Time

	// lastActive is when a request last entered or left, on the
	// registry's idle clock (idleState.since); written under mu, read by
	// the sweeper without it.
	lastActive atomic.Int64

	mu       sync.Mutex
	inflight int
	draining bool
	drained  chan struct{}
}

func (r *RegistryOf[I]) newHandle(app I, rec Record) *handle[I] {
	h := &handle[I]{app: app, serve: app, rec: rec, loadedAt: time.Now(), drained: make(chan struct{})}
	if r.wrap != nil {
		h.serve = r.wrap(app)
	}
	h.lastActive.Store(r.idle.since())
	return h
}

// enter counts a request in at now (idle clock); it fails once the handle
// is draining.
func (h *handle[I]) enter(now int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.inflight++
	h.lastActive.Store(now)
	return true
}

func (h *handle[I]) leave(now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	h.lastActive.Store(now)
	if h.draining && h.inflight == 0 {
		close(h.drained)
	}
}

func (h *handle[I]) inFlight() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inflight
}

// drain refuses new requests and waits for those inside to finish.
func (h *handle[I]) drain(ctx context.Context) error {
	h.mu.Lock()
	if !h.draining {
		h.draining = true
		if h.inflight == 0 {
			close(h.drained)
		}
	}
	h.mu.Unlock()
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lock takes tenant id's lock (process-local) and returns its release.
func (r *RegistryOf[I]) lock(id string) (unlock func()) { return r.locks.Lock(id) }

func (r *RegistryOf[I]) current(id string) *handle[I] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loaded[id]
}

// Serve runs one request against tenant id, loading the tenant if needed.
// A request that meets a tenant being replaced goes to the new instance.
func (r *RegistryOf[I]) Serve(w http.ResponseWriter, req *http.Request, id string) error {
	h, err := r.enter(req.Context(), id)
	if err != nil {
		return err
	}
	defer r.leave(h)
	h.serve.ServeHTTP(w, req)
	return nil
}

// Use runs f with tenant id's live instance (loading it if needed); the
// instance counts as in use meanwhile, so it is not stopped under f.
func (r *RegistryOf[I]) Use(ctx context.Context, id string, f func(I) error) error {
	h, err := r.enter(ctx, id)
	if err != nil {
		return err
	}
	defer r.leave(h)
	return f(h.app)
}

func (r *RegistryOf[I]) enter(ctx context.Context, id string) (*handle[I], error) {
	for {
		if h := r.current(id); h != nil && h.enter(r.idle.since()) {
			return h, nil
		}
		h, err := r.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if h.enter(r.idle.since()) {
			return h, nil
		}
		// Replaced or unloaded between load and enter: look again.
	}
}

// leave counts a request of h out.
func (r *RegistryOf[I]) leave(h *handle[I]) { h.leave(r.idle.since()) }

// load returns the loaded instance of id, building it from the store if
// there is none.
func (r *RegistryOf[I]) load(ctx context.Context, id string) (*handle[I], error) {
	if !ValidTenantID(id) {
		return nil, ErrNotFound
	}
	unlock := r.lock(id)
	defer unlock()
	if h := r.current(id); h != nil {
		return h, nil
	}
	// The build must not fail because the first requester hung up: others
	// may be waiting for the same tenant. Nor may the instance keep that
	// request's values (its principal, its request id) for its whole
	// life: it starts under a context of its own.
	ctx, cancel := context.WithTimeout(context.Background(), tenantapp.LoadTimeout)
	defer cancel()
	rec, err := r.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !rec.Enabled {
		return nil, ErrNotFound
	}
	h, err := r.start(ctx, rec)
	if err != nil {
		return nil, err
	}
	if err := r.install(id, h); err != nil {
		r.stop(h)
		return nil, err
	}
	return h, nil
}

// start builds and starts an instance for rec.
func (r *RegistryOf[I]) start(ctx context.Context, rec Record) (*handle[I], error) {
	began := time.Now()
	app, err := r.build(rec)
	if err != nil {
		return nil, fmt.Errorf("build tenant %s: %w", rec.TenantID, err)
	}
	if err := app.Start(ctx); err != nil {
		app.Stop(ctx)
		return nil, fmt.Errorf("start tenant %s: %w", rec.TenantID, err)
	}
	r.log.Info("tenant loaded", "tenant", rec.TenantID)
	r.event(Event{Kind: EventLoad, Tenant: rec.TenantID, Took: time.Since(began)})
	return r.newHandle(app, rec), nil
}

// swap puts h (or, when nil, nothing) in place for id and returns what was
// there.
func (r *RegistryOf[I]) swap(id string, h *handle[I]) (old *handle[I], err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	old = r.loaded[id]
	if h == nil {
		delete(r.loaded, id)
	} else {
		r.loaded[id] = h
	}
	return old, nil
}

// install puts a freshly loaded h in place for id.
func (r *RegistryOf[I]) install(id string, h *handle[I]) error {
	_, err := r.swap(id, h)
	return err
}

// Put stores rec and makes it live: an enabled tenant is built first (so a
// config that cannot be built is refused with nothing stored), then
// swapped in, so new requests reach it at once. The old instance drains and
// stops, and only then does the new one start its workers: the two never
// process the same job. A disabled tenant is unloaded. The tenant's lock is
// held throughout, so a load or another Put of the same tenant waits.
func (r *RegistryOf[I]) Put(ctx context.Context, rec Record) (Record, error) {
	unlock := r.lock(rec.TenantID)
	defer unlock()
	return r.replaceLocked(ctx, rec, func(rec Record) (Record, error) { return r.store.Upsert(ctx, rec) })
}

// replaceLocked makes rec live for its tenant, as Put describes, with the
// tenant's lock held: the new instance (none when rec is disabled) is
// built, write (when set) stores rec and returns the stored record, then
// the new instance is swapped in, the old one retired and the new one
// started. A build or write that fails changes nothing.
func (r *RegistryOf[I]) replaceLocked(ctx context.Context, rec Record, write func(Record) (Record, error)) (Record, error) {
	var h *handle[I]
	began := time.Now()
	if rec.Enabled {
		app, err := r.build(rec)
		if err != nil {
			return Record{}, fmt.Errorf("build tenant %s: %w", rec.TenantID, err)
		}
		h = r.newHandle(app, rec)
	}
	stored, err := rec, error(nil)
	if write != nil {
		stored, err = write(rec)
	}
	var old *handle[I]
	if err == nil {
		if h != nil {
			h.rec = stored // what the store watcher compares with
		}
		old, err = r.swap(rec.TenantID, h)
	}
	if err != nil {
		if h != nil {
			r.stop(h)
		}
		return Record{}, err
	}
	if old != nil && h != nil {
		r.event(Event{Kind: EventReplace, Tenant: rec.TenantID})
	}
	r.retire(ctx, old)
	if h != nil {
		// The workers live as long as the tenant, not as the request (or
		// the watcher's round) that put it: a context of their own.
		sctx, cancel := context.WithTimeout(context.Background(), tenantapp.LoadTimeout)
		defer cancel()
		if err := h.app.Start(sctx); err != nil {
			r.log.Error("tenant workers did not start", "tenant", rec.TenantID, "err", err)
		} else {
			r.log.Info("tenant loaded", "tenant", rec.TenantID)
			if old == nil {
				r.event(Event{Kind: EventLoad, Tenant: rec.TenantID, Took: time.Since(began)})
			}
		}
	}
	return stored, nil
}

// Disable marks the tenant disabled in the store and unloads it.
func (r *RegistryOf[I]) Disable(ctx context.Context, id string) error {
	return r.unload(ctx, id, func() error { return r.store.Disable(ctx, id) })
}

// Unload drops the loaded instance of id, if any, without touching the
// store; the next request loads it again.
func (r *RegistryOf[I]) Unload(ctx context.Context, id string) error {
	return r.unload(ctx, id, func() error { return nil })
}

// unload runs first under the tenant's lock, then takes the instance out
// and retires it.
// The lock is held until the old instance has stopped, so a request that
// loads the tenant again never overlaps with it.
func (r *RegistryOf[I]) unload(ctx context.Context, id string, first func() error) error {
	unlock := r.lock(id)
	defer unlock()
	err := first()
	var old *handle[I]
	if err == nil {
		old, err = r.swap(id, nil)
	}
	if err != nil {
		return err
	}
	r.retire(ctx, old)
	return nil
}

// retire lets the requests inside h finish (bounded by the drain timeout
// and ctx), then stops its workers and waits for them.
func (r *RegistryOf[I]) retire(ctx context.Context, h *handle[I]) {
	if h == nil {
		return
	}
	r.retired.Add(1)
	defer r.retired.Done()
	dctx, cancel := context.WithTimeout(ctx, r.drainTimeout)
	defer cancel()
	if err := h.drain(dctx); err != nil {
		r.log.Warn("tenant still had requests in flight when stopped", "tenant", h.rec.TenantID, "in_flight", h.inFlight())
	}
	r.stop(h)
}

func (r *RegistryOf[I]) stop(h *handle[I]) {
	ctx, cancel := context.WithTimeout(context.Background(), tenantapp.LoadTimeout)
	defer cancel()
	if err := h.app.Stop(ctx); err != nil {
		r.log.Error("tenant did not stop cleanly", "tenant", h.rec.TenantID, "err", err)
		return
	}
	r.log.Info("tenant unloaded", "tenant", h.rec.TenantID)
	r.event(Event{Kind: EventUnload, Tenant: h.rec.TenantID})
}

func (r *RegistryOf[I]) event(e Event) {
	if r.events != nil {
		r.events(e)
	}
}

// Close unloads every tenant, draining them in parallel, and refuses new
// loads. It returns when all workers have stopped or ctx ends.
func (r *RegistryOf[I]) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := r.loaded
	r.loaded = map[string]*handle[I]{}
	r.mu.Unlock()
	r.stopSweeper()
	r.stopWatch()
	var wg sync.WaitGroup
	for _, h := range all {
		wg.Go(func() { r.retire(ctx, h) })
	}
	done := make(chan struct{})
	go func() {
		r.idle.wg.Wait()  // the sweeper first: it may be retiring a tenant
		r.watch.wg.Wait() // so may the watcher
		wg.Wait()
		r.retired.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LoadedInfo describes a loaded tenant for the admin API.
type LoadedInfo struct {
	LoadedAt string           `json:"loaded_at"`
	InFlight int              `json:"in_flight"`
	Status   tenantapp.Status `json:"status"`
}

// Info reports on a loaded tenant; ok is false when it is not loaded.
func (r *RegistryOf[I]) Info(id string) (info LoadedInfo, ok bool) {
	h := r.current(id)
	if h == nil {
		return LoadedInfo{}, false
	}
	return LoadedInfo{
		LoadedAt: h.loadedAt.Format(TimeLayout),
		InFlight: h.inFlight(),
		Status:   h.app.Status(),
	}, true
}

// IsLoaded reports whether id has a live instance.
func (r *RegistryOf[I]) IsLoaded(id string) bool { return r.current(id) != nil }

// Len is the number of loaded tenants.
func (r *RegistryOf[I]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.loaded)
}
