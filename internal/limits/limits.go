// Package limits holds the concurrency limits that LLM and OCR calls pass
// through: one Set per tenant and one for the whole process.
//
// The order of acquisition is fixed so that two callers can never deadlock
// on each other: tenant before global, total before role. Releases happen in
// reverse order.
//
// A tenant's Set (NewTenantSet) is plain counting semaphores. The process's
// Set (NewGlobalSet) is fair pools shared between tenants: each slot taken
// is counted against the tenant that took it, a free slot goes first to the
// tenant holding the fewest, and a reserve of a quarter of each pool is kept
// for tenants below their fair share, so one tenant's hanging calls cannot
// make another tenant wait (see fairSem).
//
// The global side is reached only through the Limiter interface, so a
// limiter shared by several processes can take the place of the
// process's own Set without any caller changing.
package limits

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Role says which per-role LLM limit a call counts against.
type Role int

const (
	// RoleOther counts only against the total limits.
	RoleOther Role = iota
	RoleStudent
	RoleTeacher
)

// String returns the role's name as used in the API ("student", "teacher",
// "other").
func (r Role) String() string {
	switch r {
	case RoleStudent:
		return "student"
	case RoleTeacher:
		return "teacher"
	}
	return "other"
}

// Config sizes one Set.
type Config struct {
	LLMTotal   int `json:"llm_total"`
	LLMStudent int `json:"llm_student"`
	LLMTeacher int `json:"llm_teacher"`
	OCR        int `json:"ocr"`
}

// TenantDefaults are the limits of a tenant that sets none.
func TenantDefaults() Config {
	return Config{LLMTotal: 30, LLMStudent: 2, LLMTeacher: 10, OCR: 5}
}

// Effective is the limit a tenant really has: each of its limits capped by
// the process's (global) one.
func Effective(tenant, global Config) Config {
	return Config{
		LLMTotal:   min(tenant.LLMTotal, global.LLMTotal),
		LLMStudent: min(tenant.LLMStudent, global.LLMStudent),
		LLMTeacher: min(tenant.LLMTeacher, global.LLMTeacher),
		OCR:        min(tenant.OCR, global.OCR),
	}
}

// Validate reports the first limit that is not a positive integer.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"llm_total", c.LLMTotal}, {"llm_student", c.LLMStudent}, {"llm_teacher", c.LLMTeacher}, {"ocr", c.OCR}} {
		if f.v <= 0 {
			return fmt.Errorf("limit %s must be a positive integer, got %d", f.name, f.v)
		}
	}
	return nil
}

// Semaphore is a context-aware counting semaphore.
type Semaphore interface {
	Acquire(ctx context.Context) error
	Release()
}

// Sem is a Semaphore that also reports how many slots are taken.
type Sem struct {
	size  int
	w     *semaphore.Weighted
	inUse atomic.Int64
}

// NewSem returns a semaphore with n slots (n < 1 is treated as 1).
func NewSem(n int) *Sem {
	if n < 1 {
		n = 1
	}
	return &Sem{size: n, w: semaphore.NewWeighted(int64(n))}
}

// Acquire takes a slot, or returns ctx.Err() if ctx ends first.
func (s *Sem) Acquire(ctx context.Context) error {
	_, _, err := s.AcquireTimed(ctx)
	return err
}

// AcquireTimed is Acquire that also says whether the slot was not free at
// once, and then how long the call waited (for WaitEvent). The fast path
// is the semaphore's own: TryAcquire succeeds exactly when Acquire would
// not block (room, and nobody queued before us).
func (s *Sem) AcquireTimed(ctx context.Context) (blocked bool, wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return false, 0, err // as Acquire: a done context never takes a slot
	}
	if !s.w.TryAcquire(1) {
		start := time.Now()
		err := s.w.Acquire(ctx, 1)
		if wait = time.Since(start); err != nil {
			return true, wait, err
		}
		blocked = true
	}
	s.inUse.Add(1)
	return blocked, wait, nil
}

// Release gives a slot back.
func (s *Sem) Release() {
	s.inUse.Add(-1)
	s.w.Release(1)
}

// InUse is the number of slots taken now.
func (s *Sem) InUse() int { return int(s.inUse.Load()) }

// Size is the number of slots.
func (s *Sem) Size() int { return s.size }

// forTenant returns s itself: a plain semaphore does not tell tenants apart.
func (s *Sem) forTenant(any) Semaphore { return s }

// slot is what a Set holds: a semaphore that can say how full it is and
// gives the Semaphore a call of a given tenant takes.
type slot interface {
	InUse() int
	forTenant(key any) Semaphore
}

// Set is the semaphores of one scope: a tenant, or the process.
type Set struct {
	cfg                                   Config
	id                                    string // tenant id; "" for the process or an anonymous tenant
	llmTotal, llmStudent, llmTeacher, ocr slot
	// observe hears the waits of this tenant's calls (see SetObserver).
	observe atomic.Pointer[func(WaitEvent)]
}

