package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/testfixtures"
)

func fixtures(t *testing.T) string { return testfixtures.ExamsDir(t) }

type expected struct {
	Students         int     `json:"students"`
	Questions        int     `json:"questions"`
	AvgTotal         float64 `json:"avg_total"`
	MedianTotal      float64 `json:"median_total"`
	MedianTotalUpper float64 `json:"median_total_upper"`
	MaxTotal         float64 `json:"max_total"`
	MinTotal         float64 `json:"min_total"`
	StdevTotal       float64 `json:"stdev_total"`
	PerQuestion      map[string]struct {
		MaxScore  float64 `json:"max_score"`
		Avg       float64 `json:"avg"`
		ScoreRate float64 `json:"score_rate"`
		FullMarks int     `json:"full_marks"`
		Zero      int     `json:"zero"`
	} `json:"per_question"`
	ByClass map[string]struct {
		Students int     `json:"students"`
		AvgTotal float64 `json:"avg_total"`
		MaxTotal float64 `json:"max_total"`
		MinTotal float64 `json:"min_total"`
	} `json:"by_class"`
	PerStudent map[string]struct {
		Total float64 `json:"total"`
		Rank  int     `json:"rank"`
	} `json:"per_student"`
}

var fullMarks = `{"1":4,"2":4,"3":4,"4":4,"5":4,"6":4,"7":4,"8":4,"9":5,"10":5,"11(1)":8,"11(2)":10,"12":18,"13":22}`

// qid maps the fixture's labels to Lectern's question ids.
func qid(label string) string {
	if no, sub, ok := strings.Cut(label, "("); ok {
		return "Q" + no + "_" + strings.TrimSuffix(sub, ")")
	}
	return "Q" + label
}

type upload struct {
	fields map[string]string
	files  map[string][]string // field → fixture paths
}

func (e *env) upload(path string, u upload) response {
	e.t.Helper()
	var files [][3]string
	for field, paths := range u.files {
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				e.t.Fatal(err)
			}
			files = append(files, [3]string{field, filepath.Base(p), string(data)})
		}
	}
	return e.uploadBytes(path, u.fields, files...)
}

func (e *env) postJSON(path string, v any) response { return e.do("POST", path, "", v) }

// waitJob polls the job until it leaves queued/processing.
func (e *env) waitJob(prefix, jobID string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.get(prefix + "/exam/upload/status?job_id=" + jobID).json(e.t)
		if s := st["status"]; s != "queued" && s != "processing" {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s still %v", jobID, st["status"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func near(a, b float64, places int) bool {
	return math.Abs(a-b) <= 0.5*math.Pow10(-places)+1e-9
}

// TestExamUploadEndToEnd uploads each fixture form, confirms it and checks
// every read endpoint against physics_midterm_expected.json.
func TestExamUploadEndToEnd(t *testing.T) {
	fx := fixtures(t)
	var want expected
	data, err := os.ReadFile(filepath.Join(fx, "physics_midterm_expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		scores string
		answer string
	}{
		{"xlsx letters and key", "physics_midterm.xlsx", "physics_midterm_answers.txt"},
		{"xlsx scores only", "physics_midterm_scores_only.xlsx", ""},
		{"csv utf8 bom", "physics_midterm_utf8.csv", ""},
		{"csv gbk", "physics_midterm_gbk.csv", ""},
	}
	e := newEnv(t)
	expect(t, e.putTenant("t1", nil), 200, "")
	const prefix = "/t/t1"
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			examID := fmt.Sprintf("PHYS_MID_%d", i)
			u := upload{
				fields: map[string]string{"exam_id": examID, "date": "2026-11-01", "max_scores": fullMarks},
				files:  map[string][]string{"score_files": {filepath.Join(fx, c.scores)}},
			}
			if c.answer != "" {
				u.files["answer_files"] = []string{filepath.Join(fx, c.answer)}
			}
			r := e.upload(prefix+"/exam/upload/start", u)
			expect(t, r, 200, "")
			jobID := r.json(t)["job_id"].(string)
			job := e.waitJob(prefix, jobID)
			if job["status"] != "done" {
				t.Fatalf("job: %v", job)
			}

			draft := e.get(prefix + "/exam/upload/draft?job_id=" + jobID).json(t)["draft"].(map[string]any)
			scoring := draft["scoring"].(map[string]any)
			if scoring["status"] != "scored" || len(scoring["missing_max_score_qids"].([]any)) != 0 ||
				len(scoring["default_max_score_qids"].([]any)) != 0 {
				t.Fatalf("draft scoring: %v\nwarnings: %v", scoring, draft["warnings"])
			}
			if d := job["scoring"].(map[string]any)["default_max_score_qids"]; len(d.([]any)) != 0 {
				t.Fatalf("status default_max_score_qids: %v", d)
			}
			for _, w := range draft["warnings"].([]any) {
				if strings.Contains(w.(string), "总分核对不一致") {
					t.Errorf("total cross-check: %s", w)
				}
			}
			if qs := draft["questions"].([]any); len(qs) != want.Questions {
				t.Fatalf("draft has %d questions", len(qs))
			}

			expect(t, e.postJSON(prefix+"/exam/upload/confirm", map[string]any{"job_id": jobID}), 200, "")
			checkExam(t, e, prefix, examID, want)
		})
	}
}

