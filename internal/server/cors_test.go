package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/cors"
)

// The predecessor's web apps call the API from their own origins: every
// route at the root and under /t/{id} answers preflights and carries
// Access-Control-Allow-Origin, errors included.
func TestCORSAtRootAndUnderTenants(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CORS = cors.Parse("") })
	expect(t, e.putTenant("a", nil), 200, "")
	send := func(method, path string, preflight bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, e.http.URL+path, nil)
		req.Header.Set("Origin", "http://localhost:3001")
		if preflight {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, base := range []string{"", "/t/a"} {
		for _, path := range []string{"/exams", "/chat/start", "/exam/upload/start", "/student/verify", "/teacher/session/view-state"} {
			resp := send("OPTIONS", base+path, true)
			h := resp.Header
			if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
				t.Errorf("preflight %s%s: %d %v", base, path, resp.StatusCode, h)
			}
		}
		for path, status := range map[string]int{"/exams": 200, "/exam/NOPE": 404, "/health": 200} {
			resp := send("GET", base+path, false)
			if resp.StatusCode != status || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("GET %s%s: %d %v", base, path, resp.StatusCode, resp.Header)
			}
		}
	}
	if resp := send("GET", "/t/nobody/exams", false); resp.StatusCode != 404 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("unknown tenant: %d %v", resp.StatusCode, resp.Header)
	}
}

// With a list, only the listed origins are answered, with credentials.
func TestCORSOriginList(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CORS = cors.Parse("http://teacher.example, http://student.example") })
	for origin, want := range map[string]string{"http://teacher.example": "http://teacher.example", "http://evil.example": ""} {
		req, _ := http.NewRequest("GET", e.http.URL+"/exams", nil)
		req.Header.Set("Origin", origin)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want || (want != "" && resp.Header.Get("Access-Control-Allow-Credentials") != "true") {
			t.Errorf("%s: allow-origin %q, want %q (%v)", origin, got, want, resp.Header)
		}
	}
}
