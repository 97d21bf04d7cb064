package assignupload

import (
	"encoding/csv"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/assignments"
)

const paperMD = `# 第三章 牛顿运动定律 练习

一、选择题
1. 下列关于惯性的说法正确的是（3分）
A. 速度越大惯性越大
B. 质量越大惯性越大
2. 一个质量为 2 kg 的物体受到 10 N 的合力，求加速度。
二、计算题
3. 汽车以 20 m/s 的速度刹车，加速度大小为 5 m/s²。
(1) 求刹车时间；
(2) 求刹车距离。
`

const answersMD = "1. B 2. 5 m/s² 3. 4 s；40 m\n"

// A Markdown paper with numbered questions and no LLM: the questions are
// split by number (answers from the answer file), the draft is edited in
// three saves that merge, and the confirm writes the assignment.
func TestTextUploadWithoutLLM(t *testing.T) {
	f := newFixture(t, false)
	id := f.start(value("assignment_id", "A2403_2026-02-08"), value("date", "2026-02-08"), value("due_at", "2026-02-10"),
		value("student_ids", "s1，s2; s3,s1"), file("files", "paper.md", []byte(paperMD)),
		file("answer_files", "answers.md", []byte(answersMD)))
	rec := f.wait(id)
	if rec["status"] != StatusDone || rec["step"] != "done" || rec["question_count"] != 3.0 || rec["draft_version"] != 1.0 {
		t.Fatalf("job: %v", rec)
	}
	if rec["delivery_mode"] != "text" || rec["scope"] != "student" || rec["due_at"] != "2026-02-10T23:59:59" {
		t.Fatalf("job fields: %v", rec)
	}
	if got := strs(rec["student_ids"]); !reflect.DeepEqual(got, []string{"s1", "s2", "s3"}) {
		t.Fatalf("student_ids %v", got)
	}
	if src := readFile(t, filepath.Join(f.uploads, "assignment_jobs", id, "source_text.txt")); !strings.Contains(src, "刹车") {
		t.Fatalf("source_text.txt: %q", src)
	}
	if _, err := os.Stat(filepath.Join(f.uploads, "assignment_jobs", id, "answer_text.txt")); err != nil {
		t.Fatal(err)
	}

	d := f.draft(id)
	qs, _ := d["questions"].([]any)
	if len(qs) != 3 {
		t.Fatalf("questions: %v", d["questions"])
	}
	q1, q3 := qs[0].(map[string]any), qs[2].(map[string]any)
	if !strings.HasPrefix(q1["stem"].(string), "下列关于惯性") || !strings.Contains(q1["stem"].(string), "B. 质量越大") ||
		q1["answer"] != "B" || q1["score"] != 3.0 {
		t.Errorf("q1: %v", q1)
	}
	if !strings.Contains(q3["stem"].(string), "(2) 求刹车距离") || strings.Contains(q3["stem"].(string), "计算题") || q3["answer"] != "4 s；40 m" {
		t.Errorf("q3: %v", q3)
	}
	if got := strs(d["requirements_missing"]); len(got) != 9 {
		t.Errorf("requirements_missing %v", got)
	}
	if w := strs(d["warnings"]); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "未配置大模型") }) {
		t.Errorf("warnings %v", w)
	}

	// Three saves: requirements in two parts, questions in between; each
	// keeps what the others saved.
	save := func(body map[string]any) map[string]any {
		t.Helper()
		body["job_id"] = id
		code, out := f.postJSON("/assignment/upload/draft/save", body)
		if code != http.StatusOK || out["ok"] != true || out["message"] != "草稿已保存，将用于创建作业。" {
			t.Fatalf("save: %d %v", code, out)
		}
		return out
	}
	full := fullRequirements()
	save(map[string]any{"requirements": map[string]any{"subject": full["subject"], "topic": full["topic"],
		"grade_level": full["grade_level"], "class_level": full["class_level"]}})
	edited := []any{
		map[string]any{"stem": "  下列关于惯性的说法正确的是  ", "answer": "B", "kp": "KP-inertia", "difficulty": "基础", "tags": []any{"选择"}},
		"not a question",
		map[string]any{"stem": "求加速度。", "answer": "5 m/s²", "difficulty": "较难/挑战", "score": "4"},
		map[string]any{"stem": "", "tags": "计算, 综合"},
	}
	out := save(map[string]any{"questions": edited})
	if got := strs(out["requirements_missing"]); slices.Contains(got, "subject") || len(got) != 5 {
		t.Fatalf("after the questions save, missing %v: the requirements were dropped", got)
	}
	delete(full, "subject")
	out = save(map[string]any{"requirements": full})
	if len(strs(out["requirements_missing"])) != 0 || out["draft_version"] != 4.0 {
		t.Fatalf("third save: %v", out)
	}
	d = f.draft(id)
	if d["draft_saved"] != true || d["draft_version"] != 4.0 || d["question_count"] != 3.0 {
		t.Fatalf("draft after saves: %v", d)
	}
	if q := d["questions"].([]any)[0].(map[string]any); q["stem"] != "下列关于惯性的说法正确的是" {
		t.Fatalf("stem not trimmed: %q", q["stem"])
	}

	code, out := f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id})
	if code != http.StatusOK || out["status"] != StatusConfirmed || out["question_count"] != 3.0 {
		t.Fatalf("confirm: %d %v", code, out)
	}
	aid := "A2403_2026-02-08"
	dir := filepath.Join(f.data, "assignments", aid)
	rows := readCSV(t, filepath.Join(dir, "questions.csv"))
	wantHeader := []string{"question_id", "kp_id", "difficulty", "type", "stem_ref", "answer_ref", "answer_text", "source", "tags"}
	if !reflect.DeepEqual(rows[0], wantHeader) || len(rows) != 4 {
		t.Fatalf("questions.csv: %v", rows)
	}
	if want := []string{"UP-A2403_2026-02-08-001", "KP-inertia", "basic", "upload", "assignments/" + aid + "/uploaded_stems/UP-A2403_2026-02-08-001.md",
		"assignments/" + aid + "/uploaded_answers/UP-A2403_2026-02-08-001.md", "B", "teacher_upload", "选择"}; !reflect.DeepEqual(rows[1], want) {
		t.Errorf("row 1: %v\nwant %v", rows[1], want)
	}
	if rows[2][2] != "advanced" || rows[3][1] != "uncategorized" || rows[3][5] != "" || rows[3][8] != "计算,综合" {
		t.Errorf("rows 2, 3: %v %v", rows[2], rows[3])
	}
	if s := readFile(t, filepath.Join(dir, "uploaded_stems", "UP-A2403_2026-02-08-003.md")); s != "【空题干】请补充题干。" {
		t.Errorf("empty stem: %q", s)
	}
	if readFile(t, filepath.Join(dir, "source", "paper.md")) != paperMD || readFile(t, filepath.Join(dir, "answer_source", "answers.md")) != answersMD {
		t.Error("source files not copied")
	}
	meta := readJSONFile(t, filepath.Join(dir, "meta.json"))
	for k, want := range map[string]any{"assignment_id": aid, "date": "2026-02-08", "due_at": "2026-02-10T23:59:59", "mode": "upload",
		"scope": "student", "source": "teacher", "delivery_mode": "text", "job_id": id, "requirements_autofilled": false,
		"expected_students_generated_at": "2026-02-08T09:30:00", "generated_at": "2026-02-08T09:30:00"} {
		if meta[k] != want {
			t.Errorf("meta.%s = %v, want %v", k, meta[k], want)
		}
	}
	if got := strs(meta["expected_students"]); !reflect.DeepEqual(got, []string{"s1", "s2", "s3"}) {
		t.Errorf("expected_students %v", got)
	}
	if got := strs(meta["target_kp"]); !reflect.DeepEqual(got, []string{"牛顿第二定律", "加速度", "合力"}) {
		t.Errorf("target_kp %v", got)
	}
	if cp, _ := meta["completion_policy"].(map[string]any); cp["requires_discussion"] != true {
		t.Errorf("completion_policy %v", meta["completion_policy"])
	}
	if got := strs(meta["question_ids"]); len(got) != 3 || got[2] != "UP-A2403_2026-02-08-003" {
		t.Errorf("question_ids %v", got)
	}
	req := readJSONFile(t, filepath.Join(dir, "requirements.json"))
	if req["created_by"] != "teacher_upload" || req["class_level"] != "中等" || req["duration_minutes"] != 40.0 || req["assignment_id"] != aid {
		t.Errorf("requirements.json: %v", req)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.data, "assignments")); len(entries) != 1 {
		t.Errorf("assignments/ holds %d entries (a staging folder left?)", len(entries))
	}

	// The assignments service reads the DATA_DIR-relative refs.
	detail, err := assignments.NewService(f.data).Get(aid)
	if err != nil {
		t.Fatal(err)
	}
	if detail.QuestionCount != 3 || detail.Questions[0].Values["stem_text"] != "下列关于惯性的说法正确的是" {
		t.Errorf("detail: %d %v", detail.QuestionCount, detail.Questions[0].Values)
	}
	if detail.Delivery == nil || detail.Delivery.Files[0].Name != "paper.md" {
		t.Errorf("delivery %+v", detail.Delivery)
	}

	rec = f.wait(id)
	if rec["status"] != StatusConfirmed || rec["step"] != "confirmed" || rec["confirmed_at"] == nil {
		t.Fatalf("job after confirm: %v", rec)
	}
	code, out = f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id})
	if code != http.StatusOK || out["message"] != "作业已创建（已确认）。" {
		t.Fatalf("second confirm: %d %v", code, out)
	}
	code, out = f.postJSON("/assignment/upload/draft/save", map[string]any{"job_id": id, "questions": []any{}})
	if detail, _ := out["detail"].(map[string]any); code != http.StatusBadRequest || detail["error"] != "job_not_ready" {
		t.Fatalf("save after confirm: %d %v", code, out)
	}
}

