package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/tools"
)

// allToolsSkill is a tenant skill that narrows no tool, so that a tool no
// built-in skill offers can still be run through the agent here.
const allToolsSkill = "all-tools"

// studentToolNames are the tools a student's tutor may call (wire names).
var studentToolNames = []string{"assignment_get", "assignment_today", "student_profile_get"}

// toolCase is one tool called through the agent: the model (the fake LLM)
// calls it with args, and the tool message it gets back must be a JSON
// object without "error" that contains every string of want.
type toolCase struct {
	tool string
	// args is the call's JSON arguments; {{name}} is replaced by what an
	// earlier case saved under name.
	args string
	want []string
	// save keeps values of the result for later cases' args.
	save func(res map[string]any, vars map[string]string)
	// check looks further: at the result, or at what the tool wrote.
	check func(t *testing.T, e *env, res map[string]any)
}

// toolCases covers every tool of a tenant's registry, in the order they
// run (a case may use what an earlier one made: a proposal to apply).
func toolCases(data string) []toolCase {
	pdf := func(rel string) func(t *testing.T, e *env, res map[string]any) {
		return func(t *testing.T, e *env, res map[string]any) {
			b, err := os.ReadFile(filepath.Join(data, filepath.FromSlash(rel)))
			if err != nil || !bytes.HasPrefix(b, []byte("%PDF")) {
				t.Errorf("%s is not a PDF (%v)", rel, err)
			}
		}
	}
	return []toolCase{
		// Exams.
		{tool: "exam.list", args: `{}`, want: []string{`"exam_id":"EX_ALL"`}},
		{tool: "exam.get", args: `{"exam_id":"EX_ALL"}`, want: []string{`"exam_id":"EX_ALL"`, `"students"`}},
		{tool: "exam.analysis.get", args: `{"exam_id":"EX_ALL"}`, want: []string{`"exam_id":"EX_ALL"`, `"Q1"`}},
		{tool: "exam.students.list", args: `{"exam_id":"EX_ALL","limit":3}`, want: []string{"李雷", "韩梅梅", "王芳"}},
		{tool: "exam.student.get", args: `{"exam_id":"EX_ALL","student_id":"S002"}`, want: []string{"韩梅梅", `"Q3"`}},
		{tool: "exam.question.get", args: `{"exam_id":"EX_ALL","question_id":"Q2"}`, want: []string{`"Q2"`}},
		{tool: "exam.question.batch.get", args: `{"exam_id":"EX_ALL","question_nos":[1,3]}`, want: []string{`"Q1"`, `"Q3"`}},
		{tool: "exam.range.top_students", args: `{"exam_id":"EX_ALL","start_question_no":1,"end_question_no":3,"top_n":2}`,
			want: []string{`"question_ids":["Q1","Q2","Q3"]`, `"student_id":"S003","student_name":"王芳"`}},
		{tool: "exam.range.summary.batch", args: `{"exam_id":"EX_ALL","ranges":[{"label":"选择题","start":1,"end":2},{"label":"计算题","start":3,"end":3}]}`,
			want: []string{"选择题", "计算题"}},
		{tool: "exam.analysis.charts.generate", args: `{"exam_id":"EX_ALL","chart_types":["totals"]}`,
			want: []string{`"url":"/t/a/exam/EX_ALL/charts/totals.svg"`},
			check: func(t *testing.T, e *env, res map[string]any) {
				// The link the model is given is served, under the tenant's prefix.
				r := e.get("/t/a/exam/EX_ALL/charts/totals.svg")
				if r.status != 200 || !bytes.Contains(r.body, []byte("<svg")) {
					t.Errorf("chart link: %d %.200s", r.status, r.body)
				}
			}},

		// Assignments and lessons.
		{tool: "assignment.list", args: `{}`, want: []string{`"assignment_id":"A_S001"`}},
		{tool: "assignment.get", args: `{"assignment_id":"A_S001"}`, want: []string{`"assignment_id":"A_S001"`, "题目 B1"}},
		{tool: "assignment.today", args: `{"student_id":"S001"}`, want: []string{`"assignment_id":"A_S001"`}},
		{tool: "assignment.requirements.save", args: `{"assignment_id":"A_REQ","date":"2026-03-05","requirements":` + validRequirements + `}`,
			want: []string{`"path":"assignments/A_REQ/requirements.json"`}},
		{tool: "assignment.generate", args: `{"assignment_id":"A_GEN","kp":"受力分析","per_kp":3,"requirements":` + validRequirements + `}`,
			want: []string{"[OK]", `"question_count":3`}},
		{tool: "assignment.render", args: `{"assignment_id":"A_S001"}`, want: []string{`"pdf":"assignments/A_S001/assignment_A_S001.pdf"`},
			check: pdf("assignments/A_S001/assignment_A_S001.pdf")},
		{tool: "assignment.progress", args: `{"assignment_id":"A_S001"}`, want: []string{`"assignment_id":"A_S001"`, `"expected_count":1`}},
		{tool: "lesson.list", args: `{}`, want: []string{`"lesson_id":"L0"`, "牛顿第一定律"}},
		{tool: "lesson.capture", args: `{"lesson_id":"L1","topic":"受力分析","sources":["lessons/L0/handout.md"]}`,
			want: []string{`"lesson_id":"L1"`, `"examples_count":2`}},

		// Students.
		{tool: "student.search", args: `{"query":"梅梅"}`, want: []string{`"student_id":"S002"`}},
		{tool: "student.profile.get", args: `{"student_id":"S001"}`, want: []string{"李雷", "受力分析"}},
		{tool: "student.profile.update", args: `{"student_id":"S003","weak_kp":"摩擦力","interaction_note":"课后答疑"}`,
			want: []string{"[OK] Updated profile: S003"}},
		{tool: "student.import", args: `{"exam_id":"EX_ALL"}`, want: []string{`"source_file":"exams/EX_ALL/derived/responses_scored.csv"`, `"total_students":3`}},

		// Core examples.
		{tool: "core_example.search", args: `{"kp_id":"KP-M01"}`, want: []string{`"example_id":"CE001"`}},
		{tool: "core_example.register", args: `{"example_id":"CE002","kp_id":"KP-M02","core_model":"动能定理","stem_text":"小球从斜面顶端滑下……"}`,
			want: []string{"[OK] Registered core example CE002"}},
		{tool: "core_example.render", args: `{"example_id":"CE001"}`, want: []string{`"pdf":"core_examples/pdf/core_example_CE001.pdf"`},
			check: pdf("core_examples/pdf/core_example_CE001.pdf")},

		// The teacher's workspace and memory.
		{tool: "teacher.workspace.init", args: `{}`, want: []string{`"workspace":"teacher_workspaces/t_zhang"`}},
		{tool: "teacher.memory.get", args: `{"file":"MEMORY"}`, want: []string{"先展示板书"}},
		{tool: "teacher.memory.search", args: `{"query":"板书"}`, want: []string{"先展示板书"}},
		{tool: "teacher.memory.propose", args: `{"target":"MEMORY","title":"作业偏好","content":"布置作业时每次最多 5 道题。"}`,
			want: []string{`"proposal_id"`},
			save: func(res map[string]any, vars map[string]string) {
				vars["memory_proposal"], _ = res["proposal_id"].(string)
			}},
		{tool: "teacher.memory.apply", args: `{"proposal_id":"{{memory_proposal}}","approve":true}`, want: []string{`"status":"applied"`},
			check: func(t *testing.T, e *env, res map[string]any) {
				b, err := os.ReadFile(filepath.Join(data, "teacher_workspaces", "t_zhang", "MEMORY.md"))
				if err != nil || !strings.Contains(string(b), "每次最多 5 道题") {
					t.Errorf("teacher.memory.apply: the memory is not in MEMORY.md (%v): %s", err, b)
				}
			}},

		// The teacher's model routing.
		{tool: "teacher.llm_routing.get", args: `{}`, want: []string{`"teacher_id":"t_zhang"`}},
		{tool: "teacher.llm_routing.simulate", args: `{"kind":"chat.agent","needs_tools":true}`, want: []string{`"provider":"p0"`}},
		{tool: "teacher.llm_routing.propose", args: `{"note":"对话用 p0","config":{"enabled":true,` +
			`"channels":[{"id":"main_ch","title":"main_ch","target":{"provider":"p0","mode":"openai-chat","model":"fake-model"}}],` +
			`"rules":[{"id":"r1","priority":100,"match":{"roles":["teacher"],"kinds":["chat.agent"]},"route":{"channel_id":"main_ch"}}]}}`,
			want: []string{`"status":"pending"`},
			save: func(res map[string]any, vars map[string]string) {
				vars["routing_proposal"], _ = res["proposal_id"].(string)
			}},
		{tool: "teacher.llm_routing.apply", args: `{"proposal_id":"{{routing_proposal}}"}`, want: []string{`"status":"applied"`, `"version":1`}},
		{tool: "teacher.llm_routing.rollback", args: `{"target_version":1,"note":"恢复"}`, want: []string{`"restored_from_version":1`}},
	}
}

