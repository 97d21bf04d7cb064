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

	"github.com/lectern/lectern/internal/tenantapp"
)

// ErrClosed is returned once the registry is shutting down.
var ErrClosed = errors.New("tenant registry is closed")

// Builder makes a tenant's (not yet started) app from its stored config.
type Builder func(rec Record) (*tenantapp.App, error)

// Registry holds the loaded tenants. A tenant is built on first use from the
// store, replaced when its config changes and unloaded when disabled.
//
// Locking: mu guards the map and is only held for map operations. Loading,
// replacing and unloading one tenant take that tenant's own lock, so a slow
// build of tenant A never delays tenant B, and concurrent first requests to
// one tenant build it once.
type Registry struct {
	store *Store
	build Builder
	log   *slog.Logger
	// drainTimeout bounds how long a replaced or unloaded tenant waits for
	// its in-flight requests before its workers are stopped anyway.
	drainTimeout time.Duration

	mu      sync.Mutex
	loaded  map[string]*handle
	locks   map[string]*idLock
	closed  bool
	retired sync.WaitGroup

	// idle is the idle-eviction state (idle.go); idle.after == 0 when
	// eviction is off.
	idle idleState
	// wrap is RegistryOptions.Handler.
	wrap   func(*tenantapp.App) http.Handler
	events func(Event) // RegistryOptions.Events; nil: none
}

// NewRegistry returns an empty registry over store. opts (at most one is
// read) turn on idle eviction; without them a tenant stays loaded until it
// is disabled, replaced or the registry closes.
func NewRegistry(store *Store, build Builder, log *slog.Logger, opts ...RegistryOptions) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		store:        store,
		build:        build,
		log:          log,
		drainTimeout: 30 * time.Second,
		loaded:       map[string]*handle{},
		locks:        map[string]*idLock{},
	}
	var o RegistryOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	r.wrap = o.Handler
	r.events = o.Events
	r.initIdle(o)
	return r
}

// handle is one loaded instance with the count of requests inside it.
type handle struct {
	app *tenantapp.App
	// serve is what requests reach: app, or RegistryOptions.Handler's
	// wrapping of it.
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

func (r *Registry) newHandle(app *tenantapp.App, rec Record) *handle {
	h := &handle{app: app, serve: app, rec: rec, loadedAt: time.Now(), drained: make(chan struct{})}
	if r.wrap != nil {
		h.serve = r.wrap(app)
	}
	h.lastActive.Store(r.idle.since())
	return h
}

// enter counts a request in at now (idle clock); it fails once the handle
// is draining.
func (h *handle) enter(now int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.inflight++
	h.lastActive.Store(now)
	return true
}

func (h *handle) leave(now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	h.lastActive.Store(now)
	if h.draining && h.inflight == 0 {
		close(h.drained)
	}
}

func (h *handle) inFlight() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inflight
}

// drain refuses new requests and waits for those inside to finish.
func (h *handle) drain(ctx context.Context) error {
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

// idLock is a per-tenant mutex, dropped from the map when nobody holds or
// waits for it.
type idLock struct {
	mu   sync.Mutex
	refs int
}

func (r *Registry) lock(id string) (unlock func()) {
	r.mu.Lock()
	l := r.locks[id]
	if l == nil {
		l = &idLock{}
		r.locks[id] = l
	}
	l.refs++
	r.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		r.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(r.locks, id)
		}
		r.mu.Unlock()
	}
}

func (r *Registry) current(id string) *handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loaded[id]
}

// Serve runs one request against tenant id, loading the tenant if needed.
// A request that meets a tenant being replaced goes to the new instance.
func (r *Registry) Serve(w http.ResponseWriter, req *http.Request, id string) error {
	h, err := r.enter(req.Context(), id)
	if err != nil {
		return err
	}
	defer r.leave(h)
	h.serve.ServeHTTP(w, req)
	return nil
}

// Use runs f with tenant id's live app (loading it if needed); the app
// counts as in use meanwhile, so it is not stopped under f.
func (r *Registry) Use(ctx context.Context, id string, f func(*tenantapp.App) error) error {
	h, err := r.enter(ctx, id)
	if err != nil {
		return err
	}
	defer r.leave(h)
	return f(h.app)
}