func readCSV(t *testing.T, p string) [][]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A strict confirm with requirements missing is refused with the missing
// keys; the job goes back to done/await_requirements and nothing is
// written. Not strict, it creates the assignment with what there is.
func TestConfirmStrictRequirementsMissing(t *testing.T) {
	f := newFixture(t, false)
	id := f.start(value("assignment_id", "HW1"), value("class_name", "高一(2)班"), file("files", "paper.txt", []byte(paperMD)))
	f.wait(id)
	code, out := f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id, "requirements_override": map[string]any{"subject": "物理"}})
	detail, _ := out["detail"].(map[string]any)
	if code != http.StatusBadRequest || detail["error"] != "requirements_missing" || detail["message"] != "作业要求未补全，无法创建作业。" {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if got := strs(detail["missing"]); len(got) != 8 || slices.Contains(got, "subject") {
		t.Fatalf("missing %v", got)
	}
	rec := f.wait(id)
	if rec["status"] != StatusDone || rec["step"] != "await_requirements" || rec["progress"] != 100.0 || len(strs(rec["requirements_missing"])) != 8 {
		t.Fatalf("job: %v", rec)
	}
	if _, err := os.Stat(filepath.Join(f.data, "assignments")); !os.IsNotExist(err) {
		t.Fatalf("assignments/ written by a refused confirm: %v", err)
	}

	code, out = f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id, "strict_requirements": false})
	if code != http.StatusOK || len(strs(out["requirements_missing"])) != 9 {
		t.Fatalf("confirm, not strict: %d %v", code, out)
	}
	meta := readJSONFile(t, filepath.Join(f.data, "assignments", "HW1", "meta.json"))
	if meta["scope"] != "class" || meta["class_name"] != "高一(2)班" || len(strs(meta["requirements_missing"])) != 9 {
		t.Errorf("meta: %v", meta)
	}
	if _, ok := meta["due_at"]; ok {
		t.Errorf("meta.due_at without a due date: %v", meta["due_at"])
	}
	req := readJSONFile(t, filepath.Join(f.data, "assignments", "HW1", "requirements.json"))
	if req["created_by"] != "teacher_upload" {
		t.Errorf("requirements.json %v", req)
	}
}

