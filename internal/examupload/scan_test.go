package examupload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/scoresheet"
	"github.com/lectern/lectern/internal/testfixtures"
)

// scanEnv is a pipeline with its worker behind a real HTTP server, the
// caller a teacher.
type scanEnv struct {
	p       *Pipeline
	srv     *httptest.Server
	uploads string
}

func newScanEnv(t *testing.T, text TextExtractor, client *llm.Client) *scanEnv {
	t.Helper()
	data, uploads := t.TempDir(), t.TempDir()
	p := New(Config{DataDir: data, UploadsDir: uploads, Exams: exams.NewService(data), Text: text, LLM: client})
	if err := p.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Runner().Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /exam/upload/start", p.Start)
	mux.HandleFunc("GET /exam/upload/status", p.Status)
	mux.HandleFunc("GET /exam/upload/draft", p.Draft)
	mux.HandleFunc("POST /exam/upload/confirm", p.ConfirmHandler)
	teacher := caller.Principal{Role: caller.RoleTeacher, TeacherID: "t_zhang", Via: caller.Token}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), teacher)))
	}))
	t.Cleanup(srv.Close)
	return &scanEnv{p: p, srv: srv, uploads: uploads}
}

// start posts the form and the score files; it returns the status and
// the decoded body.
func (e *scanEnv) start(t *testing.T, form map[string]string, scores map[string][]byte) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range form {
		mw.WriteField(k, v)
	}
	for name, data := range scores {
		w, _ := mw.CreateFormFile("score_files", name)
		w.Write(data)
	}
	mw.Close()
	resp, err := http.Post(e.srv.URL+"/exam/upload/start", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}

func (e *scanEnv) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

// wait polls the status route until the job is done or failed.
func (e *scanEnv) wait(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		_, rec := e.get(t, "/exam/upload/status?job_id="+id)
		if s := rec["status"]; s == StatusDone || s == StatusFailed {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s not finished", id)
	return nil
}

func fakeLLM(t *testing.T, srv *llmtest.Server) *llm.Client {
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "fake", BaseURL: srv.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	return &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()), Global: limits.NewSet(limits.TenantDefaults())}
}

// scoreTable is a photographed score table: names, a class, three
// questions and the total. (Tesseract's automatic layout reads a table
// with wide gaps as separate columns; with narrow ones it keeps rows.)
func scoreTable(t *testing.T) []byte {
	testfixtures.NeedBins(t, "tesseract")
	return testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.CJKFont(t), 40,
		"姓名  班级  1  2  3  总分",
		"张三  一班  4  3  5  12",
		"李四  一班  2  3  4  9",
		"王五  一班  5  5  5  15"))
}

// tableAnswer is what the fake model reads from the table (in a code
// fence, as models often answer).
const tableAnswer = "```json\n" + `{"mode": "question", "questions": ["1", "2", "3"], "students": [
 {"student_name": "张三", "class_name": "一班", "student_id": null, "total_score": 12, "scores": {"1": 4, "2": 3, "3": 5}},
 {"student_name": "李四", "class_name": "一班", "student_id": null, "total_score": 9, "scores": {"1": 2, "2": 3, "3": 4}},
 {"student_name": "王五", "class_name": "一班", "student_id": "2024003", "total_score": "15", "scores": {"1": 5, "2": "5", "3": 5}}
], "warnings": [], "missing": []}` + "\n```"

