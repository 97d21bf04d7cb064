package practice

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// The requirements gate of POST /assignment/generate: bad JSON, an
// invalid checklist, none saved (requirements_missing with the Chinese
// detail), a valid one saved on the way, source=auto skipping it.
func TestGenerateRequirementsGate(t *testing.T) {
	data := t.TempDir()
	hs := newServer(t, newService(t, data))
	before := treeState(t, data)
	form := url.Values{"assignment_id": {"HW1"}, "kp": {"KP1"}, "per_kp": {"2"}}
	r := hs.postForm(t, "/assignment/generate", form)
	if r.status != 400 || string(r.body) != `{"detail":{"detail":"请先提交作业要求（8项）。","error":"requirements_missing"}}` {
		t.Fatalf("no requirements: %d %s", r.status, r.body)
	}
	form.Set("requirements_json", "{not json")
	if r := hs.postForm(t, "/assignment/generate", form); r.status != 400 || string(r.body) != `{"detail":"requirements_json is not valid JSON"}` {
		t.Fatalf("bad JSON: %d %s", r.status, r.body)
	}
	bad := requirementsSource()
	delete(bad, "subject")
	form.Set("requirements_json", mustJSON(bad))
	if r := hs.postForm(t, "/assignment/generate", form); r.status != 400 || !strings.Contains(string(r.body), `"error":"invalid_requirements"`) {
		t.Fatalf("invalid requirements: %d %s", r.status, r.body)
	}
	if after := treeState(t, data); after != before {
		t.Fatalf("a refused generation wrote:\n%s", after)
	}
	form.Set("requirements_json", mustJSON(requirementsSource()))
	r = hs.postForm(t, "/assignment/generate", form)
	body := r.json(t)
	if r.status != 200 || body["ok"] != true || body["question_count"] != 2.0 || body["assignment_id"] != "HW1" ||
		!strings.HasPrefix(body["output"].(string), "[OK] Wrote assignments/HW1/questions.csv") {
		t.Fatalf("valid: %d %s", r.status, r.body)
	}
	if !strings.Contains(readText(t, data, "assignments/HW1/requirements.json"), "牛顿第二定律") {
		t.Fatal("requirements not saved")
	}
	// Now saved, a later generation passes without requirements_json.
	if r := hs.postMultipart(t, "/assignment/generate", map[string]string{"assignment_id": "HW1", "kp": "KP1"}); r.status != 200 {
		t.Fatalf("multipart: %d %s", r.status, r.body)
	}
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"HW2"}, "kp": {"KP1"}, "source": {"auto"}}); r.status != 200 {
		t.Fatalf("auto: %d %s", r.status, r.body)
	}
}

