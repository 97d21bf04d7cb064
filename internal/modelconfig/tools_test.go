package modelconfig

import (
	"context"
	"encoding/json"
	"reflect"
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

func routingRegistry(t *testing.T, s *Service) *tools.Registry {
	t.Helper()
	reg, err := tools.NewRegistry(s.Tools()...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func teacherPrincipal(id string) caller.Principal {
	return caller.Principal{Tenant: "t1", Role: caller.RoleTeacher, TeacherID: id, Via: caller.Token}
}

// dispatchTool runs a tool through the registry and returns its answer as
// the model reads it (JSON) and decoded.
func dispatchTool(t *testing.T, reg *tools.Registry, c caller.Principal, name string, args any) (string, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(reg.Dispatch(context.Background(), c, name, raw))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %s", name, data)
	}
	return string(data), out
}

// backupConfig routes the teacher's conversations to the tenant's second
// provider.
func backupConfig() map[string]any {
	return map[string]any{"enabled": true,
		"channels": []any{channel("backup_ch", "backup", "backup-model")},
		"rules":    []any{rule("r1", "backup_ch", map[string]any{"roles": []any{"teacher"}, "kinds": []any{"chat.agent"}})}}
}

func TestRoutingToolSchemas(t *testing.T) {
	e := newEnv(t)
	reg := routingRegistry(t, e.service(nil))
	var names []string
	for _, tl := range reg.OpenAI(caller.RoleTeacher) {
		names = append(names, tl.Function.Name)
	}
	want := "teacher_llm_routing_apply,teacher_llm_routing_get,teacher_llm_routing_propose,teacher_llm_routing_rollback,teacher_llm_routing_simulate"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("teacher tools %s", got)
	}
	if got := reg.OpenAI(caller.RoleStudent); len(got) != 0 {
		t.Errorf("a student is offered %v", got)
	}
	for _, tl := range reg.All() {
		if _, ok := tl.Parameters["properties"].(map[string]any)["teacher_id"]; ok {
			t.Errorf("%s takes a teacher_id", tl.Name)
		}
	}
}

// Each tool answers what its route answers, acting as the calling teacher.
func TestRoutingToolsMatchRoutes(t *testing.T) {
	e, _ := twoProviderEnv(t)
	s := e.service(nil)
	reg := routingRegistry(t, s)
	srv := api(t, s)
	const tid = "t_alpha"
	me := teacherPrincipal(tid)

	same := func(what, toolJSON string, r reply) {
		t.Helper()
		var a, b any
		json.Unmarshal([]byte(toolJSON), &a)
		json.Unmarshal([]byte(r.raw), &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: tool and route differ\ntool:  %s\nroute: %s", what, toolJSON, r.raw)
		}
	}

	raw, out := dispatchTool(t, reg, me, "teacher.llm_routing.get", map[string]any{})
	if out["ok"] != true || out["teacher_id"] != tid || get(out, "routing", "enabled") != false {
		t.Fatalf("get: %s", raw)
	}
	same("get", raw, must(t, call(t, srv, tid, "GET", "/teacher/llm-routing", nil), 200))

	raw, out = dispatchTool(t, reg, me, "teacher_llm_routing_simulate", map[string]any{"kind": "chat.agent", "needs_tools": true})
	if get(out, "decision", "reason") != "routing_disabled" || get(out, "effective", "provider") != "school" {
		t.Fatalf("simulate: %s", raw)
	}
	same("simulate", raw, must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/simulate",
		map[string]any{"kind": "chat.agent", "needs_tools": true}), 200))

	// Simulating a config before proposing it.
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.simulate", map[string]any{"kind": "chat.agent", "config": backupConfig()})
	if out["config_override"] != true || get(out, "decision", "reason") != "matched" || get(out, "effective", "provider") != "backup" {
		t.Fatalf("simulate override: %s", raw)
	}

	// propose → get (the proposal) → apply → get shows the applied config.
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.propose", map[string]any{"note": "用备用模型", "config": backupConfig()})
	id, _ := out["proposal_id"].(string)
	if out["status"] != "pending" || id == "" || out["teacher_id"] != tid {
		t.Fatalf("propose: %s", raw)
	}
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.get", map[string]any{"proposal_id": id})
	if get(out, "proposal", "status") != "pending" || get(out, "proposal", "note") != "用备用模型" {
		t.Fatalf("get proposal: %s", raw)
	}
	same("get proposal", raw, must(t, call(t, srv, tid, "GET", "/teacher/llm-routing/proposals/"+id, nil), 200))

	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.apply", map[string]any{"proposal_id": id})
	if out["status"] != "applied" || out["version"] != float64(1) {
		t.Fatalf("apply: %s", raw)
	}
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.get", map[string]any{"history_limit": 5})
	if get(out, "routing", "enabled") != true || get(out, "routing", "channels", 0, "target", "provider") != "backup" ||
		get(out, "routing", "channels", 0, "target", "model") != "backup-model" || get(out, "history", 0, "source") != "proposal:"+id ||
		get(out, "proposals", 0, "status") != "applied" {
		t.Fatalf("get after apply: %s", raw)
	}
	same("get after apply", raw, must(t, call(t, srv, tid, "GET", "/teacher/llm-routing?history_limit=5", nil), 200))
	if resp := chat(t, s.ClientFor(tid, e.base)); resp.Provider != "backup" {
		t.Fatalf("the applied model is not used: %s", resp.Provider)
	}
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.simulate", map[string]any{"kind": "chat.agent"})
	if get(out, "decision", "reason") != "matched" || get(out, "effective", "source") != "teacher_model_config" {
		t.Fatalf("simulate after apply: %s", raw)
	}

	// A reviewed proposal is refused with the route's detail.
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.apply", map[string]any{"proposal_id": id, "approve": false})
	if out["error"] != "proposal_already_reviewed" || get(out, "detail", "status") != "applied" {
		t.Fatalf("second review: %s", raw)
	}

	// Reject one, then disable (version 2), then roll back to version 1.
	_, out = dispatchTool(t, reg, me, "teacher.llm_routing.propose", map[string]any{"config": map[string]any{"enabled": false}})
	rejected, _ := out["proposal_id"].(string)
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.apply", map[string]any{"proposal_id": rejected, "approve": false})
	if out["status"] != "rejected" {
		t.Fatalf("reject: %s", raw)
	}
	_, out = dispatchTool(t, reg, me, "teacher.llm_routing.propose", map[string]any{"config": map[string]any{"enabled": false}})
	off, _ := out["proposal_id"].(string)
	if _, out = dispatchTool(t, reg, me, "teacher.llm_routing.apply", map[string]any{"proposal_id": off, "approve": true}); out["version"] != float64(2) {
		t.Fatalf("disable: %v", out)
	}
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.get", map[string]any{"proposal_status": "rejected"})
	if get(out, "routing", "enabled") != false || len(get(out, "proposals").([]any)) != 1 || get(out, "proposals", 0, "proposal_id") != rejected {
		t.Fatalf("get rejected: %s", raw)
	}
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.rollback", map[string]any{"target_version": 1, "note": "恢复备用模型"})
	if out["version"] != float64(3) || out["restored_from_version"] != float64(1) {
		t.Fatalf("rollback: %s", raw)
	}
	_, out = dispatchTool(t, reg, me, "teacher.llm_routing.get", map[string]any{})
	if get(out, "routing", "channels", 0, "target", "provider") != "backup" || get(out, "history", 0, "note") != "恢复备用模型" {
		t.Fatalf("get after rollback: %v", out)
	}
	raw, out = dispatchTool(t, reg, me, "teacher.llm_routing.rollback", map[string]any{"target_version": 99})
	if out["error"] != "target_version_not_found" {
		t.Fatalf("rollback 99: %s", raw)
	}

	// Another teacher sees and changes only their own settings.
	other := teacherPrincipal("t_beta")
	_, out = dispatchTool(t, reg, other, "teacher.llm_routing.get", map[string]any{})
	if out["teacher_id"] != "t_beta" || get(out, "routing", "enabled") != false || len(get(out, "proposals").([]any)) != 0 ||
		len(get(out, "history").([]any)) != 0 {
		t.Fatalf("another teacher's view: %v", out)
	}
	if _, out = dispatchTool(t, reg, other, "teacher.llm_routing.get", map[string]any{"proposal_id": id}); out["error"] != "proposal_not_found" {
		t.Fatalf("another teacher reads the proposal: %v", out)
	}
	if _, out = dispatchTool(t, reg, other, "teacher.llm_routing.apply", map[string]any{"proposal_id": off}); out["error"] != "proposal_not_found" {
		t.Fatalf("another teacher reviews the proposal: %v", out)
	}
	if _, out = dispatchTool(t, reg, other, "teacher.llm_routing.rollback", map[string]any{"target_version": 1}); out["error"] != "history_not_found" {
		t.Fatalf("another teacher's rollback: %v", out)
	}
	if s.ClientFor("t_beta", e.base) != e.base {
		t.Fatal("another teacher is affected")
	}
}

