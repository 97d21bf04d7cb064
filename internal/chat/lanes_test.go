package chat

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pop(t *testing.T, q *lanes) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	id, done, err := q.Pop(ctx)
	if err != nil {
		t.Fatalf("pop: %v", err)
	}
	return id, done
}

func noPop(t *testing.T, q *lanes) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if id, _, err := q.Pop(ctx); err == nil {
		t.Fatalf("popped %s, want nothing runnable", id)
	}
}

// One job per lane at a time, lanes round robin, and a student's lanes
// share one slot.
func TestLanesOrder(t *testing.T) {
	q := newLanes(func(string) (laneRef, bool) { return laneRef{}, false })
	push := func(id, lane, group string) {
		q.assign(id, laneRef{lane, group})
		if !q.Push(id) {
			t.Fatalf("push %s refused", id)
		}
	}
	push("a1", "A", "")
	push("a2", "A", "")
	push("b1", "B", "")
	push("s1", "S:one", "student:s")
	push("s2", "S:two", "student:s")
	if q.Push("a1") {
		t.Fatal("duplicate push accepted")
	}
	if q.Len() != 5 {
		t.Fatalf("len %d", q.Len())
	}
	if n, active, pos := q.load("A", "a2"); n != 2 || active || pos != 2 {
		t.Fatalf("load A = %d %v %d", n, active, pos)
	}
	var got []string
	var dones []func()
	for range 3 {
		id, done := pop(t, q)
		got = append(got, id)
		dones = append(dones, done)
	}
	// a1 (lane A), b1 (lane B), s1 (student s); a2 waits for a1, s2 for s1.
	if want := "a1 b1 s1"; join(got) != want {
		t.Fatalf("order %q, want %q", join(got), want)
	}
	if _, active, _ := q.load("A", ""); !active {
		t.Fatal("lane A not active")
	}
	noPop(t, q)
	dones[2]() // s1 finished: the student's other session may run
	if id, done := pop(t, q); id != "s2" {
		t.Fatalf("got %s, want s2", id)
	} else {
		done()
	}
	noPop(t, q)
	dones[0]()
	if id, done := pop(t, q); id != "a2" {
		t.Fatalf("got %s, want a2", id)
	} else {
		done()
	}
	dones[1]()
	if q.Len() != 0 {
		t.Fatalf("len %d", q.Len())
	}
}

// A job pushed without assign finds its lane through the lookup (resume).
func TestLanesLookup(t *testing.T) {
	q := newLanes(func(id string) (laneRef, bool) { return laneRef{lane: "L-" + id}, true })
	q.Push("x")
	q.Push("y")
	a, da := pop(t, q)
	b, db := pop(t, q)
	if join([]string{a, b}) != "x y" {
		t.Fatalf("%s %s", a, b)
	}
	da()
	db()
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestDetectRoleAndLanes(t *testing.T) {
	msgs := []Message{{"user", "我是学生"}, {"assistant", "好的"}, {"user", "我 是 老 师"}}
	if r := DetectRole("", msgs); r != "teacher" {
		t.Fatalf("role %q", r)
	}
	if r := DetectRole("unknown", msgs[:1]); r != "student" {
		t.Fatalf("role %q", r)
	}
	if r := DetectRole("admin", msgs); r != "admin" {
		t.Fatalf("explicit role %q", r)
	}
	if r := DetectRole("", []Message{{"user", "hello"}}); r != "" {
		t.Fatalf("role %q", r)
	}
}
