package tenancy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lectern/lectern/internal/tenantapp"
)

// DefaultWatchEvery is how often the store watcher looks for changes when
// it cannot be told of them (no inotify: another system, or a file system
// without it): a change made by another process then reaches a loaded
// tenant in at most this long plus the tenant's rebuild, well inside a
// second. A look that finds nothing is one PRAGMA data_version on a
// connection held for it (15 µs hot; up to a few hundred µs of CPU after
// an idle wake-up).
const DefaultWatchEvery = 250 * time.Millisecond

// Where the store's files can be watched (Linux), the watcher sleeps until
// one is written and looks then, so an idle server does nothing at all
// but look every watchSafetyEvery, in case a write went unannounced (a
// file system that drops events). watchFollowUp after each announced
// write it looks again: a commit's last write to the WAL comes just
// before SQLite publishes the commit, so the first look may be early.
// watchSettle is how long after an announced write the watcher first
// looks: one commit announces several writes (the WAL, its index), and a
// burst of PUTs many more; they share one look, made once the burst has
// settled, not on the way of the first request a PUT's client sends.
const (
	watchSafetyEvery = 30 * time.Second
	watchFollowUp    = 50 * time.Millisecond
	watchSettle      = 5 * time.Millisecond
)

// watchState is the registry's store watcher: one goroutine for the whole
// store, never one per tenant (plus, with file events, the one that reads
// them). It reads the store's change feed and, for each changed tenant
// this registry has loaded, brings the instance in line with the stored
// record (refresh).
type watchState struct {
	stopOnce sync.Once
	stop     chan struct{}
	// wg counts the watcher, its file-event reader and the refreshes it
	// started.
	wg sync.WaitGroup
	// looks counts the change feed's reads (tests: the idle cost).
	looks atomic.Int64

	mu sync.Mutex
	// pending are the tenants with a refresh started that has not yet
	// read the store: a change seen meanwhile needs no refresh of its own.
	pending map[string]bool
}

// initWatch starts the watcher (every < 0: none; 0: DefaultWatchEvery
// when it has to poll). A store whose feed cannot be opened leaves the
// registry without it: then a change made elsewhere is seen when the
// tenant next loads.
func (r *RegistryOf[I]) initWatch(every time.Duration, pollOnly bool) {
	if every < 0 {
		return
	}
	if every == 0 {
		every = DefaultWatchEvery
	}
	ctx, cancel := context.WithTimeout(context.Background(), tenantapp.LoadTimeout)
	defer cancel()
	feed, err := r.store.Changes(ctx)
	if err != nil {
		r.log.Error("tenant store watcher did not start: a config change made by another process reaches a loaded tenant only when it is next loaded", "err", err)
		return
	}
	w := &r.watch
	w.stop, w.pending = make(chan struct{}), map[string]bool{}
	var (
		fw   *fileWake
		wake chan struct{}
	)
	if !pollOnly {
		// Opened before the watcher's first look: no write after it is
		// missed.
		if fw, err = openFileWake(r.store.path); err != nil {
			r.log.Debug("tenant store watcher polls: its files cannot be watched", "every", every.String(), "err", err)
			fw = nil
		} else {
			wake = make(chan struct{}, 1)
			every = watchSafetyEvery
			w.wg.Add(1)
			go r.readFileWake(fw, wake)
		}
	}
	w.wg.Add(1)
	go r.watcher(feed, every, fw, wake)
}

