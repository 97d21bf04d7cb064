package tenancy

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// OptionsOf configure a [RegistryOf]. The zero value is a registry
// without idle eviction, with its store watcher.
type OptionsOf[I Instance] struct {
	// IdleUnload unloads a tenant that has had no request for this long
	// and has no queued or running job (TENANT_IDLE_UNLOAD); its next
	// request loads it again. 0 (or less) disables idle eviction.
	IdleUnload time.Duration
	// SweepEvery is how often the registry's one sweeper looks for idle
	// tenants; 0 means IdleUnload/4, never less than MinSweepEvery. A
	// value set here is used as is (tests set a tiny one).
	SweepEvery time.Duration
	// Now is the clock of idle eviction (nil: time.Now); tests move it.
	Now func() time.Time
	// Handler, when set, makes the handler a tenant's requests reach from
	// its instance, once per loaded instance (e.g. tenantapp.WithReadiness);
	// nil: the instance itself.
	Handler func(I) http.Handler
	// Events, when set, is told of every load (with the time its build and
	// start took), replace and unload, for the metrics; it must not block.
	Events func(Event)
	// WatchEvery is how often the registry's one store watcher looks for
	// changes made by other connections (other processes: the admin API
	// of another server, `lectern tenants put`) where it cannot be told of
	// them by file events (see DefaultWatchEvery); 0 means
	// DefaultWatchEvery; less than 0 turns the watcher off.
	WatchEvery time.Duration
	// pollOnly makes the watcher poll every WatchEvery even where file
	// events work (tests of the polling path).
	pollOnly bool
}

// Event is one change of the loaded tenants.
type Event struct {
	Kind   string        // EventLoad, EventReplace or EventUnload
	Tenant string        // the tenant's id
	Took   time.Duration // a load's build and start
}

// Event kinds.
const (
	EventLoad    = "load"
	EventReplace = "replace"
	EventUnload  = "unload"
)

// MinSweepEvery is the shortest default interval of the idle sweeper.
const MinSweepEvery = time.Second

// idleState is the registry's idle eviction: one sweeper goroutine for all
// tenants, never one timer per tenant. Activity is an int64 per handle
// (nanoseconds on the idle clock since the registry was made), stored on
// each request's enter and leave: no allocation, no extra lock.
type idleState struct {
	after time.Duration // 0: off
	every time.Duration
	now   func() time.Time
	epoch time.Time

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (r *RegistryOf[I]) initIdle(o OptionsOf[I]) {
	st := &r.idle
	st.now = o.Now
	if st.now == nil {
		st.now = time.Now
	}
	st.epoch = st.now()
	if o.IdleUnload <= 0 {
		return
	}
	st.after = o.IdleUnload
	st.every = o.SweepEvery
	if st.every <= 0 {
		st.every = max(o.IdleUnload/4, MinSweepEvery)
	}
	st.stop = make(chan struct{})
	st.wg.Add(1)
	go r.sweeper()
}

// since is the idle clock's reading: the time since the registry was made
// (monotonic with the real clock).
func (s *idleState) since() int64 {
	if s.after == 0 {
		return 0 // eviction off: nothing reads the stamps
	}
	return int64(s.now().Sub(s.epoch))
}

// stopSweeper ends the sweeper (Close waits for it through idle.wg).
func (r *RegistryOf[I]) stopSweeper() {
	if r.idle.stop != nil {
		r.idle.stopOnce.Do(func() { close(r.idle.stop) })
	}
}

func (r *RegistryOf[I]) sweeper() {
	defer r.idle.wg.Done()
	t := time.NewTicker(r.idle.every)
	defer t.Stop()
	for {
		select {
		case <-r.idle.stop:
			return
		case <-t.C:
			r.sweepIdle()
		}
	}
}

// sweepIdle unloads every tenant idle for IdleUnload or longer and reports
// how many it unloaded.
func (r *RegistryOf[I]) sweepIdle() int {
	if r.idle.after == 0 {
		return 0
	}
	cutoff := r.idle.since() - int64(r.idle.after)
	type cand struct {
		id string
		h  *handle[I]
	}
	var idle []cand
	r.mu.Lock()
	for id, h := range r.loaded {
		if h.lastActive.Load() <= cutoff {
			idle = append(idle, cand{id, h})
		}
	}
	r.mu.Unlock()
	n := 0
	for _, c := range idle {
		select {
		case <-r.idle.stop:
			return n // closing: Close unloads the rest
		default:
		}
		if r.unloadIdle(c.id, c.h, cutoff) {
			n++
		}
	}
	return n
}

// unloadIdle unloads h, the instance of id, if it is still the loaded one,
// still idle since cutoff, with no request inside and no job queued or
// running. It takes the tenant's lock, as every unload does, so a request
// arriving meanwhile waits and then loads the tenant again.
func (r *RegistryOf[I]) unloadIdle(id string, h *handle[I], cutoff int64) bool {
	unlock := r.lock(id)
	defer unlock()
	if r.current(id) != h || h.app.Busy() || !h.drainIfIdle(cutoff) {
		return false
	}
	if _, err := r.swap(id, nil); err != nil {
		return false // closed: Close took every handle and retires h
	}
	r.log.Info("tenant idle: unloading", "tenant", id, "idle_unload", r.idle.after.String())
	r.retire(context.Background(), h)
	return true
}

// drainIfIdle starts draining h when no request is inside and none has
// entered or left after cutoff; it reports whether it did. A request
// arriving afterwards finds h draining and loads the tenant anew.
func (h *handle[I]) drainIfIdle(cutoff int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining || h.inflight > 0 || h.lastActive.Load() > cutoff {
		return false
	}
	h.draining = true
	close(h.drained)
	return true
}
