package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// bearer adds an Authorization header to every request of an MCP client.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func mcpConnect(t *testing.T, url, token string) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "lectern-server-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearer{token, &http.Transport{DisableKeepAlives: true}}, Timeout: 10 * time.Second}}, nil)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// The MCP server of each tenant, through the whole server with tokens: the
// SDK's client lists the tools and calls one on a's exams only; b's
// token and a student's are refused at /t/a/mcp.
func TestMCPPerTenantWithTokens(t *testing.T) {
	e := newEnv(t, withAuth)
	expect(t, e.putTenant("a", nil), 200, "")
	expect(t, e.putTenant("b", nil), 200, "")
	aData, _ := e.tenantDirs("a")
	bData, _ := e.tenantDirs("b")
	writeManifest(t, aData, "EX_A", "2026-11-01T10:00:00", 3)
	writeManifest(t, bData, "EX_B", "2026-11-01T10:00:00", 3)
	aToks, bToks := mint(t, aData, "a"), mint(t, bData, "b")

	s, err := mcpConnect(t, e.http.URL+"/t/a/mcp", aToks["teacher"])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	list, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range list.Tools {
		names[tl.Name] = true
	}
	for _, want := range []string{"exam.list", "assignment.list", "teacher.memory.propose"} {
		if !names[want] {
			t.Errorf("tools/list lacks %s (%d tools)", want, len(list.Tools))
		}
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "exam.list", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("exam.list: %v %+v", err, res)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if !strings.Contains(text, "EX_A") || strings.Contains(text, "EX_B") {
		t.Fatalf("exam.list at /t/a: %s", text)
	}
	bad, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "exam.get", Arguments: map[string]any{"exam_id": 7}})
	if err != nil || !bad.IsError {
		t.Fatalf("invalid arguments: %v %+v", err, bad)
	}
	for who, tok := range map[string]string{"b's teacher": bToks["teacher"], "a's student": aToks["student"]} {
		if _, err := mcpConnect(t, e.http.URL+"/t/a/mcp", tok); err == nil {
			t.Errorf("%s connected to /t/a/mcp", who)
		}
	}
}

// A teacher's private provider answers that teacher's turns only; its key
// is stored encrypted and never answered; the probe refuses loopback.
func TestPrivateProviderServesItsTeacherOnly(t *testing.T) {
	tenantLLM, own := llmtest.NewServer(t), llmtest.NewServer(t)
	tenantLLM.Script(llmtest.Step{Reply: "学校的模型"})
	own.Script(llmtest.Step{Reply: "老师自己的模型"})
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	e := newEnv(t, withLLM(5*time.Second, 1, tenantLLM), func(c *Config) { c.Models.MasterKey = key })
	expect(t, e.putTenant("a", nil), 200, "")
	const secret = "sk-private-abcdefghijklmnop"
	body := map[string]any{"teacher_id": "t_zhang", "provider_id": "mine", "base_url": own.URL + "/v1",
		"api_key": secret, "default_model": "own-model"}
	r := e.postJSON("/t/a/teacher/provider-registry/providers", body)
	// Loopback is refused without MODEL_PROVIDER_ALLOW_PRIVATE.
	if r.status != 400 || !strings.Contains(string(r.body), "unsafe") {
		t.Fatalf("loopback provider accepted: %d %s", r.status, r.body)
	}
	e.restart(func(c *Config) { c.Models.AllowPrivate = true })
	r = e.postJSON("/t/a/teacher/provider-registry/providers", body)
	if r.status != 200 || strings.Contains(string(r.body), secret) {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	aData, _ := e.tenantDirs("a")
	if tree := treeState(t, aData); strings.Contains(tree, secret) {
		t.Fatal("the key is in a file name")
	}
	if leaked := grepTree(t, aData, secret, base64.StdEncoding.EncodeToString([]byte(secret))); leaked != "" {
		t.Fatalf("the key is stored in clear in %s", leaked)
	}
	if r := e.do("PUT", "/t/a/teacher/model-config", "", map[string]any{"teacher_id": "t_zhang",
		"models": map[string]any{"conversation": map[string]any{"provider": "mine"}}}); r.status != 200 {
		t.Fatalf("model-config: %d %s", r.status, r.body)
	}
	mine := e.waitChat("/t/a", e.startChat("/t/a", teacherTurn("p1", "你好"))["job_id"].(string))
	other := teacherTurn("p2", "你好")
	other["teacher_id"] = "t_li"
	theirs := e.waitChat("/t/a", e.startChat("/t/a", other)["job_id"].(string))
	if mine["reply"] != "老师自己的模型" || theirs["reply"] != "学校的模型" {
		t.Fatalf("replies: t_zhang %v, t_li %v", mine["reply"], theirs["reply"])
	}
	if reqs := own.Requests(); len(reqs) != 1 || reqs[0].Authorization != "Bearer "+secret {
		t.Fatalf("private provider calls: %+v", reqs)
	}
	reg := e.get("/t/a/teacher/provider-registry?teacher_id=t_zhang")
	if reg.status != 200 || strings.Contains(string(reg.body), secret) || !strings.Contains(string(reg.body), "****") {
		t.Fatalf("registry: %d %s", reg.status, reg.body)
	}
}

// Teacher memory through the agent: the model proposes a memory, the
// teacher approves it over HTTP, and the next turn's prompt carries it.
func TestTeacherMemoryReachesThePrompt(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "m1", Type: "function", Function: llm.FunctionCall{
			Name: "teacher_memory_propose", Arguments: `{"target":"MEMORY","title":"作业偏好","content":"布置作业时每次最多 5 道题。"}`}}}},
		llmtest.Step{Reply: "已记录，等待你确认。"},
		llmtest.Step{Reply: "好的。"},
	)
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("a", nil), 200, "")
	if j := e.waitChat("/t/a", e.startChat("/t/a", teacherTurn("m-1", "记住：作业每次最多 5 道题"))["job_id"].(string)); j["status"] != "done" {
		t.Fatalf("turn 1: %v", j)
	}
	var list struct {
		Proposals []map[string]any `json:"proposals"`
	}
	// Two proposals wait for review: the agent's (manual, through the
	// tool) and the one the teacher's "记住：…" made after the turn
	// (auto_intent); neither is applied.
	// The automatic one is made after the turn is done: wait for it.
	var r response
	for deadline := time.Now().Add(5 * time.Second); ; {
		r = e.get("/t/a/teacher/memory/proposals?teacher_id=t_zhang")
		if err := json.Unmarshal(r.body, &list); err == nil && len(list.Proposals) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proposals: %d %s", r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	id := ""
	sources := map[string]bool{}
	for _, p := range list.Proposals {
		sources[p["source"].(string)] = true
		if p["status"] != "proposed" {
			t.Errorf("a proposal was applied without review: %v", p)
		}
		if p["source"] == "manual" {
			id, _ = p["proposal_id"].(string)
		}
	}
	if !sources["manual"] || !sources["auto_intent"] || id == "" {
		t.Fatalf("proposal sources %v", sources)
	}
	if r := e.postJSON("/t/a/teacher/memory/proposals/"+id+"/review", map[string]any{"teacher_id": "t_zhang", "approve": true}); r.status != 200 {
		t.Fatalf("review: %d %s", r.status, r.body)
	}
	if r := e.get("/t/b/teacher/memory/proposals?teacher_id=t_zhang"); r.status == 200 && strings.Contains(string(r.body), "5 道题") {
		t.Fatal("tenant b sees a's memory")
	}
	if j := e.waitChat("/t/a", e.startChat("/t/a", teacherTurn("m-2", "出一份作业"))["job_id"].(string)); j["status"] != "done" {
		t.Fatalf("turn 2: %v", j)
	}
	reqs := fake.Requests()
	var system strings.Builder
	for _, m := range reqs[len(reqs)-1].Messages {
		if m.Role == "system" {
			system.WriteString(m.Content)
		}
	}
	if !strings.Contains(system.String(), "每次最多 5 道题") {
		t.Fatalf("the approved memory is not in the next turn's prompt:\n%s", system.String())
	}
}

