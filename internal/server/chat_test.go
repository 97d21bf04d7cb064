package server

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/lectern/lectern/internal/jobs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/testfixtures"
)

// withLLM points the server at fake providers, in chain order.
func withLLM(timeout time.Duration, attempts int, servers ...*llmtest.Server) func(*Config) {
	return func(c *Config) {
		for i, s := range servers {
			c.LLM.Providers = append(c.LLM.Providers, llm.Provider{Name: fmt.Sprintf("p%d", i), BaseURL: s.URL,
				APIKey: fmt.Sprintf("key-%d", i), Model: "fake-model", Timeout: timeout, MaxAttempts: attempts})
		}
	}
}

// teacherRequest tells a teacher's LLM request by its tools: teachers get
// the exam tools, a student's tutor only its own three (and the profile
// judgement none).
func teacherRequest(req llmtest.Recorded) bool {
	for _, t := range req.Tools {
		if t.Function.Name == "exam_list" {
			return true
		}
	}
	return false
}

func (e *env) startChat(prefix string, body map[string]any) map[string]any {
	e.t.Helper()
	r := e.postJSON(prefix+"/chat/start", body)
	if r.status != 200 {
		e.t.Fatalf("chat/start: %d %s", r.status, r.body)
	}
	return r.json(e.t)
}

// waitChat polls a chat job until it is done or failed.
func (e *env) waitChat(prefix, jobID string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.get(prefix + "/chat/status?job_id=" + jobID).json(e.t)
		if s := st["status"]; s == "done" || s == "failed" {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("chat job %s still %v", jobID, st["status"])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func teacherTurn(requestID, text string) map[string]any {
	return map[string]any{"request_id": requestID, "role": "teacher", "teacher_id": "t_zhang",
		"messages": []map[string]any{{"role": "user", "content": text}}}
}

func studentTurn(requestID, studentID, text string) map[string]any {
	return map[string]any{"request_id": requestID, "role": "student", "student_id": studentID,
		"messages": []map[string]any{{"role": "user", "content": text}}}
}

func TestChatPlainReplyAndHistory(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Script(llmtest.Step{Reply: `你好，老师！公式 \(a^2\) 如下。`})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", nil), 200, "")
	start := e.startChat("/t/t1", teacherTurn("r1", "你好"))
	if start["status"] != "queued" || start["lane_id"] != "teacher:t_zhang:session_b28b7af693" {
		t.Fatalf("start: %v", start)
	}
	job := e.waitChat("/t/t1", start["job_id"].(string))
	if job["status"] != "done" || job["reply"] != "你好，老师！公式 $a^2$ 如下。" {
		t.Fatalf("job: %v", job)
	}
	req := fake.Requests()[0]
	if req.Authorization != "Bearer key-0" || req.Messages[0].Role != "system" || len(req.Tools) == 0 {
		t.Fatalf("LLM request: auth %q, first role %q, %d tools", req.Authorization, req.Messages[0].Role, len(req.Tools))
	}
	hist := e.get("/t/t1/teacher/history/session?teacher_id=t_zhang&session_id=main").json(t)
	msgs := hist["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["source"] != "start_prewrite" || msgs[1].(map[string]any)["role"] != "assistant" {
		t.Fatalf("history: %v", hist)
	}
	// The synchronous path writes history too.
	r := e.postJSON("/t/t1/chat", map[string]any{"role": "teacher", "teacher_id": "t_zhang", "messages": []map[string]any{{"role": "user", "content": "再说一次"}}})
	if r.status != 200 || r.json(t)["role"] != "teacher" {
		t.Fatalf("/chat: %d %s", r.status, r.body)
	}
	sessions := e.get("/t/t1/teacher/history/sessions?teacher_id=t_zhang").json(t)["sessions"].([]any)
	if n := sessions[0].(map[string]any)["message_count"]; n != 4.0 {
		t.Fatalf("message_count %v", n)
	}
}

// A reply that calls exam.students.list on fixture data, then answers
// from it; the tool acts on the tenant's own data.
func TestChatTeacherToolCall(t *testing.T) {
	fx := testfixtures.ExamsDir(t)
	fake := llmtest.NewServer(t)
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			if !strings.Contains(last.Content, "夏雨涵") {
				return llmtest.Step{Reply: "tool result lacked the top student: " + last.Content}
			}
			return llmtest.Step{Reply: "第一名是夏雨涵，93 分。"}
		}
		return llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function",
			Function: llm.FunctionCall{Name: "exam_students_list", Arguments: `{"exam_id":"PHYS","limit":3}`}}}}
	})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", nil), 200, "")
	r := e.upload("/t/t1/exam/upload/start", upload{fields: map[string]string{"exam_id": "PHYS", "max_scores": fullMarks},
		files: map[string][]string{"score_files": {filepath.Join(fx, "physics_midterm_scores_only.xlsx")}}})
	jobID := r.json(t)["job_id"].(string)
	e.waitJob("/t/t1", jobID)
	expect(t, e.postJSON("/t/t1/exam/upload/confirm", map[string]any{"job_id": jobID}), 200, "")

	start := e.startChat("/t/t1", teacherTurn("r-tool", "PHYS 考试第一名是谁？"))
	job := e.waitChat("/t/t1", start["job_id"].(string))
	if job["reply"] != "第一名是夏雨涵，93 分。" {
		t.Fatalf("job: %v", job)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Fatalf("%d LLM calls, want 2", n)
	}
}

