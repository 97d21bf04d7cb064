package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

// notifyQueue wraps a Queue and reports each job id on finished once the
// runner is completely done with it (its outcome recorded).
type notifyQueue struct {
	Queue
	finished chan string
}

func newNotifyQueue(capacity int) *notifyQueue {
	return &notifyQueue{Queue: NewFIFO(), finished: make(chan string, capacity)}
}

func (q *notifyQueue) Pop(ctx context.Context) (string, func(), error) {
	id, done, err := q.Queue.Pop(ctx)
	if err != nil {
		return "", nil, err
	}
	return id, func() {
		done()
		q.finished <- id
	}, nil
}

// wait returns the next n finished ids.
func (q *notifyQueue) wait(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = <-q.finished
	}
	return ids
}

func startRunner(t *testing.T, o Options) *Runner {
	t.Helper()
	r := NewRunner(o)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// stop stops r; the timeout only keeps a broken runner from hanging the
// test binary.
func stop(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func createJobs(t testing.TB, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Create(id, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func setStatus(s *Store, id, status string) error {
	_, err := s.Update(id, func(rec map[string]any) error {
		rec["status"] = status
		return nil
	})
	return err
}

func loadStatus(t *testing.T, s *Store, id string) map[string]any {
	t.Helper()
	rec, err := s.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRunnerBoundedConcurrency(t *testing.T) {
	defer goleak.VerifyNone(t)
	const workers, jobs = 3, 30
	s := NewStore(t.TempDir())
	q := newNotifyQueue(jobs)
	var active, maxActive atomic.Int32
	entered := make(chan string, jobs)
	gate := make(chan struct{})
	r := startRunner(t, Options{
		Kind:    "chat",
		Store:   s,
		Workers: workers,
		Queue:   q,
		Process: func(ctx context.Context, id string) error {
			n := active.Add(1)
			defer active.Add(-1)
			raiseTo(&maxActive, n)
			entered <- id
			<-gate
			return setStatus(s, id, "done")
		},
	})
	defer stop(t, r)

	for i := range jobs {
		id := fmt.Sprintf("job_%02d", i)
		createJobs(t, s, id)
		if !r.Enqueue(id) {
			t.Fatalf("Enqueue(%s) = false", id)
		}
	}
	for range workers {
		<-entered
	}
	// All workers are inside Process and none can take another job.
	st := r.Stats()
	want := Stats{Kind: "chat", Workers: workers, Queued: jobs - workers, Busy: workers}
	if st != want {
		t.Errorf("Stats while gated = %+v, want %+v", st, want)
	}
	close(gate)
	q.wait(jobs)

	if m := maxActive.Load(); m != workers {
		t.Errorf("max concurrent Process calls = %d, want %d", m, workers)
	}
	st = r.Stats()
	want = Stats{Kind: "chat", Workers: workers, Processed: jobs}
	if st != want {
		t.Errorf("final Stats = %+v, want %+v", st, want)
	}
	for i := range jobs {
		if rec := loadStatus(t, s, fmt.Sprintf("job_%02d", i)); rec["status"] != "done" {
			t.Errorf("job_%02d status = %v", i, rec["status"])
		}
	}
}

// raiseTo sets v to n if n is larger.
func raiseTo(v *atomic.Int32, n int32) {
	for {
		m := v.Load()
		if n <= m || v.CompareAndSwap(m, n) {
			return
		}
	}
}

func TestRunnerResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	for _, j := range []struct{ id, status, created string }{
		{"job_late", "queued", "2024-01-01T12:00:00"},
		{"job_early", "processing", "2024-01-01T11:00:00"},
		{"job_done", "done", "2024-01-01T10:00:00"},
		{"job_failed", "failed", "2024-01-01T10:00:00"},
	} {
		if err := s.Create(j.id, map[string]any{"status": j.status, "created_at": j.created}); err != nil {
			t.Fatal(err)
		}
	}
	q := newNotifyQueue(4)
	var mu sync.Mutex
	var order []string
	r := startRunner(t, Options{
		Store:   s,
		Workers: 1,
		Queue:   q,
		Process: func(ctx context.Context, id string) error {
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			return setStatus(s, id, "done")
		},
	})
	q.wait(2)
	stop(t, r)

	if got, want := strings.Join(order, ","), "job_early,job_late"; got != want {
		t.Errorf("processed %s, want %s", got, want)
	}
	if rec := loadStatus(t, s, "job_failed"); rec["status"] != "failed" {
		t.Errorf("job_failed status = %v", rec["status"])
	}
}

func TestRunnerCustomResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_a")
	called := make(chan string, 1)
	r := startRunner(t, Options{
		Store:   s,
		Resume:  []string{},
		Process: func(ctx context.Context, id string) error { called <- id; return nil },
	})
	stop(t, r)
	if len(called) != 0 {
		t.Errorf("empty Resume still resumed %s", <-called)
	}
}

func TestRunnerProcessErrorMarksFailed(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_1")
	q := newNotifyQueue(1)
	msg := strings.Repeat("ошибка ", 50) // 350 runes
	r := startRunner(t, Options{
		Store: s,
		Queue: q,
		Process: func(ctx context.Context, id string) error {
			if err := setStatus(s, id, "processing"); err != nil {
				return err
			}
			return errors.New(msg)
		},
	})
	defer stop(t, r)
	r.Enqueue("job_1")
	q.wait(1)

	rec := loadStatus(t, s, "job_1")
	if rec["status"] != "failed" {
		t.Errorf("status = %v, want failed", rec["status"])
	}
	text, _ := rec["error"].(string)
	if utf8.RuneCountInString(text) != 200 || !strings.HasPrefix(msg, text) {
		t.Errorf("error = %q (%d runes), want the first 200 runes of the message",
			text, utf8.RuneCountInString(text))
	}
	if st := r.Stats(); st.Failed != 1 || st.Processed != 0 {
		t.Errorf("Stats = %+v, want one failure", st)
	}
}

func TestRunnerRecoversPanic(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_panic", "job_ok")
	q := newNotifyQueue(2)
	r := startRunner(t, Options{
		Store:   s,
		Workers: 1,
		Queue:   q,
		Process: func(ctx context.Context, id string) error {
			if id == "job_panic" {
				panic("boom")
			}
			return setStatus(s, id, "done")
		},
	})
	defer stop(t, r)
	r.Enqueue("job_panic")
	r.Enqueue("job_ok")
	q.wait(2)

	rec := loadStatus(t, s, "job_panic")
	if rec["status"] != "failed" || !strings.Contains(fmt.Sprint(rec["error"]), "boom") {
		t.Errorf("panicking job record = %v, want failed with the panic value", rec)
	}
	if rec := loadStatus(t, s, "job_ok"); rec["status"] != "done" {
		t.Errorf("job after the panic: status = %v, want done", rec["status"])
	}
	if st := r.Stats(); st.Failed != 1 || st.Processed != 1 {
		t.Errorf("Stats = %+v, want 1 processed and 1 failed", st)
	}
}

func TestRunnerStopCancelsProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_long")
	started := make(chan struct{})
	r := startRunner(t, Options{
		Store:   s,
		Workers: 2,
		Process: func(ctx context.Context, id string) error {
			if err := setStatus(s, id, "processing"); err != nil {
				return err
			}
			close(started)
			<-ctx.Done()
			return ctx.Err()
		},
	})
	r.Enqueue("job_long")
	<-started
	stop(t, r)

	rec := loadStatus(t, s, "job_long")
	if rec["status"] != "processing" || rec["error"] != nil {
		t.Errorf("interrupted job record = %v, want it left processing", rec)
	}
	if st := r.Stats(); st.Failed != 0 || st.Busy != 0 {
		t.Errorf("Stats after stop = %+v", st)
	}
	if r.Enqueue("job_long") {
		t.Error("Enqueue after Stop returned true")
	}
	stop(t, r) // idempotent

	// The next runner resumes the interrupted job.
	q := newNotifyQueue(1)
	r2 := startRunner(t, Options{
		Store: s,
		Queue: q,
		Process: func(ctx context.Context, id string) error {
			return setStatus(s, id, "done")
		},
	})
	defer stop(t, r2)
	if id := q.wait(1)[0]; id != "job_long" {
		t.Errorf("resumed %s, want job_long", id)
	}
}

func TestRunnerStopTimeout(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_stubborn")
	started := make(chan struct{})
	release := make(chan struct{})
	sawCancel := make(chan bool, 1)
	r := startRunner(t, Options{
		Store: s,
		Process: func(ctx context.Context, id string) error {
			close(started)
			<-release // ignores ctx
			sawCancel <- ctx.Err() != nil
			return nil
		},
	})
	r.Enqueue("job_stubborn")
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with an expired ctx = %v, want context.Canceled", err)
	}
	close(release)
	if !<-sawCancel {
		t.Error("Process ctx was not cancelled by Stop")
	}
	stop(t, r) // now the worker returns
}

func TestRunnerLifecycleErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	process := func(ctx context.Context, id string) error { return nil }

	r := NewRunner(Options{Store: s, Process: process})
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop without Start = %v", err)
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrRunnerStopped) {
		t.Errorf("Start after Stop = %v, want ErrRunnerStopped", err)
	}

	r = startRunner(t, Options{Store: s, Process: process})
	if err := r.Start(context.Background()); !errors.Is(err, ErrRunnerStarted) {
		t.Errorf("second Start = %v, want ErrRunnerStarted", err)
	}
	stop(t, r)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = NewRunner(Options{Store: s, Process: process})
	if err := r.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled ctx = %v, want context.Canceled", err)
	}
	stop(t, r)

	if r := NewRunner(Options{Store: s, Process: process}); r.Stats().Workers != 1 {
		t.Errorf("Workers = %d for Options.Workers 0, want 1", r.Stats().Workers)
	}
}