// An existing assignment (its meta.json) refuses the confirm with 409: the
// job stays done and nothing is written. An assignment folder without
// meta.json is completed, its own files kept.
func TestConfirmExistingAssignment(t *testing.T) {
	f := newFixture(t, false)
	taken := filepath.Join(f.data, "assignments", "TAKEN")
	if err := os.MkdirAll(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(taken, "meta.json"), []byte(`{"assignment_id":"TAKEN"}`), 0o644)
	id := f.start(value("assignment_id", "TAKEN"), file("files", "paper.md", []byte(paperMD)))
	f.wait(id)
	code, out := f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id, "strict_requirements": false})
	if code != http.StatusConflict || out["detail"] != "assignment already exists" {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if rec := f.wait(id); rec["status"] != StatusDone {
		t.Fatalf("job after 409: %v", rec)
	}
	if entries, _ := os.ReadDir(taken); len(entries) != 1 {
		t.Fatalf("the existing assignment was written to: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.data, "assignments")); len(entries) != 1 {
		t.Fatalf("assignments/: %v", entries)
	}

	half := filepath.Join(f.data, "assignments", "HALF")
	os.MkdirAll(half, 0o755)
	os.WriteFile(filepath.Join(half, "requirements.json"), []byte(`{"created_by":"teacher"}`), 0o644)
	os.WriteFile(filepath.Join(half, "explicit_questions.csv"), []byte("question_id\nIMG-HALF-001\n"), 0o644)
	id = f.start(value("assignment_id", "HALF"), file("files", "paper.md", []byte(paperMD)))
	f.wait(id)
	if code, out := f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id, "strict_requirements": false}); code != http.StatusOK {
		t.Fatalf("confirm into a folder without meta.json: %d %v", code, out)
	}
	if readJSONFile(t, filepath.Join(half, "meta.json"))["job_id"] != id || readFile(t, filepath.Join(half, "explicit_questions.csv")) != "question_id\nIMG-HALF-001\n" {
		t.Error("folder not completed with its own files kept")
	}
	if readJSONFile(t, filepath.Join(half, "requirements.json"))["created_by"] != "teacher_upload" {
		t.Error("requirements.json not the upload's")
	}
}

