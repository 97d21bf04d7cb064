package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return string(b)
}

func TestSnapshotCollector(t *testing.T) {
	loaded := []string{"_default", "t1"}
	calls := 0
	m := metrics.NewWith(metrics.Options{Snapshots: func(ctx context.Context) []metrics.TenantSnapshot {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the snapshot context has no deadline")
		}
		var out []metrics.TenantSnapshot
		for _, id := range loaded {
			out = append(out, metrics.TenantSnapshot{
				Tenant: id,
				Workers: []metrics.WorkerSnapshot{
					{Kind: "chat", Workers: 4, Queued: 3, MaxQueued: 100, Busy: 2, Processed: 17, Failed: 1},
					{Kind: "upload", Workers: 1},
				},
				LLM:   metrics.LLMSnapshot{Calls: 9, Failures: 2, Attempts: 11, PromptTokens: 1000, CompletionTokens: 250, LatencyTotal: 1500 * time.Millisecond},
				Pools: []metrics.PoolSnapshot{{Pool: "llm_total", InUse: 3, Limit: 8}, {Pool: "ocr", InUse: 0, Limit: 2}},
			})
		}
		return out
	}})
	m.ObserveHTTP("GET", "GET /exams", 200, "t1", time.Millisecond)
	m.ObserveHTTP("GET", "GET /exams", 200, "t2", time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		"lectern_tenants_loaded 2",
		`lectern_jobs_queued{kind="chat",tenant="t1"} 3`,
		`lectern_jobs_queue_max{kind="chat",tenant="t1"} 100`,
		`lectern_jobs_running{kind="chat",tenant="t1"} 2`,
		`lectern_job_workers{kind="upload",tenant="_default"} 1`,
		`lectern_jobs_processed_total{kind="chat",tenant="t1"} 17`,
		`lectern_jobs_failed_total{kind="chat",tenant="_default"} 1`,
		`lectern_llm_calls_total{tenant="t1"} 9`,
		`lectern_llm_failures_total{tenant="t1"} 2`,
		`lectern_llm_attempts_total{tenant="t1"} 11`,
		`lectern_llm_tokens_total{tenant="t1",type="prompt"} 1000`,
		`lectern_llm_tokens_total{tenant="t1",type="completion"} 250`,
		`lectern_llm_latency_seconds_total{tenant="t1"} 1.5`,
		`lectern_limiter_slots_in_use{pool="llm_total",tenant="t1"} 3`,
		`lectern_limiter_slots_limit{pool="ocr",tenant="t1"} 2`,
		"# TYPE lectern_jobs_processed_total counter",
		"# TYPE lectern_jobs_queued gauge",
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if calls != 1 {
		t.Errorf("snapshots called %d times per scrape", calls)
	}
	// t2 is not loaded: its HTTP series went at that scrape; t1 unloads now.
	loaded = []string{"_default"}
	out = scrape(t, m)
	if strings.Contains(out, `tenant="t2"`) {
		t.Error("a tenant not loaded keeps its HTTP series")
	}
	scrape(t, m)
	out = scrape(t, m)
	if strings.Contains(out, `tenant="t1"`) || !strings.Contains(out, "lectern_tenants_loaded 1") {
		t.Errorf("after t1 unloaded:\n%s", out)
	}
}

func TestHTTPLabels(t *testing.T) {
	m := metrics.NewWith(metrics.Options{MaxTenants: 1})
	m.ObserveHTTP("PROPFIND", "", 999, "", time.Millisecond)
	m.ObserveHTTP("GET", "GET /exam/{exam_id}", 200, "a", time.Millisecond)
	m.ObserveHTTP("GET", "GET /exam/{exam_id}", 200, "b", time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`lectern_http_requests_total{code="other",method="OTHER",route="other",tenant="none"} 1`,
		`lectern_http_requests_total{code="200",method="GET",route="GET /exam/{exam_id}",tenant="a"} 1`,
		`lectern_http_requests_total{code="200",method="GET",route="GET /exam/{exam_id}",tenant="other"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var nilM *metrics.Metrics
	nilM.ObserveHTTP("GET", "", 200, "", 0) // a nil Metrics records nothing
}

func TestRegistriesAreSeparate(t *testing.T) {
	a, b := metrics.New(), metrics.New() // no global registration: no duplicate panic
	a.ObserveHTTP("GET", "GET /x", 200, "t", 0)
	if strings.Contains(scrape(t, b), `route="GET /x"`) {
		t.Error("registries share metrics")
	}
}