func TestRunnerEnqueue(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_1", "job_2")
	q := newNotifyQueue(2)
	entered := make(chan string, 2)
	gate := make(chan struct{})
	r := NewRunner(Options{
		Store:  s,
		Queue:  q,
		Resume: []string{},
		Process: func(ctx context.Context, id string) error {
			entered <- id
			<-gate
			return nil
		},
	})
	defer stop(t, r)

	if r.Enqueue("../x") {
		t.Error("Enqueue of an invalid id returned true")
	}
	if !r.Enqueue("job_1") || r.Enqueue("job_1") {
		t.Error("Enqueue before Start: want true, then false for the waiting id")
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-entered
	if r.Enqueue("job_1") {
		t.Error("Enqueue of a running job returned true")
	}
	if !r.Enqueue("job_2") {
		t.Error("Enqueue(job_2) = false")
	}
	close(gate)
	q.wait(2)
	if st := r.Stats(); st.Processed != 2 {
		t.Errorf("Stats = %+v, want 2 processed", st)
	}
}

func BenchmarkRunnerThroughput(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := NewStore(b.TempDir())
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("job_%d", i)
			}
			createJobs(b, s, ids...)
			q := newNotifyQueue(b.N)
			r := NewRunner(Options{
				Store:   s,
				Workers: workers,
				Queue:   q,
				Resume:  []string{},
				Process: func(ctx context.Context, id string) error {
					return setStatus(s, id, "done")
				},
			})
			if err := r.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for _, id := range ids {
				r.Enqueue(id)
			}
			q.wait(b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			if err := r.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			if st := r.Stats(); st.Processed != int64(b.N) {
				b.Fatalf("processed %d of %d jobs", st.Processed, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
		})
	}
}

