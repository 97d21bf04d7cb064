package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lectern/lectern/internal/textcut"
)

// Errors returned by [Runner.Start].
var (
	ErrRunnerStarted = errors.New("runner already started")
	ErrRunnerStopped = errors.New("runner stopped")
	// ErrQueueFull is returned by Reserve when MaxQueued jobs are
	// already waiting (or about to).
	ErrQueueFull = errors.New("job queue is full")
)

// maxErrorRunes bounds the error text stored in a failed job's record.
const maxErrorRunes = 200

// Options configure a [Runner].
type Options struct {
	// Kind names the jobs ("chat", "exam_upload", ...) in logs and Stats.
	Kind string
	// Store holds the job records. It must not be nil.
	Store JobStore
	// Workers is the number of jobs processed at once; less than 1 means 1.
	Workers int
	// Queue orders the waiting jobs; nil means NewFIFO(). Only the
	// runner pushes to it: it starts a worker for each job it pushed.
	Queue Queue
	// Resume lists the statuses of the jobs queued again at Start; nil
	// means {"queued", "processing"}, an empty non-nil slice means none.
	Resume []string
	// Process does the work of job id. It must not be nil. It is
	// responsible for the job's status transitions on success, and should
	// return promptly once ctx is cancelled.
	Process func(ctx context.Context, id string) error
	// MaxQueued bounds the jobs waiting for a worker, counted with the
	// places Reserve handed out; 0 means no bound. Jobs resumed at Start
	// are queued whatever their number.
	MaxQueued int
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// Observe, when set, is called once per job that finished or failed
	// (not one cut short by Stop), on the worker's goroutine after the
	// record is updated; it must return quickly. See [Runner.SetObserver]
	// for a runner built elsewhere.
	Observe func(JobEvent)
}

// Job outcomes in a [JobEvent].
const (
	OutcomeDone   = "done"
	OutcomeFailed = "failed"
)

// JobEvent is one job a Runner finished: for metrics (the queue and run
// times by kind) and nothing else.
type JobEvent struct {
	Kind    string // Options.Kind
	ID      string
	Outcome string // OutcomeDone or OutcomeFailed (an error or a panic)
	// Queued is the time from Enqueue (or the resume at Start) until a
	// worker took the job; 0 when unknown (a job queued again while a
	// worker was taking it). Ran is the time Process took.
	Queued, Ran time.Duration
}

// Stats is a snapshot of a Runner's activity.
type Stats struct {
	Kind    string `json:"kind"`
	Workers int    `json:"workers"`
	// Queued counts jobs waiting for a worker.
	Queued int `json:"queued"`
	// MaxQueued is the bound on queued jobs (0: none).
	MaxQueued int `json:"max_queued"`
	// Busy counts jobs being processed.
	Busy int `json:"busy"`
	// Processed counts Process calls that returned nil.
	Processed int64 `json:"processed"`
	// Failed counts Process calls that returned an error or panicked
	// while the runner was running.
	Failed int64 `json:"failed"`
}

