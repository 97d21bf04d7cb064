package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/practice"
)

// validRequirements is a checklist that passes the predecessor's checks.
const validRequirements = `{"subject":"物理","topic":"受力分析","grade_level":"高一","class_level":"中等",
	"core_concepts":["重力","弹力","摩擦力"],"typical_problem":"斜面上物体的受力","misconceptions":["漏力","多力","方向错","施力物体不清"],
	"duration_minutes":40,"preferences":["A基础","B提升"]}`

// teacherOnlyTools and studentTools are every tool but the exam ones
// (tools_test.go covers those), by who may run them.
var (
	teacherOnlyTools = []string{"assignment.generate", "assignment.list", "assignment.progress", "assignment.render",
		"assignment.requirements.save", "core_example.register", "core_example.render", "core_example.search",
		"exam.analysis.charts.generate", "lesson.capture", "lesson.list", "student.import", "student.profile.update",
		"student.search"}
	studentTools = []string{"assignment.get", "assignment.today", "student.profile.get"}
)

func TestRegistryHasEveryTool(t *testing.T) {
	tt := newTenant(t)
	var names []string
	for _, tl := range tt.reg.All() {
		names = append(names, tl.Name)
		if tl.Rule.String() == "" {
			t.Errorf("%s has no rule", tl.Name)
		}
	}
	want := append(append([]string{"exam.analysis.get", "exam.get", "exam.list", "exam.question.batch.get",
		"exam.question.get", "exam.range.summary.batch", "exam.range.top_students", "exam.student.get",
		"exam.students.list"}, teacherOnlyTools...), studentTools...)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("tools\n got %v\nwant %v", names, want)
	}
	// A student sees exactly the student tools; no chart or code tool.
	var forStudent []string
	for _, tl := range tt.reg.Allowed(caller.RoleStudent) {
		forStudent = append(forStudent, tl.Name)
	}
	if !slices.Equal(forStudent, studentTools) {
		t.Errorf("student tools %v", forStudent)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "chart.") {
			t.Errorf("%s runs code", n)
		}
	}
	if got := len(tt.reg.OpenAI(caller.RoleTeacher)); got != len(want) {
		t.Errorf("teacher gets %d tools", got)
	}
}

