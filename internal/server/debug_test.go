package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The runtime profiles are served to the admin only, and a tenant's status
// carries the process's goroutine count.
func TestAdminPprofAndGoroutines(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("a", nil), 200, "")
	for _, key := range []string{"", "wrong"} {
		if r := e.do("GET", "/admin/debug/pprof/goroutine?debug=1", key, nil); r.status != 401 {
			t.Errorf("key %q: %d", key, r.status)
		}
	}
	r := e.do("GET", "/admin/debug/pprof/goroutine?debug=1", adminKey, nil)
	if r.status != 200 || !strings.Contains(string(r.body), "goroutine profile: total") {
		t.Fatalf("goroutine profile: %d %.200s", r.status, r.body)
	}
	r = e.do("GET", "/admin/debug/pprof/", adminKey, nil)
	if r.status != 200 || !strings.Contains(string(r.body), "heap") {
		t.Fatalf("index: %d %.200s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", e.http.URL+"/admin/debug/pprof/heap", nil)
	req.Header.Set("X-Admin-Key", adminKey)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(data) == 0 {
		t.Fatalf("heap profile: %d, %d bytes", resp.StatusCode, len(data))
	}
	st := e.do("GET", "/admin/tenants/a", adminKey, nil).json(t)["tenant"].(map[string]any)["status"].(map[string]any)
	if n, _ := st["goroutines"].(float64); n < 5 {
		t.Fatalf("goroutines %v in %v", st["goroutines"], st)
	}
}
