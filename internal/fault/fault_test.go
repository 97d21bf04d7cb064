package fault

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want Code
	}{
		{nil, ""},
		{errors.New("disk on fire"), Internal},
		{New(NotFound, "job not found"), NotFound},
		{Newf(Invalid, "invalid date %q", "x"), Invalid},
		{fmt.Errorf("load: %w", New(Conflict, map[string]any{"error": "exam_exists"})), Conflict},
		{Wrap(TooMany, errors.New("queue full"), "retry later"), TooMany},
		// The outermost fault decides.
		{Wrap(Internal, New(NotFound, "x"), "read failed"), Internal},
		{Wrap(Unavailable, fmt.Errorf("x: %w", New(Invalid, "y")), "down"), Unavailable},
	}
	for _, c := range cases {
		if got := CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestUnwrap(t *testing.T) {
	sentinel := errors.New("job not found")
	err := fmt.Errorf("confirm: %w", Wrap(NotFound, sentinel, "job not found"))
	if !errors.Is(err, sentinel) {
		t.Fatal("errors.Is does not reach the cause")
	}
	if !errors.Is(Wrap(Internal, fs.ErrNotExist, "read failed"), fs.ErrNotExist) {
		t.Fatal("errors.Is does not reach fs.ErrNotExist")
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != NotFound || fe.Detail != "job not found" {
		t.Fatalf("errors.As: %#v", fe)
	}
	if New(Invalid, "x").Unwrap() != nil {
		t.Fatal("New has a cause")
	}
	// A *Error may itself be a sentinel.
	full := &Error{Code: TooMany, Detail: "queue is full"}
	if !errors.Is(fmt.Errorf("enqueue: %w", full), full) {
		t.Fatal("a *Error sentinel is not matched")
	}
}

func TestError(t *testing.T) {
	cause := errors.New("permission denied")
	cases := []struct {
		err  *Error
		want string
	}{
		{New(NotFound, "job not found"), "job not found"},
		{New(Invalid, nil), "invalid"},
		{New(Conflict, map[string]any{"error": "exam_exists"}), "conflict"},
		{Wrap(Internal, cause, "create exam job failed"), "create exam job failed: permission denied"},
		{Wrap(Invalid, cause, map[string]any{"error": "x"}), "permission denied"},
		{Wrap(Invalid, cause, "bad upload: permission denied"), "bad upload: permission denied"},
		{Newf(TooLarge, "at most %d files", 3), "at most 3 files"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%#v: Error() = %q, want %q", c.err, got, c.want)
		}
	}
}
