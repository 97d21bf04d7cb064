package server

import (
	"net/http"
	"strings"
	"testing"
)

// GET /metrics: closed without the admin key or the metrics token; with
// one, the HTTP figures carry route patterns (never raw paths or ids) and
// tenants, the per-tenant worker figures come from the loaded tenants, and
// requests get a request id.
func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MetricsToken = "scrape-token" })
	expect(t, e.putTenant("t1", nil), 200, "")
	aData, _ := e.tenantDirs("t1")
	writeManifest(t, aData, "EX_SECRET_ID", "2026-11-01T10:00:00", 3)
	expect(t, e.get("/t/t1/exam/EX_SECRET_ID"), 200, "")
	expect(t, e.get("/t/t1/exams"), 200, "")

	if r := e.get("/metrics"); r.status != 401 {
		t.Fatalf("without credentials: %d %s", r.status, r.body)
	}
	scrape := func(hdr, val string) string {
		req, _ := http.NewRequest("GET", e.http.URL+"/metrics", nil)
		req.Header.Set(hdr, val)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", hdr, resp.StatusCode, b.String())
		}
		return b.String()
	}
	body := scrape("Authorization", "Bearer scrape-token")
	for _, want := range []string{
		`route="GET /exam/{exam_id}"`, `tenant="t1"`, "lectern_jobs_queued", `kind="submission"`,
		"go_goroutines", "process_resident_memory_bytes", "lectern_tenants_loaded", `lectern_ocr_pages_total{tenant="t1"} 0`,
		`lectern_tenant_events_total{event="load"} 1`, "lectern_tenant_load_seconds_count 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "EX_SECRET_ID") {
		t.Error("a raw id is a label")
	}
	if b := scrape("X-Admin-Key", adminKey); !strings.Contains(b, "lectern_http_requests_total") {
		t.Error("the admin key does not open /metrics")
	}
	// A config change made live, then a disable: a replace (whose old
	// instance stops: an unload) and an unload.
	expect(t, e.putTenant("t1", map[string]any{"name": "changed"}), 200, "")
	expect(t, e.do("DELETE", "/admin/tenants/t1", adminKey, nil), 200, "")
	after := scrape("X-Admin-Key", adminKey)
	for _, want := range []string{`lectern_tenant_events_total{event="replace"} 1`, `lectern_tenant_events_total{event="unload"} 2`} {
		if !strings.Contains(after, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(after, `tenant="t1"`) {
		t.Error("an unloaded tenant's series are still exported")
	}
	resp, err := e.client.Get(e.http.URL + "/t/t1/exams")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no request id on the answer")
	}
}
