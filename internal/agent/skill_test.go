package agent

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/skills"
)

// tenantSkill writes DATA_DIR/skills/<id>/skill.yaml (and its prompt
// module) and loads it through a skills.Set, as a tenant would.
func tenantSkill(t *testing.T, data, id, manifest, module string) *skills.Skill {
	t.Helper()
	dir := filepath.Join(data, "skills", id)
	mustWrite(t, filepath.Join(dir, "skill.yaml"), manifest)
	if module != "" {
		mustWrite(t, filepath.Join(dir, "prompt.md"), module)
	}
	set, err := skills.New(skills.Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	sk, ok := set.Get(id)
	if !ok {
		_, errs := set.List()
		t.Fatalf("skill %s not loaded: %+v", id, errs)
	}
	if sk.Source != skills.SourceTenant {
		t.Fatalf("skill %s source %s", id, sk.Source)
	}
	return sk
}

func wireNames(r llmtest.Recorded) []string {
	var names []string
	for _, tl := range r.Tools {
		names = append(names, tl.Function.Name)
	}
	return names
}

func TestSkillNarrowsTools(t *testing.T) {
	f := setup(t)
	// exam.* allowed, but exam.students.list denied (deny wins); an allowed
	// name that is no tool (chart.exec) is ignored.
	sk := tenantSkill(t, f.data, "exam-lite", `
title: 考试速览
desc: 只看考试概况。
allowed_roles: [teacher]
agent:
  prompt_modules: [prompt.md]
  tools:
    allow: [exam.*, chart.exec]
    deny: [exam.students.list, exam.student.get]
`, "只回答考试概况，不要列出学生名单。")

	f.srv.Script(
		// The model asks for the denied tool anyway, and an allowed one.
		llmtest.Step{ToolCalls: []llm.ToolCall{
			toolCall("d1", "exam_students_list", `{"exam_id":"EX1"}`),
			toolCall("a1", "exam_get", `{"exam_id":"EX1"}`),
		}},
		llmtest.Step{Reply: "EX1 共 3 人参加。"},
	)
	res := run(t, f, Input{Caller: teacher, Messages: userSays("EX1 的学生名单"), ExtraSystem: "老师偏好：简洁", Skill: sk})
	if res.Reply != "EX1 共 3 人参加。" || res.ToolCalls != 1 || res.Rounds != 2 {
		t.Fatalf("result %+v", res)
	}
	reqs := f.srv.Requests()
	for i, r := range reqs {
		names := wireNames(r)
		if slices.Contains(names, "exam_students_list") || slices.Contains(names, "exam_student_get") {
			t.Errorf("request %d offers a denied tool: %v", i, names)
		}
		if len(names) != 7 || !slices.Contains(names, "exam_get") || slices.Contains(names, "chart_exec") {
			t.Errorf("request %d tools %v", i, names)
		}
	}
	// Role prompt, then the skill prompt, then the server's extra text.
	m := reqs[0].Messages
	if len(m) != 4 || m[0].Content != NewPrompts("").For("teacher") || m[1].Role != "system" ||
		!strings.HasPrefix(m[1].Content, "激活技能：exam-lite（考试速览）\n只看考试概况。") ||
		!strings.Contains(m[1].Content, "不要列出学生名单") || m[2].Content != "老师偏好：简洁" || m[3].Role != "user" {
		t.Fatalf("messages %+v", m)
	}
	tail := lastMessages(reqs[1], 2)
	want := `{"error":"tool_not_allowed","role":"teacher","skill_id":"exam-lite","tool":"exam.students.list"}`
	if tail[0].ToolCallID != "d1" || tail[0].Content != want {
		t.Errorf("denied call answered %+v", tail[0])
	}
	if strings.Contains(tail[0].Content, "李雷") || !strings.Contains(tail[1].Content, `"exam_id":"EX1"`) {
		t.Errorf("tool messages %+v", tail)
	}

	// The JSON tool protocol is refused the same way.
	f.srv.Script(
		llmtest.Step{Reply: `{"tool":"exam.students.list","arguments":{"exam_id":"EX1"}}`},
		llmtest.Step{Reply: "无法查看名单。"},
	)
	res = run(t, f, Input{Caller: teacher, Messages: userSays("名单"), Skill: sk})
	if res.Reply != "无法查看名单。" || res.ToolCalls != 0 {
		t.Fatalf("json protocol: %+v", res)
	}
	if note := lastMessages(f.srv.Requests()[3], 1)[0]; note.Role != "user" || !strings.Contains(note.Content, "不可用") {
		t.Errorf("json refusal %+v", note)
	}
}

func TestSkillEmptyAllowListOffersNoTools(t *testing.T) {
	f := setup(t)
	sk := tenantSkill(t, f.data, "talk-only", "title: 只聊天\nagent:\n  tools:\n    allow: []\n", "")
	f.srv.Script(llmtest.Step{Reply: "好的。"})
	run(t, f, Input{Caller: teacher, Messages: userSays("你好"), Skill: sk})
	if _, ok := f.srv.Requests()[0].Body["tools"]; ok {
		t.Error("tools offered under an empty allow list")
	}
}

func TestSkillBuiltinTeacherOps(t *testing.T) {
	f := setup(t)
	set, err := skills.New(skills.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sk, d := set.Resolve("teacher", "", "帮我做一下考试分析")
	if d.Effective != "physics-teacher-ops" || sk == nil {
		t.Fatalf("decision %+v", d)
	}
	f.srv.Script(llmtest.Step{Reply: "好的"})
	run(t, f, Input{Caller: teacher, Messages: userSays("帮我做一下考试分析"), Skill: sk})
	r := f.srv.Requests()[0]
	if names := wireNames(r); len(names) != 9 { // every exam tool (exam.*)
		t.Errorf("teacher-ops tools %v", names)
	}
	if !strings.HasPrefix(r.Messages[1].Content, "激活技能：physics-teacher-ops（教师运营）") ||
		!strings.Contains(r.Messages[1].Content, "exam.analysis.get") {
		t.Errorf("skill prompt %q", r.Messages[1].Content)
	}
	// Student focus does not allow exam.list or the range tools.
	sk, _ = set.Get("physics-student-focus")
	f.srv.Script(llmtest.Step{Reply: "好的"})
	run(t, f, Input{Caller: teacher, Messages: userSays("李雷的画像"), Skill: sk})
	if names := wireNames(f.srv.Requests()[1]); !slices.Equal(names, []string{"exam_analysis_get", "exam_get", "exam_student_get"}) {
		t.Errorf("student-focus tools %v", names)
	}
}

func TestSkillBudgetsCapped(t *testing.T) {
	// A skill with smaller budgets tightens the Agent's: 2 rounds, then the
	// final call without tools.
	f := setup(t)
	tight := tenantSkill(t, f.data, "tight", "agent:\n  budgets: {max_tool_rounds: 2, max_tool_calls: 12}\n", "")
	f.srv.Respond(alwaysTools("够了。"))
	res := run(t, f, Input{Caller: teacher, Messages: userSays("分析 EX1"), Skill: tight})
	if res.Reply != "够了。" || res.ToolCalls != 2 || res.Rounds != 3 {
		t.Fatalf("tight rounds: %+v", res)
	}

	// A skill's larger budgets cannot loosen the Agent's (5 rounds).
	f = setup(t)
	loose := tenantSkill(t, f.data, "loose", "agent:\n  budgets: {max_tool_rounds: 50, max_tool_calls: 100}\n", "")
	f.srv.Respond(alwaysTools("够了。"))
	res = run(t, f, Input{Caller: teacher, Messages: userSays("分析 EX1"), Skill: loose})
	if res.ToolCalls != DefaultMaxRounds || res.Rounds != DefaultMaxRounds+1 {
		t.Fatalf("loose skill not capped: %+v", res)
	}
	// Nor a configured global budget (CHAT_MAX_TOOL_ROUNDS = 3).
	f.agent.MaxRounds = 3
	f.srv.Respond(alwaysTools("够了。"))
	res = run(t, f, Input{Caller: teacher, Messages: userSays("分析 EX1"), Skill: loose})
	if res.ToolCalls != 3 || res.Rounds != 4 {
		t.Fatalf("loose skill over the configured budget: %+v", res)
	}

	// The call budget: one call, the rest of the round is refused.
	f = setup(t)
	one := tenantSkill(t, f.data, "one-call", "agent:\n  budgets: {max_tool_calls: 1}\n", "")
	f.srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{
			toolCall("a", "exam_get", `{"exam_id":"EX1"}`),
			toolCall("b", "exam_list", `{}`),
		}},
		llmtest.Step{Reply: "总结"},
	)
	res = run(t, f, Input{Caller: teacher, Messages: userSays("分析"), Skill: one})
	if res.Reply != "总结" || res.ToolCalls != 1 || res.Rounds != 2 {
		t.Fatalf("call budget: %+v", res)
	}
	tail := lastMessages(f.srv.Requests()[1], 3)
	if tail[1].Content != `{"error":"tool_budget_exhausted","tool":"exam.list"}` || tail[2].Content != budgetNote {
		t.Errorf("messages %+v", tail)
	}
}
