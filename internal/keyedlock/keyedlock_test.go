package keyedlock

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Goroutines on one key never overlap; the map is empty once all let go.
func TestLockExcludesOnOneKey(t *testing.T) {
	var m Map[string]
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 200 {
				unlock := m.Lock("job-1")
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping holders of one key", n)
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after every lock was released, want 0", n)
	}
}

// A held key does not delay another key.
func TestLockKeysAreIndependent(t *testing.T) {
	var m Map[string]
	unlockA := m.Lock("a")
	defer unlockA()
	done := make(chan struct{})
	go func() {
		unlock := m.Lock("b")
		unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("lock of b waited for a")
	}
	if n := m.Len(); n != 1 {
		t.Fatalf("Len = %d with a held, want 1", n)
	}
}

// Readers share a key; a writer waits for them and keeps them out.
func TestRLockSharesAndLockWaits(t *testing.T) {
	var m Map[int]
	r1 := m.RLock(7)
	r2 := m.RLock(7) // a second reader gets in while the first holds it
	locked := make(chan func())
	go func() { locked <- m.Lock(7) }()
	select {
	case <-locked:
		t.Fatal("writer got in while readers held the key")
	case <-time.After(50 * time.Millisecond):
	}
	r1()
	r2()
	var unlock func()
	select {
	case unlock = <-locked:
	case <-time.After(5 * time.Second):
		t.Fatal("writer never got in after the readers left")
	}
	if n := m.Len(); n != 1 {
		t.Fatalf("Len = %d with the writer holding, want 1", n)
	}
	unlock()
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after release, want 0", n)
	}
}

// A waiter keeps the key's entry: the holder's release must not drop the
// mutex the waiter is queued on (else two would hold "one" key).
func TestReleaseKeepsEntryForWaiters(t *testing.T) {
	var m Map[string]
	unlock := m.Lock("k")
	var inside atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			u := m.Lock("k")
			if inside.Add(1) > 1 {
				t.Error("two holders of k")
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			u()
		})
	}
	time.Sleep(20 * time.Millisecond) // let them queue
	unlock()
	wg.Wait()
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0", n)
	}
}

func BenchmarkLockUnlock(b *testing.B) {
	var m Map[string]
	for b.Loop() {
		m.Lock("key")()
	}
}
