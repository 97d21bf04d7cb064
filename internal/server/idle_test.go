package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func adminLoaded(t *testing.T, e *env, id string) bool {
	t.Helper()
	return e.do("GET", "/admin/tenants/"+id, adminKey, nil).json(t)["tenant"].(map[string]any)["loaded"] == true
}

func waitLoaded(t *testing.T, e *env, id string, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for adminLoaded(t, e, id) != want {
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s: loaded never became %v", id, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An idle tenant is unloaded by the registry's sweeper and loads again on
// its next request.
func TestIdleTenantUnloadedOverHTTP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TenantIdleUnload = 100 * time.Millisecond })
	expect(t, e.putTenant("a", nil), 200, "")
	expect(t, e.get("/t/a/health"), 200, "")
	waitLoaded(t, e, "a", false)
	expect(t, e.get("/t/a/health"), 200, "")
	if !adminLoaded(t, e, "a") {
		t.Fatal("not loaded again after its request")
	}
}

// Queued exam uploads keep the tenant loaded past the idle limit.
func TestIdleKeepsTenantWithQueuedUpload(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TenantIdleUnload = 100 * time.Millisecond })
	expect(t, e.putTenant("a", nil), 200, "")
	e.holdSheetParses(t)
	for range 2 {
		body := multipartBody("score_files", "s.csv", "姓名,总分\n张三,90\n")
		req, _ := http.NewRequest("POST", e.http.URL+"/t/a/exam/upload/start", strings.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("upload: %d", resp.StatusCode)
		}
	}
	time.Sleep(time.Second) // many sweeps
	if !adminLoaded(t, e, "a") {
		t.Fatal("a tenant with queued uploads was unloaded")
	}
}

func TestIdleZeroDisablesOverHTTP(t *testing.T) {
	e := newEnv(t) // TenantIdleUnload 0
	expect(t, e.putTenant("a", nil), 200, "")
	expect(t, e.get("/t/a/health"), 200, "")
	time.Sleep(200 * time.Millisecond)
	if !adminLoaded(t, e, "a") {
		t.Fatal("unloaded with idle eviction off")
	}
}

func TestReadyOverHTTP(t *testing.T) {
	e := newEnv(t)
	expect(t, e.get("/ready"), 200, `{"status":"ready"}`)
	expect(t, e.putTenant("a", nil), 200, "")
	expect(t, e.get("/t/a/ready"), 200, `{"status":"ready"}`)
	health := e.get("/health")
	// UPLOADS_DIR replaced by a file: not ready; /health unchanged.
	up := e.srv.cfg.UploadsDir
	if err := os.RemoveAll(up); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(up, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(up); os.MkdirAll(up, 0o755) })
	r := e.get("/ready")
	checks, _ := r.json(t)["checks"].(map[string]any)
	if r.status != 503 || r.json(t)["status"] != "not_ready" || checks["uploads_dir"] == "ok" ||
		checks["data_dir"] != "ok" || checks["config_store"] != "ok" {
		t.Fatalf("/ready: %d %s", r.status, r.body)
	}
	if h := e.get("/health"); h.status != 200 || string(h.body) != string(health.body) {
		t.Fatalf("/health without HEALTH_STRICT changed: %d %s", h.status, h.body)
	}
	expect(t, e.get("/t/a/ready"), 200, `{"status":"ready"}`) // its own directories
}

func TestHealthStrictOverHTTP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HealthStrict = true })
	expect(t, e.get("/health"), 200, "")
	expect(t, e.putTenant("a", nil), 200, "")
	data, _ := e.tenantDirs("a")
	expect(t, e.get("/t/a/health"), 200, "")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(data), 0o755) // the tenant's directories are made by its first write
	if err := os.WriteFile(data, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(data); os.MkdirAll(filepath.Join(data), 0o755) })
	r := e.get("/t/a/health")
	if r.status != 503 || r.json(t)["status"] != "degraded" || r.json(t)["checks"].(map[string]any)["data_dir"] == "ok" {
		t.Fatalf("/t/a/health strict: %d %s", r.status, r.body)
	}
	expect(t, e.get("/health"), 200, "") // the default tenant is fine
}