// Pool names, as in Config's and Usage's JSON and in WaitEvent.
const (
	PoolLLMTotal   = "llm_total"
	PoolLLMStudent = "llm_student"
	PoolLLMTeacher = "llm_teacher"
	PoolOCR        = "ocr"
)

// WaitEvent is one wait for a slot by a call of the tenant whose Set
// reports it: a slot that was free at once is no wait and is not reported.
type WaitEvent struct {
	Pool string // PoolLLMTotal, PoolLLMStudent, PoolLLMTeacher or PoolOCR
	// Global is true for the process's pool, false for the tenant's own.
	Global bool
	Wait   time.Duration
	// Err is the context's error when the call gave up waiting.
	Err error
}

// SetObserver sets (nil: clears) the function that hears every wait of
// AcquireLLM and AcquireOCR for the calls of tenant Set s, in its own pools
// and in the global ones (a global Set's own observer is never called: the
// waits belong to the tenant that waited). fn runs on the caller's
// goroutine once the wait is over and must return quickly. Safe at any
// time.
func (s *Set) SetObserver(fn func(WaitEvent)) {
	if fn == nil {
		s.observe.Store(nil)
		return
	}
	s.observe.Store(&fn)
}

// NewSet builds a Set of plain semaphores sized by c, for an anonymous
// tenant (each such Set counts as a tenant of its own in a global Set).
func NewSet(c Config) *Set {
	return &Set{
		cfg:        c,
		llmTotal:   NewSem(c.LLMTotal),
		llmStudent: NewSem(c.LLMStudent),
		llmTeacher: NewSem(c.LLMTeacher),
		ocr:        NewSem(c.OCR),
	}
}

// NewTenantSet builds tenant id's Set sized by c. The id is what a global
// Set counts the tenant's slots under, so two Sets with the same id (a
// tenant rebuilt while its old calls finish) are one tenant there.
func NewTenantSet(id string, c Config) *Set {
	s := NewSet(c)
	s.id = id
	return s
}

// NewGlobalSet builds the process's Set sized by c: every semaphore is a
// fair pool shared between tenants (see fairSem for the rules).
func NewGlobalSet(c Config) *Set {
	return &Set{
		cfg:        c,
		llmTotal:   newFairSem(c.LLMTotal),
		llmStudent: newFairSem(c.LLMStudent),
		llmTeacher: newFairSem(c.LLMTeacher),
		ocr:        newFairSem(c.OCR),
	}
}

// key is what a global pool counts this tenant's slots under.
func (s *Set) key() any {
	if s.id != "" {
		return s.id
	}
	return s
}

// Config returns the sizes the Set was built with.
func (s *Set) Config() Config { return s.cfg }

// Limiter is the global side of the limits: the pools every tenant's LLM
// and OCR calls take after their tenant's own Set (AcquireLLM,
// AcquireOCR). The Set of NewGlobalSet is the process's own, fair between
// tenants; a limiter whose slots are counted for several processes at
// once (in a shared service) can take its place. Any Set is a Limiter (a
// plain one, from NewSet, in tests).
//
// An implementation keeps this contract:
//   - Pool(pool, tenant) is the Semaphore a call of tenant takes in pool
//     (PoolLLMTotal, PoolLLMStudent, PoolLLMTeacher or PoolOCR), or nil
//     when the limiter does not bound that pool. tenant is the tenant's id
//     (a string), or for a tenant Set made without one (NewSet) a value
//     unique to that Set; slots are counted against it (fairness, release).
//   - Acquire blocks until a slot is free or ctx ends; then it returns
//     ctx.Err() and holds nothing, also when ctx was done before the call.
//     Release gives back one slot its tenant took, exactly once per
//     successful Acquire; a slot of a caller that dies (its process, for a
//     shared limiter) must come back by itself (a lease), or the pool
//     shrinks for good.
//   - A Semaphore that also implements TimedSemaphore has its waits
//     reported (WaitEvent); one that does not is used, unobserved.
//   - Config is the pools' sizes and Usage the slots taken now by every
//     caller the limiter counts (every process, for a shared one).
//
// The order AcquireLLM and AcquireOCR take the pools in (tenant before
// global, total before role) is what keeps two callers from deadlocking
// on each other: an implementation needs no deadlock avoidance of its own.
type Limiter interface {
	Pool(pool string, tenant any) Semaphore
	Config() Config
	Usage() Usage
}

// TimedSemaphore is a Semaphore that tells, when a slot is taken, whether
// it was not free at once and how long the call then waited (for
// WaitEvent): the package's own semaphores are.
type TimedSemaphore interface {
	Semaphore
	AcquireTimed(ctx context.Context) (blocked bool, wait time.Duration, err error)
}