func checkExam(t *testing.T, e *env, prefix, examID string, want expected) {
	t.Helper()
	list := e.get(prefix + "/exams").json(t)["exams"].([]any)
	found := false
	for _, x := range list {
		if x.(map[string]any)["exam_id"] == examID {
			found = true
			if x.(map[string]any)["students"] != float64(want.Students) {
				t.Errorf("/exams students = %v", x)
			}
		}
	}
	if !found {
		t.Fatalf("/exams lacks %s: %v", examID, list)
	}

	detail := e.get(prefix + "/exam/" + examID).json(t)
	counts := detail["counts"].(map[string]any)
	ts := detail["totals_summary"].(map[string]any)
	if counts["students"] != float64(want.Students) || counts["questions"] != float64(want.Questions) {
		t.Errorf("counts = %v", counts)
	}
	if !near(ts["avg_total"].(float64), want.AvgTotal, 3) || ts["median_total"] != want.MedianTotal ||
		ts["median_total_upper"] != want.MedianTotalUpper || ts["max_total_observed"] != want.MaxTotal || ts["min_total_observed"] != want.MinTotal {
		t.Errorf("totals_summary = %v", ts)
	}
	files := detail["files"].(map[string]any)
	for k, v := range files {
		if s, _ := v.(string); strings.HasPrefix(s, "/") {
			t.Errorf("files.%s leaks an absolute path: %s", k, s)
		}
	}

	students := e.get(prefix + "/exam/" + examID + "/students?limit=100").json(t)
	if students["total_students"] != float64(want.Students) {
		t.Errorf("total_students = %v", students["total_students"])
	}
	seen := 0
	for _, x := range students["students"].([]any) {
		s := x.(map[string]any)
		key := s["student_name"].(string) + "|" + s["class_name"].(string)
		w, ok := want.PerStudent[key]
		if !ok {
			t.Errorf("unexpected student %s", key)
			continue
		}
		seen++
		if s["total_score"] != w.Total || s["rank"] != float64(w.Rank) {
			t.Errorf("%s: total %v rank %v, want %v %d", key, s["total_score"], s["rank"], w.Total, w.Rank)
		}
	}
	if seen != want.Students {
		t.Errorf("saw %d students", seen)
	}

	// One student's detail, by id (class_name + "_" + name).
	one := e.get(prefix + "/exam/" + examID + "/student/" + url.PathEscape("高二(4)班_梁志强")).json(t)
	st := one["student"].(map[string]any)
	if st["total_score"] != want.PerStudent["梁志强|高二(4)班"].Total || one["question_count"] != float64(want.Questions) {
		t.Errorf("student detail: %v", one)
	}
	expect(t, e.get(prefix+"/exam/"+examID+"/student/nobody"), 404, "")

	for label, w := range want.PerQuestion {
		q := e.get(prefix + "/exam/" + examID + "/question/" + url.PathEscape(qid(label))).json(t)
		m, ok := q["question"].(map[string]any)
		if !ok {
			t.Errorf("question %s: %v", label, q)
			continue
		}
		if !near(m["avg_score"].(float64), w.Avg, 3) || m["max_score"] != w.MaxScore ||
			m["full_mark_count"] != float64(w.FullMarks) || m["zero_count"] != float64(w.Zero) || !near(m["score_rate"].(float64), w.ScoreRate, 4) {
			t.Errorf("question %s: %v, want %+v", label, m, w)
		}
	}
	expect(t, e.get(prefix+"/exam/"+examID+"/question/Q99"), 404, "")

	chartList := e.get(prefix + "/exam/" + examID + "/charts").json(t)["charts"].([]any)
	if len(chartList) != 3 {
		t.Fatalf("charts: %v", chartList)
	}
	for _, x := range chartList {
		u := x.(map[string]any)["url"].(string)
		if !strings.HasPrefix(u, prefix+"/exam/"+examID+"/charts/") {
			t.Errorf("chart url %s lacks the tenant prefix", u)
		}
		req, _ := http.NewRequest("GET", e.http.URL+u, nil)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		svg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml; charset=utf-8" ||
			!bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte(examID)) {
			t.Errorf("%s: %d %s %.80s", u, resp.StatusCode, resp.Header.Get("Content-Type"), svg)
		}
	}
	expect(t, e.get(prefix+"/exam/"+examID+"/charts/nope.svg"), 404, "")
	expect(t, e.get(prefix+"/exam/"+examID+"/charts/totals.png"), 404, "")

	an := e.get(prefix + "/exam/" + examID + "/analysis").json(t)
	if an["source"] != "analysis/"+examID+"/draft.json" {
		t.Errorf("analysis source = %v", an["source"])
	}
	a := an["analysis"].(map[string]any)
	totals := a["totals"].(map[string]any)
	if totals["max_total"] != 100.0 || !near(totals["stdev_total"].(float64), want.StdevTotal, 3) || totals["student_count"] != float64(want.Students) {
		t.Errorf("analysis totals = %v", totals)
	}
	for _, x := range a["classes"].([]any) {
		c := x.(map[string]any)
		w := want.ByClass[c["class_name"].(string)]
		if c["student_count"] != float64(w.Students) || !near(c["avg_total"].(float64), w.AvgTotal, 3) || c["max_total"] != w.MaxTotal || c["min_total"] != w.MinTotal {
			t.Errorf("class %v, want %+v", c, w)
		}
	}
	if len(a["question_metrics"].([]any)) != want.Questions || len(a["score_bands"].([]any)) != 5 {
		t.Errorf("analysis shape: %d metrics, %d bands", len(a["question_metrics"].([]any)), len(a["score_bands"].([]any)))
	}
}

