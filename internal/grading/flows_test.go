package grading

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/students"
	"github.com/lectern/lectern/internal/testfixtures"
)

const simpleCSV = "question_id,kp_id,answer_text\nQ1,kp1,C\nQ2,kp1,12.5\n"

// TestSubmitPDFTextLayerDetectsAssignment: a PDF with a text layer needs
// no OCR; auto_assignment reads the id the sheet names.
func TestSubmitPDFTextLayerDetectsAssignment(t *testing.T) {
	testfixtures.NeedBins(t, "pdftotext", "pdfinfo", "pdftoppm")
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW_PDF", simpleCSV, nil)
	writeAssignment(t, data, "HW", simpleCSV, nil) // a shorter id inside the text: the longer wins
	var ocrCalls atomic.Int32
	f := newFixture(t, data, uploads, true, withText(engineFunc(func(string) (ocr.Page, error) {
		ocrCalls.Add(1)
		return ocr.Page{}, errors.New("no OCR expected")
	})))
	pdf := testfixtures.PDF(testfixtures.PDFPage{Lines: []string{"Student: Li Lei   Homework HW_PDF", "1. C", "2. 12.5 N"}})
	code, out := f.submit([][2]string{{"student_id", "S1"}, {"auto_assignment", "true"}, {"wait", "1"}},
		[]file{{name: "sheet.pdf", data: pdf}})
	if code != http.StatusOK || out["status"] != StatusDone || out["assignment_id"] != "HW_PDF" {
		t.Fatalf("submit: %d %v", code, out)
	}
	for _, line := range []string{"[OK] Saved OCR to student_submissions/S1/submission_20260302_093000/ocr",
		"[OK] Saved feedback to student_submissions/S1/submission_20260302_093000/feedback.md",
		"[OK] Saved profile suggestion to student_submissions/S1/submission_20260302_093000/profile_update_suggestion.md"} {
		if !strings.Contains(out["output"].(string), line) {
			t.Errorf("output lacks %q: %q", line, out["output"])
		}
	}
	got := items(t, out["report"].(map[string]any))
	if got["Q1"]["reason"] != "mcq_single" || got["Q2"]["reason"] != "numeric_match" || ocrCalls.Load() != 0 {
		t.Fatalf("items %v, OCR calls %d", got, ocrCalls.Load())
	}
	// The job records the detection.
	_, rec := f.status(out["job_id"].(string))
	if rec["assignment_source"] != "detected" || rec["summary"].(map[string]any)["correct"] != 2.0 {
		t.Errorf("job: %v", rec)
	}
}

// TestAssignmentIDRules: an explicit id is never replaced by detection;
// nothing detected fails the job with hints (a 400 when waited for).
func TestAssignmentIDRules(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW_A", "question_id,answer_text\nQ1,A\n", nil)
	writeAssignment(t, data, "HW_B", "question_id,answer_text\nQ1,B\n", nil)
	f := newFixture(t, data, uploads, true)
	sheet := []file{{name: "a.txt", data: []byte("Assignment ID: HW_B\n1. A\n")}}
	code, out := f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW_A"}, {"auto_assignment", "true"}, {"wait", "true"}}, sheet)
	if code != http.StatusOK || out["assignment_id"] != "HW_A" || items(t, out["report"].(map[string]any))["Q1"]["status"] != "matched" {
		t.Fatalf("explicit id: %d %v", code, out)
	}
	code, out = f.submit([][2]string{{"student_id", "S1"}, {"auto_assignment", "1"}, {"wait", "1"}},
		[]file{{name: "b.txt", data: []byte("1. A\n2. B\n")}})
	d, _ := out["detail"].(map[string]any)
	if code != http.StatusBadRequest || d["error"] != "assignment_not_detected" || len(d["hints"].([]any)) == 0 || d["status"] != "failed" {
		t.Fatalf("not detected: %d %v", code, out)
	}
	rec := f.waitJob(d["job_id"].(string))
	if rec["status"] != StatusFailed || rec["error"] != "assignment_not_detected" {
		t.Fatalf("job: %v", rec)
	}
	// No OCR configured: an image fails with ocr_unavailable and hints.
	code, out = f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW_A"}, {"wait", "1"}},
		[]file{{name: "c.png", data: testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 30, "1. A"))}})
	if d, _ := out["detail"].(map[string]any); code != http.StatusServiceUnavailable || d["error"] != "ocr_unavailable" || len(d["hints"].([]any)) == 0 {
		t.Fatalf("no OCR: %d %v", code, out)
	}
}