// Runner processes the jobs of one kind with a bounded pool of workers.
//
// Workers take ids from the Queue and call Process. When Process fails (or
// panics) while the runner is running, the runner sets the record's status
// to "failed" and its error to the error text. When Process returns because
// Stop cancelled it, the record is left alone, so that the next Start
// resumes the job.
//
// Workers are goroutines started when there is work and gone when there
// is none: while the runner runs, there are min(Workers, pending) of them,
// pending being the jobs queued or being processed. A worker that finishes
// a job when more workers than pending jobs remain exits, so an idle runner
// (a loaded tenant with nothing to do) keeps no goroutine, no stack and no
// timer. A worker waiting on the Queue for a job it cannot take yet (a
// lane's job behind a running one) blocks without polling. Stop cancels
// and waits for all of them.
type Runner struct {
	kind    string
	store   JobStore
	workers int
	queue   Queue
	resume  []string
	process func(context.Context, string) error
	// log is Options.Logger as given: every record adds the kind itself
	// (a logger With the kind, made for each runner of every tenant, cost
	// more than the runner; the runner logs rarely).
	log *slog.Logger
	// maxQueued is Options.MaxQueued; reserved counts the places handed
	// out by Reserve and not yet used or given back (under mu).
	maxQueued int
	reserved  int

	busy      atomic.Int64
	processed atomic.Int64
	failed    atomic.Int64
	observe   atomic.Pointer[func(JobEvent)]

	mu      sync.Mutex
	started bool
	stopped bool
	// live is true from the end of Start (the resumed jobs queued)
	// until Stop: workers may run. ctx is their context, made for the
	// first of them (an idle runner has none) and cancelled by Stop.
	live   bool
	ctx    context.Context
	cancel context.CancelFunc
	// pending counts the jobs pushed to the queue (by Enqueue or Start)
	// that no worker has finished with; alive the worker goroutines not yet
	// returned. While the runner runs, alive = min(workers, pending).
	pending int
	alive   int
	// exited is made by a Stop that finds workers alive, and closed by the
	// last of them to return.
	exited chan struct{}
	// running holds the ids being processed; queuedAt when each waiting id
	// was queued, for JobEvent.Queued: set when a push succeeds, taken by
	// the worker that claims the id. Both are made on first use (nil until
	// the runner has had work).
	running  map[string]struct{}
	queuedAt map[string]time.Time
}

// NewRunner returns a Runner configured by o. It panics if o.Store or
// o.Process is nil.
func NewRunner(o Options) *Runner {
	if o.Store == nil || o.Process == nil {
		panic("jobs: NewRunner needs a Store and a Process function")
	}
	r := &Runner{
		kind:      o.Kind,
		store:     o.Store,
		workers:   max(o.Workers, 1),
		queue:     o.Queue,
		resume:    slices.Clone(o.Resume),
		process:   o.Process,
		log:       o.Logger,
		maxQueued: max(o.MaxQueued, 0),
	}
	r.SetObserver(o.Observe)
	if r.queue == nil {
		r.queue = NewFIFO()
	}
	if o.Resume == nil {
		r.resume = []string{"queued", "processing"}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// Start queues the stored jobs whose status is one of the Resume statuses,
// oldest first, and lets workers run: one per job, up to Workers, now for
// the resumed ones and later as jobs are enqueued. ctx bounds the scan
// only: the workers' context is a fresh one (none of ctx's values: the
// caller's request must not live as long as the runner), cancelled by
// Stop. Start fails if called more than once (unless the earlier call
// failed before its scan ended) or after Stop.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	switch {
	case r.stopped:
		r.mu.Unlock()
		return ErrRunnerStopped
	case r.started:
		r.mu.Unlock()
		return ErrRunnerStarted
	}
	r.started = true
	r.mu.Unlock()

	ids, err := r.scan(ctx)
	if err != nil {
		r.mu.Lock()
		r.started = false
		r.mu.Unlock()
		return err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrRunnerStopped
	}
	now := time.Now()
	for _, id := range ids {
		r.pushLocked(id, now)
	}
	r.live = true
	r.spawnLocked()
	// A tenant's load starts several runners: only one with jobs to resume
	// is news.
	level := slog.LevelDebug
	if len(ids) > 0 {
		level = slog.LevelInfo
	}
	r.log.Log(ctx, level, "job runner started", "kind", r.kind, "workers", r.workers, "resumed", len(ids))
	return nil
}

// pushLocked queues id, noting when, and counts it pending.
func (r *Runner) pushLocked(id string, now time.Time) bool {
	if !r.queue.Push(id) {
		return false
	}
	if r.queuedAt == nil {
		r.queuedAt = make(map[string]time.Time)
	}
	r.queuedAt[id] = now
	r.pending++
	return true
}