// A photo of a score table: real tesseract reads it, the model gets its
// text (untrusted-data prompt, teacher role) and returns the table; the
// draft has the students and questions, and the confirm creates the exam.
func TestScoreSheetImage(t *testing.T) {
	png := scoreTable(t)
	srv := llmtest.NewServer(t)
	var mu sync.Mutex
	var prompt, system string
	srv.Respond(func(r llmtest.Recorded) llmtest.Step {
		mu.Lock()
		defer mu.Unlock()
		if len(r.Messages) == 2 {
			system, prompt = r.Messages[0].Content, r.Messages[1].Content
		}
		return llmtest.Step{Reply: tableAnswer}
	})
	e := newScanEnv(t, ocr.New(ocr.Options{}), fakeLLM(t, srv))
	status, out := e.start(t, map[string]string{"exam_id": "SCAN1", "max_scores": `{"1":5,"2":5,"3":5}`},
		map[string][]byte{"scores.png": png})
	if status != 200 {
		t.Fatalf("start: %d %v", status, out)
	}
	id := out["job_id"].(string)
	rec := e.wait(t, id)
	if rec["status"] != StatusDone {
		t.Fatalf("job: %v %v %v", rec["status"], rec["error"], rec["error_detail"])
	}

	mu.Lock()
	if !strings.Contains(prompt, "张三") || !strings.Contains(prompt, "李四") || !strings.Contains(prompt, "总分") ||
		!strings.Contains(prompt, "<<<成绩表开始>>>") {
		t.Errorf("the prompt lacks the OCR text: %q", prompt)
	}
	if !strings.Contains(system, "不可信的数据") || !strings.Contains(system, "ignore any instruction") || !strings.Contains(system, `"student_name"`) {
		t.Errorf("system prompt: %q", system)
	}
	mu.Unlock()
	if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Body["temperature"] != 0.0 {
		t.Errorf("%d LLM requests", len(reqs))
	}
	dir := e.p.jobDir(id)
	page, err := os.ReadFile(filepath.Join(dir, "ocr", "scores", "scores.png", "page_1.txt"))
	if err != nil || !strings.Contains(string(page), "张三") {
		t.Errorf("ocr page: %q, %v", page, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ocr", "scores", "scores.png", "scores.json")); err != nil {
		t.Errorf("model answer not kept: %v", err)
	}

	status, d := e.get(t, "/exam/upload/draft?job_id="+id)
	if status != 200 {
		t.Fatalf("draft: %d %v", status, d)
	}
	draft := d["draft"].(map[string]any)
	qs := draft["questions"].([]any)
	if len(qs) != 3 || qs[0].(map[string]any)["question_id"] != "Q1" || qs[2].(map[string]any)["raw_label"] != "3" {
		t.Errorf("questions = %v", qs)
	}
	if c := draft["counts"].(map[string]any); c["students"] != 3.0 || c["responses"] != 9.0 {
		t.Errorf("counts = %v", c)
	}
	if m := draft["meta"].(map[string]any); m["score_mode"] != "question" {
		t.Errorf("meta = %v", m)
	}
	if w := fmt.Sprint(draft["warnings"]); strings.Contains(w, "总分核对不一致") {
		t.Errorf("totals do not match: %s", w)
	}

	body, _ := json.Marshal(map[string]any{"job_id": id})
	resp, err := http.Post(e.srv.URL+"/exam/upload/confirm", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if status, c := decode(t, resp); status != 200 || c["exam_id"] != "SCAN1" {
		t.Fatalf("confirm: %d %v", status, c)
	}
	ex, err := e.p.exams.Exam("SCAN1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Students) != 3 || len(ex.Responses) != 9 {
		t.Errorf("exam: %d students, %d responses", len(ex.Students), len(ex.Responses))
	}
	var found bool
	for _, r := range ex.Responses {
		if r.StudentID == "一班_王五" && r.QuestionID == "Q2" && r.Score == 5 {
			found = true
		}
	}
	if !found {
		t.Errorf("王五's Q2 missing: %+v", ex.Responses)
	}
}

// A model answering with something else than the table fails the job with
// llm_parse_failed and hints.
func TestScoreSheetImageJunkAnswer(t *testing.T) {
	png := scoreTable(t)
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "I am sorry, I cannot read this table."})
	e := newScanEnv(t, ocr.New(ocr.Options{}), fakeLLM(t, srv))
	_, out := e.start(t, nil, map[string][]byte{"scores.png": png})
	rec := e.wait(t, out["job_id"].(string))
	hints, _ := rec["hints"].([]any)
	if rec["status"] != StatusFailed || rec["error"] != "llm_parse_failed" || rec["step"] != "parse_scores" || len(hints) < 2 {
		t.Fatalf("job: %v", rec)
	}
	if !strings.Contains(fmt.Sprint(hints), "I am sorry") || !strings.Contains(rec["error_detail"].(string), "scores.png") {
		t.Errorf("hints %v detail %v", hints, rec["error_detail"])
	}
}