// Ids that are not one safe path component, and file names that are not
// plain names, are refused before any job exists: nothing is left in
// UPLOADS_DIR or DATA_DIR. A name with directories keeps its base name.
func TestTraversalRefused(t *testing.T) {
	f := newFixture(t, false)
	paper := file("files", "paper.md", []byte(paperMD))
	for _, aid := range []string{"../x", "a/b", ".", "..", "", " ", `..\x`, "x/../../y"} {
		for _, path := range []string{"/assignment/upload/start", "/assignment/questions/ocr"} {
			code, out := f.post(path, []part{value("assignment_id", aid), paper})
			if code != http.StatusBadRequest {
				t.Errorf("%s id %q: %d %v", path, aid, code, out)
			}
		}
	}
	for _, name := range []string{"..", ".hidden.md", "."} {
		code, out := f.post("/assignment/upload/start", []part{value("assignment_id", "OK1"), file("files", name, []byte(paperMD))})
		if code != http.StatusBadRequest {
			t.Errorf("file name %q: %d %v", name, code, out)
		}
	}
	for _, c := range []struct {
		parts []part
		want  int
	}{
		{[]part{value("assignment_id", "OK1"), value("scope", "student"), paper}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1"), value("scope", "class"), paper}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1"), value("scope", "everyone"), paper}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1"), value("student_ids", "s1,../s2"), paper}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1"), value("date", "someday"), paper}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1"), value("due_at", "tomorrow"), paper}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1")}, http.StatusBadRequest},
		{[]part{value("assignment_id", "OK1"), file("files", "paper.csv", []byte("a,b\n1,2\n"))}, http.StatusUnsupportedMediaType},
		{[]part{value("assignment_id", "OK1"), file("files", "paper.doc", []byte("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"))}, http.StatusUnsupportedMediaType},
		{append([]part{value("assignment_id", "OK1")}, manyFiles(21)...), http.StatusRequestEntityTooLarge},
	} {
		if code, out := f.post("/assignment/upload/start", c.parts); code != c.want {
			t.Errorf("%v: %d %v, want %d", c.parts[:min(2, len(c.parts))], code, out, c.want)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(f.uploads, "assignment_jobs")); len(entries) != 0 {
		t.Errorf("refused starts left %d job folders", len(entries))
	}
	if entries, _ := os.ReadDir(f.data); len(entries) != 0 {
		t.Errorf("refused starts wrote DATA_DIR: %v", entries)
	}

	id := f.start(value("assignment_id", "OK1"), file("files", "../../evil.md", []byte(paperMD)))
	rec := f.wait(id)
	if got := strs(rec["source_files"]); !reflect.DeepEqual(got, []string{"evil.md"}) {
		t.Fatalf("source_files %v", got)
	}
	if _, err := os.Stat(filepath.Join(f.uploads, "assignment_jobs", id, "source", "evil.md")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.uploads, "evil.md")); !os.IsNotExist(err) {
		t.Fatal("a file escaped its job folder")
	}
}

