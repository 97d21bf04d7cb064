package tools_test

import (
	"context"
	"encoding/json"
	"slices"
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

// These tests run tools the way a chat turn does: the agent loop over the
// whole registry, talking HTTP to the fake LLM, which asks for a tool; the
// tool's result must reach the model's next request.

var (
	teacher = caller.Principal{Role: caller.RoleTeacher, TeacherID: "t1"}
	student = caller.Principal{Role: caller.RoleStudent, TeacherID: "teacher", StudentID: "S01"}
)

func newAgent(t *testing.T) (*agent.Agent, *llmtest.Server, string) {
	t.Helper()
	reg, data := tools.NewTestTenant(t)
	srv := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "test", BaseURL: srv.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
	return &agent.Agent{LLM: client, Tools: reg, Prompts: agent.NewPrompts(data)}, srv, data
}

func call(id, name, args string) llm.ToolCall {
	return llm.ToolCall{ID: id, Type: "function", Function: llm.FunctionCall{Name: name, Arguments: args}}
}

func turn(t *testing.T, a *agent.Agent, c caller.Principal, text string) agent.Result {
	t.Helper()
	res, err := a.Run(context.Background(), agent.Input{Caller: c, Messages: []llm.Message{{Role: "user", Content: text}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// toolResults are the tool messages of a recorded request, by call id.
func toolResults(r llmtest.Recorded) map[string]string {
	out := map[string]string{}
	for _, m := range r.Messages {
		if m.Role == "tool" {
			out[m.ToolCallID] = m.Content
		}
	}
	return out
}

func wireNames(r llmtest.Recorded) []string {
	var out []string
	for _, tl := range r.Tools {
		out = append(out, tl.Function.Name)
	}
	return out
}

func TestAgentTeacherListsAssignments(t *testing.T) {
	a, srv, _ := newAgent(t)
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c1", "assignment_list", `{}`)}},
		llmtest.Step{Reply: "共有 2 份作业。"},
	)
	res := turn(t, a, teacher, "现在有哪些作业？")
	if res.Reply != "共有 2 份作业。" || res.ToolCalls != 1 {
		t.Fatalf("result %+v", res)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	names := wireNames(reqs[0])
	for _, n := range []string{"assignment_list", "assignment_generate", "lesson_capture", "student_profile_update",
		"core_example_register", "exam_analysis_charts_generate", "exam_get"} {
		if !slices.Contains(names, n) {
			t.Errorf("teacher lacks %s: %v", n, names)
		}
	}
	got := toolResults(reqs[1])["c1"]
	var body struct {
		Assignments []struct {
			AssignmentID string `json:"assignment_id"`
		} `json:"assignments"`
	}
	if err := json.Unmarshal([]byte(got), &body); err != nil || len(body.Assignments) != 2 || body.Assignments[0].AssignmentID != "A_S01" {
		t.Errorf("tool result %s (%v)", got, err)
	}
}

// TestAgentStudentSeesOnlyItself: the student's tutor gets the student
// tools only, and a model-supplied id of another student is refused in
// the tool result the model reads next.
func TestAgentStudentSeesOnlyItself(t *testing.T) {
	a, srv, _ := newAgent(t)
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c1", "student_profile_get", `{"student_id":"S02"}`),
			call("c2", "assignment_list", `{}`)}},
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c3", "student_profile_get", `{}`)}},
		llmtest.Step{Reply: "你需要加强受力分析。"},
	)
	res := turn(t, a, student, "看看韩梅梅的画像，再看看我的")
	if res.Reply != "你需要加强受力分析。" {
		t.Fatalf("result %+v", res)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	if names := wireNames(reqs[0]); !slices.Equal(names, []string{"assignment_get", "assignment_today", "student_profile_get"}) {
		t.Errorf("student tools %v", names)
	}
	first := toolResults(reqs[1])
	if first["c1"] != `{"error":"forbidden_student_scope","tool":"student.profile.get"}` {
		t.Errorf("other student's profile: %s", first["c1"])
	}
	if first["c2"] != `{"error":"permission denied","tool":"assignment.list"}` {
		t.Errorf("teacher tool: %s", first["c2"])
	}
	own := toolResults(reqs[2])["c3"]
	if !strings.Contains(own, `"student_name":"李雷"`) || strings.Contains(own, "韩梅梅") {
		t.Errorf("own profile: %s", own)
	}
}

func TestAgentChartLinks(t *testing.T) {
	a, srv, _ := newAgent(t)
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c1", "exam_analysis_charts_generate", `{"exam_id":"EX1","chart_types":["totals"]}`)}},
		llmtest.Step{Reply: "![EX1 总分分布](/t/school/exam/EX1/charts/totals.svg)"},
	)
	res := turn(t, a, teacher, "画一下 EX1 的总分分布")
	if !strings.Contains(res.Reply, "totals.svg") {
		t.Fatalf("reply %q", res.Reply)
	}
	got := toolResults(srv.Requests()[1])["c1"]
	want := `{"charts":[{"format":"svg","name":"totals","title":"总分分布","url":"/t/school/exam/EX1/charts/totals.svg"}],` +
		`"exam_id":"EX1","markdown":"![EX1 总分分布](/t/school/exam/EX1/charts/totals.svg)","ok":true}`
	if got != want {
		t.Errorf("tool result\n got %s\nwant %s", got, want)
	}
}

// TestAgentCaptureThenRegister: two rounds, the second tool using what the
// first one made (a lesson's example registered as a core example).
func TestAgentCaptureThenRegister(t *testing.T) {
	a, srv, _ := newAgent(t)
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c1", "lesson_capture",
			`{"lesson_id":"L1","topic":"受力分析","sources":["uploads/up_1/handout.md"]}`)}},
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c2", "core_example_register",
			`{"example_id":"CE010","kp_id":"KP-F01","core_model":"隔离法","from_lesson":"L1","lesson_example_id":"E002"}`)}},
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c3", "core_example_search", `{"example_id":"CE010"}`)}},
		llmtest.Step{Reply: "已采集并登记。"},
	)
	res := turn(t, a, teacher, "采集这节课的讲义，把第 2 题登记为核心例题")
	if res.Reply != "已采集并登记。" || res.ToolCalls != 3 {
		t.Fatalf("result %+v", res)
	}
	reqs := srv.Requests()
	if c1 := toolResults(reqs[1])["c1"]; !strings.Contains(c1, `"examples_count":2`) || !strings.Contains(c1, "斜面上的物块匀速下滑") {
		t.Errorf("capture result %s", c1)
	}
	if c2 := toolResults(reqs[2])["c2"]; !strings.Contains(c2, `"output":"[OK] Registered core example CE010"`) {
		t.Errorf("register result %s", c2)
	}
	if c3 := toolResults(reqs[3])["c3"]; !strings.Contains(c3, `"core_model":"隔离法"`) || !strings.Contains(c3, `"stem_ref":"core_examples/stems/CE010.md"`) {
		t.Errorf("search result %s", c3)
	}
}

// TestAgentInvalidArguments: a schema refusal reaches the model, and the
// tool does not run.
func TestAgentInvalidArguments(t *testing.T) {
	a, srv, _ := newAgent(t)
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{call("c1", "assignment_requirements_save",
			`{"assignment_id":"A_X","requirements":"都要","teacher_id":"t2"}`)}},
		llmtest.Step{Reply: "请补充作业要求。"},
	)
	turn(t, a, teacher, "保存作业要求")
	got := toolResults(srv.Requests()[1])["c1"]
	want := `{"error":"invalid_arguments","issues":["arguments.requirements: expected object","arguments.teacher_id: unexpected"],"tool":"assignment.requirements.save"}`
	if got != want {
		t.Errorf("tool result\n got %s\nwant %s", got, want)
	}
}
