package students

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
)

// ErrQueueFull is the backpressure signal: the queue is at its bound. It
// is a TooMany fault, to retry after a few seconds.
var ErrQueueFull error = &fault.Error{Code: fault.TooMany, Detail: "profile update queue is full; retry later",
	RetryAfter: 5 * time.Second}

// Judge reads a student conversation into weak and strong points (an LLM
// call within the tenant's student limits); nil when no LLM is configured.
type Judge func(ctx context.Context, studentID, userText, reply string) (*Judgement, error)

// WorkerConfig configures the profile-update worker.
type WorkerConfig struct {
	UploadsDir string
	Profiles   *Store
	// Bound is PROFILE_UPDATE_QUEUE_MAX: pending updates beyond it are
	// refused (ErrQueueFull) or waited for, never dropped. Default 500.
	Bound int
	// NoCoalesce applies each update on its own (for comparison); by
	// default a student's pending updates are applied in one write.
	NoCoalesce bool
	Judge      Judge
	Logger     *slog.Logger
}

// Worker is the one writer of a tenant's profiles.
type Worker struct {
	cfg    WorkerConfig
	log    *slog.Logger
	jobs   *jobs.Store
	runner *jobs.Runner

	mu      sync.Mutex
	pending map[string][]string // student → queued job ids, oldest first
	count   int
	space   chan struct{}            // closed and replaced whenever room is made
	applied map[string]chan struct{} // job id → closed once applied
}

// NewWorker builds the worker; it picks up the updates left queued on disk.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Bound < 1 {
		cfg.Bound = 500
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Resident records: an update is one journal record (sync shared with
	// the others) until it is applied and removed; its ids are fresh.
	store := jobs.NewResidentStore(layout.Tenant{UploadsDir: cfg.UploadsDir}.ProfileJobs(), jobs.JournalOptions{Logger: log})
	store.SetEffectReplay(func(_ string, effect []byte) error { return cfg.Profiles.restoreProfile(effect) })
	w := &Worker{cfg: cfg, log: log, jobs: store,
		pending: map[string][]string{}, space: make(chan struct{}), applied: map[string]chan struct{}{}}
	w.runner = jobs.NewRunner(jobs.Options{Kind: "profile_update", Store: w.jobs, Workers: 1, Process: w.process, Logger: log})
	if ids, err := w.jobs.Scan("queued", "processing"); err == nil {
		for _, id := range ids {
			if rec, err := w.jobs.Load(id); err == nil {
				w.track(str(rec["student_id"]), id)
			}
		}
	}
	return w
}

// Close closes the update store's journal once the runner has stopped:
// what is still queued is written out, to resume at the next start.
func (w *Worker) Close() error { return w.jobs.Close() }

// Runner is the worker's job runner (one worker: one writer).
func (w *Worker) Runner() *jobs.Runner { return w.runner }

func (w *Worker) track(student, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending[student] = append(w.pending[student], id)
	w.count++
	w.applied[id] = make(chan struct{})
}

// Pending is the number of queued updates.
func (w *Worker) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

// Enqueue stores u durably and queues it, or returns ErrQueueFull (or an
// Invalid fault for a bad student id).
func (w *Worker) Enqueue(u Update) (string, error) { return w.enqueue(u, true) }

// enqueue stores and queues u; durable waits for its record's journal
// sync, else the record is synced by the journal's next sync (the one
// applying it, usually: jobs.Store.BeginUnsynced).
func (w *Worker) enqueue(u Update, durable bool) (string, error) {
	if !ValidID(u.StudentID) {
		return "", invalidID(u.StudentID)
	}
	w.mu.Lock()
	if w.count >= w.cfg.Bound {
		w.mu.Unlock()
		return "", ErrQueueFull
	}
	w.count++ // reserve the place before the write
	w.mu.Unlock()
	id := "pjob_" + randomHex(6)
	var rec map[string]any
	data, _ := json.Marshal(map[string]any{"job_id": id, "status": "queued", "student_id": u.StudentID, "update": u})
	json.Unmarshal(data, &rec)
	var err error
	if durable {
		err = w.jobs.Create(id, rec)
	} else {
		err = w.jobs.BeginUnsynced(id, rec, func(err error) {
			w.log.Error("profile update not made durable: it is dropped", "job_id", id, "student_id", u.StudentID, "err", err)
		})
	}
	if err != nil {
		w.mu.Lock()
		w.count--
		w.mu.Unlock()
		return "", err
	}
	w.mu.Lock()
	w.pending[u.StudentID] = append(w.pending[u.StudentID], id)
	w.applied[id] = make(chan struct{})
	w.mu.Unlock()
	w.runner.Enqueue(id)
	return id, nil
}

// EnqueueWait is Enqueue that waits for room instead of refusing, until
// ctx ends (producers inside the server: imports, exams, the form).
func (w *Worker) EnqueueWait(ctx context.Context, u Update) (string, error) {
	return w.enqueueWait(ctx, u, true)
}