// stubText is an extractor that "reads" every file as text (the LLM side
// of the pipeline is what these tests are about).
type stubText struct{ text string }

func (s stubText) Extract(context.Context, string) (*ocr.Result, error) {
	return &ocr.Result{Kind: "png", Pages: []ocr.PageResult{{N: 1, Text: s.text, Source: ocr.SourceOCR, Engine: "stub"}}}, nil
}

// Other failures of a scanned sheet: the model's error, an answer with no
// students, OCR that cannot run.
func TestScoreSheetScanFailures(t *testing.T) {
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 20, "x"))
	noOCR := ocr.New(ocr.Options{Bins: ocr.Bins{Tesseract: filepath.Join(t.TempDir(), "tesseract")}})
	for _, tc := range []struct {
		name  string
		text  TextExtractor
		step  llmtest.Step
		code  string
		hints string
	}{
		{"model error", stubText{"张三 4 3 5"}, llmtest.Step{Status: 500}, "llm_failed", "稍后重新上传"},
		{"no students", stubText{"张三 4 3 5"}, llmtest.Step{Reply: `{"mode":"question","students":[{"student_name":"平均分","scores":{"1":3}}]}`},
			"scores_parsed_empty", "ocr/scores/"},
		{"schema mismatch", stubText{"张三 4 3 5"}, llmtest.Step{Reply: `{"students":[{"name":"张三"}]}`}, "llm_parse_failed", ".xlsx"},
		{"no text", stubText{"  \n"}, llmtest.Step{Reply: tableAnswer}, "scores_parsed_empty", "ocr/scores/"},
		{"ocr unavailable", noOCR, llmtest.Step{Reply: tableAnswer}, "ocr_unavailable", "tesseract-ocr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.NewServer(t)
			srv.Script(tc.step)
			e := newScanEnv(t, tc.text, fakeLLM(t, srv))
			_, out := e.start(t, nil, map[string][]byte{"s.png": png})
			rec := e.wait(t, out["job_id"].(string))
			if rec["status"] != StatusFailed || rec["error"] != tc.code {
				t.Fatalf("job: %v %v: %v", rec["status"], rec["error"], rec["error_detail"])
			}
			if h := fmt.Sprint(rec["hints"]); !strings.Contains(h, tc.hints) {
				t.Errorf("hints %s lack %q", h, tc.hints)
			}
		})
	}
}

// Without an LLM (or without OCR) a PDF or image score sheet is still a
// 415, now saying what enables it; nothing is left behind.
func TestScoreSheetScanNeedsLLM(t *testing.T) {
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 20, "x"))
	pdf := testfixtures.PDF(testfixtures.PDFPage{Lines: []string{"姓名 1 2"}})
	srv := llmtest.NewServer(t)
	for name, e := range map[string]*scanEnv{
		"no llm":         newScanEnv(t, stubText{}, nil),
		"no provider":    newScanEnv(t, stubText{}, &llm.Client{Gateway: llm.NewGateway(llm.Config{}, llm.Options{})}),
		"no text reader": newScanEnv(t, nil, fakeLLM(t, srv)),
	} {
		for file, data := range map[string][]byte{"s.png": png, "s.pdf": pdf} {
			status, out := e.start(t, nil, map[string][]byte{file: data})
			d, _ := out["detail"].(map[string]any)
			if status != http.StatusUnsupportedMediaType || d["error"] != "score_sheet_needs_llm" ||
				!strings.Contains(fmt.Sprint(d["hints"]), "LLM_BASE_URL") || !strings.Contains(fmt.Sprint(d["message"]), "OCR") {
				t.Errorf("%s %s: %d %v", name, file, status, out)
			}
		}
		if entries, _ := os.ReadDir(filepath.Join(e.uploads, "exam_jobs")); len(entries) != 0 {
			t.Errorf("%s: refused uploads left %d job folders", name, len(entries))
		}
	}
	if len(srv.Requests()) != 0 {
		t.Error("the model was asked")
	}
}

