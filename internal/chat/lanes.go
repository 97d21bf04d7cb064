package chat

import (
	"context"
	"sync"
)

// lanes is the chat jobs' queue (a jobs.Queue). Jobs of one lane (a
// student's or teacher's session) run one at a time, in order; lanes take
// turns round robin. Lanes may also share a group (a student): a group runs
// one job at a time, so a student with two sessions never has two replies
// generated at once, and the second simply waits its turn instead of being
// answered "busy".
//
// Idle workers block on a one-token channel (as jobs.NewFIFO does): no
// polling. Every Push and every finished job passes the token on.
type lanes struct {
	mu       sync.Mutex
	byID     map[string]*lane
	order    []string // lanes with waiting jobs, in arrival order
	cursor   int
	active   map[string]bool // lanes with a running job
	busy     map[string]bool // groups with a running job
	assigned map[string]laneRef
	waiting  map[string]bool
	lookup   func(id string) (laneRef, bool)
	ready    chan struct{}
}

type lane struct {
	ref  laneRef
	jobs []string
}

// laneRef names a job's lane and group ("" for no group).
type laneRef struct{ lane, group string }

func newLanes(lookup func(id string) (laneRef, bool)) *lanes {
	return &lanes{
		byID:     map[string]*lane{},
		active:   map[string]bool{},
		busy:     map[string]bool{},
		assigned: map[string]laneRef{},
		waiting:  map[string]bool{},
		lookup:   lookup,
		ready:    make(chan struct{}, 1),
	}
}

// assign tells the queue a job's lane before it is pushed, sparing a read
// of its record.
func (q *lanes) assign(id string, ref laneRef) {
	q.mu.Lock()
	q.assigned[id] = ref
	q.mu.Unlock()
}

// Push adds job id at the end of its lane.
func (q *lanes) Push(id string) bool {
	q.mu.Lock()
	ref, ok := q.assigned[id]
	delete(q.assigned, id)
	q.mu.Unlock()
	if !ok {
		if ref, ok = q.lookup(id); !ok {
			ref = laneRef{lane: "unknown:session_main:req_unknown"}
		}
	}
	q.mu.Lock()
	if q.waiting[id] {
		q.mu.Unlock()
		return false
	}
	q.waiting[id] = true
	l := q.byID[ref.lane]
	if l == nil {
		l = &lane{ref: ref}
		q.byID[ref.lane] = l
	}
	if len(l.jobs) == 0 {
		q.order = append(q.order, ref.lane)
	}
	l.jobs = append(l.jobs, id)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *lanes) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Pop takes the next runnable job: from the first lane, starting at the
// round-robin cursor, that is neither running nor in a running group.
func (q *lanes) Pop(ctx context.Context) (string, func(), error) {
	for {
		if id, done, ok := q.take(); ok {
			return id, done, nil
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
}

func (q *lanes) take() (string, func(), bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.order)
	for i := range n {
		idx := (q.cursor + i) % n
		l := q.byID[q.order[idx]]
		if q.active[l.ref.lane] || (l.ref.group != "" && q.busy[l.ref.group]) {
			continue
		}
		id := l.jobs[0]
		l.jobs = l.jobs[1:]
		delete(q.waiting, id)
		q.active[l.ref.lane] = true
		if l.ref.group != "" {
			q.busy[l.ref.group] = true
		}
		if len(l.jobs) == 0 {
			q.order = append(q.order[:idx], q.order[idx+1:]...)
			if len(q.order) > 0 {
				q.cursor = idx % len(q.order)
			} else {
				q.cursor = 0
			}
		} else {
			q.cursor = (idx + 1) % len(q.order)
		}
		if len(q.order) > 0 {
			q.signal() // others may be runnable: wake another worker
		}
		ref := l.ref
		return id, func() { q.finish(ref) }, true
	}
	return "", nil, false
}

// finish frees a job's lane and group.
func (q *lanes) finish(ref laneRef) {
	q.mu.Lock()
	delete(q.active, ref.lane)
	if ref.group != "" {
		delete(q.busy, ref.group)
	}
	if l := q.byID[ref.lane]; l != nil && len(l.jobs) == 0 {
		delete(q.byID, ref.lane)
	}
	more := len(q.order) > 0
	q.mu.Unlock()
	if more {
		q.signal()
	}
}

// Len is the number of waiting jobs.
func (q *lanes) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// load reports a lane's waiting jobs, whether one is running, and job id's
// 1-based position among the waiting ones (0 when not waiting).
func (q *lanes) load(laneID, id string) (queued int, active bool, position int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l := q.byID[laneID]; l != nil {
		queued = len(l.jobs)
		for i, j := range l.jobs {
			if j == id {
				position = i + 1
			}
		}
	}
	return queued, q.active[laneID], position
}

// groupBusy reports whether a job of group is running.
func (q *lanes) groupBusy(group string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy[group]
}
