package limits

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// fakeSem records every call in a shared trace. It never blocks: it fails
// with context.Canceled when told to, so the order tests need no goroutines.
type fakeSem struct {
	name  string
	trace *[]string
	fail  bool
	held  int
}

func (f *fakeSem) Acquire(ctx context.Context) error {
	*f.trace = append(*f.trace, "acquire "+f.name)
	if f.fail {
		return context.Canceled
	}
	f.held++
	return nil
}

func (f *fakeSem) Release() {
	*f.trace = append(*f.trace, "release "+f.name)
	f.held--
}

func (f *fakeSem) InUse() int { return f.held }

func (f *fakeSem) forTenant(any) Semaphore { return f }

func fakeSet(scope string, trace *[]string) (*Set, map[string]*fakeSem) {
	m := map[string]*fakeSem{}
	mk := func(n string) *fakeSem {
		f := &fakeSem{name: scope + "." + n, trace: trace}
		m[n] = f
		return f
	}
	return &Set{llmTotal: mk("total"), llmStudent: mk("student"), llmTeacher: mk("teacher"), ocr: mk("ocr")}, m
}

func TestAcquireOrder(t *testing.T) {
	cases := []struct {
		role Role
		want []string
	}{
		{RoleStudent, []string{"tenant.total", "tenant.student", "global.total", "global.student"}},
		{RoleTeacher, []string{"tenant.total", "tenant.teacher", "global.total", "global.teacher"}},
		{RoleOther, []string{"tenant.total", "global.total"}},
	}
	for _, c := range cases {
		t.Run(c.role.String(), func(t *testing.T) {
			var trace []string
			tenant, _ := fakeSet("tenant", &trace)
			global, _ := fakeSet("global", &trace)
			release, err := AcquireLLM(context.Background(), tenant, global, c.role)
			if err != nil {
				t.Fatal(err)
			}
			trace = append(trace, "body")
			release()
			var want []string
			for _, n := range c.want {
				want = append(want, "acquire "+n)
			}
			want = append(want, "body")
			for i := len(c.want) - 1; i >= 0; i-- {
				want = append(want, "release "+c.want[i])
			}
			if !reflect.DeepEqual(trace, want) {
				t.Fatalf("trace\n got %q\nwant %q", trace, want)
			}
		})
	}
}

func TestAcquireOCROrder(t *testing.T) {
	var trace []string
	tenant, _ := fakeSet("tenant", &trace)
	global, _ := fakeSet("global", &trace)
	release, err := AcquireOCR(context.Background(), tenant, global)
	if err != nil {
		t.Fatal(err)
	}
	release()
	want := []string{"acquire tenant.ocr", "acquire global.ocr", "release global.ocr", "release tenant.ocr"}
	if !reflect.DeepEqual(trace, want) {
		t.Fatalf("got %q want %q", trace, want)
	}
}

// A failure part-way through gives back exactly what was taken, in reverse.
func TestAcquireFailureUndoes(t *testing.T) {
	for _, failAt := range []string{"total", "student"} {
		t.Run(failAt, func(t *testing.T) {
			var trace []string
			tenant, _ := fakeSet("tenant", &trace)
			global, gm := fakeSet("global", &trace)
			gm[failAt].fail = true
			_, err := AcquireLLM(context.Background(), tenant, global, RoleStudent)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
			for _, s := range []*Set{tenant, global} {
				if u := s.Usage(); u != (Usage{}) {
					t.Fatalf("usage after failure = %+v", u)
				}
			}
			last := trace[len(trace)-1]
			if last != "release tenant.total" {
				t.Fatalf("last step %q, trace %q", last, trace)
			}
		})
	}
}

// With real semaphores: a caller that gives up while waiting for the global
// slot leaves every counter at zero once the holder is done.
func TestCancelWhileWaitingLeavesZero(t *testing.T) {
	tenant := NewSet(Config{LLMTotal: 3, LLMStudent: 2, LLMTeacher: 2, OCR: 1})
	global := NewSet(Config{LLMTotal: 1, LLMStudent: 1, LLMTeacher: 1, OCR: 1})
	hold, err := AcquireLLM(context.Background(), tenant, global, RoleStudent)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := AcquireLLM(ctx, tenant, global, RoleStudent); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second acquire: %v", err)
	}
	if got := tenant.Usage(); got != (Usage{LLMTotal: 1, LLMStudent: 1}) {
		t.Fatalf("tenant usage while held = %+v", got)
	}
	hold()
	for _, s := range []*Set{tenant, global} {
		if u := s.Usage(); u != (Usage{}) {
			t.Fatalf("usage after release = %+v", u)
		}
	}
	// Every slot is really free again: acquiring all of them succeeds at once.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	r, err := AcquireLLM(ctx2, tenant, global, RoleStudent)
	if err != nil {
		t.Fatal(err)
	}
	r()
}

func TestDoubleReleasePanics(t *testing.T) {
	r, err := Acquire(context.Background(), NewSem(1))
	if err != nil {
		t.Fatal(err)
	}
	r()
	defer func() {
		if recover() == nil {
			t.Fatal("second release did not panic")
		}
	}()
	r()
}

func TestConfigValidate(t *testing.T) {
	if err := TenantDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	c := TenantDefaults()
	c.OCR = 0
	if err := c.Validate(); err == nil || err.Error() != "limit ocr must be a positive integer, got 0" {
		t.Fatalf("err = %v", err)
	}
}