func TestChatToolBudgetOverrun(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		if len(req.Tools) == 0 {
			return llmtest.Step{Reply: "预算用完，直接回答。"}
		}
		return llmtest.Step{ToolCalls: []llm.ToolCall{{ID: fmt.Sprint("c", len(req.Messages)), Type: "function",
			Function: llm.FunctionCall{Name: "exam_list", Arguments: `{}`}}}}
	})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", nil), 200, "")
	job := e.waitChat("/t/t1", e.startChat("/t/t1", teacherTurn("r-budget", "列出考试"))["job_id"].(string))
	if job["reply"] != "预算用完，直接回答。" {
		t.Fatalf("job: %v", job)
	}
	// "列出考试" routes to physics-teacher-ops, whose budget (3 rounds)
	// tightens the default 5: three rounds with tools, then one without.
	reqs := fake.Requests()
	if len(reqs) != 4 || len(reqs[3].Tools) != 0 {
		t.Fatalf("%d calls; last had %d tools", len(reqs), len(reqs[len(reqs)-1].Tools))
	}
}

func TestChatRetryAndFallback(t *testing.T) {
	t.Run("429 then success", func(t *testing.T) {
		fake := llmtest.NewServer(t)
		fake.Script(llmtest.Step{Status: 429, RetryAfter: "0"}, llmtest.Step{Reply: "第二次成功"})
		e := newEnv(t, withLLM(5*time.Second, 3, fake))
		expect(t, e.putTenant("t1", nil), 200, "")
		job := e.waitChat("/t/t1", e.startChat("/t/t1", teacherTurn("r429", "hi"))["job_id"].(string))
		if job["reply"] != "第二次成功" || len(fake.Requests()) != 2 {
			t.Fatalf("job %v after %d calls", job, len(fake.Requests()))
		}
	})
	t.Run("500 on the first provider, then the fallback", func(t *testing.T) {
		bad, good := llmtest.NewServer(t), llmtest.NewServer(t)
		bad.Script(llmtest.Step{Status: 500})
		good.Script(llmtest.Step{Reply: "来自备用模型"})
		e := newEnv(t, withLLM(5*time.Second, 2, bad, good))
		expect(t, e.putTenant("t1", nil), 200, "")
		job := e.waitChat("/t/t1", e.startChat("/t/t1", teacherTurn("r500", "hi"))["job_id"].(string))
		if job["reply"] != "来自备用模型" || len(bad.Requests()) != 2 {
			t.Fatalf("job %v; first provider got %d calls", job, len(bad.Requests()))
		}
		if a := good.Requests()[0].Authorization; a != "Bearer key-1" {
			t.Fatalf("fallback got key %q", a)
		}
	})
	t.Run("a hang hits the timeout", func(t *testing.T) {
		fake := llmtest.NewServer(t)
		fake.Script(llmtest.Step{Hang: true})
		e := newEnv(t, withLLM(200*time.Millisecond, 1, fake))
		expect(t, e.putTenant("t1", nil), 200, "")
		began := time.Now()
		job := e.waitChat("/t/t1", e.startChat("/t/t1", teacherTurn("rhang", "hi"))["job_id"].(string))
		if job["status"] != "failed" || time.Since(began) > 10*time.Second {
			t.Fatalf("job %v after %v", job, time.Since(began))
		}
	})
}

func TestChatMalformedToolArguments(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Step{Reply: "tool said: " + last.Content}
		}
		return llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function",
			Function: llm.FunctionCall{Name: "exam_get", Arguments: `{not json`}}}}
	})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", nil), 200, "")
	job := e.waitChat("/t/t1", e.startChat("/t/t1", teacherTurn("r-bad", "看看考试"))["job_id"].(string))
	reply, _ := job["reply"].(string)
	if job["status"] != "done" || !strings.Contains(reply, "invalid_arguments") || !strings.Contains(reply, "exam_id") {
		t.Fatalf("job: %v", job)
	}
}

