package accesslog_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lectern/lectern/internal/accesslog"
	"github.com/lectern/lectern/internal/logcap"
	"github.com/lectern/lectern/internal/metrics"
)

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkMiddleware: one tenant request (GET /t/t1/exam/E1 through the
// dispatcher stand-in and a policy.Mux) bare, and inside the middleware
// with the metrics and a discarding logger, then with the server's real
// log handler (logcap over a text handler) writing to io.Discard.
//
//	go test -run '^$' -bench BenchmarkMiddleware -benchmem ./internal/accesslog
func BenchmarkMiddleware(b *testing.B) {
	bare := dispatcher("t1")
	m := metrics.New()
	cases := []struct {
		name string
		h    http.Handler
	}{
		{"bare", bare},
		{"middleware_nolog", accesslog.New(slog.New(slog.DiscardHandler), m)(bare)},
		{"middleware_textlog", accesslog.New(slog.New(logcap.Wrap(slog.NewTextHandler(io.Discard, nil), 0)), m)(bare)},
		{"middleware_textlog_clientid", accesslog.New(slog.New(logcap.Wrap(slog.NewTextHandler(io.Discard, nil), 0)), m)(bare)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/t/t1/exam/E1", nil)
			if c.name == "middleware_textlog_clientid" {
				r.Header.Set("X-Request-ID", "client-id-1")
			}
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, r)
			}
		})
	}
}
