package exams

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/datapath"
)

const responsesCSV = "\ufeffexam_id,student_id,student_name,class_name,question_id,question_no,sub_no,raw_label,raw_value,raw_answer,score,is_correct\n" +
	"E1,s1,甲,一班,Q1,1,,1,4,,4,1\n" +
	"E1,s1,甲,一班,Q2,2,,2,1,,1,0\n" +
	"E1,s2,乙,一班,Q1,1,,1,3,,3,0\n" +
	"E1,s2,乙,一班,Q2,2,,2,2,,2,0\n" +
	"E1,s3,丙,二班,Q1,1,,1,4,,4,1\n" +
	"E1,s3,丙,二班,Q2,2,,2,1,,1,0\n" +
	"E1,s4,丁,二班,Q1,1,,1,0,,0,0\n" +
	"E1,s4,丁,二班,Q2,2,,2,,,,\n"

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newExamDir(t *testing.T, files string) (*Service, string) {
	t.Helper()
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "exams", "E1", "manifest.json"), `{"exam_id":"E1","generated_at":"2026-01-01T00:00:00","files":`+files+`}`)
	writeFile(t, filepath.Join(data, "exams", "E1", "derived", "responses_scored.csv"), responsesCSV)
	writeFile(t, filepath.Join(data, "exams", "E1", "derived", "questions.csv"), "question_id,question_no,sub_no,order,max_score,stem_ref\nQ1,1,,1,4,\nQ2,2,,2,2,\n")
	svc := NewService(data)
	svc.ttl = 0 // check the files on every read
	return svc, data
}

func TestRanksShareTheBetterRank(t *testing.T) {
	svc, _ := newExamDir(t, `{}`)
	e, err := svc.Exam("E1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range e.Students {
		got = append(got, s.ID+":"+FormatScore(s.Total)+":"+string(rune('0'+s.Rank)))
	}
	// s1=5, s2=5, s3=5, s4=0 → 1,1,1,4 in first-appearance order.
	if strings.Join(got, " ") != "s1:5:1 s2:5:1 s3:5:1 s4:0:4" {
		t.Fatalf("ranks %v", got)
	}
	if s, ok := e.Student("s4"); !ok || s.Percentile != 0.25 {
		t.Fatalf("s4 = %+v", s)
	}
}

func TestManifestPathsStayInsideDataDir(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.csv")
	writeFile(t, outside, responsesCSV)
	svc, data := newExamDir(t, `{"responses_scored":"`+outside+`","questions":"../../etc/passwd"}`)
	e, err := svc.Exam("E1")
	if err != nil {
		t.Fatal(err)
	}
	// The outside file is refused; the default place inside DATA_DIR is used.
	if e.ResponsesFile != "exams/E1/derived/responses_scored.csv" || e.QuestionsFile != "exams/E1/derived/questions.csv" {
		t.Fatalf("files %q %q", e.ResponsesFile, e.QuestionsFile)
	}
	// The predecessor's APP_ROOT-relative form ("data/...") still works.
	writeFile(t, filepath.Join(data, "exams", "E1", "derived", "other.csv"), strings.Replace(responsesCSV, "s4,丁", "s9,癸", -1))
	writeFile(t, filepath.Join(data, "exams", "E1", "manifest.json"), `{"exam_id":"E1","files":{"responses_scored":"data/exams/E1/derived/other.csv"}}`)
	e, err = svc.Exam("E1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Student("s9"); !ok || e.ResponsesFile != "exams/E1/derived/other.csv" {
		t.Fatalf("legacy relative path not followed: %q", e.ResponsesFile)
	}
	// A symlink out of DATA_DIR is refused too.
	link := filepath.Join(data, "exams", "E1", "derived", "link.csv")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveIn(data, "exams/E1/derived/link.csv"); !errors.Is(err, datapath.ErrOutside) {
		t.Fatalf("symlink out: %v", err)
	}
}

func TestCacheReusesAndNoticesChanges(t *testing.T) {
	svc, data := newExamDir(t, `{}`)
	a, _ := svc.Exam("E1")
	b, _ := svc.Exam("E1")
	if a != b {
		t.Fatal("unchanged exam was parsed again")
	}
	time.Sleep(10 * time.Millisecond) // let the mtime move on coarse clocks
	writeFile(t, filepath.Join(data, "exams", "E1", "derived", "responses_scored.csv"), responsesCSV+"E1,s5,戊,二班,Q1,1,,1,2,,2,0\n")
	c, _ := svc.Exam("E1")
	if c == a || len(c.Students) != 5 {
		t.Fatalf("change not noticed: %d students", len(c.Students))
	}
	os.Remove(filepath.Join(data, "exams", "E1", "manifest.json"))
	if _, err := svc.Exam("E1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed manifest: %v", err)
	}
}

func TestExamIDsAreValidated(t *testing.T) {
	svc, _ := newExamDir(t, `{}`)
	for _, id := range []string{"..", ".", "", "a/b", "../E1", ".hidden", "x\x00y", strings.Repeat("a", 129)} {
		if _, err := svc.Exam(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"E1", "高二期中_2026", "EX20260101_abc-1.2"} {
		if !ValidID(id) {
			t.Errorf("%q refused", id)
		}
	}
}

func TestHandlersErrors(t *testing.T) {
	svc, data := newExamDir(t, `{}`)
	api := NewAPI(svc, "", nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /exam/{exam_id}", api.Get)
	mux.HandleFunc("GET /exam/{exam_id}/analysis", api.Analysis)
	mux.HandleFunc("GET /exam/{exam_id}/students", api.Students)
	mux.HandleFunc("GET /exam/{exam_id}/student/{student_id}", api.Student)
	mux.HandleFunc("GET /exam/{exam_id}/question/{question_id}", api.Question)
	get := func(path string) (int, map[string]any) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		var m map[string]any
		json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	for path, want := range map[string]int{
		"/exam/E1":                   200,
		"/exam/E2":                   404,
		"/exam/%2e%2e/students":      404,
		"/exam/E1/student/s1":        200,
		"/exam/E1/student/nobody":    404,
		"/exam/E1/question/Q1":       200,
		"/exam/E1/question/Q3":       404,
		"/exam/E1/students?limit=x":  400,
		"/exam/E1/students?limit=-5": 200,
		"/exam/E1/analysis":          200,
	} {
		if code, body := get(path); code != want {
			t.Errorf("%s: %d %v", path, code, body)
		}
	}
	if _, body := get("/exam/E1/students?limit=-5"); len(body["students"].([]any)) != 1 {
		t.Errorf("negative limit: %v", body)
	}
	if _, body := get("/exam/E1/analysis"); body["source"] != "computed" {
		t.Errorf("analysis without draft: %v", body)
	}
	writeFile(t, filepath.Join(data, "analysis", "E1", "draft.json"), `{broken`)
	if code, body := get("/exam/E1/analysis"); code != 400 || body["detail"].(map[string]any)["error"] != "analysis_parse_failed" {
		t.Errorf("broken draft: %d %v", code, body)
	}
	writeFile(t, filepath.Join(data, "analysis", "E1", "draft.json"), `{"exam_id":"E1","totals":{}}`)
	if _, body := get("/exam/E1/analysis"); body["source"] != "analysis/E1/draft.json" {
		t.Errorf("stored draft: %v", body)
	}
	os.Remove(filepath.Join(data, "exams", "E1", "derived", "responses_scored.csv"))
	if code, body := get("/exam/E1/students"); code != 400 || body["detail"].(map[string]any)["error"] != "responses_missing" {
		t.Errorf("no responses: %d %v", code, body)
	}
}