// A tenant Set's observer hears each wait of its calls, in its own pools
// and in the process's, with the pool and the time waited; a slot free at
// once is no wait, and a wait given up is reported with its error.
func TestWaitObserver(t *testing.T) {
	tenant := NewTenantSet("t1", Config{LLMTotal: 1, LLMStudent: 5, LLMTeacher: 5, OCR: 5})
	other := NewTenantSet("t2", Config{LLMTotal: 5, LLMStudent: 5, LLMTeacher: 5, OCR: 5})
	global := NewGlobalSet(Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 1})
	events := make(chan WaitEvent, 8)
	tenant.SetObserver(func(e WaitEvent) { events <- e })
	other.SetObserver(func(e WaitEvent) { t.Errorf("t2 heard t1's wait %+v", e) })

	release, err := AcquireLLM(context.Background(), tenant, global, RoleTeacher)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Fatalf("a free slot reported a wait: %+v", <-events)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := AcquireLLM(context.Background(), tenant, global, RoleTeacher)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	time.Sleep(30 * time.Millisecond)
	release()
	(<-got)()
	e := <-events
	if e.Pool != PoolLLMTotal || e.Global || e.Err != nil || e.Wait < 20*time.Millisecond {
		t.Errorf("tenant pool wait: %+v", e)
	}

	// The global OCR pool (1 slot) held by another tenant: t1 waits there,
	// then gives up.
	held, err := AcquireOCR(context.Background(), other, global)
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := AcquireOCR(ctx, tenant, global); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OCR acquire: %v", err)
	}
	e = <-events
	if e.Pool != PoolOCR || !e.Global || !errors.Is(e.Err, context.DeadlineExceeded) || e.Wait < 15*time.Millisecond {
		t.Errorf("global pool wait: %+v", e)
	}
	if u := tenant.Usage(); u != (Usage{}) {
		t.Errorf("slots left taken: %+v", u)
	}
	tenant.SetObserver(nil)
}

// recordingLimiter is a Limiter that is not a Set (as a limiter shared by
// several processes would be): its semaphores are plain (no timing), it
// bounds no OCR, and it records which tenant asked for which pool.
type recordingLimiter struct {
	trace *[]string
	sems  map[string]*fakeSem
	asked []string
}

func (l *recordingLimiter) Pool(pool string, tenant any) Semaphore {
	l.asked = append(l.asked, pool+"/"+tenant.(string))
	if s, ok := l.sems[pool]; ok {
		return plainSem{s}
	}
	return nil
}

func (l *recordingLimiter) Config() Config { return Config{} }
func (l *recordingLimiter) Usage() Usage   { return Usage{} }

// plainSem hides fakeSem's other methods: only Semaphore is left.
type plainSem struct{ s *fakeSem }

func (p plainSem) Acquire(ctx context.Context) error { return p.s.Acquire(ctx) }
func (p plainSem) Release()                          { p.s.Release() }

// Any Limiter can be the global side: its pools are taken after the
// tenant's, in order, under the tenant's id; a pool it does not bound (nil)
// is skipped; waits on its untimed semaphores go unobserved, not refused.
func TestAcquireThroughLimiterInterface(t *testing.T) {
	var trace []string
	g := &recordingLimiter{trace: &trace, sems: map[string]*fakeSem{
		PoolLLMTotal:   {name: "shared.total", trace: &trace},
		PoolLLMStudent: {name: "shared.student", trace: &trace},
	}}
	tenant := NewTenantSet("t1", Config{LLMTotal: 1, LLMStudent: 1, LLMTeacher: 1, OCR: 1})
	tenant.SetObserver(func(e WaitEvent) {
		if e.Global {
			t.Errorf("an untimed semaphore reported a wait: %+v", e)
		}
	})
	release, err := AcquireLLM(context.Background(), tenant, g, RoleStudent)
	if err != nil {
		t.Fatal(err)
	}
	if u := tenant.Usage(); u.LLMTotal != 1 || u.LLMStudent != 1 {
		t.Fatalf("tenant usage %+v", u)
	}
	release()
	want := []string{"acquire shared.total", "acquire shared.student", "release shared.student", "release shared.total"}
	if !reflect.DeepEqual(trace, want) {
		t.Fatalf("trace\n got %q\nwant %q", trace, want)
	}
	if want := []string{PoolLLMTotal + "/t1", PoolLLMStudent + "/t1"}; !reflect.DeepEqual(g.asked, want) {
		t.Fatalf("asked %q, want %q", g.asked, want)
	}

	// No OCR pool in the limiter: only the tenant's slot is taken.
	release, err = AcquireOCR(context.Background(), tenant, g)
	if err != nil {
		t.Fatal(err)
	}
	if u := tenant.Usage(); u.OCR != 1 {
		t.Fatalf("tenant OCR usage %+v", u)
	}
	release()
	if u := tenant.Usage(); u != (Usage{}) {
		t.Fatalf("slots left taken: %+v", u)
	}
}

// A global Set's Pool is the fair pool bound to the tenant asking: slots
// taken through it count against that tenant.
func TestSetPool(t *testing.T) {
	g := NewGlobalSet(Config{LLMTotal: 4, LLMStudent: 4, LLMTeacher: 4, OCR: 4})
	s := g.Pool(PoolOCR, "t1")
	if err := s.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := g.ocr.(*fairSem).heldBy("t1"); n != 1 {
		t.Fatalf("t1 holds %d OCR slots, want 1", n)
	}
	s.Release()
	if g.Pool("nope", "t1") != nil {
		t.Fatal("an unknown pool is not nil")
	}
	if _, ok := g.Pool(PoolLLMTotal, "t1").(TimedSemaphore); !ok {
		t.Fatal("the package's pools are timed")
	}
}