// Observe is EnqueueWait for an update derived from what is durable
// already elsewhere (a chat turn, in its job and its history): it returns
// once the update is queued, its record written; the record's journal
// sync is not waited for: the one applying it (or another record's, or
// the journal's own 200 ms later: jobs.Journal.WriteLazy) covers it, so a
// machine crash within that time may lose the update; a killed process
// does not.
func (w *Worker) Observe(ctx context.Context, u Update) (string, error) {
	return w.enqueueWait(ctx, u, false)
}

func (w *Worker) enqueueWait(ctx context.Context, u Update, durable bool) (string, error) {
	for {
		w.mu.Lock()
		space := w.space
		w.mu.Unlock()
		id, err := w.enqueue(u, durable)
		if !errors.Is(err, ErrQueueFull) {
			return id, err
		}
		select {
		case <-space:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// Wait blocks until job id has been applied (or ctx ends).
func (w *Worker) Wait(ctx context.Context, id string) error {
	w.mu.Lock()
	ch, ok := w.applied[id]
	w.mu.Unlock()
	if !ok {
		return nil // applied already
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// process applies job id and, when coalescing, every other update of the
// same student still waiting: one read and one atomic write of the
// profile. Applied jobs are removed from disk.
func (w *Worker) process(ctx context.Context, id string) error {
	rec, err := w.jobs.Load(id)
	if errors.Is(err, jobs.ErrNotFound) {
		w.forget(id) // applied with an earlier job of the student, or by a replaced instance
		return nil
	}
	if err != nil {
		return err
	}
	student := str(rec["student_id"])
	w.mu.Lock()
	ids := []string{id}
	if !w.cfg.NoCoalesce {
		ids = append([]string(nil), w.pending[student]...)
		if len(ids) == 0 {
			ids = []string{id}
		}
	}
	w.mu.Unlock()

	var updates []Update
	var applied []string
	// The runner holds id's claim; the others coalesced with it are
	// claimed here, so another process sharing the directory never
	// applies one of them too (one it holds is left to it).
	var claims []*jobs.Claim
	defer func() {
		for _, c := range claims {
			c.Release()
		}
	}()
	for _, jid := range ids {
		if jid != id {
			c, err := w.jobs.Claim(jid)
			if errors.Is(err, jobs.ErrClaimed) {
				continue
			}
			if err != nil {
				applied = append(applied, jid) // gone: applied by another process
				continue
			}
			claims = append(claims, c)
		}
		r, err := w.jobs.Load(jid)
		if err != nil {
			applied = append(applied, jid) // gone: only forget it
			continue
		}
		var u Update
		raw, _ := json.Marshal(r["update"])
		if err := json.Unmarshal(raw, &u); err != nil {
			w.log.Error("profile update record is unreadable; dropped", "job_id", jid, "err", err)
		} else {
			updates = append(updates, u)
		}
		applied = append(applied, jid)
	}
	// The judgements first (model calls, up to minutes), then the profile
	// read, changed and written under its lock, held that briefly.
	judged := make([]*Judgement, len(updates))
	for i, u := range updates {
		if u.Kind == KindChat && w.cfg.Judge != nil {
			jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			j, err := w.cfg.Judge(jctx, student, u.UserText, u.Reply)
			cancel()
			if ctx.Err() != nil {
				return ctx.Err() // stopping: nothing written, the jobs stay queued
			}
			if err != nil {
				w.log.Warn("profile judgement failed; keeping the interaction note only", "student_id", student, "err", err)
				j = nil
			}
			judged[i] = j
		}
	}
	ts := now()
	wrote, err := w.cfg.Profiles.change(student, func(prof Profile) bool {
		changed := false
		for i, u := range updates {
			if apply(prof, u, judged[i], ts) {
				changed = true
			}
		}
		return changed
	})
	if err != nil {
		return err
	}
	// One durable step: the applied jobs removed and the profile's new
	// content, written unsynced above, in one journal record (a crash
	// that lost the file writes it back: restoreProfile).
	var effect []byte
	var files []string
	if wrote != nil {
		if effect, err = json.Marshal(wrote); err != nil {
			return err
		}
		files = []string{wrote.path}
	}
	if err := w.jobs.RemoveWith(applied, effect, files...); err != nil {
		return err
	}
	w.done(student, applied)
	return nil
}

// done forgets applied (removed) jobs from the pending set, and wakes
// whoever waits for them or for room.
func (w *Worker) done(student string, ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
		if ch, ok := w.applied[id]; ok {
			close(ch)
			delete(w.applied, id)
			w.count--
		}
	}
	rest := w.pending[student][:0]
	for _, id := range w.pending[student] {
		if !gone[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		delete(w.pending, student)
	} else {
		w.pending[student] = rest
	}
	close(w.space)
	w.space = make(chan struct{})
}

// forget drops a queued job that is no longer on disk.
func (w *Worker) forget(id string) {
	w.mu.Lock()
	student := ""
	for st, ids := range w.pending {
		for _, x := range ids {
			if x == id {
				student = st
			}
		}
	}
	w.mu.Unlock()
	w.done(student, []string{id})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
