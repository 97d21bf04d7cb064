package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestFIFOOrderAndDedup(t *testing.T) {
	q := NewFIFO()
	for _, id := range []string{"a", "b", "a", "c", "b"} {
		q.Push(id)
	}
	if q.Len() != 3 {
		t.Fatalf("Len = %d, want 3", q.Len())
	}
	if q.Push("a") {
		t.Error("Push of a waiting id returned true")
	}
	ctx := context.Background()
	for _, want := range []string{"a", "b", "c"} {
		id, done, err := q.Pop(ctx)
		if err != nil || id != want {
			t.Fatalf("Pop = %q, %v; want %q", id, err, want)
		}
		done()
	}
	if q.Len() != 0 {
		t.Errorf("Len = %d after popping everything", q.Len())
	}
	if !q.Push("a") {
		t.Error("Push of an id no longer waiting returned false")
	}
}

func TestFIFOPopCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := NewFIFO()
	q.Push("a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := q.Pop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Pop with a cancelled ctx error = %v, want context.Canceled", err)
	}
	if q.Len() != 1 {
		t.Errorf("Pop with a cancelled ctx took a job")
	}
}

func TestFIFOPopBlocksUntilCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := NewFIFO()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, _, err := q.Pop(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("blocked Pop error = %v, want context.Canceled", err)
	}
}

func TestFIFOPopWakesOnPush(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := NewFIFO()
	got := make(chan string)
	go func() {
		id, done, err := q.Pop(context.Background())
		if err != nil {
			t.Error(err)
		}
		done()
		got <- id
	}()
	q.Push("a")
	if id := <-got; id != "a" {
		t.Errorf("Pop = %q, want a", id)
	}
}

func TestFIFOConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	const pushers, perPusher, poppers = 4, 250, 8
	q := NewFIFO()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, pushers*perPusher)
	var popWG sync.WaitGroup
	for range poppers {
		popWG.Go(func() {
			for {
				id, done, err := q.Pop(ctx)
				if err != nil {
					return
				}
				done()
				got <- id
			}
		})
	}
	var pushWG sync.WaitGroup
	for p := range pushers {
		pushWG.Go(func() {
			for i := range perPusher {
				q.Push(fmt.Sprintf("job_%d_%d", p, i))
			}
		})
	}
	pushWG.Wait()
	seen := make(map[string]bool)
	for range pushers * perPusher {
		id := <-got
		if seen[id] {
			t.Errorf("%s popped twice", id)
		}
		seen[id] = true
	}
	cancel()
	popWG.Wait()
	if q.Len() != 0 || len(got) != 0 {
		t.Errorf("after draining: Len = %d, extra pops = %d", q.Len(), len(got))
	}
}
