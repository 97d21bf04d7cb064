package bodydeadline

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The deadline is the next allowed pause, or earlier when the body is
// behind the minimum pace.
func TestDeadline(t *testing.T) {
	start := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	l := Limits{Idle: 10 * time.Second, MinRate: 1000}
	for _, c := range []struct {
		read int64
		at   time.Duration
		want time.Duration // from start
	}{
		{0, 0, 10 * time.Second},                    // the grace
		{0, 5 * time.Second, 10 * time.Second},      // no byte yet: the grace ends at 10 s
		{20_000, 5 * time.Second, 15 * time.Second}, // ahead of pace: only the pause bounds it
		{5_000, 12 * time.Second, 15 * time.Second}, // 5 s of credit after the grace
		{1_000, 20 * time.Second, 11 * time.Second}, // behind pace: already past
	} {
		b := &body{l: l, start: start, read: c.read}
		if got := b.deadline(start.Add(c.at)).Sub(start); got != c.want {
			t.Errorf("read %d at %v: deadline %v, want %v", c.read, c.at, got, c.want)
		}
	}
	noRate := &body{l: Limits{Idle: time.Second}, start: start}
	if got := noRate.deadline(start.Add(time.Hour)).Sub(start); got != time.Hour+time.Second {
		t.Errorf("without a rate: %v", got)
	}
}

// Without a connection to set deadlines on (a recorder), or with zero
// limits, the body is read as it is.
func TestWrapPassesThrough(t *testing.T) {
	for _, l := range []Limits{{}, {Idle: time.Second, MinRate: 1}} {
		var got string
		h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got = string(b)
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader("hello")))
		if got != "hello" {
			t.Errorf("%+v: read %q", l, got)
		}
	}
}