// TestEveryToolAsTeacherAndStudent runs each tool through the registry as
// a teacher (it works) and as a student (refused, or on its own data).
func TestEveryToolAsTeacherAndStudent(t *testing.T) {
	tt := newTenant(t)
	for _, tc := range []struct {
		tool, args string
		check      func(t *testing.T, got map[string]any)
	}{
		{"assignment.list", `{}`, func(t *testing.T, got map[string]any) {
			if n := len(got["assignments"].([]any)); n != 2 {
				t.Errorf("%d assignments", n)
			}
		}},
		{"assignment.get", `{"assignment_id":"A_S02"}`, func(t *testing.T, got map[string]any) {
			if got["assignment_id"] != "A_S02" || got["question_count"] != 1.0 {
				t.Errorf("detail %v", got)
			}
		}},
		{"assignment.today", `{"student_id":"S02"}`, func(t *testing.T, got map[string]any) {
			if a, _ := got["assignment"].(map[string]any); a == nil || a["assignment_id"] != "A_S02" {
				t.Errorf("today %v", got)
			}
		}},
		{"assignment.requirements.save", `{"assignment_id":"A_NEW","date":"2026-03-05","requirements":` + validRequirements + `}`,
			func(t *testing.T, got map[string]any) {
				if got["ok"] != true || got["path"] != "assignments/A_NEW/requirements.json" {
					t.Errorf("save %v", got)
				}
			}},
		{"assignment.generate", `{"assignment_id":"A_NEW","kp":"受力分析","per_kp":3}`, func(t *testing.T, got map[string]any) {
			if got["ok"] != true || got["question_count"] != 3.0 || !strings.Contains(got["output"].(string), "[OK]") {
				t.Errorf("generate %v", got)
			}
		}},
		{"assignment.render", `{"assignment_id":"A_NEW"}`, func(t *testing.T, got map[string]any) {
			// No font in this tenant: the service's own answer.
			t.Errorf("render without a font succeeded: %v", got)
		}},
		{"assignment.progress", `{"assignment_id":"A_S01"}`, func(t *testing.T, got map[string]any) {
			if got["ok"] != true || got["expected_count"] != 1.0 {
				t.Errorf("progress %v", got)
			}
		}},
		{"lesson.list", `{}`, func(t *testing.T, got map[string]any) {
			if l := got["lessons"].([]any); len(l) != 1 || l[0].(map[string]any)["summary"] != "牛顿第一定律" {
				t.Errorf("lessons %v", got)
			}
		}},
		{"lesson.capture", `{"lesson_id":"L1","topic":"受力分析","sources":["uploads/up_1/handout.md"]}`, func(t *testing.T, got map[string]any) {
			if got["examples_count"] != 2.0 {
				t.Errorf("capture %v", got)
			}
		}},
		{"student.search", `{"query":"梅梅"}`, func(t *testing.T, got map[string]any) {
			if s := got["students"].([]any); len(s) != 1 || s[0].(map[string]any)["student_id"] != "S02" {
				t.Errorf("search %v", got)
			}
		}},
		{"student.profile.get", `{"student_id":"S02"}`, func(t *testing.T, got map[string]any) {
			if got["student_name"] != "韩梅梅" {
				t.Errorf("profile %v", got)
			}
		}},
		{"student.profile.update", `{"student_id":"S02","weak_kp":"摩擦力，弹力","interaction_note":"课后答疑"}`, func(t *testing.T, got map[string]any) {
			if got["ok"] != true || got["output"] != "[OK] Updated profile: S02" {
				t.Errorf("update %v", got)
			}
		}},
		{"student.import", `{"exam_id":"EX1"}`, func(t *testing.T, got map[string]any) {
			if got["total_students"] != 6.0 || got["created"] != 4.0 || got["updated"] != 2.0 {
				t.Errorf("import %v", got)
			}
		}},
		{"core_example.register", `{"example_id":"CE001","kp_id":"KP-M01","core_model":"整体法与隔离法","stem_text":"两物块叠放……"}`,
			func(t *testing.T, got map[string]any) {
				if got["output"] != "[OK] Registered core example CE001" {
					t.Errorf("register %v", got)
				}
			}},
		{"core_example.search", `{"kp_id":"KP-M01"}`, func(t *testing.T, got map[string]any) {
			if e := got["examples"].([]any); len(e) != 1 || e[0].(map[string]any)["example_id"] != "CE001" {
				t.Errorf("search %v", got)
			}
		}},
		{"core_example.render", `{"example_id":"CE001"}`, func(t *testing.T, got map[string]any) {
			if got["pdf"] != "core_examples/pdf/core_example_CE001.pdf" {
				t.Errorf("render %v", got)
			}
		}},
		{"exam.analysis.charts.generate", `{"exam_id":"EX1"}`, func(t *testing.T, got map[string]any) {
			if c := got["charts"].([]any); len(c) != 3 {
				t.Errorf("charts %v", got)
			}
		}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			got := tt.call(t, teacher, tc.tool, tc.args)
			if tc.tool == "assignment.render" {
				if got["error"] == nil || got["detail"].(map[string]any)["error"] != "font_unavailable" {
					t.Errorf("render: %v", got)
				}
			} else if got["error"] != nil {
				t.Fatalf("teacher: %v (%v)", got["error"], got["detail"])
			} else {
				tc.check(t, got)
			}
			// The student S02, with the same arguments.
			got = tt.call(t, studentS02, tc.tool, tc.args)
			if slices.Contains(studentTools, tc.tool) {
				if got["error"] != nil {
					t.Errorf("student on itself: %v", got)
				}
			} else if got["error"] != "permission denied" || got["tool"] != tc.tool {
				t.Errorf("student ran a teacher tool: %v", got)
			}
		})
	}
}

// TestStudentToolsRefuseAnotherStudent: a student's tools act on the
// conversation's student only, whatever id the model supplies.
func TestStudentToolsRefuseAnotherStudent(t *testing.T) {
	tt := newTenant(t)
	for _, tc := range []struct {
		c          caller.Principal
		tool, args string
		want       string
	}{
		{studentS01, "student.profile.get", `{"student_id":"S02"}`, `{"error":"forbidden_student_scope","tool":"student.profile.get"}`},
		{studentS01, "assignment.today", `{"student_id":"S02"}`, `{"error":"forbidden_student_scope","tool":"assignment.today"}`},
		{studentS01, "assignment.get", `{"assignment_id":"A_S02"}`, `{"error":"forbidden_assignment_scope","tool":"assignment.get"}`},
		// A claimed (open-mode) student is bound just the same.
		{caller.Principal{Role: caller.RoleStudent, StudentID: "S01", Via: caller.Claimed}, "assignment.get", `{"assignment_id":"A_S02"}`,
			`{"error":"forbidden_assignment_scope","tool":"assignment.get"}`},
		{caller.Principal{Role: caller.RoleStudent}, "student.profile.get", `{}`,
			`{"error":"student_id_required: this conversation has no verified student","tool":"student.profile.get"}`},
		{teacher, "student.profile.get", `{}`, `{"error":"student_id is required","tool":"student.profile.get"}`},
		{teacher, "student.profile.get", `{"student_id":"../S01"}`,
			`{"detail":{"error":"invalid_student_id","student_id":"../S01"},"error":"invalid_student_id","tool":"student.profile.get"}`},
		{teacher, "student.profile.get", `{"student_id":"S09"}`,
			`{"detail":{"error":"profile_not_found","student_id":"S09"},"error":"profile_not_found","tool":"student.profile.get"}`},
	} {
		if got := asJSON(t, dispatch(t, tt.reg, tc.c, tc.tool, tc.args)); got != tc.want {
			t.Errorf("%+v %s %s:\n got %s\nwant %s", tc.c, tc.tool, tc.args, got, tc.want)
		}
	}
	// On itself, with or without naming itself.
	for _, args := range []string{`{}`, `{"student_id":"S01"}`} {
		if got := tt.ok(t, studentS01, "student.profile.get", args); got["student_name"] != "李雷" {
			t.Errorf("own profile %v", got)
		}
		if got := tt.ok(t, studentS01, "assignment.today", args); got["assignment"].(map[string]any)["assignment_id"] != "A_S01" {
			t.Errorf("own today %v", got)
		}
	}
	if got := tt.ok(t, studentS01, "assignment.get", `{"assignment_id":"A_S01"}`); got["assignment_id"] != "A_S01" {
		t.Errorf("own assignment %v", got)
	}
}

