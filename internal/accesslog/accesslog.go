// Package accesslog is the outermost request middleware: a request id
// (X-Request-ID when sane, else generated; echoed in the response, and
// answered by RequestID for the request's writer), one access line per
// request through log/slog, and the HTTP metrics (internal/metrics).
//
// The route pattern and the tenant come from the policy.Match the
// ResponseWriter it hands on carries (policy.MatchOf): the tenant's
// policy.Mux fills it, however deep it is. The writer is reused from one
// request to the next (a pool), so the middleware allocates nothing per
// request but its log record. A request no
// Mux route matched (the admin API, an unknown tenant) logs no route and
// counts as route "other".
package accesslog

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
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

// RequestID returns the request id of the request whose ResponseWriter is
// w (or wraps the middleware's), "" outside the middleware.
func RequestID(w http.ResponseWriter) string {
	for w != nil {
		if s, ok := w.(*state); ok {
			return s.id
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return ""
		}
		w = u.Unwrap()
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
	mw := &middleware{log: log, m: m}
	mw.pool.New = func() any { return new(state) }
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mw.serve(next, w, r)
		})
	}
}

type middleware struct {
	log *slog.Logger
	m   *metrics.Metrics
	// pool recycles the per-request state: it is the ResponseWriter the
	// handlers get, which none may use once ServeHTTP returns (net/http's
	// rule), so it is free again when the access line is written.
	pool sync.Pool
	ids  idArena
}

// state is what one request needs: the ResponseWriter handed on (it
// records the status and the bytes, and carries the route's
// policy.Match and the request id: no context is made, and no copy of
// the request), reused from request to request.
type state struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	match  policy.Match
	id     string
	raw    [8]byte
}

// Match is the request's Match (policy.MatchCarrier).
func (s *state) Match() *policy.Match { return &s.match }

func (mw *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s := mw.pool.Get().(*state)
	*s = state{ResponseWriter: w}
	// The echoed header's value outlives the state (net/http writes the
	// headers after the handler returns when it wrote nothing): its string
	// and its one-element slice come from the arena, never from s.
	if id := r.Header.Get(Header); ValidID(id) {
		s.id = id
		w.Header()[Header] = mw.ids.header(id)
	} else {
		_, _ = rand.Read(s.raw[:]) // never fails (crypto/rand, Go ≥ 1.24)
		h := mw.ids.hexHeader(s.raw)
		s.id = h[0]
		w.Header()[Header] = h
	}

	done := false
	defer func() {
		if !done { // next panicked: count and log it, then let net/http see the panic
			if !s.wrote {
				s.status, s.wrote = http.StatusInternalServerError, true
			}
			mw.finish(s, r, start) // s is not reused: the panic may have left it anywhere
		}
	}()
	next.ServeHTTP(s, r)
	done = true
	mw.finish(s, r, start)
	*s = state{}
	mw.pool.Put(s)
}

func (mw *middleware) finish(s *state, r *http.Request, start time.Time) {
	d := time.Since(start)
	status := s.status
	if !s.wrote {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	mw.m.ObserveHTTP(r.Method, s.match.Pattern, status, s.match.Tenant, d)
	ctx := r.Context()
	if !mw.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	mw.log.LogAttrs(ctx, slog.LevelInfo, "http",
		slog.String("method", r.Method),
		slog.String("route", s.match.Pattern),
		slog.String("path", cut(r.URL.Path, maxPath)),
		slog.Int("status", status),
		slog.Int64("bytes", s.bytes),
		slog.Duration("duration", d),
		slog.String("tenant", s.match.Tenant),
		slog.String("request_id", s.id),
		slog.String("remote", r.RemoteAddr),
	)
}

// idArena hands out the request ids' header values from chunks of 4,096,
// so a request allocates none (a chunk is made every 4,096 requests and
// freed by the GC once no header of its ids is left).
type idArena struct {
	mu   sync.Mutex
	buf  []byte
	hdrs []string
}

const arenaChunk = 4096

func (a *idArena) slot() []string {
	if len(a.hdrs) == 0 {
		a.hdrs = make([]string, arenaChunk)
	}
	h := a.hdrs[:1:1]
	a.hdrs = a.hdrs[1:]
	return h
}

// header is a header value holding id (a client's string, kept as is).
func (a *idArena) header(id string) []string {
	a.mu.Lock()
	h := a.slot()
	a.mu.Unlock()
	h[0] = id
	return h
}

// hexHeader is a header value holding raw in hex.
func (a *idArena) hexHeader(raw [8]byte) []string {
	a.mu.Lock()
	if len(a.buf) < 2*len(raw) {
		a.buf = make([]byte, arenaChunk*2*len(raw))
	}
	b := a.buf[: 2*len(raw) : 2*len(raw)]
	a.buf = a.buf[2*len(raw):]
	h := a.slot()
	a.mu.Unlock()
	hex.Encode(b, raw[:])
	// The bytes are this id's alone and never written again.
	h[0] = unsafe.String(&b[0], len(b))
	return h
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

func (w *state) WriteHeader(status int) {
	if !w.wrote && status >= 200 { // 1xx are interim
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *state) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush passes on to the writer when it can (server-sent events).
func (w *state) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *state) Unwrap() http.ResponseWriter { return w.ResponseWriter }