func TestRoutingToolsRefusals(t *testing.T) {
	e, _ := twoProviderEnv(t)
	s := e.service(nil)
	reg := routingRegistry(t, s)
	me := teacherPrincipal("t_alpha")

	// A student may call none of them.
	student := caller.Principal{Tenant: "t1", Role: caller.RoleStudent, StudentID: "S001", Via: caller.Token}
	for _, tl := range reg.All() {
		if _, out := dispatchTool(t, reg, student, tl.Name, map[string]any{}); out["error"] != "permission denied" {
			t.Errorf("student %s: %v", tl.Name, out)
		}
	}

	// Bad arguments are refused by the schema before anything runs.
	for _, c := range []struct {
		tool  string
		args  any
		issue string
	}{
		{"teacher.llm_routing.get", map[string]any{"teacher_id": "t_beta"}, "arguments.teacher_id: unexpected"},
		{"teacher.llm_routing.get", map[string]any{"history_limit": "all"}, "arguments.history_limit: expected integer"},
		{"teacher.llm_routing.simulate", map[string]any{"needs_tools": "yes"}, "arguments.needs_tools: expected boolean"},
		{"teacher.llm_routing.simulate", map[string]any{"config": "enabled"}, "arguments.config: expected object"},
		{"teacher.llm_routing.propose", map[string]any{"note": "x"}, "arguments.config: required"},
		{"teacher.llm_routing.propose", map[string]any{"config": []any{}}, "arguments.config: expected object"},
		{"teacher.llm_routing.apply", map[string]any{}, "arguments.proposal_id: required"},
		{"teacher.llm_routing.apply", map[string]any{"proposal_id": "p", "approve": "yes"}, "arguments.approve: expected boolean"},
		{"teacher.llm_routing.rollback", map[string]any{"target_version": "1"}, "arguments.target_version: expected integer"},
		{"teacher.llm_routing.rollback", map[string]any{"target_version": 1.5}, "arguments.target_version: expected integer"},
		{"teacher.llm_routing.rollback", map[string]any{}, "arguments.target_version: required"},
	} {
		raw, out := dispatchTool(t, reg, me, c.tool, c.args)
		if out["error"] != "invalid_arguments" || !strings.Contains(raw, c.issue) {
			t.Errorf("%s %v: %s", c.tool, c.args, raw)
		}
	}

	// The domain's refusals come with their detail.
	inexpressible := map[string]any{"channels": []any{channel("a", "backup", "backup-model")},
		"rules": []any{rule("r", "a", map[string]any{"skills": []any{"physics-homework-generator"}})}}
	huge := map[string]any{"enabled": true, "note": strings.Repeat("长", maxCandidateBytes/3+1)}
	for _, c := range []struct {
		tool, code, mention string
		args                map[string]any
	}{
		{"teacher.llm_routing.propose", "routing_not_expressible", "per-skill", map[string]any{"config": inexpressible}},
		{"teacher.llm_routing.propose", "invalid_routing_config", "elsewhere", map[string]any{"config": map[string]any{
			"channels": []any{channel("a", "elsewhere", "x")}, "rules": []any{rule("r", "a", nil)}}}},
		{"teacher.llm_routing.propose", "config_too_large", "limit_bytes", map[string]any{"config": huge}},
		{"teacher.llm_routing.simulate", "config_too_large", "limit_bytes", map[string]any{"config": huge}},
		{"teacher.llm_routing.propose", "invalid_note", "500", map[string]any{"config": backupConfig(), "note": strings.Repeat("x", 501)}},
		{"teacher.llm_routing.apply", "proposal_not_found", "proposal_000000000000", map[string]any{"proposal_id": "proposal_000000000000"}},
		{"teacher.llm_routing.get", "proposal_not_found", "../x", map[string]any{"proposal_id": "../x"}},
		{"teacher.llm_routing.rollback", "invalid_target_version", "invalid_target_version", map[string]any{"target_version": 0}},
		{"teacher.llm_routing.rollback", "history_not_found", "history_not_found", map[string]any{"target_version": 1}},
	} {
		raw, out := dispatchTool(t, reg, me, c.tool, c.args)
		if out["error"] != c.code || out["tool"] != c.tool || !strings.Contains(raw, c.mention) {
			t.Errorf("%s %s: %s", c.tool, c.code, raw)
		}
	}
	// A simulated config that is not valid is answered, not refused (as
	// the route does).
	raw, out := dispatchTool(t, reg, me, "teacher.llm_routing.simulate", map[string]any{"kind": "chat.agent", "config": inexpressible})
	if get(out, "override_validation", "ok") != false || get(out, "decision", "reason") != "routing_invalid" {
		t.Errorf("simulate an inexpressible config: %s", raw)
	}
}