// uploadBytes posts one in-memory file per entry (field, name, content).
func (e *env) uploadBytes(path string, fields map[string]string, files ...[3]string) response {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, f := range files {
		fw, _ := mw.CreateFormFile(f[0], f[1])
		io.WriteString(fw, f[2])
	}
	mw.Close()
	req, _ := http.NewRequest("POST", e.http.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, data}
}

const smallCSV = "姓名,班级,1,2,3(1),总分\n张三,一班,4,3,2,9\n李四,一班,2,3,0,5\n王五,二班,4,0,2,6\n"

func (e *env) uploadSmall(examID string) string {
	e.t.Helper()
	r := e.uploadBytes("/exam/upload/start", map[string]string{"exam_id": examID, "max_scores": `{"1":4,"2":3,"3(1)":2}`},
		[3]string{"score_files", "scores.csv", smallCSV})
	expect(e.t, r, 200, "")
	id := r.json(e.t)["job_id"].(string)
	if st := e.waitJob("", id); st["status"] != "done" {
		e.t.Fatalf("job %s: %v", id, st)
	}
	return id
}

// An existing exam id is a 409 that leaves the job confirmable under
// another id; a confirmed job answers with its exam again.
func TestExamConfirmConflictAndRetry(t *testing.T) {
	e := newEnv(t)
	first := e.uploadSmall("DUP")
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": first}), 200, "")
	second := e.uploadSmall("DUP")
	r := e.postJSON("/exam/upload/confirm", map[string]any{"job_id": second})
	if r.status != 409 || !strings.Contains(string(r.body), "exam_exists") {
		t.Fatalf("second confirm: %d %s", r.status, r.body)
	}
	if st := e.get("/exam/upload/status?job_id=" + second).json(t)["status"]; st != "done" {
		t.Fatalf("job after 409 is %v, want done", st)
	}
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": second, "exam_id": "DUP_B"}), 200, "")
	again := e.postJSON("/exam/upload/confirm", map[string]any{"job_id": second}).json(t)
	if again["exam_id"] != "DUP_B" || !strings.Contains(again["message"].(string), "已确认") {
		t.Fatalf("repeat confirm: %v", again)
	}
	// The first exam is untouched.
	if s := e.get("/exam/DUP/student/" + url.PathEscape("一班_张三")).json(t)["student"].(map[string]any)["total_score"]; s != 9.0 {
		t.Fatalf("DUP changed: %v", s)
	}
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": second, "exam_id": "../x"}), 200, "") // already confirmed
	third := e.uploadSmall("OTHER")
	r = e.postJSON("/exam/upload/confirm", map[string]any{"job_id": third, "exam_id": "../x"})
	if r.status != 400 {
		t.Fatalf("traversal exam_id: %d %s", r.status, r.body)
	}
}

