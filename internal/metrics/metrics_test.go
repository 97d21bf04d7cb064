package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/metrics"
	"github.com/lectern/lectern/internal/testfixtures"
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

// The events: jobs, LLM calls and limiter waits by tenant with bounded
// labels (a provider outside the configured ones is private, an unknown
// kind other, a client's agent id cut off), the tenant cap shared with the
// HTTP metrics, and the series of a tenant dropped at its unload and at a
// scrape that no longer sees it loaded.
func TestEventMetrics(t *testing.T) {
	loaded := []string{"t1", "t2"}
	m := metrics.NewWith(metrics.Options{MaxTenants: 2, Providers: []string{"deepseek", "ocr"},
		Snapshots: func(context.Context) []metrics.TenantSnapshot {
			var out []metrics.TenantSnapshot
			for _, id := range loaded {
				out = append(out, metrics.TenantSnapshot{Tenant: id})
			}
			return out
		}})
	m.ObserveJob("t1", jobs.JobEvent{Kind: "chat", ID: "job_SECRET", Outcome: jobs.OutcomeDone, Queued: 20 * time.Millisecond, Ran: 3 * time.Second})
	m.ObserveJob("t1", jobs.JobEvent{Kind: "chat", Outcome: jobs.OutcomeFailed, Ran: time.Second})
	m.ObserveLLMCall("t1", llm.CallEvent{Kind: "chat.agent.my-AGENT", Provider: "deepseek", Attempts: 2, Latency: 1200 * time.Millisecond,
		PromptTokens: 100, CompletionTokens: 20})
	m.ObserveLLMCall("t1", llm.CallEvent{Kind: "upload.exam_scores_parse", Provider: "teacher-own-https://x", Attempts: 1,
		Err: &llm.APIError{Status: 429}})
	m.ObserveLLMCall("t2", llm.CallEvent{Kind: "made.up.kind", Err: llm.ErrNotConfigured})
	m.ObserveLimitWait("t1", limits.WaitEvent{Pool: limits.PoolLLMTeacher, Wait: 30 * time.Millisecond})
	m.ObserveLimitWait("t1", limits.WaitEvent{Pool: limits.PoolOCR, Global: true, Wait: 2 * time.Second, Err: context.Canceled})
	m.ObserveLimitWait("t3", limits.WaitEvent{Pool: limits.PoolOCR, Wait: time.Millisecond}) // beyond the cap of 2
	out := scrape(t, m)
	for _, want := range []string{
		`lectern_job_queue_wait_seconds_count{kind="chat",tenant="t1"} 2`,
		`lectern_job_queue_wait_seconds_bucket{kind="chat",tenant="t1",le="0.025"} 2`,
		`lectern_job_run_seconds_count{kind="chat",outcome="done",tenant="t1"} 1`,
		`lectern_job_run_seconds_count{kind="chat",outcome="failed",tenant="t1"} 1`,
		`lectern_job_run_seconds_bucket{kind="chat",outcome="done",tenant="t1",le="2.5"} 0`,
		`lectern_llm_calls_total{kind="chat.agent",outcome="ok",provider="deepseek",tenant="t1"} 1`,
		`lectern_llm_attempts_total{kind="chat.agent",provider="deepseek",tenant="t1"} 2`,
		`lectern_llm_tokens_total{kind="chat.agent",provider="deepseek",tenant="t1",type="prompt"} 100`,
		`lectern_llm_tokens_total{kind="chat.agent",provider="deepseek",tenant="t1",type="completion"} 20`,
		`lectern_llm_call_duration_seconds_sum{kind="chat.agent",provider="deepseek",tenant="t1"} 1.2`,
		`lectern_llm_calls_total{kind="upload.exam_scores_parse",outcome="error",provider="private",tenant="t1"} 1`,
		`lectern_llm_errors_total{class="http_429",kind="upload.exam_scores_parse",provider="private",tenant="t1"} 1`,
		`lectern_llm_errors_total{class="not_configured",kind="other",provider="none",tenant="t2"} 1`,
		`lectern_limiter_wait_seconds_count{pool="llm_teacher",scope="tenant",tenant="t1"} 1`,
		`lectern_limiter_wait_seconds_count{pool="ocr",scope="global",tenant="t1"} 1`,
		`lectern_limiter_wait_seconds_count{pool="ocr",scope="tenant",tenant="other"} 1`,
		"# TYPE lectern_job_run_seconds histogram", "# TYPE lectern_llm_calls_total counter",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, bad := range []string{"SECRET", "AGENT", "made.up", "https://", `tenant="t3"`} {
		if strings.Contains(out, bad) {
			t.Errorf("/metrics carries %q", bad)
		}
	}
	// t1 unloads (the registry's event): its series go, its label is free.
	m.ObserveTenant(metrics.TenantUnload, "t1", 0)
	loaded = []string{"t2"}
	out = scrape(t, m)
	if strings.Contains(out, `tenant="t1"`) {
		t.Errorf("t1's series after its unload:\n%s", testfixtures.Lines(out, `tenant="t1"`))
	}
	// t2 stops being loaded without an event: the scrape drops it (the
	// scrape that notices exports it one last time).
	loaded = nil
	scrape(t, m)
	if out = scrape(t, m); strings.Contains(out, `tenant="t2"`) {
		t.Errorf("t2's series after it left the snapshots:\n%s", testfixtures.Lines(out, `tenant="t2"`))
	}
	var nilM *metrics.Metrics
	nilM.ObserveJob("t", jobs.JobEvent{})
	nilM.ObserveLLMCall("t", llm.CallEvent{})
	nilM.ObserveLimitWait("t", limits.WaitEvent{})
}

func TestLLMKind(t *testing.T) {
	for in, want := range map[string]string{
		"chat.agent": "chat.agent", "chat.agent.teacher-7": "chat.agent", "chat.agent_no_tools.x": "chat.agent_no_tools",
		"upload.assignment_parse": "upload.assignment_parse", "ocr.llm": "ocr.llm", "": "other", "chat": "other",
		"chat.agentx": "other", "evil.kind.x": "other",
	} {
		if got := metrics.LLMKind(in); got != want {
			t.Errorf("LLMKind(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkForgetTenants: what unloading one tenant costs its metrics
// (its HTTP and event series deleted) when n are labelled; flat in n since
// each tenant's series are deleted by their labels, not found by a scan
// of everyone's.
//
//	go test -run '^$' -bench BenchmarkForgetTenants ./internal/metrics/
func BenchmarkForgetTenants(b *testing.B) {
	for _, n := range []int{1000, 4000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				m := metrics.NewWith(metrics.Options{MaxTenants: n})
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprint("t", i)
					for _, code := range []int{200, 404, 500} {
						m.ObserveHTTP("GET", "GET /t/{tenant_id}/exams", code, ids[i], time.Millisecond)
					}
					m.ObserveJob(ids[i], jobs.JobEvent{Kind: "chat", Outcome: jobs.OutcomeDone, Ran: time.Second})
					m.ObserveLLMCall(ids[i], llm.CallEvent{Kind: "chat.agent", Provider: "p", Attempts: 1})
				}
				start := time.Now()
				for _, id := range ids {
					m.ForgetTenant(id)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*n), "ns/tenant")
		})
	}
}
