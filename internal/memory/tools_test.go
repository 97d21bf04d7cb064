package memory

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/tools"
)

func teacherP(id string) caller.Principal {
	return caller.Principal{Role: caller.RoleTeacher, TeacherID: id, Via: caller.Token}
}

func registry(t *testing.T, s *Service) *tools.Registry {
	t.Helper()
	reg, err := tools.NewRegistry(s.Tools()...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// dispatch runs a tool through the registry and returns its answer as
// the model would read it.
func dispatch(t *testing.T, reg *tools.Registry, c caller.Principal, name, args string) map[string]any {
	t.Helper()
	data, err := json.Marshal(reg.Dispatch(context.Background(), c, name, json.RawMessage(args)))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %s", name, data)
	}
	return out
}

func TestToolSchemas(t *testing.T) {
	f := setup(t, Config{})
	reg := registry(t, f.svc)
	var names []string
	for _, tl := range reg.OpenAI(caller.RoleTeacher) {
		names = append(names, tl.Function.Name)
	}
	if got := strings.Join(names, ","); got != "teacher_memory_apply,teacher_memory_get,teacher_memory_propose,teacher_memory_search,teacher_workspace_init" {
		t.Errorf("tools %s", got)
	}
	for _, tl := range reg.All() {
		props := tl.Parameters["properties"].(map[string]any)
		if _, ok := props["teacher_id"]; ok || tl.Parameters["additionalProperties"] != false {
			t.Errorf("%s schema %v", tl.Name, tl.Parameters)
		}
	}
}

// The agent loop, with the fake LLM: the model proposes a memory for the
// chatting teacher, then answers; the proposal waits for review.
func TestAgentProposesMemory(t *testing.T) {
	f := setup(t, Config{})
	srv := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "test", BaseURL: srv.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
	a := &agent.Agent{LLM: client, Tools: registry(t, f.svc), Prompts: agent.NewPrompts(f.data)}
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function", Function: llm.FunctionCall{
			Name: "teacher_memory_propose", Arguments: `{"title":"讲评","content":"讲评时先给结论再给过程"}`}}}},
		llmtest.Step{Reply: "已提交记忆提议，请在记忆页审核。"},
	)
	ctxText := f.svc.PromptContext("t_alpha", 0)
	res, err := a.Run(context.Background(), agent.Input{Caller: teacherP("t_alpha"), ExtraSystem: ctxText,
		Messages: []llm.Message{{Role: "user", Content: "记住：讲评时先给结论再给过程"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ToolCalls != 1 || res.Reply != "已提交记忆提议，请在记忆页审核。" {
		t.Fatalf("result %+v", res)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	// The memory context went in as the second system message.
	if m := reqs[0].Messages; len(m) < 2 || m[1].Role != "system" || !strings.Contains(m[1].Content, "【Teacher Profile】") {
		t.Errorf("first request messages %+v", m)
	}
	toolMsg := reqs[1].Messages[len(reqs[1].Messages)-1]
	if toolMsg.Role != "tool" || !strings.Contains(toolMsg.Content, `"status":"proposed"`) {
		t.Errorf("tool message %+v", toolMsg)
	}
	list, err := f.svc.List("t_alpha", "proposed", 10)
	if err != nil || len(list) != 1 || list[0].Content != "讲评时先给结论再给过程" || list[0].TeacherID != "t_alpha" {
		t.Fatalf("proposals %+v %v", list, err)
	}
}