// recorder keeps the gateway's log records (the call's kind is logged).
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "kind" {
				out = append(out, a.Value.String())
			}
			return true
		})
	}
	return out
}

// TestSubjectiveLLM: the rubric is unsure, so the model grades (kind
// grading.subjective, the schema in the prompt); its schema-checked answer
// is used, and an answer that does not fit keeps the rubric grade.
func TestSubjectiveLLM(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	rubric := `{"steps":[{"id":"s1","keywords":["重力"]},{"id":"s2","keywords":["支持力"]},{"id":"s3","keywords":["合力为零"]}]}`
	writeAssignment(t, data, "HW_LLM", "question_id,kp_id,score,rubric_ref\nQ1,静力学,3,assignments/HW_LLM/r.json\nQ2,静力学,3,assignments/HW_LLM/r.json\n",
		map[string]string{"assignments/HW_LLM/r.json": rubric})
	srv := llmtest.NewServer(t)
	srv.Script(
		llmtest.Step{Reply: "```json\n" + `{"score":3,"total_score":3,"matched_steps":["s1","s2","s3"],"missing_steps":[],"confidence":0.9,"reason":"受力分析完整"}` + "\n```"},
		llmtest.Step{Reply: `{"score":5,"total_score":3,"matched_steps":[],"missing_steps":[],"confidence":0.9,"reason":"x"}`},
	)
	rec := &recorder{}
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "test", BaseURL: srv.URL, Model: "m", Timeout: 5 * time.Second, MaxAttempts: 1}}},
		llm.Options{Logger: slog.New(rec)})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()), Global: limits.NewSet(limits.TenantDefaults())}
	f := newFixture(t, data, uploads, true, func(c *Config) { c.LLM = client })
	code, out := f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW_LLM"}, {"wait", "1"}},
		[]file{{name: "a.txt", data: []byte("1. 物体静止，所以合力为零。\n2. 物体静止，所以合力为零。\n")}})
	if code != http.StatusOK {
		t.Fatalf("submit: %d %v", code, out)
	}
	got := items(t, out["report"].(map[string]any))
	if q := got["Q1"]; q["reason"] != "llm_rubric" || q["score"] != 3.0 || q["confidence"] != 0.9 || q["status"] != "matched" || len(q["matched_steps"].([]any)) != 3 {
		t.Errorf("Q1 (model answer used): %v", q)
	}
	if q := got["Q2"]; q["reason"] != "rubric" || q["score"] != 1.0 || q["confidence"] != 0.333 || q["status"] != "missed" || !strings.Contains(q["note"].(string), "invalid") {
		t.Errorf("Q2 (bad answer, rubric kept): %v", q)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || !strings.Contains(reqs[0].Messages[0].Content, subjectiveSchema.Text()) || !strings.Contains(reqs[0].Messages[1].Content, "合力为零") {
		t.Fatalf("requests: %d %v", len(reqs), reqs)
	}
	if k := rec.kinds(); len(k) != 2 || k[0] != "grading.subjective" || k[1] != "grading.subjective" {
		t.Errorf("LLM call kinds: %v", k)
	}
}