// TestArgumentsRefusedBySchema: bad arguments are refused before the tool
// runs, so nothing is written.
func TestArgumentsRefusedBySchema(t *testing.T) {
	tt := newTenant(t)
	for _, tc := range []struct {
		tool, args string
		issues     []string
	}{
		{"assignment.list", `{"teacher_id":"t2"}`, []string{"arguments.teacher_id: unexpected"}},
		{"assignment.get", `{}`, []string{"arguments.assignment_id: required"}},
		{"assignment.today", `{"date":20260305}`, []string{"arguments.date: expected string"}},
		{"assignment.requirements.save", `{"assignment_id":"A_X","requirements":"全部都要"}`, []string{"arguments.requirements: expected object"}},
		{"assignment.generate", `{"assignment_id":"A_X","kp":"受力分析","per_kp":"3","requirements":` + validRequirements + `}`,
			[]string{"arguments.per_kp: expected integer"}},
		{"assignment.generate", `{"kp":["受力分析"],"generate":"yes"}`,
			[]string{"arguments.assignment_id: required", "arguments.generate: expected boolean", "arguments.kp: expected string"}},
		{"assignment.render", `{"assignment_id":"A_S01","out":"/tmp/x.pdf"}`, []string{"arguments.out: unexpected"}},
		{"assignment.progress", `{"assignment_id":"A_S01","include_students":"no"}`, []string{"arguments.include_students: expected boolean"}},
		{"lesson.list", `[]`, []string{"arguments: expected object"}},
		{"lesson.capture", `{"lesson_id":"L9","topic":"x","sources":"uploads/up_1/handout.md"}`, []string{"arguments.sources: expected array"}},
		{"lesson.capture", `{"lesson_id":"L9","topic":"x","sources":[1],"out_base":"/etc"}`,
			[]string{"arguments.out_base: unexpected", "arguments.sources[0]: expected string"}},
		{"student.search", `{"limit":3}`, []string{"arguments.query: required"}},
		{"student.profile.get", `{"student_id":7}`, []string{"arguments.student_id: expected string"}},
		// weak_kp is a comma-separated string, as in the predecessor.
		{"student.profile.update", `{"student_id":"S02","weak_kp":["摩擦力"]}`, []string{"arguments.weak_kp: expected string"}},
		{"student.import", `{"mode":"overwrite"}`, []string{"arguments.mode: must be one of merge"}},
		{"core_example.search", `{"kp_id":true}`, []string{"arguments.kp_id: expected string"}},
		{"core_example.register", `{"example_id":"CE009","kp_id":"KP"}`, []string{"arguments.core_model: required"}},
		{"core_example.render", `{"example_id":"CE001","out":"x.pdf"}`, []string{"arguments.out: unexpected"}},
		{"exam.analysis.charts.generate", `{"exam_id":"EX1","chart_types":["pie"]}`,
			[]string{"arguments.chart_types[0]: must be one of totals, questions, classes, score_distribution, question_discrimination, class_compare, knowledge_radar"}},
	} {
		got := tt.call(t, teacher, tc.tool, tc.args)
		if got["error"] != "invalid_arguments" {
			t.Errorf("%s %s: %v", tc.tool, tc.args, got)
			continue
		}
		var issues []string
		for _, x := range got["issues"].([]any) {
			issues = append(issues, x.(string))
		}
		if !slices.Equal(issues, tc.issues) {
			t.Errorf("%s %s: issues %q, want %q", tc.tool, tc.args, issues, tc.issues)
		}
	}
	for _, p := range []string{"assignments/A_X", "lessons/L9", "core_examples"} {
		if _, err := os.Stat(filepath.Join(tt.data, p)); err == nil {
			t.Errorf("%s written by a refused call", p)
		}
	}
	prof := readFile(t, tt.data, "student_profiles/S02.json")
	if strings.Contains(prof, "摩擦力") {
		t.Errorf("profile changed by a refused call: %s", prof)
	}
}