// Each turn is routed to a skill; the decision (requested → effective,
// reason, confidence, candidates) is on the job in /chat/status, and a
// requested skill the role may use wins.
func TestSkillDecisionInChatStatus(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(llmtest.Recorded) llmtest.Step { return llmtest.Step{Reply: "好"} })
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("a", nil), 200, "")
	for _, tc := range []struct {
		turn      map[string]any
		requested string
		want      string
	}{
		{teacherTurn("k1", "帮我生成一份牛顿第二定律的作业，布置给高二1班"), "", "physics-homework-generator"},
		{teacherTurn("k2", "分析一下这次期中考试的成绩分布"), "", "physics-teacher-ops"},
		{studentTurn("k3", "S1", "这道题我不会，能讲讲吗"), "", "physics-student-coach"},
		{teacherTurn("k4", "分析一下这次期中考试的成绩分布"), "physics-homework-generator", "physics-homework-generator"},
	} {
		if tc.requested != "" {
			tc.turn["skill_id"] = tc.requested
		}
		st := e.waitChat("/t/a", e.startChat("/t/a", tc.turn)["job_id"].(string))
		if st["status"] != "done" || st["skill_id_effective"] != tc.want {
			t.Errorf("%v: status %v, effective %v, want %s (reason %v)", tc.turn["messages"], st["status"], st["skill_id_effective"], tc.want, st["skill_reason"])
		}
		if st["skill_reason"] == nil || st["skill_confidence"] == nil {
			t.Errorf("%v: no reason or confidence on the job: %v", tc.turn["messages"], st)
		}
	}
	r := e.get("/t/a/skills")
	if r.status != 200 || !strings.Contains(string(r.body), "physics-core-examples") {
		t.Fatalf("GET /skills: %d %.200s", r.status, r.body)
	}
}

// A student's turn that names a lasting confusion becomes a student memory
// proposal for the tenant's teacher to review; a homework turn does not.
func TestStudentTurnProposesStudentMemory(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(llmtest.Recorded) llmtest.Step {
		return llmtest.Step{Reply: "我们先把两个概念分开看。"}
	})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", nil), 200, "")
	for i, text := range []string{"开始今天作业，第一题怎么做", "我总是搞混加速度和速度的方向"} {
		start := e.startChat("/t/t1", studentTurn(fmt.Sprint("s", i), "s_li", text))
		if job := e.waitChat("/t/t1", start["job_id"].(string)); job["status"] != "done" {
			t.Fatalf("job: %v", job)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := e.get("/t/t1/teacher/student-memory/proposals?teacher_id=teacher&student_id=s_li").json(t)
		props, _ := list["proposals"].([]any)
		if len(props) == 1 {
			p := props[0].(map[string]any)
			if p["memory_type"] != "stable_misconception" || p["status"] != "proposed" || p["source"] != "auto_student_turn" ||
				p["content"] != "我总是搞混加速度和速度的方向" {
				t.Fatalf("proposal: %v", p)
			}
			return
		}
		if len(props) > 1 || time.Now().After(deadline) {
			t.Fatalf("student memory proposals: %v", list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
