package jobs

import (
	"context"
	"sync"
)

// Queue decides which waiting job a worker takes next. Implementations must
// be safe for concurrent use.
type Queue interface {
	// Push adds id to the waiting jobs. It returns false, and changes
	// nothing, if id is already waiting.
	Push(id string) bool
	// Pop removes and returns the next waiting job, blocking until one is
	// available or ctx is done, in which case it returns ctx.Err(). The
	// caller must call done once it has finished with the job.
	Pop(ctx context.Context) (id string, done func(), err error)
	// Len returns the number of waiting (not running) jobs.
	Len() int
}

// fifo is a first-in first-out Queue without duplicates among waiting ids.
//
// Waiters block on ready, a channel holding at most one wake-up token. Push
// deposits a token after adding an id; a Pop that takes an id and leaves
// others behind passes the token on. Hence while ids are waiting, a token
// is pending or some woken Pop is about to look at the queue, so no wake-up
// is lost, and nobody polls.
type fifo struct {
	mu      sync.Mutex
	ids     []string
	waiting map[string]struct{}
	ready   chan struct{}
}

// NewFIFO returns a first-in first-out Queue that ignores pushes of ids
// already waiting. Its done function does nothing.
func NewFIFO() Queue {
	return &fifo{
		waiting: make(map[string]struct{}),
		ready:   make(chan struct{}, 1),
	}
}

func (q *fifo) Push(id string) bool {
	q.mu.Lock()
	if _, ok := q.waiting[id]; ok {
		q.mu.Unlock()
		return false
	}
	q.waiting[id] = struct{}{}
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *fifo) Pop(ctx context.Context) (string, func(), error) {
	for {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		if id, ok := q.take(); ok {
			return id, func() {}, nil
		}
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-q.ready:
		}
	}
}

// take removes the first waiting id, if any.
func (q *fifo) take() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ids) == 0 {
		return "", false
	}
	id := q.ids[0]
	q.ids[0] = ""
	q.ids = q.ids[1:]
	delete(q.waiting, id)
	if len(q.ids) == 0 {
		q.ids = nil // let the backing array go
	} else {
		q.signal()
	}
	return id, true
}

// signal deposits a wake-up token unless one is already pending.
func (q *fifo) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *fifo) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ids)
}
