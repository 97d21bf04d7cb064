package tenantapp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
)

func getPath(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w.Code, w.Body.String()
}

func checksOf(t *testing.T, body, status string) map[string]string {
	t.Helper()
	var v struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Status != status {
		t.Fatalf("body %s: want status %q (%v)", body, status, err)
	}
	return v.Checks
}

func entries(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0 // not made yet: made by its first write
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestReadyWhenDirsAndChecksPass(t *testing.T) {
	a := newApp(t)
	s := a.Settings()
	before := entries(t, s.DataDir) + entries(t, s.UploadsDir)
	store := Check{Name: "config_store", Run: func(context.Context) error { return nil }}
	for _, strict := range []bool{false, true} {
		h := WithReadiness(a, ReadyOptions{Strict: strict, Checks: []Check{store}})
		if code, body := getPath(t, h, "/ready"); code != 200 || body != `{"status":"ready"}` {
			t.Fatalf("strict %v: /ready %d %s", strict, code, body)
		}
		// /health is the app's own answer, strict or not, when all is well.
		if code, body := getPath(t, h, "/health"); code != 200 || body != healthBody {
			t.Fatalf("strict %v: /health %d %s", strict, code, body)
		}
	}
	if after := entries(t, s.DataDir) + entries(t, s.UploadsDir); after != before {
		t.Fatalf("the checks left files behind: %d entries, had %d", after, before)
	}
}

func TestReadyReportsFailedChecks(t *testing.T) {
	a := newApp(t)
	up := a.Settings().UploadsDir
	// A file where the directory was: not writable, even for root.
	if err := os.RemoveAll(up); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(up, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	store := Check{Name: "config_store", Run: func(context.Context) error { return errors.New("database is locked") }}

	h := WithReadiness(a, ReadyOptions{Checks: []Check{store}})
	code, body := getPath(t, h, "/ready")
	c := checksOf(t, body, "not_ready")
	if code != 503 || c["data_dir"] != "ok" || c["uploads_dir"] == "ok" || c["uploads_dir"] == "" ||
		c["config_store"] != "database is locked" || len(c) != 3 {
		t.Fatalf("/ready %d %s", code, body)
	}
	// Not strict: /health stays exactly as it is.
	if code, body := getPath(t, h, "/health"); code != 200 || body != healthBody {
		t.Fatalf("/health (not strict) %d %s", code, body)
	}
	// Strict: degraded, with the same checks.
	strict := WithReadiness(a, ReadyOptions{Strict: true, Checks: []Check{store}})
	code, body = getPath(t, strict, "/health")
	if c := checksOf(t, body, "degraded"); code != 503 || c["uploads_dir"] == "ok" || c["config_store"] == "ok" {
		t.Fatalf("/health (strict) %d %s", code, body)
	}
	// Other routes are the app's.
	if code, _ := getPath(t, strict, "/no-such-route"); code != 404 {
		t.Fatalf("other route: %d", code)
	}
}

func TestReadyConcurrentRequestsShareRounds(t *testing.T) {
	a := newApp(t)
	var mu sync.Mutex
	runs := 0
	slow := Check{Name: "x", Run: func(context.Context) error {
		mu.Lock()
		runs++
		mu.Unlock()
		return nil
	}}
	h := WithReadiness(a, ReadyOptions{Checks: []Check{slow}})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code, body := getPath(t, h, "/ready"); code != 200 {
				t.Errorf("/ready %d %s", code, body)
			}
		})
	}
	wg.Wait()
	if runs < 1 || runs > 50 {
		t.Fatalf("%d rounds", runs)
	}
}

func TestReadyCheckPanicIsAFailure(t *testing.T) {
	a := newApp(t)
	h := WithReadiness(a, ReadyOptions{Checks: []Check{{Name: "boom", Run: func(context.Context) error { panic("x") }}}})
	code, body := getPath(t, h, "/ready")
	if c := checksOf(t, body, "not_ready"); code != 503 || c["boom"] == "ok" {
		t.Fatalf("/ready %d %s", code, body)
	}
}