// Pool is the Semaphore a call of tenant takes in the Set's pool (the
// Limiter method): for a global Set, the fair pool bound to tenant; for a
// tenant's Set, its own semaphore whoever asks. nil for an unknown pool.
func (s *Set) Pool(pool string, tenant any) Semaphore {
	var sl slot
	switch pool {
	case PoolLLMTotal:
		sl = s.llmTotal
	case PoolLLMStudent:
		sl = s.llmStudent
	case PoolLLMTeacher:
		sl = s.llmTeacher
	case PoolOCR:
		sl = s.ocr
	default:
		return nil
	}
	return sl.forTenant(tenant)
}

var _ Limiter = (*Set)(nil)

// Usage is a snapshot of the slots taken in a Set.
type Usage struct {
	LLMTotal   int `json:"llm_total"`
	LLMStudent int `json:"llm_student"`
	LLMTeacher int `json:"llm_teacher"`
	OCR        int `json:"ocr"`
}

// Usage reports the slots taken now.
func (s *Set) Usage() Usage {
	return Usage{
		LLMTotal:   s.llmTotal.InUse(),
		LLMStudent: s.llmStudent.InUse(),
		LLMTeacher: s.llmTeacher.InUse(),
		OCR:        s.ocr.InUse(),
	}
}

// step is one semaphore of a chain with the pool it belongs to.
type step struct {
	sem    Semaphore
	pool   string
	global bool
}

// llmChain lists the semaphores an LLM call of role r takes, in order; a
// pool global does not bound is left out.
func llmChain(tenant *Set, global Limiter, r Role) []step {
	k := tenant.key()
	role := rolePool(r)
	chain := make([]step, 0, 4)
	chain = append(chain, step{tenant.llmTotal.forTenant(k), PoolLLMTotal, false})
	if role != "" {
		chain = append(chain, step{tenant.Pool(role, k), role, false})
	}
	if s := global.Pool(PoolLLMTotal, k); s != nil {
		chain = append(chain, step{s, PoolLLMTotal, true})
	}
	if role != "" {
		if s := global.Pool(role, k); s != nil {
			chain = append(chain, step{s, role, true})
		}
	}
	return chain
}

// rolePool is the pool of role r's own limit; "" for RoleOther, which has
// none.
func rolePool(r Role) string {
	switch r {
	case RoleStudent:
		return PoolLLMStudent
	case RoleTeacher:
		return PoolLLMTeacher
	}
	return ""
}

// AcquireLLM takes the slots an LLM call of role r needs: tenant total,
// tenant role, global total, global role. The returned function releases
// them in reverse order. If ctx ends while waiting, every slot already taken
// is given back and ctx.Err() is returned.
func AcquireLLM(ctx context.Context, tenant *Set, global Limiter, r Role) (release func(), err error) {
	return acquireSteps(ctx, tenant.observe.Load(), llmChain(tenant, global, r))
}

// AcquireOCR takes the tenant's OCR slot, then the global one.
func AcquireOCR(ctx context.Context, tenant *Set, global Limiter) (release func(), err error) {
	k := tenant.key()
	chain := []step{{tenant.ocr.forTenant(k), PoolOCR, false}}
	if s := global.Pool(PoolOCR, k); s != nil {
		chain = append(chain, step{s, PoolOCR, true})
	}
	return acquireSteps(ctx, tenant.observe.Load(), chain)
}

// acquireSteps is Acquire over a chain whose waits are reported to obs
// (nil: none), pool by pool.
func acquireSteps(ctx context.Context, obs *func(WaitEvent), chain []step) (release func(), err error) {
	sems := make([]Semaphore, len(chain))
	for i, st := range chain {
		sems[i] = st.sem
		if obs != nil {
			if ts, ok := st.sem.(TimedSemaphore); ok {
				sems[i] = observed{ts, st, *obs}
			}
		}
	}
	return Acquire(ctx, sems...)
}

// observed is a chain's semaphore whose waits go to obs.
type observed struct {
	ts  TimedSemaphore
	st  step
	obs func(WaitEvent)
}

func (o observed) Acquire(ctx context.Context) error {
	blocked, wait, err := o.ts.AcquireTimed(ctx)
	if blocked {
		o.obs(WaitEvent{Pool: o.st.pool, Global: o.st.global, Wait: wait, Err: err})
	}
	return err
}

func (o observed) Release() { o.st.sem.Release() }

var errDoubleRelease = errors.New("limits: release called twice")

// Acquire takes each semaphore in order. On failure it releases what it took,
// in reverse, and returns the error. On success the returned function
// releases all of them in reverse order; calling it twice panics, since that
// would corrupt the counts.
func Acquire(ctx context.Context, sems ...Semaphore) (release func(), err error) {
	taken := 0
	undo := func() {
		for i := taken - 1; i >= 0; i-- {
			sems[i].Release()
		}
	}
	for _, s := range sems {
		if err := s.Acquire(ctx); err != nil {
			undo()
			return nil, err
		}
		taken++
	}
	var released atomic.Bool
	return func() {
		if !released.CompareAndSwap(false, true) {
			panic(errDoubleRelease)
		}
		undo()
	}, nil
}
