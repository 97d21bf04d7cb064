// Package bodydeadline bounds how slowly a client may send a request body.
//
// http.Server's ReadHeaderTimeout covers the header only; a client that
// sends its body one byte every few seconds would otherwise hold a
// connection, a goroutine and a half-written upload for as long as it
// likes. Wrap sets the connection's read deadline before every read of the
// body so that a body must keep moving (no pause longer than Idle) and must
// keep an average pace (MinRate bytes a second, after a first Idle of
// grace). A cut body reads as an error that matches os.ErrDeadlineExceeded;
// handlers answer it (408) and remove what they had stored.
package bodydeadline

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Limits are the pace a request body must keep.
type Limits struct {
	// Idle is the longest pause between two reads that bring data, and
	// the grace before MinRate applies. Zero disables the deadlines.
	Idle time.Duration
	// MinRate is the average rate, in bytes a second, below which a body
	// is cut once Idle has passed. Zero means no rate, only Idle.
	MinRate int64
}

// Wrap applies l to every request body next reads.
func (l Limits) Wrap(next http.Handler) http.Handler {
	if l.Idle <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		if rc.SetReadDeadline(now.Add(l.Idle)) != nil {
			next.ServeHTTP(w, r) // no connection to set deadlines on
			return
		}
		r.Body = &body{ReadCloser: r.Body, rc: rc, l: l, start: now}
		next.ServeHTTP(w, r)
	})
}

// body sets the deadline before each read.
type body struct {
	io.ReadCloser
	rc    *http.ResponseController
	l     Limits
	start time.Time
	read  int64
	done  bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	b.rc.SetReadDeadline(b.deadline(time.Now()))
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if errors.Is(err, io.EOF) {
		// The whole body is in: lift the deadline, so the server's
		// watch for a closed connection while the handler works (a long
		// chat reply) is not cut short.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadline is the earlier of: the next pause allowed, and the time by which
// the bytes read so far would have arrived at MinRate after the grace.
func (b *body) deadline(now time.Time) time.Time {
	d := now.Add(b.l.Idle)
	if b.l.MinRate > 0 {
		pace := b.start.Add(b.l.Idle + time.Duration(float64(b.read)/float64(b.l.MinRate)*float64(time.Second)))
		if pace.Before(d) {
			d = pace
		}
	}
	return d
}
