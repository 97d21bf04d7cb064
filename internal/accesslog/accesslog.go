// Package accesslog is the outermost request middleware: a request id
// (X-Request-ID when sane, else generated; echoed in the response and put
// in the context), one access line per request through log/slog, and the
// HTTP metrics (internal/metrics).
//
// The route pattern and the tenant come from the policy.Match the
// middleware puts in the request's context before calling the handler
// chain: the tenant's policy.Mux fills it, however deep it is. A request no
// Mux route matched (the admin API, an unknown tenant) logs no route and
// counts as route "other".
package accesslog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/lectern/lectern/internal/metrics"
	"github.com/lectern/lectern/internal/policy"
)

// Header is the request id header (canonical form).
const Header = "X-Request-Id"

// MaxIDLen is the longest request id accepted from a client.
const MaxIDLen = 64

// maxPath bounds the raw path in the access line (the server's logcap
// cuts every attribute at 1 KiB anyway).
const maxPath = 256

type idKey struct{}

// RequestID returns the request id in ctx ("" outside the middleware).
func RequestID(ctx context.Context) string {
	if id, _ := ctx.Value(idKey{}).(*string); id != nil {
		return *id
	}
	return ""
}

// ValidID reports whether id (from a client) is used as is: 1 to 64
// bytes of [A-Za-z0-9._-].
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// New returns the middleware; log nil logs nothing, m nil records no
// metrics.
func New(log *slog.Logger, m *metrics.Metrics) func(http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serve(log, m, next, w, r)
		})
	}
}

// state is everything one request needs, in one allocation: the context
// (answering the request id and the policy.Match), the request handed on
// (r with that context: the copy r.WithContext would allocate), the
// response recorder, the generated id's bytes and the echoed header's
// value.
//
// It is not pooled: the context may outlive the request (a handler may
// hand it to work that goes on after it returns; tenants no longer start
// their workers under it, but nothing stops a handler from doing so), and
// so may the header value (net/http writes the headers after the handler
// returns when it wrote nothing). Carrying the route match and the id in
// the recorder instead (which no handler may keep) would let the state be
// pooled: the one allocation left (docs/benchmarks.md, issue 12).
type state struct {
	ctx   reqCtx
	req   http.Request
	rec   recorder
	match policy.Match
	id    string
	raw   [8]byte
	hexID [16]byte
	hdr   [1]string
}

type reqCtx struct {
	context.Context
	s *state
}

func (c *reqCtx) Value(k any) any {
	switch k.(type) {
	case policy.MatchKey:
		return &c.s.match
	case idKey:
		return &c.s.id // a pointer: boxing the string would allocate per lookup
	}
	return c.Context.Value(k)
}

func serve(log *slog.Logger, m *metrics.Metrics, next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s := new(state)
	s.ctx = reqCtx{Context: r.Context(), s: s}
	s.rec.ResponseWriter = w
	if id := r.Header.Get(Header); ValidID(id) {
		s.id = id
	} else {
		_, _ = rand.Read(s.raw[:]) // never fails (crypto/rand, Go ≥ 1.24)
		hex.Encode(s.hexID[:], s.raw[:])
		// The bytes live as long as s and are never written again.
		s.id = unsafe.String(&s.hexID[0], len(s.hexID))
	}
	s.hdr[0] = s.id
	w.Header()[Header] = s.hdr[:]

	done := false
	defer func() {
		if !done { // next panicked: count and log it, then let net/http see the panic
			if !s.rec.wrote {
				s.rec.status, s.rec.wrote = http.StatusInternalServerError, true
			}
			finish(log, m, s, r, start)
		}
	}()
	// WithContext is inlined and its copy does not escape: it lands in s
	// instead of an allocation of its own.
	s.req = *r.WithContext(&s.ctx)
	next.ServeHTTP(&s.rec, &s.req)
	done = true
	finish(log, m, s, r, start)
}

func finish(log *slog.Logger, m *metrics.Metrics, s *state, r *http.Request, start time.Time) {
	d := time.Since(start)
	status := s.rec.status
	if !s.rec.wrote {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	m.ObserveHTTP(r.Method, s.match.Pattern, status, s.match.Tenant, d)
	if !log.Enabled(&s.ctx, slog.LevelInfo) {
		return
	}
	log.LogAttrs(&s.ctx, slog.LevelInfo, "http",
		slog.String("method", r.Method),
		slog.String("route", s.match.Pattern),
		slog.String("path", cut(r.URL.Path, maxPath)),
		slog.Int("status", status),
		slog.Int64("bytes", s.rec.bytes),
		slog.Duration("duration", d),
		slog.String("tenant", s.match.Tenant),
		slog.String("request_id", s.id),
		slog.String("remote", r.RemoteAddr),
	)
}

// cut returns s cut to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// recorder notes the status and the bytes written.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *recorder) WriteHeader(status int) {
	if !w.wrote && status >= 200 { // 1xx are interim
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush passes on to the writer when it can (server-sent events).
func (w *recorder) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
