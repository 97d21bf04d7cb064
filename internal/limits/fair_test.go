package limits

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tryAcquire applies rule 1 only: it takes a slot if one may be taken at
// once and reports whether it did.
func (p *fairSem) tryAcquire(key any) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tryLocked(key)
}

func (p *fairSem) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// checkEmpty fails unless the pool has nothing taken, queued or tracked.
func checkEmpty(t *testing.T, p *fairSem) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inUse != 0 || len(p.queue) != 0 || len(p.tenants) != 0 {
		t.Fatalf("pool not empty: in use %d, queued %d, tenants %v", p.inUse, len(p.queue), p.tenants)
	}
}

// take takes n slots for key, each of which must be free at once.
func take(t *testing.T, p *fairSem, key string, n int) {
	t.Helper()
	for i := range n {
		if !p.tryAcquire(key) {
			t.Fatalf("%s: slot %d of %d not granted at once (in use %d)", key, i+1, n, p.InUse())
		}
	}
}

// enqueue starts a waiter for key named name and returns once it is queued;
// its name is sent on granted when it gets its slot.
func enqueue(t *testing.T, ctx context.Context, p *fairSem, key, name string, granted chan<- string, wg *sync.WaitGroup) {
	t.Helper()
	before := p.queued()
	wg.Go(func() {
		if err := p.acquire(ctx, key); err != nil {
			granted <- name + ": " + err.Error()
			return
		}
		granted <- name
	})
	deadline := time.Now().Add(5 * time.Second)
	for p.queued() == before {
		if time.Now().After(deadline) {
			t.Fatalf("%s never queued", name)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestFairReserve(t *testing.T) {
	cases := []struct {
		size, reserve int
		alone         int // slots a tenant alone gets at once
	}{
		{1, 0, 1}, {3, 0, 3}, {4, 1, 3}, {8, 2, 6}, {10, 2, 8}, {16, 4, 12},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint("size=", c.size), func(t *testing.T) {
			p := newFairSem(c.size)
			if p.reserve != c.reserve {
				t.Fatalf("reserve %d, want %d", p.reserve, c.reserve)
			}
			take(t, p, "a", c.alone)
			if p.tryAcquire("a") {
				t.Fatalf("a alone took slot %d: the reserve is not kept", c.alone+1)
			}
			// A second tenant takes the reserve at once, up to its share.
			take(t, p, "b", c.reserve)
			if p.tryAcquire("a") || p.tryAcquire("b") {
				t.Fatal("a slot beyond the pool's size")
			}
			for range c.alone {
				p.release("a")
			}
			for range c.reserve {
				p.release("b")
			}
			checkEmpty(t, p)
		})
	}
}

// The reserve serves only tenants below their fair share: with b present,
// a (above its share of 4) cannot take the last free slot, b (below) can.
func TestFairReserveOnlyBelowShare(t *testing.T) {
	p := newFairSem(8)
	take(t, p, "a", 6)
	take(t, p, "b", 1)
	if p.tryAcquire("a") {
		t.Fatal("a took a reserved slot while holding 6 of 8 with two tenants")
	}
	take(t, p, "b", 1)
	p.release("a")
	p.release("a")
	p.release("a") // a holds 3 < share 4: may take a reserved slot again
	take(t, p, "a", 1)
	for range 4 {
		p.release("a")
	}
	p.release("b")
	p.release("b")
	checkEmpty(t, p)
}

// Freed slots go to the tenant holding the fewest, FIFO among equals; a
// waiter of a tenant at or above its share waits while only the reserve
// is free.
func TestFairOrder(t *testing.T) {
	p := newFairSem(8)
	ctx := context.Background()
	var wg sync.WaitGroup
	granted := make(chan string, 10)
	take(t, p, "a", 6)
	take(t, p, "b", 2)
	enqueue(t, ctx, p, "a", "a1", granted, &wg)
	enqueue(t, ctx, p, "b", "b1", granted, &wg)
	enqueue(t, ctx, p, "c", "c1", granted, &wg)
	enqueue(t, ctx, p, "c", "c2", granted, &wg)
	enqueue(t, ctx, p, "b", "b2", granted, &wg)
	next := func() string {
		t.Helper()
		select {
		case g := <-granted:
			return g
		case <-time.After(5 * time.Second):
			t.Fatal("no grant")
			return ""
		}
	}
	none := func() {
		t.Helper()
		select {
		case g := <-granted:
			t.Fatalf("unexpected grant %s", g)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Three tenants: share ceil(8/3) = 3. Each step: release one of a's,
	// then the expected winner (held counts a/b/c after the grant).
	steps := []string{
		"c1", // c holds 0: a 5, b 2, c 1
		"c2", // c holds 1 < b 2: a 4, b 2, c 2
		"b1", // b and c hold 2; b1 came first: a 3, b 3, c 2
		"a1", // a 2 < share 3; b2's b holds 3: a 3, b 3, c 2
	}
	for _, want := range steps {
		p.release("a")
		if got := next(); got != want {
			t.Fatalf("grant %q, want %q", got, want)
		}
	}
	// b2 waits: b holds its share (3) and one free slot is within the
	// reserve (2).
	p.release("a") // free 1
	none()
	p.release("a") // free 2
	none()
	p.release("a") // free 3 > reserve: b2 may take it
	if got := next(); got != "b2" {
		t.Fatalf("grant %q, want b2", got)
	}
	wg.Wait()
	for _, k := range []struct {
		key string
		n   int
	}{{"b", 4}, {"c", 2}} {
		if h := p.heldBy(k.key); h != k.n {
			t.Fatalf("%s holds %d, want %d", k.key, h, k.n)
		}
		for range k.n {
			p.release(k.key)
		}
	}
	checkEmpty(t, p)
}

// A waiter that gives up leaves the queue: the slot goes to the next one.
func TestFairCancelledWaiterSkipped(t *testing.T) {
	p := newFairSem(1)
	take(t, p, "a", 1)
	var wg sync.WaitGroup
	granted := make(chan string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	enqueue(t, ctx, p, "b", "b1", granted, &wg)
	enqueue(t, context.Background(), p, "c", "c1", granted, &wg)
	cancel()
	if g := <-granted; g != "b1: context canceled" {
		t.Fatalf("got %q", g)
	}
	if q := p.queued(); q != 1 {
		t.Fatalf("%d queued after the cancel, want 1", q)
	}
	p.release("a")
	if g := <-granted; g != "c1" {
		t.Fatalf("got %q, want c1", g)
	}
	wg.Wait()
	p.release("c")
	checkEmpty(t, p)
}

// A grant and a cancellation that cross leave no slot taken: the waiter
// gives the granted slot back, to the next waiter.
func TestFairGrantCancelCross(t *testing.T) {
	for i := range 50 {
		p := newFairSem(1)
		take(t, p, "a", 1)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.acquire(ctx, "b") }()
		for p.queued() == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		// With the lock held, the waiter sees its context end but cannot
		// look at its state until the slot has been granted to it.
		p.mu.Lock()
		cancel()
		if i%2 == 0 {
			time.Sleep(time.Millisecond) // let the waiter block on the lock
		}
		p.releaseLocked("a")
		p.mu.Unlock()
		err := <-errc
		switch {
		case err == nil: // it saw the grant first: it holds the slot
			if p.heldBy("b") != 1 {
				t.Fatal("acquire succeeded without a slot")
			}
			p.release("b")
		case errors.Is(err, context.Canceled):
		default:
			t.Fatal(err)
		}
		checkEmpty(t, p)
	}
}

// Many goroutines of several tenants acquiring, holding briefly and giving
// up at random never exceed the pool and leave it empty.
func TestFairStress(t *testing.T) {
	for _, size := range []int{1, 3, 8} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			p := newFairSem(size)
			var held, peak atomic.Int64
			var wg sync.WaitGroup
			for g := range 64 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 1))
					key := fmt.Sprint("t", g%5)
					for range 100 {
						ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(300))*time.Microsecond)
						if p.acquire(ctx, key) == nil {
							n := held.Add(1)
							for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
							}
							if r.IntN(4) == 0 {
								time.Sleep(time.Duration(r.IntN(100)) * time.Microsecond)
							}
							held.Add(-1)
							p.release(key)
						}
						cancel()
					}
				})
			}
			wg.Wait()
			if peak.Load() > int64(size) {
				t.Fatalf("peak %d slots of %d", peak.Load(), size)
			}
			checkEmpty(t, p)
		})
	}
}

