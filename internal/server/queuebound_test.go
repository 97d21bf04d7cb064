package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

// Chat jobs are bounded per tenant over all lanes: past JOB_QUEUE_MAX
// queued jobs a start is 429 with Retry-After, stores nothing, and other
// tenants are unaffected.
func TestChatQueueBound(t *testing.T) {
	fake := llmtest.NewServer(t)
	release := make(chan struct{})
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		<-release
		return llmtest.Step{Reply: "ok"}
	})
	e := newEnv(t, withLLM(30*time.Second, 1, fake), func(c *Config) {
		c.ChatWorkers = 1
		c.JobQueueMax = 2
	})
	var jobs []string // "/t/<tenant> <job id>"
	t.Cleanup(func() {
		close(release)
		for _, j := range jobs {
			prefix, id, _ := strings.Cut(j, " ")
			e.waitChat(prefix, id)
		}
	})
	expect(t, e.putTenant("a", nil), 200, "")
	expect(t, e.putTenant("b", nil), 200, "")
	turn := func(i int) map[string]any { return studentTurn(fmt.Sprint("r", i), fmt.Sprint("s", i), "你好") }
	start := func(prefix string, i int) {
		jobs = append(jobs, prefix+" "+e.startChat(prefix, turn(i))["job_id"].(string))
	}
	start("/t/a", 0)
	deadline := time.Now().Add(10 * time.Second)
	for fake.InFlight() < 1 { // the one worker holds the first job
		if time.Now().After(deadline) {
			t.Fatal("the first chat never reached the LLM")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 2; i++ {
		start("/t/a", i)
	}
	req, _ := http.NewRequest("POST", e.http.URL+"/t/a/chat/start", strings.NewReader(`{"request_id":"r3","role":"student","student_id":"s3","messages":[{"role":"user","content":"你好"}]}`))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth chat: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	st := e.do("GET", "/admin/tenants/a", adminKey, nil).json(t)["tenant"].(map[string]any)["status"].(map[string]any)
	chat := st["workers"].([]any)[0].(map[string]any)
	if chat["kind"] != "chat" || chat["queued"] != 2.0 || chat["max_queued"] != 2.0 {
		t.Fatalf("chat worker status: %v", chat)
	}
	// Tenant b has its own queue.
	start("/t/b", 9)
}

// Exam uploads are bounded the same way, and refused before the upload is
// read: nothing of a refused upload is stored.
func TestExamUploadQueueBound(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.JobQueueMax = 1 })
	expect(t, e.putTenant("a", nil), 200, "")
	_, uploads := e.tenantDirs("a")
	// Hold the exam worker: it parses a sheet only with a parse slot.
	e.holdSheetParses(t)
	start := func() *http.Response {
		t.Helper()
		body := multipartBody("score_files", "s.csv", "姓名,总分\n张三,90\n")
		req, _ := http.NewRequest("POST", e.http.URL+"/t/a/exam/upload/start", strings.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	first := start() // taken by the worker, which waits for a parse slot
	if first.StatusCode != 200 {
		t.Fatalf("first upload: %d", first.StatusCode)
	}
	jobs, _ := os.ReadDir(filepath.Join(uploads, "exam_jobs"))
	if len(jobs) != 1 {
		t.Fatalf("%d job folders", len(jobs))
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.get("/t/a/exam/upload/status?job_id=" + jobs[0].Name()).json(t)["step"] != "parse_scores" {
		if time.Now().After(deadline) {
			t.Fatalf("the worker never reached the parse: %v", e.workerStatus("a", "exam_upload"))
		}
		time.Sleep(time.Millisecond)
	}
	if r := start(); r.StatusCode != 200 { // queued
		t.Fatalf("second upload: %d", r.StatusCode)
	}
	before := treeState(t, uploads)
	r := start()
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("third upload: %d Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if after := treeState(t, uploads); after != before {
		t.Fatalf("a refused upload stored something:\n%s\n%s", before, after)
	}
}

func (e *env) workerStatus(tenant, kind string) map[string]any {
	e.t.Helper()
	st := e.do("GET", "/admin/tenants/"+tenant, adminKey, nil).json(e.t)["tenant"].(map[string]any)["status"].(map[string]any)
	for _, w := range st["workers"].([]any) {
		if w := w.(map[string]any); w["kind"] == kind {
			return w
		}
	}
	e.t.Fatalf("no %s worker in %v", kind, st)
	return nil
}

// holdSheetParses takes every score-sheet parse slot of the process until
// the test ends, so exam workers wait before parsing.
func (e *env) holdSheetParses(t *testing.T) {
	t.Helper()
	sem := e.srv.shared.SheetParses
	for range sem.Size() {
		if err := sem.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for range sem.Size() {
			sem.Release()
		}
	})
}
