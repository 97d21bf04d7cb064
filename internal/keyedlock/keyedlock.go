// Package keyedlock holds mutexes by key: one lock per job id, tenant id,
// owner or teacher, made on first use and dropped as soon as nobody holds
// or waits for it, so the map never grows with the keys ever seen.
//
// The locks are process-local. They order the goroutines of one process
// only: two Lectern processes sharing a data root or a store do not see
// each other's locks, and what must hold across processes needs a lock
// both can see (a file lock, a claim in the job store, a transaction).
package keyedlock

import "sync"

// Map is a set of read-write mutexes by key. The zero value is ready to
// use; a Map must not be copied after first use.
type Map[K comparable] struct {
	mu    sync.Mutex
	locks map[K]*entry
}

// entry is one key's mutex and the count of goroutines holding or waiting
// for it; it leaves the map when the count falls to zero.
type entry struct {
	rw   sync.RWMutex
	refs int
}

// Lock takes key's lock exclusively and returns its release, which must be
// called exactly once.
func (m *Map[K]) Lock(key K) (unlock func()) {
	e := m.acquire(key)
	e.rw.Lock()
	return func() {
		e.rw.Unlock()
		m.release(key, e)
	}
}

// RLock takes key's lock shared (other readers of key may hold it at the
// same time; a writer may not) and returns its release, which must be
// called exactly once.
func (m *Map[K]) RLock(key K) (unlock func()) {
	e := m.acquire(key)
	e.rw.RLock()
	return func() {
		e.rw.RUnlock()
		m.release(key, e)
	}
}

// Len is the number of keys held or waited for now (0 when idle: no key
// is kept once released).
func (m *Map[K]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.locks)
}

func (m *Map[K]) acquire(key K) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = make(map[K]*entry)
	}
	e := m.locks[key]
	if e == nil {
		e = &entry{}
		m.locks[key] = e
	}
	e.refs++
	return e
}

func (m *Map[K]) release(key K, e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(m.locks, key)
	}
}