// Two concurrent confirms of one job create one exam.
func TestExamConcurrentConfirms(t *testing.T) {
	e := newEnv(t)
	id := e.uploadSmall("ONCE")
	codes := make(chan int, 8)
	for range 8 {
		go func() { codes <- e.postJSON("/exam/upload/confirm", map[string]any{"job_id": id}).status }()
	}
	for range 8 {
		if c := <-codes; c != 200 {
			t.Fatalf("confirm status %d", c)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(e.srv.cfg.DataDir, "exams"))
	if len(entries) != 1 || entries[0].Name() != "ONCE" {
		t.Fatalf("exams dir: %v", entries)
	}
}

// A letters sheet without full marks is flagged, never guessed; saving
// full marks in the draft scores it.
func TestExamDraftFullMarks(t *testing.T) {
	e := newEnv(t)
	sheet := "姓名,班级,1,2,总分\n张三,一班,A,BD,9\n李四,一班,B,B,2\n"
	r := e.uploadBytes("/exam/upload/start", map[string]string{"exam_id": "MC"},
		[3]string{"score_files", "mc.csv", sheet}, [3]string{"answer_files", "key.txt", "1. A\n2. BD\n"})
	expect(t, r, 200, "")
	id := r.json(t)["job_id"].(string)
	e.waitJob("", id)
	draft := e.get("/exam/upload/draft?job_id=" + id).json(t)["draft"].(map[string]any)
	sc := draft["scoring"].(map[string]any)
	if sc["status"] != "unscored" || fmt.Sprint(sc["missing_max_score_qids"]) != "[Q1 Q2]" {
		t.Fatalf("scoring without full marks: %v", sc)
	}
	q0 := draft["questions"].([]any)[0].(map[string]any)
	if q0["max_score"] != nil || q0["max_score_missing"] != true || q0["letters"] != true {
		t.Fatalf("question flags: %v", q0)
	}
	expect(t, e.postJSON("/exam/upload/draft/save", map[string]any{"job_id": id, "max_scores": map[string]any{"1": -1}}), 400, "")
	save := e.postJSON("/exam/upload/draft/save", map[string]any{"job_id": id, "max_scores": map[string]any{"1": 4}}).json(t)
	if save["draft_version"] != 2.0 {
		t.Fatalf("save: %v", save)
	}
	r = e.postJSON("/exam/upload/confirm", map[string]any{"job_id": id})
	if b, _ := r.json(t)["detail"].(map[string]any); r.status != 400 || fmt.Sprint(b["missing_max_score_qids"]) != "[Q2]" || !strings.Contains(b["message"].(string), "：2。") {
		t.Fatalf("confirm with Q2 unmarked: %d %s", r.status, r.body)
	}
	save = e.postJSON("/exam/upload/draft/save", map[string]any{"job_id": id, "max_scores": map[string]any{"Q2": 5}}).json(t)
	if save["draft_version"] != 3.0 {
		t.Fatalf("save: %v", save)
	}
	draft = e.get("/exam/upload/draft?job_id=" + id).json(t)["draft"].(map[string]any)
	if sc := draft["scoring"].(map[string]any); sc["status"] != "scored" || draft["draft_saved"] != true {
		t.Fatalf("after saves: %v", sc)
	}
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": id}), 200, "")
	// 张三: A correct (4) + BD correct (5) = 9; 李四: wrong (0) + B subset of BD (2.5).
	students := e.get("/exam/MC/students").json(t)["students"].([]any)
	got := fmt.Sprint(students[0].(map[string]any)["total_score"], " ", students[1].(map[string]any)["total_score"])
	if got != "9 2.5" {
		t.Fatalf("totals %s", got)
	}
}

func loadExpected(t *testing.T) expected {
	t.Helper()
	var want expected
	data, err := os.ReadFile(filepath.Join(fixtures(t), "physics_midterm_expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// The school's export uploaded without full marks: the status and the
// draft list the questions in the predecessor's default_max_score_qids,
// confirm is refused with a message naming them and hints, and creates
// nothing; once draft/save supplies the marks (in two saves) confirm
// succeeds and the exam is scored exactly with them.
func TestExamConfirmRefusedWithoutFullMarks(t *testing.T) {
	fx := fixtures(t)
	want := loadExpected(t)
	e := newEnv(t)
	r := e.upload("/exam/upload/start", upload{fields: map[string]string{"exam_id": "NOMARKS", "date": "2026-11-01"},
		files: map[string][]string{"score_files": {filepath.Join(fx, "physics_midterm.xlsx")},
			"answer_files": {filepath.Join(fx, "physics_midterm_answers.txt")}}})
	expect(t, r, 200, "")
	id := r.json(t)["job_id"].(string)
	job := e.waitJob("", id)
	if job["status"] != "done" {
		t.Fatalf("job: %v", job)
	}
	allQIDs := "[Q1 Q10 Q11_1 Q11_2 Q12 Q13 Q2 Q3 Q4 Q5 Q6 Q7 Q8 Q9]"
	sc := job["scoring"].(map[string]any)
	if fmt.Sprint(sc["default_max_score_qids"]) != allQIDs || fmt.Sprint(sc["missing_max_score_qids"]) != allQIDs {
		t.Fatalf("status scoring: %v", sc)
	}
	draft := e.get("/exam/upload/draft?job_id=" + id).json(t)["draft"].(map[string]any)
	if sc := draft["scoring"].(map[string]any); fmt.Sprint(sc["default_max_score_qids"]) != allQIDs {
		t.Fatalf("draft scoring: %v", sc)
	}

	confirm := func() response { return e.postJSON("/exam/upload/confirm", map[string]any{"job_id": id}) }
	refused := func(r response, n int, labels, qids string, letters bool) {
		t.Helper()
		b, _ := r.json(t)["detail"].(map[string]any)
		detail, _ := b["message"].(string)
		hints, _ := b["hints"].([]any)
		if r.status != 400 || b["error"] != "max_score_missing" || fmt.Sprint(b["missing_max_score_qids"]) != qids || len(b) != 4 ||
			!strings.Contains(detail, fmt.Sprintf("以下 %d 道题缺少满分", n)) || !strings.Contains(detail, "："+strings.ReplaceAll(labels, ", ", "、")+"。") ||
			!strings.Contains(detail, fmt.Sprintf("(Full marks are missing for %d question(s): %s.", n, labels)) ||
			len(hints) == 0 || !strings.Contains(fmt.Sprint(hints), "max_scores") || strings.Contains(fmt.Sprint(hints), "选择题") != letters {
			t.Fatalf("confirm without full marks: %d %s", r.status, r.body)
		}
		if _, err := os.Stat(filepath.Join(e.srv.cfg.DataDir, "exams", "NOMARKS")); !os.IsNotExist(err) {
			t.Fatalf("a refused confirm created the exam: %v", err)
		}
		if st := e.get("/exam/upload/status?job_id=" + id).json(t)["status"]; st != "done" {
			t.Fatalf("job after a refused confirm is %v", st)
		}
	}
	refused(confirm(), 14, "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11(1), 11(2), 12, 13",
		"[Q1 Q2 Q3 Q4 Q5 Q6 Q7 Q8 Q9 Q10 Q11_1 Q11_2 Q12 Q13]", true)

	// An unknown label is refused and leaves the draft usable.
	expect(t, e.postJSON("/exam/upload/draft/save", map[string]any{"job_id": id, "max_scores": map[string]any{"14": 5}}), 400, "")
	expect(t, e.get("/exam/upload/draft?job_id="+id), 200, "")

	// The points questions first: the letter questions still block.
	points := map[string]any{"11(1)": 8, "11(2)": 10, "12": 18, "13": 22}
	expect(t, e.postJSON("/exam/upload/draft/save", map[string]any{"job_id": id, "max_scores": points}), 200, "")
	if sc := e.get("/exam/upload/status?job_id=" + id).json(t)["scoring"].(map[string]any); fmt.Sprint(sc["default_max_score_qids"]) != "[Q1 Q10 Q2 Q3 Q4 Q5 Q6 Q7 Q8 Q9]" {
		t.Fatalf("status after the first save: %v", sc)
	}
	refused(confirm(), 10, "1, 2, 3, 4, 5, 6, 7, 8, 9, 10", "[Q1 Q2 Q3 Q4 Q5 Q6 Q7 Q8 Q9 Q10]", true)

	letters := map[string]any{"1": 4, "2": 4, "3": 4, "4": 4, "5": 4, "6": 4, "7": 4, "8": 4, "9": 5, "Q10": 5}
	expect(t, e.postJSON("/exam/upload/draft/save", map[string]any{"job_id": id, "max_scores": letters}), 200, "")
	st := e.get("/exam/upload/status?job_id=" + id).json(t)
	if sc := st["scoring"].(map[string]any); len(sc["default_max_score_qids"].([]any)) != 0 || sc["status"] != "scored" ||
		st["totals_summary"].(map[string]any)["max_total_observed"] != want.MaxTotal {
		t.Fatalf("status after the second save: %v", st)
	}
	draft = e.get("/exam/upload/draft?job_id=" + id).json(t)["draft"].(map[string]any)
	if sc := draft["scoring"].(map[string]any); len(sc["default_max_score_qids"].([]any)) != 0 || len(sc["missing_max_score_qids"].([]any)) != 0 {
		t.Fatalf("draft scoring after the saves: %v", sc)
	}
	expect(t, confirm(), 200, "")
	checkExam(t, e, "", "NOMARKS", want)
	// A confirmed job answers as before.
	if again := confirm().json(t); again["exam_id"] != "NOMARKS" || !strings.Contains(again["message"].(string), "已确认") {
		t.Fatalf("repeat confirm: %v", again)
	}
}

// Bad uploads are refused with the right status and leave no job behind.
func TestExamUploadRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.UploadMaxBytes = 64 << 10; c.UploadMaxFiles = 3 })
	ole := "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1" + strings.Repeat("\x00", 100)
	cases := []struct {
		name   string
		fields map[string]string
		files  [][3]string
		status int
		detail string
	}{
		{"no score file", nil, [][3]string{{"paper_files", "p.txt", "paper"}}, 400, "No score files uploaded"},
		{"xls", nil, [][3]string{{"score_files", "old.xls", ole}}, 415, ".xlsx"},
		{"pdf score sheet", nil, [][3]string{{"score_files", "s.pdf", "%PDF-1.4\n..."}}, 415, "OCR"},
		{"binary paper", nil, [][3]string{{"score_files", "s.csv", smallCSV}, {"paper_files", "x.bin", "\x00\x01\x02"}}, 415, ""},
		{"bad exam id", map[string]string{"exam_id": "../../etc"}, [][3]string{{"score_files", "s.csv", smallCSV}}, 400, "invalid exam_id"},
		{"bad date", map[string]string{"date": "yesterday"}, [][3]string{{"score_files", "s.csv", smallCSV}}, 400, "invalid date"},
		{"class name too long", map[string]string{"class_name": strings.Repeat("班", 65)}, [][3]string{{"score_files", "s.csv", smallCSV}}, 400, "class_name is too long"},
		{"language too long", map[string]string{"language": strings.Repeat("z", 40)}, [][3]string{{"score_files", "s.csv", smallCSV}}, 400, "language is too long"},
		{"bad max_scores", map[string]string{"max_scores": `{"1":"x"}`}, [][3]string{{"score_files", "s.csv", smallCSV}}, 400, "max_scores"},
		{"unknown label", map[string]string{"max_scores": `{"abc":3}`}, [][3]string{{"score_files", "s.csv", smallCSV}}, 400, "max_scores"},
		{"too many files", nil, [][3]string{{"score_files", "a.csv", smallCSV}, {"score_files", "b.csv", smallCSV}, {"score_files", "c.csv", smallCSV}, {"score_files", "d.csv", smallCSV}}, 413, "too many files"},
		{"too large", nil, [][3]string{{"score_files", "big.csv", smallCSV + strings.Repeat("x", 70<<10)}}, 413, "larger than"},
		{"empty file", nil, [][3]string{{"score_files", "e.csv", ""}}, 400, "empty"},
		{"dot name", nil, [][3]string{{"score_files", "..", smallCSV}}, 400, "invalid file name"},
		{"other field", nil, [][3]string{{"evil_files", "a.csv", smallCSV}}, 400, "unexpected file field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.uploadBytes("/exam/upload/start", c.fields, c.files...)
			if r.status != c.status || !strings.Contains(string(r.body), c.detail) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.body, c.status, c.detail)
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(e.srv.cfg.UploadsDir, "exam_jobs"))
	if len(entries) != 0 {
		t.Fatalf("refused uploads left %d job folders", len(entries))
	}
	for _, p := range []string{"/exam/upload/status?job_id=../../x", "/exam/upload/status?job_id=nope", "/exam/upload/draft?job_id=%2e%2e"} {
		expect(t, e.get(p), 404, `{"detail":"job not found"}`)
	}
	expect(t, e.get("/exam/upload/status"), 400, "")
}

// Duplicate file names in one upload are both kept.
func TestExamUploadDuplicateNames(t *testing.T) {
	e := newEnv(t)
	r := e.uploadBytes("/exam/upload/start", map[string]string{"exam_id": "TWO"},
		[3]string{"score_files", "s.csv", smallCSV}, [3]string{"score_files", "s.csv", strings.ReplaceAll(smallCSV, "张三", "赵六")})
	expect(t, r, 200, "")
	job := e.waitJob("", r.json(t)["job_id"].(string))
	if fmt.Sprint(job["score_files"]) != "[s.csv s_2.csv]" || job["counts"].(map[string]any)["students"] != 4.0 {
		t.Fatalf("job: %v", job)
	}
}

// Jobs found on disk when a tenant starts resume: queued ones are parsed,
// an interrupted confirm is settled.
func TestExamJobsResumeAtStart(t *testing.T) {
	e := newEnv(t)
	data, uploads := e.tenantDirs("t1")
	jobsDir := filepath.Join(uploads, "exam_jobs")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(jobsDir, "job_aaaaaaaaaaaa", "scores", "s.csv"), smallCSV)
	write(filepath.Join(jobsDir, "job_aaaaaaaaaaaa", "job.json"), `{"job_id":"job_aaaaaaaaaaaa","exam_id":"RESUMED","status":"processing",
		"created_at":"2026-01-01T00:00:00","uploads":{"score_files":[{"name":"s.csv","kind":"csv","size":10}]},"max_scores":{"1":4,"2":3,"3(1)":2}}`)
	// Interrupted before the rename: back to done.
	write(filepath.Join(jobsDir, "job_bbbbbbbbbbbb", "job.json"), `{"job_id":"job_bbbbbbbbbbbb","status":"confirming","confirm_exam_id":"HALF","created_at":"2026-01-01T00:00:01"}`)
	write(filepath.Join(data, "exams", ".confirm-job_bbbbbbbbbbbb", "manifest.json"), `{}`)
	// Interrupted after the rename: confirmed.
	write(filepath.Join(jobsDir, "job_cccccccccccc", "job.json"), `{"job_id":"job_cccccccccccc","status":"confirming","confirm_exam_id":"WHOLE","created_at":"2026-01-01T00:00:02"}`)
	write(filepath.Join(data, "exams", "WHOLE", "manifest.json"), `{"exam_id":"WHOLE","meta":{"job_id":"job_cccccccccccc"}}`)

	expect(t, e.putTenant("t1", nil), 200, "")
	if st := e.waitJob("/t/t1", "job_aaaaaaaaaaaa"); st["status"] != "done" || st["exam_id"] != "RESUMED" {
		t.Fatalf("resumed job: %v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := e.get("/t/t1/exam/upload/status?job_id=job_bbbbbbbbbbbb").json(t)
		c := e.get("/t/t1/exam/upload/status?job_id=job_cccccccccccc").json(t)
		if b["status"] == "done" && c["status"] == "confirmed" && c["exam_id"] == "WHOLE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirming jobs not settled: %v / %v", b, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, "exams", ".confirm-job_bbbbbbbbbbbb")); !os.IsNotExist(err) {
		t.Fatalf("staging folder left behind: %v", err)
	}
	expect(t, e.postJSON("/t/t1/exam/upload/confirm", map[string]any{"job_id": "job_aaaaaaaaaaaa"}), 200, "")
	expect(t, e.get("/t/t1/exam/RESUMED"), 200, "")
	// The catalogue never lists the staging folder.
	for _, x := range e.get("/t/t1/exams").json(t)["exams"].([]any) {
		if id := x.(map[string]any)["exam_id"].(string); strings.HasPrefix(id, ".") {
			t.Fatalf("listed %s", id)
		}
	}
}