func TestChatNotConfigured(t *testing.T) {
	e := newEnv(t)
	r := e.postJSON("/chat", map[string]any{"messages": []map[string]any{{"role": "user", "content": "hi"}}})
	if r.status != 503 || !strings.Contains(string(r.body), "llm_not_configured") {
		t.Fatalf("/chat: %d %s", r.status, r.body)
	}
	job := e.waitChat("", e.startChat("", teacherTurn("r-nollm", "hi"))["job_id"].(string))
	if job["error"] != "llm_not_configured" || !strings.Contains(fmt.Sprint(job["hints"]), "LLM_BASE_URL") {
		t.Fatalf("job: %v", job)
	}
}

func TestChatIdempotencyDebounceAndCap(t *testing.T) {
	fake := llmtest.NewServer(t)
	release := make(chan struct{})
	fake.Script(llmtest.Step{Handler: func(llmtest.Recorded) (int, string) {
		<-release
		return 200, llmtest.ReplyBody(llmtest.Step{Reply: "ok"}, 1)
	}})
	e := newEnv(t, withLLM(30*time.Second, 1, fake), func(c *Config) { c.Chat.LaneMaxQueue = 3; c.Chat.Debounce = time.Hour })
	defer close(release)
	first := e.startChat("", studentTurn("a", "S1", "第一题怎么做"))
	again := e.startChat("", studentTurn("a", "S1", "第一题怎么做"))
	if again["job_id"] != first["job_id"] || again["lane_id"] != nil {
		t.Fatalf("same request_id: %v vs %v", again, first)
	}
	deb := e.startChat("", studentTurn("b", "S1", "  第一题怎么做 "))
	if deb["job_id"] != first["job_id"] || deb["debounced"] != true {
		t.Fatalf("debounce: %v", deb)
	}
	e.startChat("", studentTurn("c", "S1", "第二题"))
	e.startChat("", studentTurn("d", "S1", "第三题"))
	r := e.postJSON("/chat/start", studentTurn("e", "S1", "第四题"))
	if r.status != 429 || !strings.Contains(string(r.body), "排队过多") {
		t.Fatalf("cap: %d %s", r.status, r.body)
	}
	// Polling never re-queues a running job.
	for range 5 {
		e.get("/chat/status?job_id=" + first["job_id"].(string))
	}
	st := e.get("/chat/status?job_id=" + first["job_id"].(string)).json(t)
	if st["lane_queue_size"] != 2.0 || st["lane_active"] != true {
		t.Fatalf("status: %v", st)
	}
	expect(t, e.postJSON("/chat/start", map[string]any{"request_id": " ", "messages": []any{}}), 400, `{"detail":"request_id is required"}`)
	expect(t, e.get("/chat/status?job_id=cjob_nope"), 404, `{"detail":"job not found"}`)
	expect(t, e.get("/chat/status?job_id=../../x"), 404, "")
	// A synchronous /chat for the same student waits for nothing: 429.
	r = e.postJSON("/chat", studentTurn("", "S1", "急"))
	if r.status != 429 {
		t.Fatalf("busy student /chat: %d %s", r.status, r.body)
	}
}