// The same through AcquireLLM and AcquireOCR with a global Set: every
// counter of every Set is zero at the end.
func TestGlobalSetStressLeavesZero(t *testing.T) {
	global := NewGlobalSet(Config{LLMTotal: 8, LLMStudent: 3, LLMTeacher: 8, OCR: 4})
	tenants := []*Set{NewTenantSet("a", TenantDefaults()), NewTenantSet("b", TenantDefaults()),
		NewTenantSet("a", TenantDefaults()), NewSet(Config{LLMTotal: 2, LLMStudent: 1, LLMTeacher: 1, OCR: 1})}
	var wg sync.WaitGroup
	for g := range 48 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			tenant := tenants[g%len(tenants)]
			for range 60 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(400))*time.Microsecond)
				var release func()
				var err error
				if r.IntN(5) == 0 {
					release, err = AcquireOCR(ctx, tenant, global)
				} else {
					release, err = AcquireLLM(ctx, tenant, global, Role(r.IntN(3)))
				}
				if err == nil {
					if r.IntN(3) == 0 {
						time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
					}
					release()
				} else if !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	for _, s := range append([]*Set{global}, tenants...) {
		if u := s.Usage(); u != (Usage{}) {
			t.Fatalf("usage after stress = %+v", u)
		}
	}
	for _, sl := range []slot{global.llmTotal, global.llmStudent, global.llmTeacher, global.ocr} {
		checkEmpty(t, sl.(*fairSem))
	}
}