// A sheet with only totals becomes a total-mode exam.
func TestExamTotalMode(t *testing.T) {
	e := newEnv(t)
	sheet := "学校期末成绩\n姓名,班级,总分\n张三,一班,88\n李四,一班,92.5\n王五,二班,88\n赵六,二班,缺考\n"
	r := e.uploadBytes("/exam/upload/start", map[string]string{"exam_id": "FINAL", "max_scores": `{"TOTAL":100}`},
		[3]string{"score_files", "final.csv", sheet})
	expect(t, r, 200, "")
	id := r.json(t)["job_id"].(string)
	if job := e.waitJob("", id); job["status"] != "done" {
		t.Fatalf("job: %v", job)
	}
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": id}), 200, "")
	d := e.get("/exam/FINAL").json(t)
	if d["score_mode"] != "total" || d["counts"].(map[string]any)["students"] != 3.0 {
		t.Fatalf("exam: %v", d)
	}
	var got []string
	for _, x := range e.get("/exam/FINAL/students").json(t)["students"].([]any) {
		s := x.(map[string]any)
		got = append(got, fmt.Sprintf("%v%v#%v", s["student_name"], s["total_score"], s["rank"]))
	}
	if strings.Join(got, " ") != "李四92.5#1 张三88#2 王五88#2" {
		t.Fatalf("ranks: %v", got)
	}
	q := e.get("/exam/FINAL/question/TOTAL").json(t)["question"].(map[string]any)
	if q["max_score"] != 100.0 {
		t.Fatalf("TOTAL question: %v", q)
	}

	// Without full marks a total-only sheet is still confirmed.
	r = e.uploadBytes("/exam/upload/start", map[string]string{"exam_id": "FINAL_NOMAX"}, [3]string{"score_files", "final.csv", sheet})
	expect(t, r, 200, "")
	id = r.json(t)["job_id"].(string)
	if job := e.waitJob("", id); job["status"] != "done" {
		t.Fatalf("job: %v", job)
	}
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": id}), 200, "")
	if q := e.get("/exam/FINAL_NOMAX/question/TOTAL").json(t)["question"].(map[string]any); q["max_score"] != nil {
		t.Fatalf("TOTAL question without full marks: %v", q)
	}
}
