package tools

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
)

// writeExam writes exam EX1 to a fresh DATA_DIR with the exams package's
// own encoders: 6 students in two classes (two named 张伟), questions 1-3
// and 4(1), 4(2).
func writeExam(t *testing.T) (*exams.Service, string) {
	t.Helper()
	data := t.TempDir()
	qs := []exams.Question{
		{ID: "Q1", No: "1", MaxScore: 4, HasMax: true},
		{ID: "Q2", No: "2", MaxScore: 4, HasMax: true},
		{ID: "Q3", No: "3", MaxScore: 6, HasMax: true},
		{ID: "Q4_1", No: "4", SubNo: "1", MaxScore: 5, HasMax: true},
		{ID: "Q4_2", No: "4", SubNo: "2", MaxScore: 5, HasMax: true},
	}
	students := []struct {
		id, name, class string
		scores          []float64
	}{
		{"S01", "李雷", "一班", []float64{4, 4, 6, 5, 5}},
		{"S02", "韩梅梅", "一班", []float64{4, 0, 3, 2, 1}},
		{"S03", "张伟", "一班", []float64{0, 4, 6, 5, 0}},
		{"S04", "张伟", "二班", []float64{4, 4, 0, 1, 1}},
		{"S05", "王芳", "二班", []float64{0, 0, 2, 0, 0}},
		{"S06", "刘洋", "二班", []float64{4, 2, 5, 3, 4}},
	}
	var rows []exams.Response
	for _, s := range students {
		for i, q := range qs {
			rows = append(rows, exams.Response{ExamID: "EX1", StudentID: s.id, StudentName: s.name, ClassName: s.class,
				QuestionID: q.ID, QuestionNo: q.No, SubNo: q.SubNo, RawValue: exams.FormatScore(s.scores[i]), HasRawValue: true,
				Score: s.scores[i], Scored: true})
		}
	}
	// Check the rows make a sane exam before writing them.
	if e := exams.NewExam("EX1", nil, rows, qs, nil, time.Now()); len(e.Students) != 6 {
		t.Fatalf("fixture has %d students", len(e.Students))
	}
	dir := filepath.Join(data, "exams", "EX1")
	must(t, os.MkdirAll(filepath.Join(dir, "derived"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"exam_id":"EX1","generated_at":"2026-03-01T10:00:00","meta":{"subject":"物理"},"files":{}}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "derived", "responses_scored.csv"), exams.ResponsesCSV(rows), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "derived", "questions.csv"), exams.QuestionsCSV(qs), 0o644))
	return exams.NewService(data), data
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var teacher = caller.Principal{Role: caller.RoleTeacher, TeacherID: "t1"}