// Through the agent loop with the fake LLM: the model reads the teacher's
// routing, proposes a change and applies it once the teacher confirms.
func TestAgentChangesRouting(t *testing.T) {
	e, _ := twoProviderEnv(t)
	s := e.service(nil)
	model := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "agent", BaseURL: model.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
	a := &agent.Agent{LLM: client, Tools: routingRegistry(t, s), Prompts: agent.NewPrompts(e.dir)}
	cfg, _ := json.Marshal(map[string]any{"config": backupConfig(), "note": "老师要求改用备用模型"})
	model.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function", Function: llm.FunctionCall{
			Name: "teacher_llm_routing_get", Arguments: `{"history_limit":3}`}}}},
		llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c2", Type: "function", Function: llm.FunctionCall{
			Name: "teacher_llm_routing_propose", Arguments: string(cfg)}}}},
		llmtest.Step{Reply: "已提交路由提议，确认后应用。"},
	)
	res, err := a.Run(context.Background(), agent.Input{Caller: teacherPrincipal("t_alpha"),
		Messages: []llm.Message{{Role: "user", Content: "把我的对话模型换成备用的 backup-model"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ToolCalls != 2 || res.Reply != "已提交路由提议，确认后应用。" {
		t.Fatalf("result %+v", res)
	}
	reqs := model.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	if got := reqs[1].Messages[len(reqs[1].Messages)-1]; got.Role != "tool" || !strings.Contains(got.Content, `"teacher_id":"t_alpha"`) ||
		!strings.Contains(got.Content, `"enabled":false`) {
		t.Errorf("get's tool message %+v", got)
	}
	last := reqs[2].Messages[len(reqs[2].Messages)-1]
	var proposed map[string]any
	if err := json.Unmarshal([]byte(last.Content), &proposed); err != nil || proposed["status"] != "pending" {
		t.Fatalf("propose's tool message %q", last.Content)
	}
	id, _ := proposed["proposal_id"].(string)

	model.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c3", Type: "function", Function: llm.FunctionCall{
			Name: "teacher_llm_routing_apply", Arguments: `{"proposal_id":"` + id + `"}`}}}},
		llmtest.Step{Reply: "已应用，版本 1。"},
	)
	if _, err := a.Run(context.Background(), agent.Input{Caller: teacherPrincipal("t_alpha"),
		Messages: []llm.Message{{Role: "user", Content: "确认，应用吧"}}}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Routing("t_alpha", RoutingQuery{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(out)
	var view map[string]any
	json.Unmarshal(data, &view)
	if get(view, "routing", "channels", 0, "target", "model") != "backup-model" || get(view, "history", 0, "version") != float64(1) {
		t.Fatalf("after the agent applied: %s", data)
	}
}