func TestAssignmentTools(t *testing.T) {
	font, fontErr := practice.FindCJKFont()
	tt := newTenant(t, func(o *tenantOptions) { o.font = font })

	// The requirements gate: refused with the service's detail.
	got := tt.call(t, teacher, "assignment.generate", `{"assignment_id":"A_G","kp":"受力分析"}`)
	if got["error"] != "requirements_missing" || got["detail"].(map[string]any)["detail"] != "请先提交作业要求（8项）。" {
		t.Fatalf("gate: %v", got)
	}
	// An invalid checklist: the Chinese error lines, nothing saved.
	got = tt.call(t, teacher, "assignment.requirements.save", `{"assignment_id":"A_G","requirements":{"subject":"物理","duration_minutes":30}}`)
	errs, _ := got["detail"].(map[string]any)["errors"].([]any)
	if got["error"] != "invalid_requirements" || !slices.Contains(errs, any("6) 作业时间 仅可选 20/40/60 分钟")) {
		t.Fatalf("invalid requirements: %v", got)
	}
	if _, err := os.Stat(filepath.Join(tt.data, "assignments", "A_G")); err == nil {
		t.Error("folder created for invalid requirements")
	}
	// Requirements given with the generation: saved, then the selection.
	got = tt.ok(t, teacher, "assignment.generate", `{"assignment_id":"A_G","kp":"受力分析","per_kp":2,"class_name":"一班",
		"requirements":`+validRequirements+`,"generate":true}`)
	if got["question_count"] != 2.0 || got["status"] != nil {
		t.Fatalf("generate: %v", got)
	}
	var req map[string]any
	must(t, json.Unmarshal([]byte(readFile(t, tt.data, "assignments/A_G/requirements.json")), &req))
	if req["duration_minutes"] != 40.0 || req["created_by"] != "teacher" {
		t.Errorf("requirements.json %v", req)
	}
	if csv := readFile(t, tt.data, "assignments/A_G/questions.csv"); !strings.Contains(csv, "B2,受力分析,basic") {
		t.Errorf("questions.csv %s", csv)
	}
	// generate=true without an LLM: placeholders, with a warning.
	if w, _ := got["warnings"].([]any); len(w) == 0 {
		t.Errorf("generate=true without an LLM should warn: %v", got)
	}
	detail := tt.ok(t, teacher, "assignment.get", `{"assignment_id":"A_G"}`)
	if detail["meta"].(map[string]any)["class_name"] != "一班" || len(detail["questions"].([]any)) != 2 {
		t.Errorf("detail %v", detail)
	}
	if got := tt.call(t, teacher, "assignment.get", `{"assignment_id":"../A_G"}`); got["error"] == nil {
		t.Errorf("bad id read: %v", got)
	}

	// The PDF, with the machine's CJK font.
	if fontErr != nil {
		t.Logf("no CJK font, render not drawn: %v", fontErr)
	} else {
		got = tt.ok(t, teacher, "assignment.render", `{"assignment_id":"A_G"}`)
		if got["pdf"] != "assignments/A_G/assignment_A_G.pdf" || got["url"] != "/assignment/A_G/pdf" {
			t.Errorf("render %v", got)
		}
		if pdf := readFile(t, tt.data, "assignments/A_G/assignment_A_G.pdf"); !strings.HasPrefix(pdf, "%PDF") {
			t.Error("not a PDF")
		}
	}

	got = tt.ok(t, teacher, "assignment.progress", `{"assignment_id":"A_S01","include_students":true}`)
	sts := got["students"].([]any)
	if len(sts) != 1 || sts[0].(map[string]any)["student_id"] != "S01" || sts[0].(map[string]any)["student_name"] != "李雷" {
		t.Errorf("progress students %v", got)
	}
	if got = tt.ok(t, teacher, "assignment.progress", `{"assignment_id":"A_S01","include_students":false}`); len(got["students"].([]any)) != 0 {
		t.Errorf("progress without students %v", got)
	}
	if got = tt.call(t, teacher, "assignment.progress", `{"assignment_id":"A_NONE"}`); got["error"] != "assignment not found" {
		t.Errorf("progress of a missing assignment %v", got)
	}
	// Another day: nothing (read only: no automatic assignment is made).
	got = tt.ok(t, studentS01, "assignment.today", `{"date":"2020-01-01"}`)
	if got["assignment"] != nil || got["date"] != "2020-01-01" {
		t.Errorf("today on another day %v", got)
	}
	if _, err := os.Stat(filepath.Join(tt.data, "assignments", practice.AutoID("S01", "2020-01-01"))); err == nil {
		t.Error("assignment.today generated an assignment")
	}
}