// TestSubmitRefusals: bad ids, names and forms are refused and leave
// nothing on disk; a student submits only for itself.
func TestSubmitRefusals(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, nil)
	writeAssignment(t, data, "EMPTY", "", nil) // no questions.csv
	f := newFixture(t, data, uploads, false)
	txt := []file{{name: "a.txt", data: []byte("1. C")}}
	cases := []struct {
		name   string
		fields [][2]string
		files  []file
		hdr    []string
		code   int
		detail string
	}{
		{"no student", [][2]string{{"assignment_id", "HW1"}}, txt, nil, 400, "student_id is required"},
		{"traversal student", [][2]string{{"student_id", "../x"}, {"assignment_id", "HW1"}}, txt, nil, 400, "invalid_student_id"},
		{"nested student", [][2]string{{"student_id", "a/b"}, {"assignment_id", "HW1"}}, txt, nil, 400, "invalid_student_id"},
		{"dot student", [][2]string{{"student_id", ".."}, {"assignment_id", "HW1"}}, txt, nil, 400, "invalid_student_id"},
		{"space student", [][2]string{{"student_id", "S 1"}, {"assignment_id", "HW1"}}, txt, nil, 400, "invalid_student_id"},
		{"traversal assignment", [][2]string{{"student_id", "S1"}, {"assignment_id", "../HW1"}}, txt, nil, 400, "invalid_assignment_id"},
		{"dot assignment", [][2]string{{"student_id", "S1"}, {"assignment_id", "."}}, txt, nil, 400, "invalid_assignment_id"},
		{"encoded assignment", [][2]string{{"student_id", "S1"}, {"assignment_id", "%2e%2e"}}, txt, nil, 400, "invalid_assignment_id"},
		{"missing assignment", [][2]string{{"student_id", "S1"}, {"assignment_id", "NOPE"}}, txt, nil, 404, "assignment not found"},
		{"no questions", [][2]string{{"student_id", "S1"}, {"assignment_id", "EMPTY"}}, txt, nil, 404, "assignment not found"},
		{"no assignment", [][2]string{{"student_id", "S1"}}, txt, nil, 400, "assignment_id is required"},
		{"unexpected field", [][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}, []file{{field: "evil", name: "a.txt", data: []byte("x")}}, nil, 400, "unexpected file field"},
		{"fields after the files", nil, append(append([]file{}, txt...), file{field: "student_id", data: []byte("../x")}, file{field: "assignment_id", data: []byte("HW1")}), nil, 400, "invalid_student_id"},
		{"dot-dot file", [][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}, []file{{name: "..", data: []byte("x")}}, nil, 400, "invalid file name"},
		{"hidden file", [][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}, []file{{name: ".htaccess", data: []byte("x")}}, nil, 400, "invalid file name"},
		{"not a document", [][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}, []file{{name: "a.zip", data: []byte("PK\x03\x04\x00\x00")}}, nil, 415, "must be"},
		{"no files", [][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}, nil, nil, 400, "No submission files uploaded"},
		{"another student", [][2]string{{"student_id", "S2"}, {"assignment_id", "HW1"}}, txt, []string{"student", "S1"}, 403, "forbidden_student_scope"},
	}
	for _, c := range cases {
		code, out := f.submit(c.fields, c.files, c.hdr...)
		if d, _ := out["detail"].(string); code != c.code || !strings.Contains(d, c.detail) {
			t.Errorf("%s: %d %v, want %d %q", c.name, code, out, c.code, c.detail)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(uploads, "submission_jobs")); len(entries) != 0 {
		t.Errorf("refused submissions left %d job folders", len(entries))
	}
	if _, err := os.Stat(filepath.Join(data, "student_submissions")); !os.IsNotExist(err) {
		t.Errorf("student_submissions exists: %v", err)
	}
	// A path in a file name keeps its base name, inside the job's folder;
	// a teacher may submit for a student.
	code, out := f.submit([][2]string{{"student_id", "S2"}, {"assignment_id", "HW1"}}, []file{{name: "../../outside.txt", data: []byte("1. C")}}, "teacher")
	if code != http.StatusOK {
		t.Fatalf("teacher submit: %d %v", code, out)
	}
	dir, _ := f.svc.store.JobDir(out["job_id"].(string))
	if _, err := os.Stat(filepath.Join(dir, "files", "outside.txt")); err != nil {
		t.Errorf("file not in the job's folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(uploads, "outside.txt")); !os.IsNotExist(err) {
		t.Errorf("a file escaped the job folder")
	}
}

// TestStatusAccess: a student sees only its own jobs; GETs write nothing.
func TestStatusAccess(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, nil)
	f := newFixture(t, data, uploads, true)
	code, out := f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}, {"wait", "1"}},
		[]file{{name: "a.txt", data: []byte("1. C\n2. 12.0\n")}}, "student", "S1")
	if code != http.StatusOK || out["status"] != StatusDone {
		t.Fatalf("submit: %d %v", code, out)
	}
	id := out["job_id"].(string)
	before := tree(t, data, uploads)
	for _, c := range []struct {
		id   string
		hdr  []string
		code int
	}{
		{id, []string{"student", "S1"}, 200},
		{id, []string{"teacher"}, 200},
		{id, nil, 200}, // open mode
		{id, []string{"student", "S2"}, 403},
		{"job_000000000000", nil, 404},
		{"../" + id, nil, 404},
		{"", nil, 400},
	} {
		code, rec := f.status(c.id, c.hdr...)
		if code != c.code {
			t.Errorf("status %q as %v: %d %v", c.id, c.hdr, code, rec)
		}
		if code == 200 && (rec["status"] != StatusDone || rec["report"] == nil || rec["summary"].(map[string]any)["correct"] != 1.0) {
			t.Errorf("status record: %v", rec)
		}
	}
	after := tree(t, data, uploads)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("a GET wrote files:\nbefore %v\nafter  %v", before, after)
	}
}