// spawnLocked starts workers until there are as many as pending jobs (at
// most Workers), once Start has run and until Stop.
func (r *Runner) spawnLocked() {
	if !r.live || r.stopped {
		return
	}
	if r.ctx == nil && r.alive < r.pending {
		r.ctx, r.cancel = context.WithCancel(context.Background())
	}
	for r.alive < r.workers && r.alive < r.pending {
		r.alive++
		go r.work(r.ctx)
	}
}

// scan returns the ids of the jobs to resume.
func (r *Runner) scan(ctx context.Context) ([]string, error) {
	if len(r.resume) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := r.store.Scan(r.resume...)
	if err != nil {
		return nil, fmt.Errorf("scan %s jobs: %w", r.kind, err)
	}
	return ids, ctx.Err()
}

// Enqueue queues job id for processing. It returns false if id is not a
// valid id, is already waiting or being processed, or the runner has been
// stopped. Jobs enqueued before Start are processed once it is called.
func (r *Runner) Enqueue(id string) bool {
	if !ValidID(id) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.enqueueLocked(id)
}

func (r *Runner) enqueueLocked(id string) bool {
	if !ValidID(id) || r.stopped {
		return false
	}
	if _, ok := r.running[id]; ok {
		return false
	}
	if !r.pushLocked(id, time.Now()) {
		return false
	}
	r.spawnLocked()
	return true
}

// Reservation is a place in the queue for a job that is still being
// created: a producer reserves before it writes anything, so a full queue
// is refused before an upload is read or a record is stored.
type Reservation struct {
	r    *Runner
	used bool
}

// Reserve takes a place in the queue, or returns ErrQueueFull when
// MaxQueued jobs are already waiting or reserved. The caller must end the
// reservation with Enqueue or Release.
func (r *Runner) Reserve() (*Reservation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxQueued > 0 && r.queue.Len()+r.reserved >= r.maxQueued {
		return nil, ErrQueueFull
	}
	r.reserved++
	return &Reservation{r: r}, nil
}

// Enqueue queues id in the reserved place (see Runner.Enqueue for false).
// The place is used whatever the answer.
func (res *Reservation) Enqueue(id string) bool {
	res.r.mu.Lock()
	defer res.r.mu.Unlock()
	res.endLocked()
	return res.r.enqueueLocked(id)
}

// Release gives an unused place back; after Enqueue it does nothing.
func (res *Reservation) Release() {
	res.r.mu.Lock()
	defer res.r.mu.Unlock()
	res.endLocked()
}

// endLocked ends the reservation once: its place no longer counts.
func (res *Reservation) endLocked() {
	if !res.used {
		res.used = true
		res.r.reserved--
	}
}

// Stop cancels the workers' context and waits for every worker to return.
// If ctx is done first it returns ctx.Err(); the workers are cancelled all
// the same and exit once their Process calls return. Stop may be called
// more than once, and before or without Start.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		if r.cancel != nil {
			r.cancel()
		}
	}
	if r.alive == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.exited == nil {
		r.exited = make(chan struct{})
	}
	exited := r.exited
	r.mu.Unlock()

	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetObserver sets (nil: clears) the function called for each finished
// job, as Options.Observe: for the tenant's wiring, which gets runners the
// domain packages built. It is safe at any time; jobs finishing after it
// returns are reported to fn.
func (r *Runner) SetObserver(fn func(JobEvent)) {
	if fn == nil {
		r.observe.Store(nil)
		return
	}
	r.observe.Store(&fn)
}

// Stats returns a snapshot of the runner's activity.
func (r *Runner) Stats() Stats {
	return Stats{
		Kind:      r.kind,
		Workers:   r.workers,
		Queued:    r.queue.Len(),
		MaxQueued: r.maxQueued,
		Busy:      int(r.busy.Load()),
		Processed: r.processed.Load(),
		Failed:    r.failed.Load(),
	}
}