// The form: its fields and defaults, bad values, the meta it makes.
func TestGenerateForm(t *testing.T) {
	data := t.TempDir()
	hs := newServer(t, newService(t, data))
	saveRequirements(t, data, "HW1")
	writeJSON(t, data, "student_profiles/s1.json", map[string]any{"student_id": "s1"})
	r := hs.postMultipart(t, "/assignment/generate", map[string]string{
		"assignment_id": "HW1", "kp": "KP1，KP2", "per_kp": "1", "date": "2026-12-03", "due_at": "2026-12-04",
		"student_ids": "s1; s2", "class_name": "高二1班", "generate": "true", // no LLM: placeholders
	})
	if r.status != 200 || !strings.Contains(string(r.body), "[WARN] no LLM is configured") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	meta := readSmallJSON(filepath.Join(data, "assignments", "HW1", "meta.json"))
	want := map[string]any{"assignment_id": "HW1", "date": "2026-12-03", "mode": "kp", "scope": "student",
		"due_at": "2026-12-04T23:59:59", "class_name": "高二1班", "source": "teacher",
		"target_kp": []any{"KP1", "KP2"}, "student_ids": []any{"s1", "s2"}, "expected_students": []any{"s1", "s2"},
		"question_ids": []any{"GEN-KP1-basic-01", "GEN-KP2-basic-01"}}
	for k, v := range want {
		if !reflect.DeepEqual(meta[k], v) {
			t.Errorf("meta[%s] = %v, want %v", k, meta[k], v)
		}
	}
	if meta["generated_at"] != "2026-12-01T10:00:00" || meta["completion_policy"] == nil {
		t.Errorf("meta %v", meta)
	}
	for _, tc := range []struct {
		form   url.Values
		status int
		detail string
	}{
		{url.Values{"assignment_id": {"HW1"}, "kp": {"KP1"}, "per_kp": {"x"}}, 400, "per_kp must be an integer"},
		{url.Values{"assignment_id": {"HW1"}, "kp": {"KP1"}, "generate": {"maybe"}}, 400, "generate must be a boolean"},
		{url.Values{"kp": {"KP1"}}, 400, "assignment_id is required"},
		{url.Values{"assignment_id": {"../x"}, "kp": {"KP1"}}, 400, "invalid assignment_id"},
		{url.Values{"assignment_id": {"HW1"}, "kp": {"k1,k2,k3,k4,k5,k6,k7,k8,k9,k10,k11,k12,k13,k14,k15,k16,k17,k18,k19,k20,k21"}}, 400, "too many kp"},
		{url.Values{"assignment_id": {"HW1"}, "kp": {"KP1"}, "requirements_json": {strings.Repeat("x", 200<<10)}}, 413, ""},
	} {
		if r := hs.postForm(t, "/assignment/generate", tc.form); r.status != tc.status || !strings.Contains(string(r.body), tc.detail) {
			t.Errorf("%v: %d %s", tc.form, r.status, r.body)
		}
	}
}

