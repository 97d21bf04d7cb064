package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkAuthenticate: GET /t/t1/exams (a teacher route) through the
// whole handler, in open mode and with auth on carrying a teacher's
// token. The difference is the cost of verifying the token (signature,
// claims, the cached token version) and checking the route's rule.
func BenchmarkAuthenticate(b *testing.B) {
	for _, c := range []struct {
		name string
		auth bool
	}{{"open", false}, {"token", true}} {
		b.Run(c.name, func(b *testing.B) {
			root := b.TempDir()
			cfg := benchConfig(root)
			if c.auth {
				withAuth(&cfg)
			}
			s := &benchServer{root: root, cfg: cfg}
			srv, err := New(b.Context(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.Server = srv
			b.Cleanup(func() { srv.Close(b.Context()) })
			s.put(b, "t1")
			r := httptest.NewRequest("GET", "/t/t1/exams", nil)
			if c.auth {
				r.Header.Set("Authorization", "Bearer "+mint(b, s.record("t1").DataDir, "t1")["teacher"])
			}
			w := &benchWriter{h: http.Header{}}
			h := srv.Handler()
			b.ReportAllocs()
			for b.Loop() {
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("%d", w.code)
				}
			}
		})
	}
}