func (r *Registry) enter(ctx context.Context, id string) (*handle, error) {
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
func (r *Registry) leave(h *handle) { h.leave(r.idle.since()) }

// load returns the loaded instance of id, building it from the store if
// there is none.
func (r *Registry) load(ctx context.Context, id string) (*handle, error) {
	if !ValidTenantID(id) {
		return nil, ErrNotFound
	}
	unlock := r.lock(id)
	defer unlock()
	if h := r.current(id); h != nil {
		return h, nil
	}
	// The build must not fail because the first requester hung up: others
	// may be waiting for the same tenant.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tenantapp.LoadTimeout)
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
func (r *Registry) start(ctx context.Context, rec Record) (*handle, error) {
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
func (r *Registry) swap(id string, h *handle) (old *handle, err error) {
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
func (r *Registry) install(id string, h *handle) error {
	_, err := r.swap(id, h)
	return err
}

// Put stores rec and makes it live: an enabled tenant is built first (so a
// config that cannot be built is refused with nothing stored), then
// swapped in, so new requests reach it at once. The old instance drains and
// stops, and only then does the new one start its workers: the two never
// process the same job. A disabled tenant is unloaded. The tenant's lock is
// held throughout, so a load or another Put of the same tenant waits.
func (r *Registry) Put(ctx context.Context, rec Record) (Record, error) {
	unlock := r.lock(rec.TenantID)
	defer unlock()
	var h *handle
	began := time.Now()
	if rec.Enabled {
		app, err := r.build(rec)
		if err != nil {
			return Record{}, fmt.Errorf("build tenant %s: %w", rec.TenantID, err)
		}
		h = r.newHandle(app, rec)
	}
	stored, err := r.store.Upsert(ctx, rec)
	var old *handle
	if err == nil {
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
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tenantapp.LoadTimeout)
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
func (r *Registry) Disable(ctx context.Context, id string) error {
	return r.unload(ctx, id, func() error { return r.store.Disable(ctx, id) })
}

// Unload drops the loaded instance of id, if any, without touching the
// store; the next request loads it again.
func (r *Registry) Unload(ctx context.Context, id string) error {
	return r.unload(ctx, id, func() error { return nil })
}

// unload runs first under the tenant's lock, then takes the instance out
// and retires it.
// The lock is held until the old instance has stopped, so a request that
// loads the tenant again never overlaps with it.
func (r *Registry) unload(ctx context.Context, id string, first func() error) error {
	unlock := r.lock(id)
	defer unlock()
	err := first()
	var old *handle
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
func (r *Registry) retire(ctx context.Context, h *handle) {
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

func (r *Registry) stop(h *handle) {
	ctx, cancel := context.WithTimeout(context.Background(), tenantapp.LoadTimeout)
	defer cancel()
	if err := h.app.Stop(ctx); err != nil {
		r.log.Error("tenant did not stop cleanly", "tenant", h.rec.TenantID, "err", err)
		return
	}
	r.log.Info("tenant unloaded", "tenant", h.rec.TenantID)
	r.event(Event{Kind: EventUnload, Tenant: h.rec.TenantID})
}

func (r *Registry) event(e Event) {
	if r.events != nil {
		r.events(e)
	}
}

// Close unloads every tenant, draining them in parallel, and refuses new
// loads. It returns when all workers have stopped or ctx ends.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := r.loaded
	r.loaded = map[string]*handle{}
	r.mu.Unlock()
	r.stopSweeper()
	var wg sync.WaitGroup
	for _, h := range all {
		wg.Go(func() { r.retire(ctx, h) })
	}
	done := make(chan struct{})
	go func() {
		r.idle.wg.Wait() // the sweeper first: it may be retiring a tenant
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
func (r *Registry) Info(id string) (info LoadedInfo, ok bool) {
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
func (r *Registry) IsLoaded(id string) bool { return r.current(id) != nil }

// Len is the number of loaded tenants.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.loaded)
}