// needFont is the CJK font for render tests (skipped without one, failed
// under CI).
func needFont(t *testing.T) string {
	t.Helper()
	font, err := FindCJKFont()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := exec.LookPath("pdftotext"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return font
}

// Render: the PDF is written under the assignment, its Chinese text (a
// long stem wrapped over several lines, no character lost) comes back out
// of pdftotext, a missing stem shows the placeholder line, and the PDF is
// served by PDFHandler.
func TestRenderChinese(t *testing.T) {
	font := needFont(t)
	data := t.TempDir()
	long := strings.Repeat("一个质量为二千克的物体在粗糙水平面上受到十牛的水平拉力，", 4) + "求 its acceleration a（单位 m/s²）。"
	writeBank(t, data, bankRow{"K1-B01", "KP1", "basic", long}, bankRow{"K1-B02", "KP1", "basic", ""})
	s := newService(t, data, func(c *Config) { c.Font = font })
	hs := newServer(t, s)
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"作业1"}, "kp": {"KP1"}, "per_kp": {"3"}, "source": {"auto"}}); r.status != 200 {
		t.Fatalf("generate: %d %s", r.status, r.body)
	}
	start := time.Now()
	r := hs.postForm(t, "/assignment/render", url.Values{"assignment_id": {"作业1"}})
	body := r.json(t)
	if r.status != 200 || body["ok"] != true || body["pdf"] != "assignments/作业1/assignment_作业1.pdf" ||
		body["output"] != "[OK] Wrote PDF: assignments/作业1/assignment_作业1.pdf" || body["url"] != "/assignment/%E4%BD%9C%E4%B8%9A1/pdf" {
		t.Fatalf("render: %d %s", r.status, r.body)
	}
	t.Logf("render took %v", time.Since(start))
	pdf := filepath.Join(data, "assignments", "作业1", "assignment_作业1.pdf")
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", pdf, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	flat := strings.Join(strings.Fields(text), "")
	for _, want := range []string{"AssignmentID:作业1", "Student:", "1.K1-B01(KP1|basic)",
		strings.Join(strings.Fields(long), ""), "2.K1-B02(KP1|basic)", "[题干缺失]请补充题干。", "3.GEN-KP1-basic-01(KP1|basic)", "【待生成】KP1（basic）习题"} {
		if !strings.Contains(flat, want) {
			t.Errorf("pdftotext lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(strings.Split(text, "2. K1-B02")[0], "\n"); n < 5 {
		t.Errorf("the long stem was not wrapped (%d lines):\n%s", n, text)
	}
	g := hs.get(t, "/assignment/%E4%BD%9C%E4%B8%9A1/pdf", "")
	if g.status != 200 || g.header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(string(g.body), "%PDF-") {
		t.Fatalf("pdf: %d %s", g.status, g.header)
	}
	for path, want := range map[string]int{"/assignment/NOPE/pdf": 404, "/assignment/..%2F..%2Fetc/pdf": 400} {
		if r := hs.get(t, path, ""); r.status != want {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	for id, want := range map[string]int{"NOPE": 404, "../x": 400, "": 400} {
		if r := hs.postForm(t, "/assignment/render", url.Values{"assignment_id": {id}}); r.status != want {
			t.Errorf("render %q: %d %s", id, r.status, r.body)
		}
	}
	writeFile(t, data, "assignments/EMPTY/meta.json", "{}")
	if r := hs.postForm(t, "/assignment/render", url.Values{"assignment_id": {"EMPTY"}}); r.status != 404 ||
		!strings.Contains(string(r.body), "Assignment questions not found: assignments/EMPTY/questions.csv") {
		t.Errorf("no questions: %d %s", r.status, r.body)
	}
}

// Without a font, render answers 503 font_unavailable with hints naming
// the Debian package; nothing is written.
func TestRenderWithoutFont(t *testing.T) {
	data := t.TempDir()
	s := newService(t, data)
	hs := newServer(t, s)
	if _, err := s.Generate(t.Context(), GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, PerKP: 1, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, data)
	r := hs.postForm(t, "/assignment/render", url.Values{"assignment_id": {"A1"}})
	detail, _ := r.json(t)["detail"].(map[string]any)
	if r.status != 503 || detail["error"] != "font_unavailable" || !strings.Contains(mustJSON(detail["hints"]), FontPackage) {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if treeState(t, data) != before {
		t.Fatal("wrote files")
	}
	// A file that is not a TrueType CJK font is refused the same way.
	writeFile(t, data, "bad.ttf", "OTTO not really a font")
	s2 := newService(t, data, func(c *Config) { c.Font = filepath.Join(data, "bad.ttf") })
	if _, err := s2.Render(t.Context(), "A1"); fault.CodeOf(err) != fault.Unavailable {
		t.Fatalf("bad font: %v", err)
	}
	if _, err := findCJKFont(t.TempDir()); err == nil || !strings.Contains(err.Error(), FontPackage) {
		t.Fatalf("findCJKFont in an empty dir: %v", err)
	}
}

// GET /assignment/today end to end: without auto_generate nothing is
// written and the answer is null; with it, AUTO_<sid>_<date> is made from
// the profile's focus and returned; a second identical call finds it and
// writes nothing; a teacher's assignment of the day then wins.
func TestTodayAutoGenerateOverHTTP(t *testing.T) {
	data := t.TempDir()
	writeBank(t, data, bankRow{"K1-B01", "受力分析", "basic", "受力分析的基础题"}, bankRow{"K1-M01", "受力分析", "medium", ""})
	writeJSON(t, data, "student_profiles/s1.json", map[string]any{"student_id": "s1", "class_name": "高二1班",
		"next_focus": "(none)", "recent_weak_kp": []string{"受力分析"}, "recent_medium_kp": []string{}})
	s := newService(t, data)
	hs := newServer(t, s)
	before := treeState(t, data)
	r := hs.get(t, "/assignment/today?date="+testDay, "s1")
	if r.status != 200 || string(r.body) != `{"date":"`+testDay+`","assignment":null}` {
		t.Fatalf("plain: %d %s", r.status, r.body)
	}
	if treeState(t, data) != before {
		t.Fatal("a GET without auto_generate wrote")
	}
	r = hs.get(t, "/assignment/today?auto_generate=true&per_kp=3&date="+testDay, "s1")
	body := r.json(t)
	a, _ := body["assignment"].(map[string]any)
	if r.status != 200 || a == nil || a["assignment_id"] != "AUTO_s1_"+testDay || a["question_count"] != 3.0 {
		t.Fatalf("auto: %d %s", r.status, r.body)
	}
	meta := a["meta"].(map[string]any)
	if meta["source"] != "auto" || meta["mode"] != "auto" || meta["scope"] != "student" || meta["class_name"] != "高二1班" ||
		!reflect.DeepEqual(meta["target_kp"], []any{"受力分析"}) {
		t.Fatalf("meta %v", meta)
	}
	qs := a["questions"].([]any)
	if q := qs[0].(map[string]any); q["question_id"] != "K1-B01" || q["stem_text"] != "受力分析的基础题" {
		t.Fatalf("first question %v", q)
	}
	if q := qs[2].(map[string]any); q["question_id"] != "GEN-受力分析-basic-01" || !strings.HasPrefix(q["stem_text"].(string), "【待生成】受力分析（basic）习题") {
		t.Fatalf("placeholder %v", q)
	}
	if _, err := os.Stat(filepath.Join(data, "assignments", "AUTO_s1_"+testDay, "requirements.json")); !os.IsNotExist(err) {
		t.Fatal("auto generation needs no requirements")
	}
	after := treeState(t, data)
	r2 := hs.get(t, "/assignment/today?auto_generate=true&per_kp=3&date="+testDay, "s1")
	if r2.status != 200 || string(r2.body) != string(r.body) || treeState(t, data) != after {
		t.Fatalf("second call regenerated: %d\n%s\n%s", r2.status, r.body, r2.body)
	}
	// A teacher's assignment for the class that day comes first.
	saveRequirements(t, data, "CLASS1")
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"CLASS1"}, "kp": {"受力分析"}, "per_kp": {"1"},
		"class_name": {"高二1班"}, "date": {testDay}}); r.status != 200 {
		t.Fatalf("teacher: %d %s", r.status, r.body)
	}
	if a := hs.get(t, "/assignment/today?auto_generate=true&date="+testDay, "s1").json(t)["assignment"].(map[string]any); a["assignment_id"] != "CLASS1" {
		t.Fatalf("teacher-made not first: %v", a["assignment_id"])
	}
}

// With an LLM, the automatic assignment answers at once with the bank
// and placeholders, and a background generation replaces the
// placeholders; the next call finds the filled assignment.
func TestTodayAutoGenerateWithLLM(t *testing.T) {
	data := t.TempDir()
	client, srv := fakeLLM(t)
	srv.Script(llmtest.Step{Reply: rewrittenThree})
	s := newService(t, data, func(c *Config) { c.LLM = client })
	hs := newServer(t, s)
	r := hs.get(t, "/assignment/today?auto_generate=true&per_kp=2&date="+testDay, "s1")
	a, _ := r.json(t)["assignment"].(map[string]any)
	if r.status != 200 || a == nil || a["question_count"] != 2.0 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	id := "AUTO_s1_" + testDay
	if st := hs.waitStatus(t, id); st["status"] != StatusDone {
		t.Fatalf("fill: %v", st)
	}
	if got := idsOf(questions(t, data, id)); !reflect.DeepEqual(got, []string{"GEN-uncategorized-LLM-01", "GEN-uncategorized-LLM-02"}) {
		t.Fatalf("filled: %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.isRunning(id) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	a = hs.get(t, "/assignment/today?auto_generate=true&per_kp=2&date="+testDay, "s1").json(t)["assignment"].(map[string]any)
	if q := a["questions"].([]any)[0].(map[string]any); q["question_id"] != "GEN-uncategorized-LLM-01" {
		t.Fatalf("second call: %v", q)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Fatalf("%d LLM calls", n)
	}
	// generate=false: placeholders only, no LLM call.
	if r := hs.get(t, "/assignment/today?auto_generate=true&generate=false&date="+testDay, "s2"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if s.isRunning("AUTO_s2_"+testDay) || len(srv.Requests()) != 1 {
		t.Fatal("generate=false called the LLM")
	}
}