// work is the loop of one worker: it takes jobs while there are at least
// as many pending as workers alive, and returns once there are fewer (or
// Stop cancelled ctx).
//
// Every worker alive waits for a pending job nobody has taken yet, or runs
// one: alive <= pending is kept, so a worker blocked in Pop always has a
// job to wait for, which it gets once the queue lets it go (a lane's
// earlier job finished).
func (r *Runner) work(ctx context.Context) {
	for {
		id, done, err := r.queue.Pop(ctx)
		if err != nil {
			if ctx.Err() == nil {
				// The next Enqueue starts a worker again.
				r.log.Error("job queue failed; worker exits", "kind", r.kind, "err", err)
			}
			r.mu.Lock()
			r.exitLocked()
			r.mu.Unlock()
			return
		}
		r.handle(ctx, id, done)
		r.mu.Lock()
		r.pending--
		if r.stopped || r.alive > r.pending {
			r.exitLocked()
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// exitLocked records that a worker returns; the last one wakes Stop.
func (r *Runner) exitLocked() {
	r.alive--
	if r.alive == 0 && r.exited != nil {
		close(r.exited)
		r.exited = nil
	}
}

// handle processes one job taken from the queue and calls done afterwards.
func (r *Runner) handle(ctx context.Context, id string, done func()) {
	defer done()
	queued, ok := r.claim(id)
	if !ok {
		// Queued again after another worker took it but before that
		// worker's Process began; that Process covers this request too.
		return
	}
	defer r.release(id)
	// The store's claim: no other process runs the job meanwhile (a job
	// another holder has is theirs to finish; gone, nothing to run).
	c, err := r.store.Claim(id)
	switch {
	case errors.Is(err, ErrClaimed):
		r.log.Info("job claimed by another holder: skipped", "kind", r.kind, "job_id", id)
		return
	case err != nil:
		r.log.Warn("job not claimed: skipped", "kind", r.kind, "job_id", id, "err", err)
		return
	}
	defer c.Release()
	r.busy.Add(1)
	defer r.busy.Add(-1)

	began := time.Now()
	err = r.call(ctx, id)
	ran := time.Since(began)
	outcome := OutcomeDone
	switch {
	case err == nil:
		r.processed.Add(1)
	case ctx.Err() != nil:
		r.log.Info("job interrupted by stop", "kind", r.kind, "job_id", id, "err", err)
		return // it resumes at the next Start: not an outcome
	default:
		r.failed.Add(1)
		r.log.Warn("job failed", "kind", r.kind, "job_id", id, "err", err)
		r.markFailed(id, err)
		outcome = OutcomeFailed
	}
	if fn := r.observe.Load(); fn != nil {
		var q time.Duration
		if !queued.IsZero() {
			q = began.Sub(queued)
		}
		(*fn)(JobEvent{Kind: r.kind, ID: id, Outcome: outcome, Queued: q, Ran: ran})
	}
}

// claim marks id as being processed, unless it already is, and returns
// when it was queued (zero if unknown).
func (r *Runner) claim(id string) (queued time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[id]; ok {
		return time.Time{}, false
	}
	if r.running == nil {
		r.running = make(map[string]struct{})
	}
	r.running[id] = struct{}{}
	queued = r.queuedAt[id]
	delete(r.queuedAt, id)
	return queued, true
}

func (r *Runner) release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, id)
}

// call runs Process, turning a panic into an error.
func (r *Runner) call(ctx context.Context, id string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("job panicked", "kind", r.kind, "job_id", id, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return r.process(ctx, id)
}

// markFailed records a failure of Process in the job's record.
func (r *Runner) markFailed(id string, cause error) {
	_, err := r.store.Update(id, func(rec map[string]any) error {
		rec["status"] = "failed"
		rec["error"] = textcut.Head(cause.Error(), maxErrorRunes)
		return nil
	})
	if err != nil {
		r.log.Error("cannot record job failure", "kind", r.kind, "job_id", id, "err", err)
	}
}