func manyFiles(n int) []part {
	var out []part
	for i := range n {
		out = append(out, file("files", "p"+strings.Repeat("x", i)+".md", []byte("1. q\n")))
	}
	return out
}

// Another teacher cannot see or act on a teacher's job (with tokens); the
// admin can, and so can anyone in open mode.
func TestOtherTeachersJobForbidden(t *testing.T) {
	f := newFixture(t, false)
	id := f.start(value("assignment_id", "OWN1"), file("files", "paper.md", []byte(paperMD)))
	f.wait(id)
	other := []string{"X-Teacher", "t_lisi"}
	for _, c := range []struct {
		name string
		do   func(h ...string) (int, map[string]any)
	}{
		{"status", func(h ...string) (int, map[string]any) { return f.get("/assignment/upload/status?job_id="+id, h...) }},
		{"draft", func(h ...string) (int, map[string]any) { return f.get("/assignment/upload/draft?job_id="+id, h...) }},
		{"save", func(h ...string) (int, map[string]any) {
			return f.postJSON("/assignment/upload/draft/save", map[string]any{"job_id": id, "requirements": map[string]any{}}, h...)
		}},
		{"confirm", func(h ...string) (int, map[string]any) {
			return f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id}, h...)
		}},
	} {
		if code, out := c.do(other...); code != http.StatusForbidden || out["detail"] != "forbidden_upload_job" {
			t.Errorf("%s by another teacher: %d %v", c.name, code, out)
		}
	}
	if code, _ := f.get("/assignment/upload/status?job_id="+id, "X-Role", "admin"); code != http.StatusOK {
		t.Errorf("admin: %d", code)
	}
	if code, _ := f.get("/assignment/upload/draft?job_id="+id, "X-Teacher", "t_lisi", "X-Open", "1"); code != http.StatusOK {
		t.Errorf("open mode: %d", code)
	}
	if code, out := f.get("/assignment/upload/status?job_id=job_000000000000"); code != http.StatusNotFound || out["detail"] != "job not found" {
		t.Errorf("unknown job: %d %v", code, out)
	}
	if rec := f.wait(id); rec["status"] != StatusDone {
		t.Errorf("job changed: %v", rec)
	}
}

// A job queued by one pipeline (whose worker never ran) is resumed by a
// new pipeline over the same directories and processed once; a third one
// leaves the done job alone.
func TestQueuedJobResumesOnce(t *testing.T) {
	a := newFixture(t, true)
	id := a.start(value("assignment_id", "RESUME1"), file("files", "paper.md", []byte(paperMD)))
	if rec, _ := a.p.Store().Load(id); rec["status"] != StatusQueued {
		t.Fatalf("job: %v", rec)
	}
	b := New(a.cfg)
	startRunner(t, b)
	rec := a.wait(id)
	if rec["status"] != StatusDone {
		t.Fatalf("resumed job: %v", rec)
	}
	if s := b.Runner().Stats(); s.Processed != 1 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	c := New(a.cfg)
	startRunner(t, c)
	if err := c.Runner().Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := c.Runner().Stats(); s.Processed != 0 {
		t.Fatalf("a done job was processed again: %+v", s)
	}
	if again, _ := a.p.Store().Load(id); again["updated_at"] != rec["updated_at"] || again["draft_version"] != 1.0 {
		t.Fatalf("job rewritten: %v", again)
	}
}

