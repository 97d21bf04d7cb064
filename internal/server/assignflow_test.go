package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/testfixtures"
)

// requirements8 is a complete eight-item checklist.
var requirements8 = map[string]any{
	"subject": "物理", "topic": "牛顿第二定律", "grade_level": "高二", "class_level": "中等",
	"core_concepts": []string{"受力分析", "加速度", "合力"}, "typical_problem": "斜面上的物块",
	"misconceptions":   []string{"质量与重量混淆", "忽略摩擦", "方向弄反", "单位错误"},
	"duration_minutes": 40, "preferences": []string{"A基础", "E小测验"},
}

// form posts a multipart form with files given as field → name → bytes.
func (e *env) form(path string, fields map[string]string, files ...[3]any) map[string]any {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mw.WriteField(k, fields[k])
	}
	for _, f := range files {
		fw, _ := mw.CreateFormFile(f[0].(string), f[1].(string))
		fw.Write(f[2].([]byte))
	}
	mw.Close()
	req, _ := http.NewRequest("POST", e.http.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	json.NewDecoder(resp.Body).Decode(&out)
	out["_status"] = float64(resp.StatusCode)
	return out
}

// poll GETs path until the answer's status leaves queued/processing.
func (e *env) poll(path string, timeout time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.get(path).json(e.t)
		if s := st["status"]; s != "queued" && s != "processing" && s != "confirming" {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still %v after %v", path, st["status"], timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(m map[string]any) int { f, _ := m["_status"].(float64); return int(f) }

// The teacher's daily loop and the student's home screen over real HTTP,
// in tenant a with no LLM: a numbered Markdown paper and its answers →
// draft → checklist → confirm; the student sees it as today's assignment,
// submits a photographed answer sheet (real tesseract) and is graded; the
// teacher's progress and the student's profile show it; generate and
// render work; tenants b and the root see none of it; no GET writes.
func TestAssignmentLoopEndToEnd(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract", "pdftotext")
	e := newEnv(t)
	for _, id := range []string{"a", "b"} {
		expect(t, e.putTenant(id, nil), 200, "")
	}
	aData, aUploads := e.tenantDirs("a")
	bData, bUploads := e.tenantDirs("b")
	if err := atomicfile.WriteJSON(filepath.Join(aData, "student_profiles", "s1.json"),
		map[string]any{"student_id": "s1", "student_name": "张三", "class_name": "高二1班"}); err != nil {
		t.Fatal(err)
	}
	bBefore := treeState(t, bData, bUploads)
	const aid = "HW_2026-12-01"

	// Upload: numbered questions in Markdown, answers with the same numbers.
	paper := "# 作业\n1. 下列哪个是力的单位？A. 米 B. 牛顿 C. 秒 D. 千克\n2. 质量为2kg的物体加速度为3m/s²，合力是多少牛？\n"
	answers := "1. B\n2. 6\n"
	st := e.form("/t/a/assignment/upload/start", map[string]string{"assignment_id": aid, "date": "2026-12-01",
		"scope": "class", "class_name": "高二1班"},
		[3]any{"files", "paper.md", []byte(paper)}, [3]any{"answer_files", "answers.md", []byte(answers)})
	if status(st) != 200 || st["status"] != "queued" {
		t.Fatalf("upload start: %v", st)
	}
	job := st["job_id"].(string)
	done := e.poll("/t/a/assignment/upload/status?job_id="+job, 30*time.Second)
	if done["status"] != "done" || done["question_count"] != 2.0 {
		t.Fatalf("upload job: %v", done)
	}
	draft := e.get("/t/a/assignment/upload/draft?job_id=" + job).json(t)["draft"].(map[string]any)
	qs := draft["questions"].([]any)
	if len(qs) != 2 || !strings.Contains(qs[1].(map[string]any)["stem"].(string), "合力") || qs[0].(map[string]any)["answer"] != "B" {
		t.Fatalf("draft questions: %v", qs)
	}
	if r := e.postJSON("/t/a/assignment/upload/confirm", map[string]any{"job_id": job}); r.status != 400 || !strings.Contains(string(r.body), "requirements_missing") {
		t.Fatalf("confirm without the checklist: %d %s", r.status, r.body)
	}
	if r := e.postJSON("/t/a/assignment/upload/draft/save", map[string]any{"job_id": job, "requirements": requirements8}); r.status != 200 {
		t.Fatalf("draft save: %d %s", r.status, r.body)
	}
	if r := e.postJSON("/t/a/assignment/upload/confirm", map[string]any{"job_id": job}); r.status != 200 || !strings.Contains(string(r.body), `"confirmed"`) {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}
	var meta map[string]any
	if data, err := os.ReadFile(filepath.Join(aData, "assignments", aid, "meta.json")); err != nil || json.Unmarshal(data, &meta) != nil {
		t.Fatalf("meta.json: %v", err)
	}
	if fmt.Sprint(meta["expected_students"]) != "[s1]" || meta["completion_policy"] == nil {
		t.Fatalf("meta: expected_students %v, completion_policy %v", meta["expected_students"], meta["completion_policy"])
	}
	if r := e.get("/t/a/assignments"); !strings.Contains(string(r.body), aid) {
		t.Fatalf("a's list: %s", r.body)
	}
	for _, p := range []string{"/t/b/assignments", "/assignments"} {
		expect(t, e.get(p), 200, `{"assignments":[]}`)
	}
	expect(t, e.get("/t/b/assignment/"+aid), 404, "")

	// Today, for the student of the class.
	today := e.get("/t/a/assignment/today?student_id=s1&date=2026-12-01").json(t)
	if a, _ := today["assignment"].(map[string]any); a == nil || a["assignment_id"] != aid {
		t.Fatalf("today: %v", today)
	}

	// The student submits a photographed answer sheet.
	sheet := testfixtures.RenderText(t, testfixtures.LatinFont(t), 34, "Name: s1", "1. B", "2. 6")
	sub := e.form("/t/a/student/submit", map[string]string{"student_id": "s1", "assignment_id": aid},
		[3]any{"files", "sheet.png", testfixtures.PNG(t, sheet)})
	if status(sub) != 200 || sub["job_id"] == nil {
		t.Fatalf("submit: %v", sub)
	}
	graded := e.poll("/t/a/student/submit/status?job_id="+sub["job_id"].(string), 60*time.Second)
	rep, _ := graded["report"].(map[string]any)
	if graded["status"] != "done" || rep == nil || rep["correct"] != 2.0 {
		t.Fatalf("graded: %v", graded)
	}
	reports, _ := filepath.Glob(filepath.Join(aData, "student_submissions", aid, "s1", "submission_*", "grading_report.json"))
	if len(reports) != 1 {
		t.Fatalf("grading reports in a: %v", reports)
	}
	prog := e.get("/t/a/teacher/assignment/progress?assignment_id=" + aid).json(t)
	if c := prog["counts"].(map[string]any); c["expected"] != 1.0 || c["submitted"] != 1.0 {
		t.Fatalf("progress: %v", prog)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		prof := e.get("/t/a/student/profile/s1")
		if strings.Contains(string(prof.body), aid) && strings.Contains(string(prof.body), "practice_history") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("profile never got the result: %s", prof.body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Generate (no bank: placeholders) and render a PDF whose Chinese text
	// is there.
	req, _ := json.Marshal(requirements8)
	gen := e.form("/t/a/assignment/generate", map[string]string{"assignment_id": "GEN_2026-12-01", "kp": "KP1",
		"per_kp": "3", "date": "2026-12-01", "requirements_json": string(req)})
	if status(gen) != 200 || gen["question_count"] != 3.0 {
		t.Fatalf("generate: %v", gen)
	}
	ren := e.form("/t/a/assignment/render", map[string]string{"assignment_id": aid})
	if status(ren) != 200 {
		t.Fatalf("render: %v", ren)
	}
	pdf := e.get("/t/a/assignment/" + aid + "/pdf")
	if pdf.status != 200 || !bytes.HasPrefix(pdf.body, []byte("%PDF")) {
		t.Fatalf("pdf: %d %.100s", pdf.status, pdf.body)
	}
	cmd := exec.Command("pdftotext", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf.body)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(strings.Join(strings.Fields(string(out)), ""), "合力是多少牛") {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}

	// No GET writes a file, and b was never touched.
	aBefore := treeState(t, aData, aUploads)
	for _, p := range []string{"/t/a/assignments", "/t/a/assignment/" + aid, "/t/a/assignment/" + aid + "/requirements",
		"/t/a/assignment/upload/status?job_id=" + job, "/t/a/assignment/upload/draft?job_id=" + job,
		"/t/a/assignment/today?student_id=s1&date=2026-12-01", "/t/a/teacher/assignment/progress?assignment_id=" + aid,
		"/t/a/teacher/assignments/progress?date=2026-12-01", "/t/a/student/submit/status?job_id=" + sub["job_id"].(string),
		"/t/a/assignment/" + aid + "/pdf", "/t/a/assignment/GEN_2026-12-01/generate/status", "/t/a/lessons"} {
		if r := e.get(p); r.status >= 500 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	if after := treeState(t, aData, aUploads); after != aBefore {
		t.Errorf("a GET wrote files:\nbefore:\n%s\nafter:\n%s", aBefore, after)
	}
	if after := treeState(t, bData, bUploads); after != bBefore {
		t.Errorf("tenant b changed:\n%s", after)
	}
}

// slowTesseract puts a tesseract in front of the real one on PATH that
// logs when each OCR starts and ends (unix nanoseconds) and sleeps first.
func slowTesseract(t *testing.T, delay time.Duration) (logPath string) {
	t.Helper()
	real, err := exec.LookPath("tesseract")
	if err != nil {
		testfixtures.NeedBins(t, "tesseract")
	}
	dir := t.TempDir()
	logPath = filepath.Join(dir, "ocr.log")
	script := fmt.Sprintf(`#!/bin/sh
case "$*" in *--list-langs*|*--version*) exec %q "$@";; esac
echo "start $$ $(date +%%s%%N)" >> %q
sleep %s
%q "$@"; rc=$?
echo "end $$ $(date +%%s%%N)" >> %q
exit $rc
`, real, logPath, strconv.FormatFloat(delay.Seconds(), 'f', 2, 64), real, logPath)
	if err := os.WriteFile(filepath.Join(dir, "tesseract"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logPath
}

// ocrIntervals reads the log: each finished OCR's [start, end].
func ocrIntervals(t *testing.T, logPath string) (done [][2]int64, started int) {
	t.Helper()
	data, _ := os.ReadFile(logPath)
	starts := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		switch f[0] {
		case "start":
			starts[f[1]] = ns
			started++
		case "end":
			done = append(done, [2]int64{starts[f[1]], ns})
		}
	}
	return done, started
}

// With the tenant's ocr limit at 1, an assignment upload, a submission and
// a question-image OCR job (three workers of two kinds) never OCR at once.
func TestOCRLimitOfOneTenant(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract")
	logPath := slowTesseract(t, 300*time.Millisecond)
	e := newEnv(t)
	expect(t, e.putTenant("a", map[string]any{"limits": map[string]any{"ocr": 1}}), 200, "")
	aData, _ := e.tenantDirs("a")
	if err := atomicfile.WriteFile(filepath.Join(aData, "assignments", "HW1", "questions.csv"),
		[]byte("question_id,kp_id,answer_text\nQ1,kp1,B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := func(lines ...string) []byte {
		return testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 30, lines...))
	}
	up := e.form("/t/a/assignment/upload/start", map[string]string{"assignment_id": "HW2"},
		[3]any{"files", "p1.png", img("1. What is a force?", "2. What is mass?")})
	sub := e.form("/t/a/student/submit", map[string]string{"student_id": "s1", "assignment_id": "HW1"},
		[3]any{"files", "a.png", img("1. B")}, [3]any{"files", "b.png", img("1. B")})
	qo := e.form("/t/a/assignment/questions/ocr", map[string]string{"assignment_id": "HW1"},
		[3]any{"files", "q.png", img("A ball falls.")})
	for _, r := range []map[string]any{up, sub, qo} {
		if status(r) != 200 {
			t.Fatalf("start: %v", r)
		}
	}
	e.poll("/t/a/assignment/upload/status?job_id="+up["job_id"].(string), 60*time.Second)
	e.poll("/t/a/student/submit/status?job_id="+sub["job_id"].(string), 60*time.Second)
	e.poll("/t/a/assignment/upload/status?job_id="+qo["job_id"].(string), 60*time.Second)
	iv, _ := ocrIntervals(t, logPath)
	if len(iv) < 4 {
		t.Fatalf("%d OCR calls logged, want 4: %v", len(iv), iv)
	}
	// The tenant's status and the metrics count the same pages.
	st := e.do("GET", "/admin/tenants/a", adminKey, nil).json(t)["tenant"].(map[string]any)["status"].(map[string]any)
	if u := st["ocr_usage"].(map[string]any); u["pages"] != float64(len(iv)) || u["failures"] != 0.0 {
		t.Errorf("ocr_usage %v, want %d pages", u, len(iv))
	}
	sort.Slice(iv, func(i, j int) bool { return iv[i][0] < iv[j][0] })
	for i := 1; i < len(iv); i++ {
		if iv[i][0] < iv[i-1][1] {
			t.Errorf("OCR %d started %v before OCR %d ended", i, time.Duration(iv[i-1][1]-iv[i][0]), i-1)
		}
	}
}

// A queued assignment upload cut short by a restart resumes once: the OCR
// that was killed is run again, and the job ends done exactly once.
func TestAssignmentJobResumesAfterRestart(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract")
	logPath := slowTesseract(t, 1500*time.Millisecond)
	e := newEnv(t)
	expect(t, e.putTenant("a", nil), 200, "")
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 30, "1. What is a force?", "2. What is mass?"))
	up := e.form("/t/a/assignment/upload/start", map[string]string{"assignment_id": "HW_R"}, [3]any{"files", "p.png", png})
	if status(up) != 200 {
		t.Fatalf("start: %v", up)
	}
	job := up["job_id"].(string)
	// Wait for the OCR to start, then stop the server under it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, started := ocrIntervals(t, logPath); started > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("OCR never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.restart()
	done := e.poll("/t/a/assignment/upload/status?job_id="+job, 60*time.Second)
	if done["status"] != "done" || done["question_count"] != 2.0 {
		t.Fatalf("after restart: %v", done)
	}
	finished, started := ocrIntervals(t, logPath)
	if len(finished) != 1 || started != 2 {
		t.Fatalf("OCR runs: %d finished of %d started, want 1 of 2 (one killed by the stop, one after)", len(finished), started)
	}
	if w := e.workerStatus("a", "assignment_upload"); w["processed"] != 1.0 {
		t.Fatalf("assignment worker after restart: %v", w)
	}
}