func examRegistry(t *testing.T) (*Registry, *exams.Service) {
	t.Helper()
	svc, _ := writeExam(t)
	r, err := NewRegistry(ExamTools(svc)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, svc
}

func TestValidate(t *testing.T) {
	schema := object(map[string]any{
		"exam_id": map[string]any{"type": "string"},
		"limit":   map[string]any{"type": "integer"},
		"ratio":   map[string]any{"type": "number"},
		"flag":    map[string]any{"type": "boolean"},
		"mode":    map[string]any{"type": "string", "enum": []any{"fast", "slow"}},
		"level":   map[string]any{"type": "integer", "enum": []any{1, 2}},
		"free":    map[string]any{"type": "object"},
		"tags":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"ranges": map[string]any{"type": "array", "items": object(map[string]any{
			"start": map[string]any{"type": "integer"}, "end": map[string]any{"type": "integer"},
		}, "start", "end")},
	}, "exam_id")
	num := func(s string) json.Number { return json.Number(s) }
	for _, tc := range []struct {
		name string
		args any
		want []string
	}{
		{"valid minimal", map[string]any{"exam_id": "E"}, nil},
		{"valid full", map[string]any{"exam_id": "E", "limit": num("5"), "ratio": 0.5, "flag": true, "mode": "fast", "level": num("2"),
			"free": map[string]any{"anything": []any{1}}, "tags": []any{"a"}, "ranges": []any{map[string]any{"start": 1.0, "end": num("3")}}}, nil},
		{"whole float is an integer", map[string]any{"exam_id": "E", "limit": num("5.0")}, nil},
		{"not an object", []any{1}, []string{"arguments: expected object"}},
		{"null", nil, []string{"arguments: expected object"}},
		{"required", map[string]any{}, []string{"arguments.exam_id: required"}},
		{"unexpected", map[string]any{"exam_id": "E", "teacher_id": "x"}, []string{"arguments.teacher_id: unexpected"}},
		{"string", map[string]any{"exam_id": 3.0}, []string{"arguments.exam_id: expected string"}},
		{"integer not whole", map[string]any{"exam_id": "E", "limit": num("2.5")}, []string{"arguments.limit: expected integer"}},
		{"integer from string", map[string]any{"exam_id": "E", "limit": "5"}, []string{"arguments.limit: expected integer"}},
		{"bool is not an integer", map[string]any{"exam_id": "E", "limit": true}, []string{"arguments.limit: expected integer"}},
		{"bool is not a number", map[string]any{"exam_id": "E", "ratio": false}, []string{"arguments.ratio: expected number"}},
		{"boolean", map[string]any{"exam_id": "E", "flag": "true"}, []string{"arguments.flag: expected boolean"}},
		{"enum", map[string]any{"exam_id": "E", "mode": "medium"}, []string{"arguments.mode: must be one of fast, slow"}},
		{"numeric enum", map[string]any{"exam_id": "E", "level": num("3")}, []string{"arguments.level: must be one of 1, 2"}},
		{"array", map[string]any{"exam_id": "E", "tags": "a"}, []string{"arguments.tags: expected array"}},
		{"array items", map[string]any{"exam_id": "E", "tags": []any{"a", 1.0}}, []string{"arguments.tags[1]: expected string"}},
		{"nested objects", map[string]any{"exam_id": "E", "ranges": []any{
			map[string]any{"start": 1.0},
			map[string]any{"start": 1.0, "end": "x", "extra": 1.0},
			"no"}},
			[]string{"arguments.ranges[0].end: required", "arguments.ranges[1].end: expected integer",
				"arguments.ranges[1].extra: unexpected", "arguments.ranges[2]: expected object"}},
		{"several, in order", map[string]any{"b": 1.0, "a": 1.0, "limit": "x"},
			[]string{"arguments.exam_id: required", "arguments.a: unexpected", "arguments.b: unexpected", "arguments.limit: expected integer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Validate(schema, tc.args); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	many := map[string]any{}
	for i := range 30 {
		many[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = 1.0
	}
	if got := Validate(schema, many); len(got) != 20 {
		t.Errorf("issues not capped at 20: %d", len(got))
	}
}

func TestNewRegistryRejectsBadTools(t *testing.T) {
	run := func(context.Context, caller.Principal, map[string]any) (any, error) { return nil, nil }
	ok := Tool{Name: "a.b", Parameters: object(map[string]any{}), Run: run}
	for name, tools := range map[string][]Tool{
		"duplicate":            {ok, ok},
		"wire collision":       {ok, {Name: "a_b", Parameters: object(map[string]any{}), Run: run}},
		"no name":              {{Parameters: object(map[string]any{}), Run: run}},
		"long name":            {{Name: strings.Repeat("x", 65), Parameters: object(map[string]any{}), Run: run}},
		"no run":               {{Name: "x", Parameters: object(map[string]any{})}},
		"not object":           {{Name: "x", Parameters: map[string]any{"type": "string"}, Run: run}},
		"additional allowed":   {{Name: "x", Parameters: map[string]any{"type": "object", "properties": map[string]any{}}, Run: run}},
		"required not a prop":  {{Name: "x", Parameters: object(map[string]any{}, "y"), Run: run}},
		"teacher_id parameter": {{Name: "x", Parameters: object(map[string]any{"teacher_id": str("")}), Run: run}},
	} {
		if _, err := NewRegistry(tools...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestExamToolSchemasAndNames(t *testing.T) {
	r, _ := examRegistry(t)
	want := []string{"exam.analysis.get", "exam.get", "exam.list", "exam.question.batch.get", "exam.question.get",
		"exam.range.summary.batch", "exam.range.top_students", "exam.student.get", "exam.students.list"}
	var names []string
	for _, tl := range r.All() {
		names = append(names, tl.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v", names)
	}
	wireRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	openai := r.OpenAI(caller.RoleTeacher)
	mcp := r.MCP()
	if len(openai) != len(want) || len(mcp) != len(want) {
		t.Fatalf("openai %d, mcp %d", len(openai), len(mcp))
	}
	for i, tl := range r.All() {
		if tl.Parameters["additionalProperties"] != false || tl.Parameters["type"] != "object" {
			t.Errorf("%s: top-level schema %v", tl.Name, tl.Parameters)
		}
		if _, ok := tl.Parameters["properties"].(map[string]any)["teacher_id"]; ok {
			t.Errorf("%s takes teacher_id", tl.Name)
		}
		w := openai[i].Function.Name
		if !wireRE.MatchString(w) || w != WireName(tl.Name) || strings.Contains(w, ".") {
			t.Errorf("wire name %q", w)
		}
		if back, ok := r.Lookup(w); !ok || back.Name != tl.Name {
			t.Errorf("%q does not map back to %s", w, tl.Name)
		}
		if openai[i].Type != "function" || openai[i].Function.Description != tl.Description {
			t.Errorf("%s: openai form %+v", tl.Name, openai[i])
		}
		// The same map, not merely equal ones.
		if reflect.ValueOf(openai[i].Function.Parameters).Pointer() != reflect.ValueOf(mcp[i]["inputSchema"]).Pointer() {
			t.Errorf("%s: OpenAI and MCP schemas are different maps", tl.Name)
		}
		if mcp[i]["name"] != tl.Name || mcp[i]["description"] != tl.Description {
			t.Errorf("mcp form %v", mcp[i])
		}
	}
	if WireName("exam.students.list") != "exam_students_list" {
		t.Error(WireName("exam.students.list"))
	}
	// Exam tools are for teachers only; an unknown role gets nothing.
	for _, role := range []caller.Role{caller.RoleStudent, "", caller.RoleAdmin} {
		if got := r.Allowed(role); len(got) != 0 {
			t.Errorf("%q allowed %d tools", role, len(got))
		}
		if got := r.OpenAI(role); got != nil {
			t.Errorf("%q gets openai tools", role)
		}
	}
}

func dispatch(t *testing.T, r *Registry, c caller.Principal, name, args string) any {
	t.Helper()
	return r.Dispatch(context.Background(), c, name, json.RawMessage(args))
}

// asJSON normalises a result for comparison the way the agent sends it.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDispatchErrors(t *testing.T) {
	r, _ := examRegistry(t)
	student := caller.Principal{Role: caller.RoleStudent, StudentID: "S01", TeacherID: "teacher"}
	for _, tc := range []struct {
		c          caller.Principal
		name, args string
		want       string
	}{
		{teacher, "exam.nope", `{}`, `{"error":"unknown tool: exam.nope"}`},
		{student, "exam_students_list", `{"exam_id":"EX1"}`, `{"error":"permission denied","tool":"exam.students.list"}`},
		{caller.Principal{}, "exam.get", `{"exam_id":"EX1"}`, `{"error":"permission denied","tool":"exam.get"}`},
		{teacher, "exam.students.list", `{"limit":true,"teacher_id":"t2"}`,
			`{"error":"invalid_arguments","issues":["arguments.exam_id: required","arguments.limit: expected integer","arguments.teacher_id: unexpected"],"tool":"exam.students.list"}`},
		{teacher, "exam_get", `{not json`,
			`{"error":"invalid_arguments","issues":["arguments: not valid JSON","arguments.exam_id: required"],"tool":"exam.get"}`},
		{teacher, "exam.get", `[1]`, `{"error":"invalid_arguments","issues":["arguments: expected object"],"tool":"exam.get"}`},
		{teacher, "exam.get", `{"exam_id":"EX9"}`, `{"error":"exam not found: EX9","tool":"exam.get"}`},
		{teacher, "exam.get", `{"exam_id":"../x"}`, `{"error":"exam not found: ../x","tool":"exam.get"}`},
		{teacher, "exam.student.get", `{"exam_id":"EX1","student_id":"S99"}`,
			`{"detail":{"error":"student_not_found","exam_id":"EX1","message":"未找到该学生的成绩，请检查学生编号。","student_id":"S99"},"error":"student S99 not found in exam EX1","tool":"exam.student.get"}`},
		{teacher, "exam.question.get", `{"exam_id":"EX1","question_id":"Q9"}`,
			`{"detail":{"error":"question_not_found","exam_id":"EX1","question_id":"Q9"},"error":"question Q9 not found in exam EX1","tool":"exam.question.get"}`},
		{teacher, "exam.range.top_students", `{"exam_id":"EX1","start_question_no":3,"end_question_no":1}`,
			`{"error":"start_question_no 3 is after end_question_no 1","tool":"exam.range.top_students"}`},
	} {
		if got := asJSON(t, dispatch(t, r, tc.c, tc.name, tc.args)); got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.name, tc.args, got, tc.want)
		}
	}
	// Malformed arguments of a tool that needs none still run it with {}.
	if got := dispatch(t, r, teacher, "exam.list", `{not json`); !strings.Contains(asJSON(t, got), `"exam_id":"EX1"`) {
		t.Errorf("exam.list with bad JSON: %s", asJSON(t, got))
	}
	// A panicking tool is an error result, not a crash.
	boom, _ := NewRegistry(Tool{Name: "boom", Parameters: object(map[string]any{}),
		Run: func(context.Context, caller.Principal, map[string]any) (any, error) { panic("x") }})
	if got := asJSON(t, dispatch(t, boom, teacher, "boom", "")); got != `{"error":"tool boom failed: internal error","tool":"boom"}` {
		t.Error(got)
	}
}

func TestToolsActAsTheCaller(t *testing.T) {
	var seen caller.Principal
	r, err := NewRegistry(Tool{Name: "whoami", Parameters: object(map[string]any{"query": str("")}),
		Run: func(_ context.Context, c caller.Principal, args map[string]any) (any, error) {
			seen = c
			return args, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	got := dispatch(t, r, caller.Principal{Role: caller.RoleTeacher, TeacherID: "t7"}, "whoami", `{"query":"x"}`)
	if seen.TeacherID != "t7" || asJSON(t, got) != `{"query":"x"}` {
		t.Errorf("caller %+v, result %v", seen, got)
	}
	if got := asJSON(t, dispatch(t, r, teacher, "whoami", `{"teacher_id":"t2"}`)); !strings.Contains(got, "teacher_id: unexpected") {
		t.Errorf("teacher_id accepted: %s", got)
	}
}

// TestExamToolsMatchViews: each tool returns what the exams views return
// (the HTTP bodies for the tools with an endpoint).
func TestExamToolsMatchViews(t *testing.T) {
	r, svc := examRegistry(t)
	view := func(v any, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return asJSON(t, v)
	}
	list, err := svc.Catalog().ListJSON()
	must(t, err)
	for _, tc := range []struct {
		tool, args, want string
	}{
		{"exam.list", `{}`, string(list)},
		{"exam.get", `{"exam_id":"EX1"}`, view(svc.DetailView("EX1"))},
		{"exam.analysis.get", `{"exam_id":"EX1"}`, view(svc.AnalysisView("EX1"))},
		{"exam.students.list", `{"exam_id":"EX1"}`, view(svc.StudentsView("EX1", 50))},
		{"exam.students.list", `{"exam_id":"EX1","limit":2}`, view(svc.StudentsView("EX1", 2))},
		{"exam.student.get", `{"exam_id":"EX1","student_id":"S02"}`, view(svc.StudentView("EX1", "S02"))},
		{"exam.student.get", `{"exam_id":"EX1","student_name":" 韩梅梅 "}`, view(svc.StudentView("EX1", "S02"))},
		{"exam.student.get", `{"exam_id":"EX1","student_name":"张伟","class_name":"二班"}`, view(svc.StudentView("EX1", "S04"))},
		{"exam.question.get", `{"exam_id":"EX1","question_id":"Q3"}`, view(svc.QuestionView("EX1", "Q3", 5))},
		{"exam.question.get", `{"exam_id":"EX1","question_no":"3","top_n":2}`, view(svc.QuestionView("EX1", "Q3", 2))},
		{"exam.question.get", `{"exam_id":"EX1","question_no":"4(2)"}`, view(svc.QuestionView("EX1", "Q4_2", 5))},
		{"exam.question.get", `{"exam_id":"EX1","question_no":"4"}`, view(svc.QuestionLookup("EX1", "", "4", 5))},
		{"exam.question.get", `{"exam_id":"EX1","question_no":"Q4_1"}`, view(svc.QuestionView("EX1", "Q4_1", 5))},
		{"exam.question.batch.get", `{"exam_id":"EX1","question_nos":[1,4,9]}`, view(svc.QuestionBatch("EX1", []int{1, 4, 9}, 5))},
		{"exam.range.top_students", `{"exam_id":"EX1","start_question_no":1,"end_question_no":2}`, view(svc.RangeTopStudents("EX1", 1, 2, 10))},
		{"exam.range.summary.batch", `{"exam_id":"EX1","ranges":[{"label":"选择题","start":1,"end":2},{"start":3,"end":4}],"top_n":2}`,
			view(svc.RangeSummaryBatch("EX1", []exams.Range{{Label: "选择题", Start: 1, End: 2}, {Start: 3, End: 4}}, 2))},
	} {
		got := asJSON(t, dispatch(t, r, teacher, WireName(tc.tool), tc.args))
		if got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.tool, tc.args, got, tc.want)
		}
		if strings.Contains(got, `"error"`) {
			t.Errorf("%s %s: %s", tc.tool, tc.args, got)
		}
	}
}

func TestExamToolFigures(t *testing.T) {
	r, svc := examRegistry(t)
	// Several students named 张伟: the candidates, not a guess.
	got := asJSON(t, dispatch(t, r, teacher, "exam.student.get", `{"exam_id":"EX1","student_name":"张伟"}`))
	for _, want := range []string{`"error":"multiple_students"`, `"student_id":"S03"`, `"student_id":"S04"`} {
		if !strings.Contains(got, want) {
			t.Errorf("multiple: missing %s in %s", want, got)
		}
	}
	_, err := svc.StudentLookup("EX1", "", "张伟", "")
	if !errors.Is(err, exams.ErrMultipleStudents) {
		t.Errorf("StudentLookup: %v", err)
	}

	// Questions 1-2: S01 8, S04 8, S02 4, S03 4, S06 6, S05 0.
	res, err := svc.RangeTopStudents("EX1", 1, 2, 2)
	must(t, err)
	var top, bottom []string
	for _, s := range res.Top {
		top = append(top, s.StudentID+":"+exams.FormatScore(s.Score)+"#"+string(rune('0'+s.Rank)))
	}
	for _, s := range res.Bottom {
		bottom = append(bottom, s.StudentID+":"+exams.FormatScore(s.Score)+"#"+string(rune('0'+s.Rank)))
	}
	if strings.Join(top, " ") != "S01:8#1 S04:8#1" || strings.Join(bottom, " ") != "S05:0#6 S02:4#4" {
		t.Errorf("top %v bottom %v", top, bottom)
	}
	if *res.MaxScore != 8 || res.AvgScore != 5 || *res.ScoreRate != 0.625 || !slices.Equal(res.QuestionIDs, []string{"Q1", "Q2"}) {
		t.Errorf("range figures %+v", res)
	}
	// Question 4 has two parts: both in the range and in the batch.
	res, err = svc.RangeTopStudents("EX1", 4, 4, 1)
	must(t, err)
	if !slices.Equal(res.QuestionIDs, []string{"Q4_1", "Q4_2"}) || res.Top[0].StudentID != "S01" || res.Top[0].Score != 10 {
		t.Errorf("range 4: %+v", res)
	}
	batch, err := svc.QuestionBatch("EX1", []int{4, 9, 4}, 1)
	must(t, err)
	if len(batch.Entries) != 2 || batch.Entries[1].Question["question_id"] != "Q4_2" || !slices.Equal(batch.Missing, []int{9}) {
		t.Errorf("batch %+v", batch)
	}
	parts, err := svc.QuestionLookup("EX1", "", "4", 0)
	must(t, err)
	if qs := parts["questions"].([]map[string]any); len(qs) != 2 || qs[0]["question"].(map[string]any)["question_id"] != "Q4_1" {
		t.Errorf("question_no 4: %v", parts)
	}
	sum, err := svc.RangeSummaryBatch("EX1", []exams.Range{{Start: 20, End: 30}, {Start: 1, End: 1}}, 0)
	must(t, err)
	ranges := sum["ranges"].([]*exams.RangeResult)
	if ranges[0].Error == "" || ranges[1].Error != "" || len(ranges[1].Top) != 5 {
		t.Errorf("summary batch %+v %+v", ranges[0], ranges[1])
	}
}