// Jobs of one lane run in order, one at a time; lanes take turns.
func TestChatLaneOrdering(t *testing.T) {
	fake := llmtest.NewServer(t)
	var mu sync.Mutex
	var order []string
	gate := make(chan struct{})
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		if req.Body["response_format"] != nil { // a profile judgement, not a reply
			return llmtest.Step{Reply: `{"weak_kp":[],"strong_kp":[],"next_focus":"","evidence":""}`}
		}
		last := req.Messages[len(req.Messages)-1].Content
		mu.Lock()
		order = append(order, last)
		mu.Unlock()
		if last == "A1" {
			<-gate
		}
		return llmtest.Step{Reply: "re " + last}
	})
	e := newEnv(t, withLLM(30*time.Second, 1, fake), func(c *Config) { c.ChatWorkers = 4 })
	a1 := e.startChat("", studentTurn("1", "A", "A1"))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 1 })
	a2 := e.startChat("", studentTurn("2", "A", "A2"))
	b1 := e.startChat("", studentTurn("3", "B", "B1"))
	if j := e.waitChat("", b1["job_id"].(string)); j["status"] != "done" {
		t.Fatalf("B1: %v", j)
	}
	if st := e.get("/chat/status?job_id=" + a2["job_id"].(string)).json(t); st["status"] != "queued" || st["lane_queue_position"] != 1.0 {
		t.Fatalf("A2 should wait behind A1: %v", st)
	}
	close(gate)
	e.waitChat("", a1["job_id"].(string))
	e.waitChat("", a2["job_id"].(string))
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "A1,B1,A2" {
		t.Fatalf("order %v", order)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// restart closes the server and starts a new one over the same folders.
func (e *env) restart(mutate ...func(*Config)) {
	e.t.Helper()
	e.http.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Close(ctx); err != nil {
		e.t.Fatal(err)
	}
	cfg := e.srv.cfg
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(context.Background(), cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.http = newHTTP(e.t, srv)
}

// Queued jobs resume after a restart, and a request_id stays bound to its
// job across it.
func TestChatResumeAfterRestart(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChatWorkers = 1 })
	// No LLM: write queued jobs as a previous process would have left them.
	jobs := filepath.Join(e.srv.cfg.UploadsDir, "chat_jobs")
	rec := map[string]any{"job_id": "cjob_aaaaaaaaaaaa", "request_id": "persist", "status": "processing", "role": "teacher",
		"teacher_id": "teacher", "session_id": "main", "lane_id": "teacher:teacher:session_b28b7af693", "created_at": "2026-01-01T00:00:00",
		"request": map[string]any{"messages": []map[string]any{{"role": "user", "content": "上次没说完"}}}, "user_turn_persisted": false}
	data, _ := json.Marshal(rec)
	os.MkdirAll(filepath.Join(jobs, "cjob_aaaaaaaaaaaa"), 0o755)
	os.WriteFile(filepath.Join(jobs, "cjob_aaaaaaaaaaaa", "job.json"), data, 0o644)
	os.MkdirAll(filepath.Join(jobs, "request_index"), 0o755)
	os.WriteFile(filepath.Join(jobs, "request_index", "persist.txt"), []byte("cjob_aaaaaaaaaaaa"), 0o644)

	fake := llmtest.NewServer(t)
	fake.Script(llmtest.Step{Reply: "接着说"})
	e.restart(withLLM(5*time.Second, 1, fake))
	job := e.waitChat("", "cjob_aaaaaaaaaaaa")
	if job["status"] != "done" || job["reply"] != "接着说" {
		t.Fatalf("resumed job: %v", job)
	}
	again := e.startChat("", teacherTurn("persist", "上次没说完"))
	if again["job_id"] != "cjob_aaaaaaaaaaaa" {
		t.Fatalf("request_id after restart: %v", again)
	}
	e.restart()
	if again := e.startChat("", teacherTurn("persist", "x")); again["job_id"] != "cjob_aaaaaaaaaaaa" || again["status"] != "done" {
		t.Fatalf("request_id after second restart: %v", again)
	}
	if len(fake.Requests()) != 1 {
		t.Fatalf("%d LLM calls", len(fake.Requests()))
	}
}