// A confirm cut short after its plan (the process stopped) is finished by
// the next worker from the plan: the same ids and files; recovering again
// changes nothing.
func TestConfirmingJobResumes(t *testing.T) {
	a := newFixture(t, true)
	startRunner(t, a.p)
	id := a.start(value("assignment_id", "CRASH1"), file("files", "paper.md", []byte(paperMD)))
	a.wait(id)
	if err := a.p.Runner().Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// What confirm does before it writes: the plan and the confirming
	// state; then a half-built staging folder, as a crash would leave.
	pl, err := a.p.prepare(id, fullRequirements(), true)
	if err != nil || pl == nil {
		t.Fatalf("prepare: %v", err)
	}
	staging := filepath.Join(a.data, "assignments", ".tmp-"+id)
	os.MkdirAll(filepath.Join(staging, "uploaded_stems"), 0o755)
	os.WriteFile(filepath.Join(staging, "uploaded_stems", "junk.md"), []byte("x"), 0o644)
	if rec, _ := a.p.Store().Load(id); rec["status"] != StatusConfirming {
		t.Fatalf("job: %v", rec)
	}

	b := New(a.cfg)
	startRunner(t, b)
	rec := a.wait(id)
	if rec["status"] != StatusConfirmed || rec["assignment_id"] != "CRASH1" {
		t.Fatalf("recovered job: %v", rec)
	}
	dir := filepath.Join(a.data, "assignments", "CRASH1")
	csvBefore, metaBefore := readFile(t, filepath.Join(dir, "questions.csv")), readFile(t, filepath.Join(dir, "meta.json"))
	if !strings.Contains(csvBefore, "UP-CRASH1-003") || readJSONFile(t, filepath.Join(dir, "meta.json"))["job_id"] != id {
		t.Fatalf("assignment: %s", csvBefore)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Fatal("staging folder left")
	}
	if _, err := os.Stat(filepath.Join(dir, "uploaded_stems", "junk.md")); !os.IsNotExist(err) {
		t.Fatal("a crash's leftovers reached the assignment")
	}

	a.p.Store().Update(id, func(r map[string]any) error { r["status"] = StatusConfirming; return nil })
	if err := b.process(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if rec, _ := a.p.Store().Load(id); rec["status"] != StatusConfirmed {
		t.Fatalf("second recovery: %v", rec)
	}
	if readFile(t, filepath.Join(dir, "questions.csv")) != csvBefore || readFile(t, filepath.Join(dir, "meta.json")) != metaBefore {
		t.Fatal("a second recovery changed the assignment")
	}
}

// No GET (status, draft, for every job state reached) writes a file.
func TestGETWritesNothing(t *testing.T) {
	f := newFixture(t, false)
	done := f.start(value("assignment_id", "GET1"), file("files", "paper.md", []byte(paperMD)))
	failed := f.start(value("assignment_id", "GET2"), file("files", "notes.md", []byte("没有编号的文字。\n")))
	f.wait(done)
	if rec := f.wait(failed); rec["status"] != StatusFailed {
		t.Fatalf("job: %v", rec)
	}
	confirmed := f.start(value("assignment_id", "GET3"), file("files", "paper.md", []byte(paperMD)))
	f.wait(confirmed)
	f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": confirmed, "strict_requirements": false})
	before := tree(t, f.data, f.uploads)
	for range 3 {
		for _, id := range []string{done, failed, confirmed, "job_000000000000", "../x"} {
			f.get("/assignment/upload/status?job_id=" + id)
			f.get("/assignment/upload/draft?job_id=" + id)
		}
	}
	if after := tree(t, f.data, f.uploads); !reflect.DeepEqual(before, after) {
		for p, v := range after {
			if before[p] != v {
				t.Errorf("changed by a GET: %s", p)
			}
		}
		t.Fatal("a GET wrote")
	}
}

// Without an LLM, a text without numbered questions fails with hints.
func TestUnnumberedTextWithoutLLMFails(t *testing.T) {
	f := newFixture(t, false)
	id := f.start(value("assignment_id", "NONUM"), file("files", "notes.md", []byte("本节课复习牛顿第二定律。\n请同学们完成课后练习。\n")))
	rec := f.wait(id)
	if rec["status"] != StatusFailed || rec["error"] != "no questions parsed" || len(strs(rec["hints"])) == 0 {
		t.Fatalf("job: %v", rec)
	}
	if code, out := f.get("/assignment/upload/draft?job_id=" + id); code != http.StatusBadRequest {
		t.Fatalf("draft of a failed job: %d %v", code, out)
	}
}