// validRequirements is an assignment checklist that passes the checks.
const validRequirements = `{"subject":"物理","topic":"受力分析","grade_level":"高一","class_level":"中等",` +
	`"core_concepts":["重力","弹力","摩擦力"],"typical_problem":"斜面上物体的受力","misconceptions":["漏力","多力","方向错","施力物体不清"],` +
	`"duration_minutes":40,"preferences":["A基础","B提升"]}`

// writeToolFixtures puts in a tenant's DATA_DIR something for every tool
// to act on: an exam with responses, profiles, a question bank, an
// assignment for S001 today, a lesson, a core example, the teacher's
// memory, and the all-tools skill.
func writeToolFixtures(t *testing.T, data string) {
	t.Helper()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(data, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeJSON := func(rel string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		write(rel, string(b))
	}

	qs := []exams.Question{
		{ID: "Q1", No: "1", MaxScore: 4, HasMax: true},
		{ID: "Q2", No: "2", MaxScore: 4, HasMax: true},
		{ID: "Q3", No: "3", MaxScore: 6, HasMax: true},
	}
	var rows []exams.Response
	for n, s := range [][2]string{{"S001", "李雷"}, {"S002", "韩梅梅"}, {"S003", "王芳"}} {
		for i, q := range qs {
			score := float64((n + i) % 5)
			rows = append(rows, exams.Response{ExamID: "EX_ALL", StudentID: s[0], StudentName: s[1], ClassName: "一班",
				QuestionID: q.ID, QuestionNo: q.No, RawValue: exams.FormatScore(score), HasRawValue: true, Score: score, Scored: true})
		}
	}
	write("exams/EX_ALL/manifest.json", `{"exam_id":"EX_ALL","generated_at":"2026-03-01T10:00:00","meta":{"subject":"物理","date":"2026-03-01"},"files":{}}`)
	write("exams/EX_ALL/derived/responses_scored.csv", string(exams.ResponsesCSV(rows)))
	write("exams/EX_ALL/derived/questions.csv", string(exams.QuestionsCSV(qs)))

	writeJSON("student_profiles/S001.json", map[string]any{"student_id": "S001", "student_name": "李雷",
		"class_name": "一班", "recent_weak_kp": []string{"受力分析"}})
	writeJSON("student_profiles/S002.json", map[string]any{"student_id": "S002", "student_name": "韩梅梅",
		"class_name": "一班", "aliases": []string{"梅梅"}})

	const bankHeader = "question_id,kp_id,difficulty,type,stem_ref,answer_ref,source,tags\n"
	write("question_bank/questions.csv", bankHeader+
		"B1,受力分析,basic,calc,question_bank/stems/B1.md,,bank,\n"+
		"B2,受力分析,basic,calc,question_bank/stems/B2.md,,bank,\n"+
		"B3,受力分析,medium,calc,question_bank/stems/B3.md,,bank,\n")
	for _, id := range []string{"B1", "B2", "B3"} {
		write("question_bank/stems/"+id+".md", "题目 "+id+"：一个物体静止在斜面上，画出受力分析图。")
	}
	writeJSON("assignments/A_S001/meta.json", map[string]any{"assignment_id": "A_S001", "date": time.Now().Format("2006-01-02"),
		"scope": "student", "student_ids": []string{"S001"}, "mode": "kp", "target_kp": []string{"受力分析"}})
	write("assignments/A_S001/questions.csv", bankHeader+
		"B1,受力分析,basic,calc,question_bank/stems/B1.md,,bank,\n"+
		"B2,受力分析,basic,calc,question_bank/stems/B2.md,,bank,\n")

	writeJSON("lessons/L0/lesson.json", map[string]any{"lesson_id": "L0", "summary": "牛顿第一定律"})
	write("lessons/L0/handout.md", "第3节 受力分析\n1. 物体静止在水平面上，受到几个力？\nA. 1个\nB. 2个\nC. 3个\n"+
		"2、 斜面上的物块匀速下滑，\n摩擦力方向如何？\n")

	write("core_examples/examples.csv", "example_id,kp_id,core_model,difficulty,source_ref,stem_ref,solution_ref,model_ref,discussion_ref,variant_ref,tags\n"+
		"CE001,KP-M01,整体法与隔离法,medium,课堂,core_examples/stems/CE001.md,,,,,\n")
	write("core_examples/stems/CE001.md", "两物块叠放在光滑水平面上，\n用水平力拉下面的物块，求两物块间的摩擦力。\n")

	write("teacher_workspaces/t_zhang/MEMORY.md", "# MEMORY\n\n## 讲评偏好\n讲评时先展示板书，再讲错因。\n")

	write("skills/"+allToolsSkill+"/skill.yaml", "schema_version: 2\ntitle: 全部工具\ndesc: 测试用技能：不收窄任何工具。\n"+
		"allowed_roles: [teacher, student]\nagent:\n  tools:\n    allow: ['*']\n")
}

// agentScript is the fake model of the test: a turn whose user message
// has a scripted call makes that tool call, then answers once the tool
// message is back; every turn's offered tools and tool result are kept,
// by the turn's user message.
type agentScript struct {
	mu      sync.Mutex
	calls   map[string]llm.ToolCall
	offered map[string][]string
	results map[string]string
}

func newAgentScript() *agentScript {
	return &agentScript{calls: map[string]llm.ToolCall{}, offered: map[string][]string{}, results: map[string]string{}}
}

func (s *agentScript) respond(req llmtest.Recorded) llmtest.Step {
	if req.Body["response_format"] != nil { // a student's profile judgement
		return llmtest.Step{Reply: `{"weak_kp":[],"strong_kp":[],"next_focus":"","evidence":""}`}
	}
	user := ""
	for _, m := range req.Messages {
		if m.Role == "user" {
			user = m.Content
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last := req.Messages[len(req.Messages)-1]; last.Role == "tool" {
		s.results[user] = last.Content
		return llmtest.Step{Reply: "done: " + user}
	}
	if _, seen := s.offered[user]; !seen {
		names := []string{}
		for _, tl := range req.Tools {
			names = append(names, tl.Function.Name)
		}
		slices.Sort(names)
		s.offered[user] = names
	}
	if call, ok := s.calls[user]; ok {
		return llmtest.Step{ToolCalls: []llm.ToolCall{call}}
	}
	return llmtest.Step{Reply: "ok: " + user}
}

func (s *agentScript) script(user string, call llm.ToolCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[user] = call
}

func (s *agentScript) turn(user string) (offered []string, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offered[user], s.results[user]
}

// mcpToolNames lists the tools of a tenant's MCP server (open mode: the
// caller is a teacher) through the SDK's client: every teacher tool of the
// tenant's registry.
func mcpToolNames(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "lectern-tools-agent-test", Version: "1"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	for tl, err := range s.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// Every tool of a tenant's registry works through the agent over the
// whole server: for each one, a teacher's chat job in which the (fake)
// model calls it with valid arguments gets a JSON result without an
// error, about the tenant's own fixture data. Each tool runs under the
// first built-in skill that offers it (the tenant's all-tools skill for a
// tool no built-in skill offers, which then fails the test: the agent
// could never call it). A tool the registry gains fails the test until it
// has a case; a student's turn is offered only the student tools.
func TestEveryToolThroughTheAgent(t *testing.T) {
	script := newAgentScript()
	fake := llmtest.NewServer(t)
	fake.Respond(script.respond)
	e := newEnv(t, withLLM(5*time.Second, 1, fake), func(c *Config) { c.Chat.Debounce = -1 })
	expect(t, e.putTenant("a", nil), 200, "")
	data, _ := e.tenantDirs("a")
	writeToolFixtures(t, data)

	// The tenant's teacher tools, from its own registry.
	registry := mcpToolNames(t, e.http.URL+"/t/a/mcp")
	cases := toolCases(data)
	byTool := map[string]bool{}
	for _, tc := range cases {
		byTool[tc.tool] = true
		if !slices.Contains(registry, tc.tool) {
			t.Errorf("case %s: no such tool in the registry", tc.tool)
		}
	}
	for _, name := range registry {
		if !byTool[name] {
			t.Errorf("tool %s has no case in toolCases", name)
		}
	}

	run := func(requestID, skill, text string) map[string]any {
		t.Helper()
		turn := teacherTurn(requestID, text)
		turn["skill_id"] = skill
		job := e.waitChat("/t/a", e.startChat("/t/a", turn)["job_id"].(string))
		if job["status"] != "done" || job["skill_id_effective"] != skill {
			t.Fatalf("%s: job %v", text, job)
		}
		return job
	}

	// Which tools each built-in teacher skill offers the model.
	var skillList struct {
		Skills []struct {
			ID           string   `json:"id"`
			Source       string   `json:"source"`
			AllowedRoles []string `json:"allowed_roles"`
		} `json:"skills"`
		Errors []any `json:"errors"`
	}
	if r := e.get("/t/a/skills"); r.status != 200 || json.Unmarshal(r.body, &skillList) != nil || len(skillList.Errors) > 0 {
		t.Fatalf("GET /skills: %d %.300s", r.status, r.body)
	}
	offeredBy := map[string]string{} // wire name → the first built-in skill offering it
	for _, sk := range skillList.Skills {
		if sk.Source != "builtin" || !slices.Contains(sk.AllowedRoles, "teacher") {
			continue
		}
		text := "which tools: " + sk.ID
		run("skill-"+sk.ID, sk.ID, text)
		offered, _ := script.turn(text)
		for _, name := range offered {
			if _, ok := offeredBy[name]; !ok {
				offeredBy[name] = sk.ID
			}
		}
	}
	// The all-tools skill offers every teacher tool of the registry.
	run("skill-all", allToolsSkill, "which tools: all")
	wire := make([]string, len(registry))
	for i, name := range registry {
		wire[i] = tools.WireName(name)
	}
	slices.Sort(wire)
	if offered, _ := script.turn("which tools: all"); !slices.Equal(offered, wire) {
		t.Errorf("a teacher is offered\n%v\nthe registry has\n%v", offered, wire)
	}

	vars := map[string]string{}
	var unreachable []string
	covered := 0
	// Not subtests: a case may need what an earlier one made, and the
	// env's helpers fail the test the env was made for.
	for i, tc := range cases {
		skill := offeredBy[tools.WireName(tc.tool)]
		if skill == "" {
			skill = allToolsSkill
			unreachable = append(unreachable, tc.tool)
		}
		args := tc.args
		for k, v := range vars {
			args = strings.ReplaceAll(args, "{{"+k+"}}", v)
		}
		text := "run tool " + tc.tool
		script.script(text, llm.ToolCall{ID: "call_1", Type: "function",
			Function: llm.FunctionCall{Name: tools.WireName(tc.tool), Arguments: args}})
		job := run(fmt.Sprintf("tool-%02d", i), skill, text)
		_, content := script.turn(text)
		var res map[string]any
		switch {
		case job["reply"] != "done: "+text:
			t.Errorf("%s: reply %q: the tool result did not reach the model", tc.tool, job["reply"])
			continue
		case json.Unmarshal([]byte(content), &res) != nil:
			t.Errorf("%s: the tool message is not a JSON object: %.300s", tc.tool, content)
			continue
		case res["error"] != nil:
			t.Errorf("%s (skill %s) failed: %s", tc.tool, skill, content)
			continue
		}
		covered++
		for _, w := range tc.want {
			if !strings.Contains(content, w) {
				t.Errorf("%s: the result lacks %s: %.600s", tc.tool, w, content)
			}
		}
		if tc.save != nil {
			tc.save(res, vars)
		}
		if tc.check != nil {
			tc.check(t, e, res)
		}
	}
	t.Logf("%d of %d tools ran through the agent without an error", covered, len(registry))
	if len(unreachable) > 0 {
		t.Errorf("no built-in teacher skill offers %v: every teacher turn runs under a skill "+
			"(physics-teacher-ops by default), so the agent can never call them (they answer tool_not_allowed); "+
			"they ran here only under the test's %s skill", unreachable, allToolsSkill)
	}

	// A student's turn is offered the student tools only: under the
	// student's default skill, and under a skill allowing every tool.
	for i, skill := range []string{"", allToolsSkill} {
		text := fmt.Sprint("student turn ", i)
		turn := studentTurn(fmt.Sprint("student-", i), "S001", text)
		if skill != "" {
			turn["skill_id"] = skill
		}
		if job := e.waitChat("/t/a", e.startChat("/t/a", turn)["job_id"].(string)); job["status"] != "done" {
			t.Fatalf("student turn: %v", job)
		}
		if offered, _ := script.turn(text); !slices.Equal(offered, studentToolNames) {
			t.Errorf("student (skill %q) is offered %v, want %v", skill, offered, studentToolNames)
		}
	}
}