// TestAssignmentGenerateInBackground: with a model, generate=true starts
// the background generation and answers at once with its status link.
func TestAssignmentGenerateInBackground(t *testing.T) {
	client, srv := fakeLLM(t)
	srv.Script(llmtest.Step{Reply: `[{"stem":"一个物体静止在斜面上，求支持力。","answer":"mg cosθ","difficulty":"basic"}]`})
	tt := newTenant(t, func(o *tenantOptions) { o.llm = client })
	got := tt.ok(t, teacher, "assignment.generate", `{"assignment_id":"A_BG","kp":"浮力","per_kp":1,"generate":true,
		"requirements":`+validRequirements+`}`)
	if got["status"] != "queued" || got["status_url"] != "/assignment/A_BG/generate/status" {
		t.Fatalf("generate %v", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := tt.pr.Status("A_BG")
		must(t, err)
		if st["status"] == practice.StatusDone || st["status"] == practice.StatusFailed {
			if st["teacher_id"] != teacher.TeacherID {
				t.Errorf("status %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation still %v", st["status"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(srv.Requests()) == 0 {
		t.Error("the model was not asked")
	}
}

func TestLessonTools(t *testing.T) {
	tt := newTenant(t)
	got := tt.ok(t, teacher, "lesson.capture", `{"lesson_id":"L1","topic":"受力分析","class_name":"一班",
		"sources":["uploads/up_1/handout.md"],"discussion_notes":"学生常漏掉摩擦力。"}`)
	ex := got["examples"].([]any)
	if got["lesson_dir"] != "lessons/L1" || len(ex) != 2 {
		t.Fatalf("capture %v", got)
	}
	first, second := ex[0].(map[string]any), ex[1].(map[string]any)
	if first["example_id"] != "E001" || first["stem_text"] != "1. 物体静止在水平面上，受到几个力？" ||
		first["options"] != "A. 1个 | B. 2个 | C. 3个" || first["source_ref"] != "handout.md" {
		t.Errorf("first example %v", first)
	}
	if second["stem_text"] != "2、 斜面上的物块匀速下滑， 摩擦力方向如何？" {
		t.Errorf("second example %v", second)
	}
	for _, f := range []string{"manifest.json", "lesson.json", "examples.csv", "class_discussion.md", "lesson_summary.md",
		"sources/handout.md", "text/handout.txt"} {
		if _, err := os.Stat(filepath.Join(tt.data, "lessons", "L1", f)); err != nil {
			t.Errorf("lesson file %s: %v", f, err)
		}
	}
	if d := readFile(t, tt.data, "lessons/L1/class_discussion.md"); d != "学生常漏掉摩擦力。" {
		t.Errorf("discussion %q", d)
	}
	list := tt.ok(t, teacher, "lesson.list", `{}`)["lessons"].([]any)
	if len(list) != 2 || list[1].(map[string]any)["summary"] != "受力分析：2 道例题（材料：handout.md）" {
		t.Errorf("lessons %v", list)
	}
	// Captured again: the lesson is replaced, nothing hidden is left.
	tt.ok(t, teacher, "lesson.capture", `{"lesson_id":"L1","topic":"受力分析（二）","sources":["lessons/L1/sources/handout.md"]}`)
	entries, _ := os.ReadDir(filepath.Join(tt.data, "lessons"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"L0", "L1"}) {
		t.Errorf("lessons folder %v", names)
	}
	if s := readFile(t, tt.data, "lessons/L1/lesson.json"); !strings.Contains(s, "受力分析（二）") {
		t.Errorf("lesson.json not replaced: %s", s)
	}

	// Sources outside the upload and lesson folders are refused, however named.
	for _, src := range []string{"teacher_workspaces/t2/MEMORY.md", filepath.Join(tt.data, "teacher_workspaces/t2/MEMORY.md"),
		"uploads/../../" + filepath.Base(tt.data) + "/teacher_workspaces/t2/MEMORY.md", "student_profiles/S01.json", "/etc/passwd",
		"uploads/up_1/missing.md"} {
		got := tt.call(t, teacher, "lesson.capture", `{"lesson_id":"L2","topic":"x","sources":[`+quote(src)+`]}`)
		if got["error"] != "source_not_found" {
			t.Errorf("source %s: %v", src, got)
		}
	}
	// An image without OCR: no text at all, with the reason.
	writeText(t, tt.uploads, "uploads/up_2/board.png", "\x89PNG\r\n\x1a\n"+strings.Repeat("\x00", 64))
	got = tt.call(t, teacher, "lesson.capture", `{"lesson_id":"L2","topic":"x","sources":["uploads/up_2/board.png"]}`)
	if got["error"] != "no_text" || !strings.Contains(asJSON(t, got["detail"]), "ocr_unavailable") {
		t.Errorf("image without OCR %v", got)
	}
	if _, err := os.Stat(filepath.Join(tt.data, "lessons", "L2")); err == nil {
		t.Error("a failed capture left a lesson")
	}
	if got := tt.call(t, teacher, "lesson.capture", `{"lesson_id":".hidden","topic":"x","sources":["uploads/up_1/handout.md"]}`); got["error"] != "invalid_lesson_id" {
		t.Errorf("hidden lesson id %v", got)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestStudentTools(t *testing.T) {
	tt := newTenant(t)
	for query, want := range map[string][]string{"李": {"S01"}, "一班": {"S01", "S02"}, "s02": {"S02"}, "一班 韩梅梅": {"S02"}, "王": nil} {
		got := tt.ok(t, teacher, "student.search", `{"query":`+quote(query)+`}`)
		var ids []string
		for _, s := range got["students"].([]any) {
			ids = append(ids, s.(map[string]any)["student_id"].(string))
		}
		if !slices.Equal(ids, want) {
			t.Errorf("search %q: %v", query, ids)
		}
	}
	if got := tt.ok(t, teacher, "student.search", `{"query":"一班","limit":1}`); len(got["students"].([]any)) != 1 {
		t.Errorf("limit: %v", got)
	}
	if got := tt.call(t, teacher, "student.search", `{"query":"  "}`); got["error"] != "missing_query" {
		t.Errorf("blank query %v", got)
	}

	// The update goes through the worker and is applied.
	tt.ok(t, teacher, "student.profile.update", `{"student_id":"S01","weak_kp":"摩擦力、弹力","strong_kp":"重力","next_focus":"摩擦力方向"}`)
	prof := tt.ok(t, studentS01, "student.profile.get", `{}`)
	if prof["next_focus"] != "摩擦力方向" || asJSON(t, prof["recent_weak_kp"]) != `["摩擦力","弹力"]` {
		t.Errorf("profile after update %v", prof)
	}

	got := tt.ok(t, teacher, "student.import", `{"exam_id":"EX1"}`)
	if got["source_file"] != "exams/EX1/derived/responses_scored.csv" || got["pending"] != nil {
		t.Errorf("import %v", got)
	}
	prof = tt.ok(t, teacher, "student.profile.get", `{"student_id":"S05"}`)
	if prof["student_name"] != "王芳" || prof["class_name"] != "二班" {
		t.Errorf("imported profile %v", prof)
	}
	// From a CSV inside DATA_DIR; none outside it.
	got = tt.ok(t, teacher, "student.import", `{"file_path":"exams/EX1/derived/responses_scored.csv"}`)
	if got["total_students"] != 6.0 || got["updated"] != 6.0 {
		t.Errorf("import from file %v", got)
	}
	for _, args := range []string{`{"file_path":"/etc/passwd"}`, `{"exam_id":"EX9"}`, `{}`} {
		if got := tt.call(t, teacher, "student.import", args); got["error"] != "responses file not found" {
			t.Errorf("import %s: %v", args, got)
		}
	}
}

func TestCoreExampleTools(t *testing.T) {
	tt := newTenant(t)
	if got := tt.ok(t, teacher, "core_example.search", `{}`); len(got["examples"].([]any)) != 0 {
		t.Errorf("empty library %v", got)
	}
	// From a captured lesson: its example's stem and options, and a figure.
	tt.ok(t, teacher, "lesson.capture", `{"lesson_id":"L1","topic":"受力分析","sources":["uploads/up_1/handout.md"]}`)
	png := "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 64)
	writeText(t, tt.data, "lessons/L1/sources/fig1.png", png)
	got := tt.ok(t, teacher, "core_example.register", `{"example_id":"CE002","kp_id":"KP-F01","core_model":"隔离法",
		"difficulty":"basic","tags":"受力","from_lesson":"L1","lesson_example_id":"E001","lesson_figure":"fig1.png"}`)
	row := got["example"].(map[string]any)
	if row["stem_ref"] != "core_examples/stems/CE002.md" || row["difficulty"] != "basic" || row["variant_ref"] != nil {
		t.Errorf("row %v", row)
	}
	stem := readFile(t, tt.data, "core_examples/stems/CE002.md")
	if !strings.HasPrefix(stem, "1. 物体静止在水平面上，受到几个力？\nA. 1个 | B. 2个 | C. 3个") ||
		!strings.Contains(stem, "[FIGURE: core_examples/assets/CE002.png]") {
		t.Errorf("stem %q", stem)
	}
	if readFile(t, tt.data, "core_examples/assets/CE002.png") != png {
		t.Error("figure not copied")
	}
	if m := readFile(t, tt.data, "core_examples/models/CE002.md"); m != "隔离法" {
		t.Errorf("model %q", m)
	}
	// Files named by path: an uploaded solution and variants; the stem as text.
	writeText(t, tt.uploads, "uploads/up_3/sol.md", "标准解答：N = mg cosθ")
	writeText(t, tt.uploads, "uploads/up_3/var.md", "m = 2\n")
	tt.ok(t, teacher, "core_example.register", `{"example_id":"CE001","kp_id":"KP-F01","core_model":"整体法",
		"stem_text":"质量为 {m} kg 的物块静止在斜面上。","solution_file":"uploads/up_3/sol.md","variant_file":"uploads/up_3/var.md"}`)
	if s := readFile(t, tt.data, "core_examples/solutions/CE001.md"); s != "标准解答：N = mg cosθ" {
		t.Errorf("solution %q", s)
	}
	// Registered again: replaced, not duplicated.
	tt.ok(t, teacher, "core_example.register", `{"example_id":"CE001","kp_id":"KP-F02","core_model":"整体法与隔离法"}`)
	all := tt.ok(t, teacher, "core_example.search", `{}`)["examples"].([]any)
	if len(all) != 2 || all[1].(map[string]any)["kp_id"] != "KP-F02" || all[1].(map[string]any)["variant_ref"] != "core_examples/variants/CE001.md" {
		t.Errorf("library %v", all)
	}
	if got := tt.ok(t, teacher, "core_example.search", `{"kp_id":"KP-F01","example_id":"CE002"}`); len(got["examples"].([]any)) != 1 {
		t.Errorf("search both %v", got)
	}
	// Its variants feed assignment generation (practice reads the same files).
	tt.ok(t, teacher, "assignment.requirements.save", `{"assignment_id":"A_CE","requirements":`+validRequirements+`}`)
	got = tt.ok(t, teacher, "assignment.generate", `{"assignment_id":"A_CE","kp":"受力分析","core_examples":"CE001","per_kp":1}`)
	if got["question_count"] != 2.0 {
		t.Errorf("generate from core example %v", got)
	}
	if v := readFile(t, tt.data, "assignments/generated_from_core/CE001/CE001_V01.md"); !strings.Contains(v, "质量为 3 kg") {
		t.Errorf("variant %q", v)
	}

	for _, tc := range []struct{ args, want string }{
		{`{"example_id":"../x","kp_id":"K","core_model":"M"}`, "invalid_example_id"},
		{`{"example_id":"CE3","kp_id":"a/b","core_model":"M"}`, "invalid_kp_id"},
		{`{"example_id":"CE3","kp_id":"K","core_model":" "}`, "missing_core_model"},
		{`{"example_id":"CE3","kp_id":"K","core_model":"M","stem_file":"teacher_workspaces/t2/MEMORY.md"}`, "stem_file_not_found_or_not_allowed"},
		{`{"example_id":"CE3","kp_id":"K","core_model":"M","figure_file":"uploads/up_3/sol.md"}`, "figure_not_an_image"},
		{`{"example_id":"CE3","kp_id":"K","core_model":"M","from_lesson":"L1","lesson_example_id":"E099"}`, "lesson_example_not_found"},
	} {
		if got := tt.call(t, teacher, "core_example.register", tc.args); got["error"] != tc.want {
			t.Errorf("register %s: %v", tc.args, got)
		}
	}
	if _, err := os.Stat(filepath.Join(tt.data, "core_examples", "stems", "CE3.md")); err == nil {
		t.Error("a refused register wrote files")
	}

	got = tt.ok(t, teacher, "core_example.render", `{"example_id":"CE002"}`)
	if got["output"] != "[OK] Wrote PDF: core_examples/pdf/core_example_CE002.pdf" ||
		!strings.HasPrefix(readFile(t, tt.data, "core_examples/pdf/core_example_CE002.pdf"), "%PDF") {
		t.Errorf("render %v", got)
	}
	if last := tt.rendered[len(tt.rendered)-1]; !strings.HasPrefix(last, "Core Example: CE002|1. 物体静止") || !strings.Contains(last, "[图：CE002.png]") {
		t.Errorf("drawn %q", last)
	}
	if got := tt.call(t, teacher, "core_example.render", `{"example_id":"CE404"}`); got["error"] != "stem_not_found" {
		t.Errorf("render missing %v", got)
	}
	// Without a renderer: a clear 503-style answer.
	bare, err := NewRegistry(CoreExampleTools(tt.data, tt.uploads, nil)...)
	must(t, err)
	if got := asJSON(t, dispatch(t, bare, teacher, "core_example.render", `{"example_id":"CE002"}`)); !strings.Contains(got, `"error":"pdf_unavailable"`) {
		t.Errorf("no renderer %s", got)
	}
}

func TestChartTool(t *testing.T) {
	tt := newTenant(t)
	got := tt.ok(t, teacher, "exam.analysis.charts.generate", `{"exam_id":"EX1"}`)
	want := `[{"format":"svg","name":"totals","title":"总分分布","url":"/t/school/exam/EX1/charts/totals.svg"},` +
		`{"format":"svg","name":"questions","title":"各题得分率","url":"/t/school/exam/EX1/charts/questions.svg"},` +
		`{"format":"svg","name":"classes","title":"班级对比","url":"/t/school/exam/EX1/charts/classes.svg"}]`
	if asJSON(t, got["charts"]) != want {
		t.Errorf("charts %s", asJSON(t, got["charts"]))
	}
	if !strings.HasPrefix(got["markdown"].(string), "![EX1 总分分布](/t/school/exam/EX1/charts/totals.svg)\n\n") {
		t.Errorf("markdown %q", got["markdown"])
	}
	// The links are the exam's own charts: each one is drawn.
	e, err := tt.exams.Exam("EX1")
	must(t, err)
	for _, name := range []string{"totals", "questions", "classes"} {
		if svg, found, err := e.Chart(name); err != nil || !found || !strings.Contains(string(svg), "<svg") {
			t.Errorf("chart %s: %v %v", name, found, err)
		}
	}
	// The predecessor's chart types map to these; one has no chart.
	got = tt.ok(t, teacher, "exam.analysis.charts.generate", `{"exam_id":"EX1","chart_types":["class_compare","score_distribution","knowledge_radar"]}`)
	if asJSON(t, got["charts"]) != `[{"format":"svg","name":"totals","title":"总分分布","url":"/t/school/exam/EX1/charts/totals.svg"},`+
		`{"format":"svg","name":"classes","title":"班级对比","url":"/t/school/exam/EX1/charts/classes.svg"}]` || len(got["warnings"].([]any)) != 1 {
		t.Errorf("chart types %v", got)
	}
	for args, want := range map[string]string{`{"exam_id":"EX9"}`: "exam_not_found", `{"exam_id":"../EX1"}`: "exam_not_found"} {
		if got := tt.call(t, teacher, "exam.analysis.charts.generate", args); got["error"] != want {
			t.Errorf("%s: %v", args, got)
		}
	}
	// An exam without responses has no charts.
	writeText(t, tt.data, "exams/EX2/manifest.json", `{"exam_id":"EX2","files":{}}`)
	if got := tt.call(t, teacher, "exam.analysis.charts.generate", `{"exam_id":"EX2"}`); got["error"] != "responses_missing" {
		t.Errorf("no responses: %v", got)
	}
}

// TestInternalErrorsHideTheirCause: the model never sees a server path.
func TestInternalErrorsHideTheirCause(t *testing.T) {
	tt := newTenant(t)
	// examples.csv made unreadable as a file: a directory in its place.
	must(t, os.MkdirAll(filepath.Join(tt.data, "core_examples", "examples.csv"), 0o755))
	got := tt.call(t, teacher, "core_example.search", `{}`)
	if got["error"] != "read core examples failed" || strings.Contains(asJSON(t, got), tt.data) {
		t.Errorf("internal failure %v", got)
	}
	// The cause goes to the operator's log instead.
	var logs bytes.Buffer
	logged := tt.reg.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	if got := asJSON(t, dispatch(t, logged, teacher, "core_example.search", `{}`)); strings.Contains(got, tt.data) {
		t.Errorf("internal failure %s", got)
	}
	if !strings.Contains(logs.String(), "tool=core_example.search") || !strings.Contains(logs.String(), "examples.csv") {
		t.Errorf("log %q", logs.String())
	}
	if tt.reg.log != nil {
		t.Error("WithLogger changed the registry it was called on")
	}
	// A tool's context ending is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := asJSON(t, tt.reg.Dispatch(ctx, teacher, "lesson.list", nil))
	if !strings.Contains(out, "context canceled") {
		t.Errorf("cancelled: %s", out)
	}
}