// TestRestartResumes: a job queued by one service is graded by the next
// one over the same folders, and OnGraded runs exactly once.
func TestRestartResumes(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, nil)
	a := newFixture(t, data, uploads, false)
	code, out := a.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}, []file{{name: "a.txt", data: []byte("1. C\n2. 12.5")}})
	if code != http.StatusOK {
		t.Fatalf("submit: %d %v", code, out)
	}
	a.stop()
	id := out["job_id"].(string)
	b := newFixture(t, data, uploads, true)
	if rec := b.waitJob(id); rec["status"] != StatusDone || rec["profile_update"] != "queued" {
		t.Fatalf("resumed job: %v", rec)
	}
	b.stop()
	c := newFixture(t, data, uploads, true) // a done job is not resumed
	time.Sleep(200 * time.Millisecond)
	c.stop()
	if a.gradedCount() != 0 || b.gradedCount() != 1 || c.gradedCount() != 0 {
		t.Fatalf("OnGraded calls: %d %d %d", a.gradedCount(), b.gradedCount(), c.gradedCount())
	}
}

// TestRestartAfterGrading: a job stopped after its grading but before its
// OnGraded call succeeded is not graded again; the next service only
// makes the call.
func TestRestartAfterGrading(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, nil)
	var engineCalls atomic.Int32
	engine := withText(engineFunc(func(string) (ocr.Page, error) {
		engineCalls.Add(1)
		return ocr.Page{Text: "1. C\n2. 12.5"}, nil
	}))
	a := newFixture(t, data, uploads, true, engine)
	failed := make(chan struct{}, 1)
	a.hook = func(*Report) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("profile queue unavailable")
	}
	code, out := a.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}},
		[]file{{name: "p.png", data: testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 20, "x"))}})
	if code != http.StatusOK {
		t.Fatalf("submit: %d %v", code, out)
	}
	<-failed
	a.stop() // during the retry wait
	id := out["job_id"].(string)
	if _, rec := a.status(id); rec["status"] != StatusProcessing || rec["step"] != stepGraded {
		t.Fatalf("stopped job: %v", rec)
	}
	b := newFixture(t, data, uploads, true, engine)
	rec := b.waitJob(id)
	if rec["status"] != StatusDone || b.gradedCount() != 1 || engineCalls.Load() != 1 {
		t.Fatalf("job %v; OnGraded %d; OCR calls %d", rec, b.gradedCount(), engineCalls.Load())
	}
	if entries, _ := os.ReadDir(filepath.Join(data, "student_submissions", "S1")); len(entries) != 1 {
		t.Errorf("%d submission folders", len(entries))
	}
}