// Reserve refuses once MaxQueued jobs wait or are reserved; a used or
// released place frees room, and a running job does not count.
func TestReserveBoundsTheQueue(t *testing.T) {
	store := NewStore(t.TempDir())
	hold := make(chan struct{})
	r := NewRunner(Options{Kind: "k", Store: store, MaxQueued: 2, Process: func(ctx context.Context, id string) error {
		select {
		case <-hold:
		case <-ctx.Done():
		}
		return nil
	}})
	a, err := r.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reserve(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third reserve = %v, want ErrQueueFull", err)
	}
	b.Release()
	b.Release() // a second release changes nothing
	c, err := r.Reserve()
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	for i, res := range []*Reservation{a, c} {
		id := fmt.Sprintf("job_%012d", i)
		if err := store.Create(id, map[string]any{"status": "queued"}); err != nil {
			t.Fatal(err)
		}
		if !res.Enqueue(id) {
			t.Fatalf("enqueue %s refused", id)
		}
		res.Release() // after Enqueue: nothing
	}
	if _, err := r.Reserve(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("two queued: reserve = %v, want ErrQueueFull", err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stop(t, r)
	// One job is taken by the worker and runs (held): one place frees.
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Busy != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	d, err := r.Reserve()
	if err != nil {
		t.Fatalf("with one running and one queued: %v", err)
	}
	d.Release()
	close(hold)
}

// Concurrent producers never get more places than the bound.
func TestReserveConcurrent(t *testing.T) {
	r := NewRunner(Options{Kind: "k", Store: NewStore(t.TempDir()), MaxQueued: 5, Process: func(context.Context, string) error { return nil }})
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := r.Reserve(); err == nil {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if got.Load() != 5 {
		t.Fatalf("%d places handed out, want 5", got.Load())
	}
}

// The observer hears every finished job once, with its outcome, the time it
// waited behind the others (one worker) and the time it ran; a resumed job
// counts its wait from Start, and a job Stop cuts short is not reported.
func TestRunnerObserve(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_resumed", "job_ok", "job_err", "job_panic", "job_stop")
	for _, id := range []string{"job_ok", "job_err", "job_panic", "job_stop"} {
		if err := setStatus(s, id, "done"); err != nil { // not resumed: enqueued below
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var events []JobEvent
	q := newNotifyQueue(8)
	stopping := make(chan struct{})
	r := NewRunner(Options{Kind: "k", Store: s, Queue: q, Workers: 1,
		Process: func(ctx context.Context, id string) error {
			switch id {
			case "job_resumed", "job_ok":
				time.Sleep(20 * time.Millisecond)
			case "job_err":
				return errors.New("bad")
			case "job_panic":
				panic("boom")
			case "job_stop":
				close(stopping)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}})
	r.SetObserver(func(e JobEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"job_ok", "job_err", "job_panic"} {
		r.Enqueue(id)
	}
	q.wait(4)
	r.Enqueue("job_stop")
	<-stopping
	stop(t, r)

	mu.Lock()
	defer mu.Unlock()
	if len(events) != 4 {
		t.Fatalf("%d events, want 4: %+v", len(events), events)
	}
	want := map[string]string{"job_resumed": OutcomeDone, "job_ok": OutcomeDone, "job_err": OutcomeFailed, "job_panic": OutcomeFailed}
	for _, e := range events {
		if e.Kind != "k" || want[e.ID] != e.Outcome {
			t.Errorf("event %+v", e)
		}
		if e.Queued < 0 || e.Ran < 0 {
			t.Errorf("negative times: %+v", e)
		}
		switch e.ID {
		case "job_ok", "job_resumed":
			if e.Ran < 20*time.Millisecond {
				t.Errorf("%s ran %v, want ≥ 20ms", e.ID, e.Ran)
			}
		case "job_err", "job_panic":
			// Queued behind job_ok (and the resumed job) on the one worker.
			if e.Queued < 20*time.Millisecond {
				t.Errorf("%s queued %v, want ≥ 20ms", e.ID, e.Queued)
			}
		}
	}
	if len(r.queuedAt) != 0 {
		t.Errorf("queue times left behind: %v", r.queuedAt)
	}
}

// workerGoroutines counts the goroutines running a Runner's worker loop,
// from the stacks of every goroutine.
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "jobs.(*Runner).work(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitWorkers waits until want worker goroutines run (a worker exits just
// after its last job is reported finished).
func waitWorkers(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := workerGoroutines()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d worker goroutines, want %d", n, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// An idle runner keeps no goroutine: work starts workers (no more than
// Workers, no more than the jobs), they exit once the queue is empty, and
// the next job starts one again.
func TestRunnerIdleHasNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	const workers, jobs = 4, 10
	s := NewStore(t.TempDir())
	q := newNotifyQueue(jobs + 1)
	entered := make(chan string, jobs+1)
	gate := make(chan struct{})
	r := startRunner(t, Options{Kind: "k", Store: s, Workers: workers, Queue: q,
		Process: func(ctx context.Context, id string) error {
			entered <- id
			<-gate
			return nil
		}})
	defer stop(t, r)
	g0 := runtime.NumGoroutine()
	if n := workerGoroutines(); n != 0 {
		t.Fatalf("started idle runner: %d worker goroutines, want 0", n)
	}

	createJobs(t, s, "job_a")
	r.Enqueue("job_a")
	<-entered
	if n := workerGoroutines(); n != 1 {
		t.Errorf("one job: %d worker goroutines, want 1", n)
	}
	for i := range jobs - 1 {
		id := fmt.Sprintf("job_%02d", i)
		createJobs(t, s, id)
		r.Enqueue(id)
	}
	for range workers - 1 {
		<-entered
	}
	if n := workerGoroutines(); n != workers {
		t.Errorf("%d jobs: %d worker goroutines, want %d", jobs, n, workers)
	}
	if st := r.Stats(); st.Busy != workers || st.Queued != jobs-workers {
		t.Errorf("Stats = %+v", st)
	}
	close(gate)
	q.wait(jobs)
	waitWorkers(t, 0)
	if d := runtime.NumGoroutine() - g0; d > 0 {
		t.Errorf("%d more goroutines once idle than when started idle", d)
	}

	// Work after idleness starts a worker again.
	createJobs(t, s, "job_late")
	r.Enqueue("job_late")
	if id := q.wait(1)[0]; id != "job_late" {
		t.Errorf("processed %s, want job_late", id)
	}
	waitWorkers(t, 0)
	if st := r.Stats(); st.Processed != jobs+1 || st.Busy != 0 || st.Queued != 0 {
		t.Errorf("final Stats = %+v", st)
	}
	r.mu.Lock()
	alive, pending := r.alive, r.pending
	r.mu.Unlock()
	if alive != 0 || pending != 0 {
		t.Errorf("alive %d, pending %d once idle", alive, pending)
	}
}

// oneAtATime is a Queue like a single chat lane: a job is handed out only
// once the previous one is done, so workers wait in Pop for jobs that are
// queued but not yet theirs.
type oneAtATime struct {
	mu      sync.Mutex
	ids     []string
	busy    bool
	changed chan struct{} // closed and replaced on every change
}

func newOneAtATime() *oneAtATime { return &oneAtATime{changed: make(chan struct{})} }

func (q *oneAtATime) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *oneAtATime) Push(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if slices.Contains(q.ids, id) {
		return false
	}
	q.ids = append(q.ids, id)
	q.notifyLocked()
	return true
}

func (q *oneAtATime) Pop(ctx context.Context) (string, func(), error) {
	for {
		q.mu.Lock()
		if !q.busy && len(q.ids) > 0 {
			id := q.ids[0]
			q.ids = q.ids[1:]
			q.busy = true
			q.mu.Unlock()
			return id, func() {
				q.mu.Lock()
				q.busy = false
				q.notifyLocked()
				q.mu.Unlock()
			}, nil
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
}

func (q *oneAtATime) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ids)
}

// Workers exiting as the work runs out never strand a job a queue holds
// back: with one job out at a time and four workers, every job runs, one at
// a time, and the workers are gone at the end.
func TestRunnerWorkersExitWithoutStrandingJobs(t *testing.T) {
	defer goleak.VerifyNone(t)
	const jobs = 40
	s := NewStore(t.TempDir())
	var active, maxActive atomic.Int32
	var done atomic.Int32
	finished := make(chan struct{})
	r := startRunner(t, Options{Kind: "k", Store: s, Workers: 4, Queue: newOneAtATime(),
		Process: func(ctx context.Context, id string) error {
			raiseTo(&maxActive, active.Add(1))
			time.Sleep(time.Millisecond)
			active.Add(-1)
			if done.Add(1) == jobs {
				close(finished)
			}
			return nil
		}})
	defer stop(t, r)
	for i := range jobs {
		id := fmt.Sprintf("job_%02d", i)
		createJobs(t, s, id)
		r.Enqueue(id)
		if i%7 == 0 {
			time.Sleep(2 * time.Millisecond) // let the workers drain it now and then
		}
	}
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d jobs ran", done.Load(), jobs)
	}
	if m := maxActive.Load(); m != 1 {
		t.Errorf("%d jobs at once, want 1", m)
	}
	waitWorkers(t, 0)
	if st := r.Stats(); st.Processed != jobs {
		t.Errorf("Stats = %+v", st)
	}
}

// Stop waits for the job in flight even though its worker was started
// on demand, and the runner starts no worker after it.
func TestRunnerStopWaitsForInFlight(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(t.TempDir())
	createJobs(t, s, "job_slow", "job_after")
	started := make(chan struct{})
	var returned atomic.Bool
	r := startRunner(t, Options{Kind: "k", Store: s, Workers: 2, Resume: []string{},
		Process: func(ctx context.Context, id string) error {
			close(started)
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // winding down after the cancel
			returned.Store(true)
			return ctx.Err()
		}})
	r.Enqueue("job_slow")
	<-started
	stop(t, r)
	if !returned.Load() {
		t.Fatal("Stop returned before the job in flight")
	}
	// The last worker closes the runner's exit channel on its way out:
	// its goroutine ends just after Stop sees that.
	waitWorkers(t, 0)
	if r.Enqueue("job_after") {
		t.Error("Enqueue after Stop accepted")
	}
	if n := workerGoroutines(); n != 0 {
		t.Errorf("Enqueue after Stop started %d workers", n)
	}
}
