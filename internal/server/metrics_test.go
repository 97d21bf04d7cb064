package server

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/testfixtures"
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

// The event metrics over real HTTP: two teachers' chat turns through the
// fake LLM against llm_teacher = 1 (the second waits for the first's slot),
// one with a client-chosen agent id, then an exam upload; the scrape has
// the jobs' queue and run times per tenant and kind, the LLM calls, tokens
// and latency per tenant, provider and kind, the limiter wait per tenant
// and pool, and no raw id; the tenant's series go when it is disabled.
func TestMetricsJobsLLMAndLimiterWaits(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(llmtest.Recorded) llmtest.Step {
		return llmtest.Step{Reply: "好的。", Delay: 200 * time.Millisecond}
	})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", map[string]any{"limits": map[string]any{"llm_teacher": 1}}), 200, "")

	first := teacherTurn("req_SECRET_1", "你好")
	first["teacher_id"], first["agent_id"] = "teacher_SECRET_A", "agent_SECRET"
	second := teacherTurn("req_SECRET_2", "你好")
	second["teacher_id"] = "teacher_SECRET_B"
	var ids []string
	for _, turn := range []map[string]any{first, second} {
		ids = append(ids, e.startChat("/t/t1", turn)["job_id"].(string))
	}
	for _, id := range ids {
		if job := e.waitChat("/t/t1", id); job["status"] != "done" {
			t.Fatalf("chat job %s: %v", id, job)
		}
	}
	r := e.uploadBytes("/t/t1/exam/upload/start", map[string]string{"exam_id": "EX_SECRET", "max_scores": `{"1":4,"2":3,"3(1)":2}`},
		[3]string{"score_files", "scores.csv", smallCSV})
	expect(t, r, 200, "")
	upload := r.json(t)["job_id"].(string)
	if st := e.waitJob("/t/t1", upload); st["status"] != "done" {
		t.Fatalf("upload job: %v", st)
	}
	ids = append(ids, upload)

	// The job's status is written before the runner reports it: wait for
	// the last report.
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		body = e.scrapeMetrics()
		if metricValue(body, `lectern_job_run_seconds_count{kind="exam_upload",outcome="done",tenant="t1"}`) == 1 &&
			metricValue(body, `lectern_job_run_seconds_count{kind="chat",outcome="done",tenant="t1"}`) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job series:\n%s", testfixtures.Lines(body, "lectern_job_"))
		}
	}
	for series, min := range map[string]float64{
		`lectern_job_queue_wait_seconds_count{kind="chat",tenant="t1"}`:                           2,
		`lectern_job_queue_wait_seconds_count{kind="exam_upload",tenant="t1"}`:                    1,
		`lectern_job_run_seconds_bucket{kind="chat",outcome="done",tenant="t1",le="+Inf"}`:        2,
		`lectern_jobs_processed_total{kind="chat",tenant="t1"}`:                                   2,
		`lectern_llm_calls_total{kind="chat.agent",outcome="ok",provider="p0",tenant="t1"}`:       2,
		`lectern_llm_attempts_total{kind="chat.agent",provider="p0",tenant="t1"}`:                 2,
		`lectern_llm_tokens_total{kind="chat.agent",provider="p0",tenant="t1",type="prompt"}`:     20,
		`lectern_llm_tokens_total{kind="chat.agent",provider="p0",tenant="t1",type="completion"}`: 10,
		`lectern_llm_call_duration_seconds_count{kind="chat.agent",provider="p0",tenant="t1"}`:    2,
		`lectern_llm_call_duration_seconds_sum{kind="chat.agent",provider="p0",tenant="t1"}`:      0.4,
		`lectern_limiter_wait_seconds_count{pool="llm_teacher",scope="tenant",tenant="t1"}`:       1,
		`lectern_limiter_wait_seconds_sum{pool="llm_teacher",scope="tenant",tenant="t1"}`:         0.1,
		`lectern_limiter_slots_limit{pool="llm_teacher",tenant="t1"}`:                             1,
	} {
		if v := metricValue(body, series); v < min {
			t.Errorf("%s = %v, want ≥ %v", series, v, min)
		}
	}
	if v := metricValue(body, `lectern_limiter_slots_in_use{pool="llm_teacher",tenant="t1"}`); v != 0 {
		t.Errorf("llm_teacher slots in use after the calls: %v", v)
	}
	for _, bad := range append(ids, "SECRET", "fake-model", "key-0", fake.URL, "127.0.0.1") {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics carries %q:\n%s", bad, testfixtures.Lines(body, bad))
		}
	}

	// Disabled: an unload; every series of t1 goes.
	expect(t, e.do("DELETE", "/admin/tenants/t1", adminKey, nil), 200, "")
	if after := e.scrapeMetrics(); strings.Contains(after, `tenant="t1"`) {
		t.Errorf("t1's series after its unload:\n%s", testfixtures.Lines(after, `tenant="t1"`))
	}
}

// scrapeMetrics reads GET /metrics with the admin key.
func (e *env) scrapeMetrics() string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.http.URL+"/metrics", nil)
	req.Header.Set("X-Admin-Key", adminKey)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// metricValue is the value of one series in an exposition ("name{labels}"
// exactly as exposed), -1 when absent.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