// readFileWake turns the store's file events into wake-ups, coalesced:
// one pending wake-up at most.
func (r *RegistryOf[I]) readFileWake(fw *fileWake, wake chan<- struct{}) {
	defer r.watch.wg.Done()
	for {
		if err := fw.wait(); err != nil {
			if !errors.Is(err, errWakeClosed) {
				r.log.Warn("tenant store watcher lost its file events; it looks every "+watchSafetyEvery.String(), "err", err)
			}
			return
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// stopWatch ends the watcher (Close waits for it and its refreshes
// through watch.wg).
func (r *RegistryOf[I]) stopWatch() {
	if r.watch.stop != nil {
		r.watch.stopOnce.Do(func() { close(r.watch.stop) })
	}
}

// watcher looks at the feed every so often and whenever wake (from fw;
// both nil when polling) says the store's files were written, then once
// more shortly after. Its end closes fw, which ends fw's reader.
func (r *RegistryOf[I]) watcher(feed *ChangeFeed, every time.Duration, fw *fileWake, wake <-chan struct{}) {
	defer r.watch.wg.Done()
	defer feed.Close()
	if fw != nil {
		defer fw.Close()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	followUp := time.NewTimer(time.Hour)
	followUp.Stop()
	defer followUp.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	settling := false // a look is due watchSettle after the first wake of a burst
	failing := false
	for {
		select {
		case <-r.watch.stop:
			return
		case <-tick.C:
		case <-wake:
			if !settling {
				settling = true
				settle.Reset(watchSettle)
			}
			continue
		case <-settle.C:
			settling = false
			followUp.Reset(watchFollowUp)
		case <-followUp.C:
		}
		r.watch.looks.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ids, all, err := feed.Next(ctx)
		cancel()
		if err != nil {
			if !failing { // once per outage, not every look
				r.log.Warn("tenant store watcher cannot read the store; retrying", "err", err)
			}
			failing = true
			continue
		}
		if failing {
			r.log.Info("tenant store watcher reads the store again")
			failing = false
		}
		if all {
			ids = append(ids, r.loadedIDs()...)
		}
		for _, id := range ids {
			r.startRefresh(id)
		}
	}
}

// loadedIDs are the ids of the loaded tenants.
func (r *RegistryOf[I]) loadedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.loaded))
	for id := range r.loaded {
		ids = append(ids, id)
	}
	return ids
}

// startRefresh refreshes tenant id on a goroutine of its own: a refresh
// may wait for the tenant's lock (a load, a Put, a drain of up to the
// drain timeout), and no tenant's wait may delay another's.
func (r *RegistryOf[I]) startRefresh(id string) {
	w := &r.watch
	w.mu.Lock()
	if w.pending[id] {
		w.mu.Unlock()
		return
	}
	w.pending[id] = true
	w.mu.Unlock()
	w.wg.Go(func() { r.refresh(id) })
}

// refresh brings tenant id's loaded instance in line with its stored
// record: rebuilt and swapped in when the record differs from the one it
// was built from, unloaded when the record is disabled or gone. A tenant
// not loaded needs nothing: its next request loads the stored record.
// The tenant's lock is taken even then, so a load that read the record
// before the change and has not yet installed its instance is waited for
// and then refreshed, never left stale.
func (r *RegistryOf[I]) refresh(id string) {
	unlock := r.lock(id)
	defer unlock()
	r.watch.mu.Lock()
	delete(r.watch.pending, id)
	r.watch.mu.Unlock()
	h := r.current(id)
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tenantapp.LoadTimeout)
	defer cancel()
	rec, err := r.store.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		rec = Record{TenantID: id} // deleted: unloaded as a disabled one
	case err != nil:
		r.log.Warn("tenant changed in the store but cannot be read; it keeps its config", "tenant", id, "err", err)
		return
	case sameConfig(rec, h.rec):
		return // this registry's own Put, or a write that changed nothing
	}
	if rec.Enabled {
		r.log.Info("tenant config changed in the store: reloading", "tenant", id)
	} else {
		r.log.Info("tenant disabled or deleted in the store: unloading", "tenant", id)
	}
	if _, err := r.replaceLocked(ctx, rec, nil); err != nil && !errors.Is(err, ErrClosed) {
		// The loaded instance was left in place: it keeps serving.
		r.log.Error("tenant config changed in the store but does not build; the loaded instance keeps its config", "tenant", id, "err", err)
	}
}

// sameConfig reports whether a and b would build the same instance: the
// same directories, enabled flag and extra (compared as JSON, so a number
// read back from the store equals the one a caller put).
func sameConfig(a, b Record) bool {
	if a.TenantID != b.TenantID || a.DataDir != b.DataDir || a.UploadsDir != b.UploadsDir || a.Enabled != b.Enabled {
		return false
	}
	if len(a.Extra) == 0 && len(b.Extra) == 0 {
		return true // nil and {} alike
	}
	ea, errA := json.Marshal(a.Extra)
	eb, errB := json.Marshal(b.Extra)
	return errA == nil && errB == nil && bytes.Equal(ea, eb)
}