// With llm_student=2, ten student jobs never have more than two LLM calls
// in flight for the tenant, and another tenant is served meanwhile.
func TestChatStudentLimit(t *testing.T) {
	fake := llmtest.NewServer(t)
	var mu sync.Mutex
	inFlight, peak := 0, 0
	fake.Script(llmtest.Step{Handler: func(req llmtest.Recorded) (int, string) {
		student := !teacherRequest(req)
		if student {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			inFlight--
			mu.Unlock()
		}
		return 200, llmtest.ReplyBody(llmtest.Step{Reply: "好"}, len(req.Messages))
	}})
	e := newEnv(t, withLLM(10*time.Second, 1, fake), func(c *Config) { c.ChatWorkers = 10 })
	expect(t, e.putTenant("busy", map[string]any{"limits": map[string]any{"llm_student": 2}}), 200, "")
	expect(t, e.putTenant("calm", nil), 200, "")
	var ids []string
	for i := range 10 {
		ids = append(ids, e.startChat("/t/busy", studentTurn(fmt.Sprint("s", i), fmt.Sprint("S", i), "题目"))["job_id"].(string))
	}
	// The other tenant's teacher is answered while busy's students queue.
	calm := e.waitChat("/t/calm", e.startChat("/t/calm", teacherTurn("c1", "hi"))["job_id"].(string))
	if calm["status"] != "done" {
		t.Fatalf("calm tenant: %v", calm)
	}
	pending := 0
	for _, id := range ids {
		if st := e.get("/t/busy/chat/status?job_id=" + id).json(t)["status"]; st != "done" {
			pending++
		}
	}
	if pending == 0 {
		t.Log("every student job finished before the other tenant's reply; the overlap was not exercised")
	}
	for _, id := range ids {
		if j := e.waitChat("/t/busy", id); j["status"] != "done" {
			t.Fatalf("busy job: %v", j)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Fatalf("peak student calls in flight %d, want 2", peak)
	}
}

// A long teacher "main" session is compacted after a job: one summary
// record, then the last 39 messages.
func TestTeacherSessionCompaction(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Script(llmtest.Step{Reply: "好的"})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	dir := filepath.Join(e.srv.cfg.DataDir, "teacher_chat_sessions", "t_zhang")
	os.MkdirAll(dir, 0o755)
	var lines []string
	for i := range 170 {
		role := []string{"user", "assistant"}[i%2]
		rec, _ := json.Marshal(map[string]any{"ts": "2026-01-01T00:00:00", "role": role, "content": fmt.Sprint("消息", i)})
		lines = append(lines, string(rec))
	}
	os.WriteFile(filepath.Join(dir, "session_b28b7af693.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	e.waitChat("", e.startChat("", teacherTurn("rc", "继续"))["job_id"].(string))
	var msgs []any
	waitFor(t, func() bool {
		msgs = e.get("/teacher/history/session?teacher_id=t_zhang&session_id=main&limit=200").json(t)["messages"].([]any)
		return len(msgs) == 40
	})
	first := msgs[0].(map[string]any)
	if first["kind"] != "session_summary" || !strings.HasPrefix(first["content"].(string), "【会话压缩摘要】") || first["compacted_messages"] != 133.0 {
		t.Fatalf("summary record: %v", first)
	}
	if last := msgs[39].(map[string]any); last["content"] != "好的" {
		t.Fatalf("last record: %v", last)
	}
	item := e.get("/teacher/history/sessions?teacher_id=t_zhang").json(t)["sessions"].([]any)[0].(map[string]any)
	if item["message_count"] != 40.0 || item["compaction_runs"] != 1.0 {
		t.Fatalf("index item: %v", item)
	}
	// The next turn carries the summary as system context.
	e.waitChat("", e.startChat("", teacherTurn("rc2", "接着说"))["job_id"].(string))
	reqs := fake.Requests()
	found := false
	for _, m := range reqs[len(reqs)-1].Messages {
		if m.Role == "system" && strings.Contains(m.Content, "【会话压缩摘要】") && strings.Contains(m.Content, "消息0") {
			found = true
		}
	}
	if !found {
		t.Fatal("the session summary did not reach the LLM")
	}
}

// A job whose reply reached the history before the process died (its
// record still says processing) ends at the restart with that reply: the
// model is not asked again and the reply is not written twice.
func TestChatResumedJobDoesNotReplyTwice(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Script(llmtest.Step{Reply: "牛顿第二定律：F=ma"})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	start := e.startChat("", teacherTurn("once", "讲一下牛顿第二定律"))
	id := start["job_id"].(string)
	if job := e.waitChat("", id); job["status"] != "done" {
		t.Fatalf("job: %v", job)
	}
	// The crash: the reply is in the history, "done" never made it; the
	// record on disk is the running job's (written out in the directory
	// layout), not the finished job's sealed file.
	jobsDir := filepath.Join(e.srv.cfg.UploadsDir, "chat_jobs")
	var sealed struct {
		Record map[string]any `json:"record"`
	}
	data, _ := os.ReadFile(filepath.Join(jobsDir, id+jobs.SealedSuffix))
	if err := json.Unmarshal(data, &sealed); err != nil || sealed.Record == nil {
		t.Fatalf("the finished job's sealed file: %v %s", err, data)
	}
	rec := sealed.Record
	rec["status"], rec["step"] = "processing", "agent"
	delete(rec, "reply")
	data, _ = json.Marshal(rec)
	os.Remove(filepath.Join(jobsDir, id+jobs.SealedSuffix))
	os.MkdirAll(filepath.Join(jobsDir, id), 0o755)
	os.WriteFile(filepath.Join(jobsDir, id, jobs.RecordFile), data, 0o644)

	e.restart(withLLM(5*time.Second, 1, fake))
	job := e.waitChat("", id)
	if job["status"] != "done" || job["reply"] != "牛顿第二定律：F=ma" {
		t.Fatalf("resumed job: %v", job)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("%d LLM calls, want 1", n)
	}
	hist := e.get("/teacher/history/session?teacher_id=t_zhang&session_id=main").json(t)
	replies := 0
	for _, m := range hist["messages"].([]any) {
		if m := m.(map[string]any); m["role"] == "assistant" && m["job_id"] == id {
			replies++
		}
	}
	if replies != 1 {
		t.Errorf("%d assistant records of the job in the history, want 1: %v", replies, hist)
	}
}