// The measured problem of issue 8: global 8, tenant a's ten teacher calls
// hang; a holds 6 global slots, 4 wait behind the reserve, and tenant b's
// call gets through at once.
func TestGlobalSetHangingTenant(t *testing.T) {
	global := NewGlobalSet(Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4})
	a, b := NewTenantSet("a", TenantDefaults()), NewTenantSet("b", TenantDefaults())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	held := make(chan func(), 10)
	for range 10 {
		wg.Go(func() {
			if release, err := AcquireLLM(ctx, a, global, RoleTeacher); err == nil {
				held <- release
			}
		})
	}
	total := global.llmTotal.(*fairSem)
	for total.queued() < 4 || total.InUse() < 6 {
		time.Sleep(100 * time.Microsecond)
	}
	if u := global.Usage(); u.LLMTotal != 6 || u.LLMTeacher != 6 {
		t.Fatalf("global usage with a's load %+v, want 6 total and teacher", u)
	}
	bctx, bcancel := context.WithTimeout(context.Background(), time.Second)
	defer bcancel()
	start := time.Now()
	release, err := AcquireLLM(bctx, b, global, RoleTeacher)
	if err != nil {
		t.Fatalf("b waited %v: %v", time.Since(start), err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("b waited %v", d)
	}
	release()
	cancel() // a's four waiters give up
	for range 6 {
		(<-held)()
	}
	wg.Wait()
	for _, s := range []*Set{global, a, b} {
		if u := s.Usage(); u != (Usage{}) {
			t.Fatalf("usage at the end = %+v", u)
		}
	}
}

func TestEffective(t *testing.T) {
	got := Effective(TenantDefaults(), Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4})
	if want := (Config{LLMTotal: 8, LLMStudent: 2, LLMTeacher: 8, OCR: 4}); got != want {
		t.Fatalf("Effective = %+v, want %+v", got, want)
	}
}

func TestSetKeys(t *testing.T) {
	a1, a2 := NewTenantSet("a", TenantDefaults()), NewTenantSet("a", TenantDefaults())
	x, y := NewSet(TenantDefaults()), NewSet(TenantDefaults())
	if a1.key() != a2.key() || x.key() == y.key() || a1.key() == x.key() {
		t.Fatal("a tenant id is one key; each anonymous Set is its own")
	}
	if g := NewGlobalSet(TenantDefaults()); g.Config() != TenantDefaults() {
		t.Fatalf("Config %+v", g.Config())
	}
}
