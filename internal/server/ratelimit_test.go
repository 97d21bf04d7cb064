package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/cors"
	"github.com/lectern/lectern/internal/ratelimit"
)

// Past its burst a client is answered 429 with Retry-After (and CORS
// headers), at the root and under /t/{id}; /health never is; the login
// routes have a tighter limit of their own.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.CORS = cors.Parse("")
		c.RateLimit = ratelimit.Config{RPM: 60, Burst: 6}
		c.LoginRateLimit = ratelimit.Config{RPM: 60, Burst: 2}
	})
	expect(t, e.putTenant("a", nil), 200, "") // the admin API counts too: 1 of 6
	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", e.http.URL+path, nil)
		req.Header.Set("Origin", "http://localhost:3001")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, p := range []string{"/exams", "/t/a/exams", "/t/a/auth/student/login"} {
		if r := get(p); r.StatusCode == 429 {
			t.Fatalf("%s: limited too early", p)
		}
	}
	// The login limit (burst 2) is spent by a second login request.
	if r := get("/auth/teacher/login"); r.StatusCode == 429 {
		t.Fatal("second login request limited")
	}
	if r := get("/auth/admin/login"); r.StatusCode != 429 {
		t.Fatalf("third login request: %d", r.StatusCode)
	}
	r := get("/exams") // the general burst of 6 is spent
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("past the burst: %d %v", r.StatusCode, r.Header)
	}
	for _, p := range []string{"/health", "/t/a/health"} {
		if r := get(p); r.StatusCode != 200 {
			t.Errorf("%s: %d", p, r.StatusCode)
		}
	}
	body := e.get("/exams").body
	if !strings.Contains(string(body), `"detail":"rate_limit_exceeded"`) {
		t.Errorf("429 body %s", body)
	}
}