// TestSameSecond: two submissions in one second get submission_<ts> and
// submission_<ts>_2; both count as attempts.
func TestSameSecond(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, map[string]string{"assignments/HW1/meta.json": `{"student_ids":["S1"]}`})
	f := newFixture(t, data, uploads, true)
	var names []string
	for _, answer := range []string{"1. A\n2. 12.5", "1. C\n2. 12.5"} {
		code, out := f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}, {"wait", "1"}}, []file{{name: "a.txt", data: []byte(answer)}})
		if code != http.StatusOK {
			t.Fatalf("submit: %d %v", code, out)
		}
		names = append(names, out["report"].(map[string]any)["submission_id"].(string))
	}
	if names[0] != "submission_20260302_093000" || names[1] != "submission_20260302_093000_2" {
		t.Fatalf("folders %v", names)
	}
	for _, n := range names {
		for _, dir := range []string{filepath.Join(data, "student_submissions", "S1", n), filepath.Join(data, "student_submissions", "HW1", "S1", n)} {
			if _, err := os.Stat(filepath.Join(dir, "grading_report.json")); err != nil {
				t.Error(err)
			}
		}
	}
}

// TestRequireReview: with PROFILE_UPDATE_REQUIRE_REVIEW and items to
// review, the profile is left alone (the update changes nothing).
func TestRequireReview(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, nil)
	profiles := students.NewStore(data)
	worker := students.NewWorker(students.WorkerConfig{UploadsDir: uploads, Profiles: profiles})
	worker.Runner().Start(context.Background())
	t.Cleanup(func() { worker.Runner().Stop(context.Background()) })
	f := newFixture(t, data, uploads, true, func(c *Config) { c.RequireReview = true })
	var pjob string
	f.hook = func(r *Report) (err error) {
		pjob, err = worker.Enqueue(ProfileUpdate(r))
		return err
	}
	code, out := f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}, {"wait", "1"}},
		[]file{{name: "a.txt", data: []byte("1. C\n")}}) // Q2 unanswered: to review
	if code != http.StatusOK || !strings.Contains(out["output"].(string), "[WARN] Profile update skipped") {
		t.Fatalf("submit: %d %v", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f.gradedCount() != 1 {
		t.Fatalf("OnGraded calls: %d", f.gradedCount())
	}
	if err := worker.Wait(ctx, pjob); err != nil {
		t.Fatal(err)
	}
	if profiles.Exists("S1") {
		t.Errorf("profile written while review is required")
	}
	if _, rec := f.status(out["job_id"].(string)); rec["profile_update"] != "held_for_review" {
		t.Errorf("job: %v", rec)
	}
}

// TestBounds: file count and size are bounded (413), a full queue is
// refused before the upload is read (429); refusals store nothing.
func TestBounds(t *testing.T) {
	data, uploads := t.TempDir(), t.TempDir()
	writeAssignment(t, data, "HW1", simpleCSV, nil)
	f := newFixture(t, data, uploads, false, func(c *Config) {
		c.MaxQueued = 1
		c.Limits.MaxFiles, c.Limits.MaxFileBytes = 2, 64
	})
	form := [][2]string{{"student_id", "S1"}, {"assignment_id", "HW1"}}
	small := file{name: "a.txt", data: []byte("1. C")}
	for _, c := range []struct {
		files  []file
		code   int
		detail string
	}{
		{[]file{small, small, small}, 413, "too many files"},
		{[]file{{name: "big.txt", data: []byte(strings.Repeat("x", 65))}}, 413, "larger than"},
		{[]file{small}, 200, ""},
		{[]file{small}, 429, "too many submissions are queued"},
	} {
		code, out := f.submit(form, c.files)
		if d, _ := out["detail"].(string); code != c.code || !strings.Contains(d, c.detail) {
			t.Errorf("%d files: %d %v, want %d %q", len(c.files), code, out, c.code, c.detail)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(uploads, "submission_jobs")); len(entries) != 1 {
		t.Errorf("%d job folders, want the one queued", len(entries))
	}
}
