package limits

import (
	"context"
	"sync"
	"time"
)

// fairSem is a counting semaphore shared between tenants: every slot taken
// is counted against the tenant (key) that took it. It is what a global Set
// is made of, so that one tenant's calls, however many and however slow,
// cannot keep another tenant out of the process-wide pool.
//
// Let size be the number of slots, free the slots not taken, R the reserve
// (size/4 rounded down: 2 of 8, 0 below 4), n the number of tenants holding
// or waiting on the pool, the caller's included and counted as at least 2,
// and share = ceil(size/n), a tenant's fair share.
//
//  1. A call takes a free slot at once if free > R, or if its tenant holds
//     fewer than share slots. So a tenant at or above its share leaves the
//     last R slots to others; n is at least 2 because a tenant alone still
//     shares with the next one to come, which is what the reserve is for.
//  2. Otherwise it waits. When a slot frees (or a tenant leaves, which
//     raises everyone's share), it goes to the waiter that rule 1 allows
//     and whose tenant holds the fewest slots, first come first served
//     among equals.
//  3. A waiter whose context ends is removed. If a slot was granted to it
//     in the meantime, the slot is given back (to the next waiter), and
//     the error is still returned: no slot is ever leaked.
//
// After every change no waiter that rule 1 allows is left waiting while a
// slot is free, so a new call that rule 1 allows never overtakes a waiter
// that rule 2 would have preferred.
type fairSem struct {
	size, reserve int

	mu      sync.Mutex
	inUse   int
	tenants map[any]*fairTenant // only tenants holding or waiting
	queue   []*fairWaiter       // arrival order
}

type fairTenant struct{ held, waiting int }

type fairWaiter struct {
	key     any
	ready   chan struct{} // closed when granted
	granted bool          // set with ready, under mu
}

// newFairSem returns a fair pool of n slots (n < 1 is treated as 1).
func newFairSem(n int) *fairSem {
	if n < 1 {
		n = 1
	}
	return &fairSem{size: n, reserve: n / 4, tenants: map[any]*fairTenant{}}
}

// InUse is the number of slots taken now, by all tenants.
func (p *fairSem) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// heldBy is the number of slots tenant key holds now.
func (p *fairSem) heldBy(key any) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.tenants[key]; t != nil {
		return t.held
	}
	return 0
}

// forTenant binds the pool to tenant key, as a Semaphore.
func (p *fairSem) forTenant(key any) Semaphore { return fairSlot{p, key} }

// fairSlot is a fairSem seen by one tenant.
type fairSlot struct {
	p   *fairSem
	key any
}

func (s fairSlot) Acquire(ctx context.Context) error { return s.p.acquire(ctx, s.key) }

func (s fairSlot) Release() { s.p.release(s.key) }

// AcquireTimed is Acquire that says whether the call had to queue, and
// for how long (limits.WaitEvent).
func (s fairSlot) AcquireTimed(ctx context.Context) (bool, time.Duration, error) {
	return s.p.acquireTimed(ctx, s.key)
}

// mayTakeLocked is rule 1 for a tenant holding held slots when n tenants
// are on the pool.
func (p *fairSem) mayTakeLocked(held, n int) bool {
	free := p.size - p.inUse
	if free <= 0 {
		return false
	}
	if free > p.reserve {
		return true
	}
	n = max(n, 2)
	return held < (p.size+n-1)/n
}

// acquire takes a slot for tenant key, or returns ctx.Err() if ctx ends
// first (also when it is already done).
func (p *fairSem) acquire(ctx context.Context, key any) error {
	_, _, err := p.acquireTimed(ctx, key)
	return err
}

// acquireTimed is acquire that also says whether the call queued (rule 2)
// and for how long.
func (p *fairSem) acquireTimed(ctx context.Context, key any) (blocked bool, wait time.Duration, err error) {
	done := ctx.Done()
	select {
	case <-done:
		return false, 0, ctx.Err()
	default:
	}
	p.mu.Lock()
	if p.tryLocked(key) {
		p.mu.Unlock()
		return false, 0, nil
	}
	start := time.Now()
	t := p.tenants[key]
	if t == nil {
		t = &fairTenant{}
		p.tenants[key] = t
	}
	t.waiting++
	w := &fairWaiter{key: key, ready: make(chan struct{})}
	p.queue = append(p.queue, w)
	p.mu.Unlock()

	select {
	case <-w.ready:
		return true, time.Since(start), nil
	case <-done:
	}
	p.mu.Lock()
	if w.granted {
		// The grant and the cancellation crossed: give the slot back.
		p.releaseLocked(key)
	} else {
		for i, q := range p.queue {
			if q == w {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
		t.waiting--
		p.forgetLocked(key, t)
		// A waiter holding nothing waits only while no slot is free, and one
		// holding some does not change the count of tenants, so this grants
		// nothing today; it keeps the invariant should rule 1 change.
		p.dispatchLocked()
	}
	p.mu.Unlock()
	return true, time.Since(start), ctx.Err()
}

// tryLocked is rule 1: it takes a slot for tenant key if it may.
func (p *fairSem) tryLocked(key any) bool {
	t := p.tenants[key]
	n := len(p.tenants)
	held := 0
	if t != nil {
		held = t.held
	} else {
		n++ // the caller's tenant counts
	}
	if !p.mayTakeLocked(held, n) {
		return false
	}
	if t == nil {
		t = &fairTenant{}
		p.tenants[key] = t
	}
	t.held++
	p.inUse++
	return true
}

// release gives back a slot of tenant key.
func (p *fairSem) release(key any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(key)
}

func (p *fairSem) releaseLocked(key any) {
	t := p.tenants[key]
	if t == nil || t.held == 0 {
		panic("limits: release of a slot the tenant does not hold")
	}
	t.held--
	p.inUse--
	p.forgetLocked(key, t)
	p.dispatchLocked()
}

// forgetLocked drops a tenant that neither holds nor waits.
func (p *fairSem) forgetLocked(key any, t *fairTenant) {
	if t.held == 0 && t.waiting == 0 {
		delete(p.tenants, key)
	}
}

// dispatchLocked is rule 2: while a slot is free, grant it to the allowed
// waiter whose tenant holds the fewest, the earliest among equals.
func (p *fairSem) dispatchLocked() {
	for p.inUse < p.size && len(p.queue) > 0 {
		n := len(p.tenants) // every waiter's tenant is in the map
		best, bestHeld := -1, 0
		for i, w := range p.queue {
			held := p.tenants[w.key].held
			if (best < 0 || held < bestHeld) && p.mayTakeLocked(held, n) {
				best, bestHeld = i, held
			}
		}
		if best < 0 {
			return
		}
		w := p.queue[best]
		p.queue = append(p.queue[:best], p.queue[best+1:]...)
		t := p.tenants[w.key]
		t.waiting--
		t.held++
		p.inUse++
		w.granted = true
		close(w.ready)
	}
}