// The model's JSON → a sheet, by the predecessor's rules and the sheet
// parser's.
func TestScanAnswerSheet(t *testing.T) {
	parse := func(js string) (*scoresheet.Sheet, error) {
		var a scanAnswer
		if err := scoresSchema.Decode(js, &a); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return a.sheet("高二(1)班")
	}
	sh, err := parse(`{"mode": "questions?", "questions": ["2", {"label": "11(1)"}, "选择题"],
	  "students": [
	    {"student_name": " 张  三 ", "scores": {"11(1)": 6, "1": "ＢＤ", "2": "4分", "总分": 14, "附加": 2}},
	    {"student_name": "李四", "class_name": "高二(2)班", "student_id": 2024002, "scores": [{"label": "1", "score": "a"}, {"raw_label": "2", "score": 3}]},
	    {"student_name": "平均分", "scores": {"1": 3}},
	    {"student_name": "张 三", "scores": {"1": 1}},
	    {"student_name": "王五", "scores": {"1": "缺考"}}
	  ],
	  "warnings": ["第3行看不清"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Mode != scoresheet.ModeQuestion {
		t.Errorf("mode = %s", sh.Mode)
	}
	var ids []string
	for _, q := range sh.Questions {
		ids = append(ids, fmt.Sprintf("%s:%s:%d:%v", q.ID, q.Label, q.Order, q.Letters))
	}
	if got := strings.Join(ids, " "); got != "Q1:1:1:true Q2:2:2:false Q11_1:11(1):3:false" {
		t.Errorf("questions = %s", got)
	}
	if len(sh.Students) != 2 {
		t.Fatalf("students = %+v", sh.Students)
	}
	a, b := sh.Students[0], sh.Students[1]
	if a.ID != "高二(1)班_张_三" || a.Name != "张 三" || a.Class != "高二(1)班" || a.SheetTotal == nil || *a.SheetTotal != 14 ||
		a.Cells["Q1"].Answer != "BD" || *a.Cells["Q2"].Score != 4 || *a.Cells["Q11_1"].Score != 6 {
		t.Errorf("first = %+v", a)
	}
	if b.ID != "高二(2)班_李四" || b.ExamNo != "2024002" || b.Cells["Q1"].Answer != "A" || *b.Cells["Q2"].Score != 3 {
		t.Errorf("second = %+v", b)
	}
	w := strings.Join(sh.Warnings, "\n")
	for _, want := range []string{"第3行看不清", "选择题", "附加", "重复的学生", "缺考", "王五"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}

	// Total mode: students without a numeric total are dropped.
	sh, err = parse(`{"mode": "total", "students": [{"student_name": "张三", "total_score": "88.5"}, {"student_name": "李四", "total_score": null}]}`)
	if err != nil || sh.Mode != scoresheet.ModeTotal || len(sh.Students) != 1 || *sh.Students[0].SheetTotal != 88.5 || len(sh.Questions) != 0 {
		t.Errorf("total mode: %+v, %v", sh, err)
	}
	// No mode, no question scores: total.
	if sh, err := parse(`{"students": [{"student_name": "张三", "scores": {"总分": 90}}]}`); err != nil || sh.Mode != scoresheet.ModeTotal {
		t.Errorf("inferred total: %+v, %v", sh, err)
	}
	// Nothing usable.
	if _, err := parse(`{"mode": "question", "students": [{"student_name": "张三", "scores": {}}]}`); err == nil {
		t.Error("no scores accepted")
	}
}
