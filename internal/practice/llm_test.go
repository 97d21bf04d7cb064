package practice

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/structured"
)

const fourItems = `好的，题目如下：
[
 {"stem": "如图所示，小球从光滑斜面顶端由静止滑下，斜面高 0.8 m，求到达底端的速度。", "answer": "4 m/s", "solution": "由机械能守恒 v=√(2gh)。", "type": "计算题"},
 {"stem": "质量 2 kg 的物体受 10 N 合力，加速度多大？", "options": ["A. 2 m/s²", "B. 5 m/s²"], "answer": "B", "solution": "a=F/m。", "type": "选择题", "difficulty": "challenge"},
 {"stem": "匀速直线运动的物体所受合力为多少？", "answer": 0, "solution": "牛顿第一定律。", "type": "填空题"},
 {"stem": "第四题不应被采用。", "answer": "x", "solution": "x", "type": "填空题"}
]`

const rewrittenThree = `[
 {"stem": "一个小球从高 0.8 m 的光滑斜面顶端由静止滑下，求到达底端的速度。", "answer": "4 m/s", "solution": "由机械能守恒 v=√(2gh)。", "type": "计算题"},
 {"stem": "质量 2 kg 的物体受 10 N 合力，加速度多大？", "options": ["A. 2 m/s²", "B. 5 m/s²"], "answer": "B", "solution": "a=F/m。", "type": "选择题", "difficulty": "challenge"},
 {"stem": "匀速直线运动的物体所受合力为多少？", "answer": 0, "solution": "牛顿第一定律。", "type": "填空题"}
]`

// isRewrite tells the figure-word rewrite call from the generation call.
func isRewrite(r llmtest.Recorded) bool {
	return len(r.Messages) > 1 && strings.Contains(r.Messages[len(r.Messages)-1].Content, "改写")
}

// Generation through the LLM: the gap is asked for, the answer capped at
// what is missing, the figure words rewritten by the one rewrite call,
// files named GEN-<kp>-LLM-NN, and a second run numbers after the first.
func TestLLMGeneration(t *testing.T) {
	data := t.TempDir()
	writeBank(t, data, bankRow{"K1-B01", "KP1", "basic", "题库题"})
	client, srv := fakeLLM(t)
	srv.Respond(func(r llmtest.Recorded) llmtest.Step {
		if isRewrite(r) {
			return llmtest.Step{Reply: rewrittenThree}
		}
		return llmtest.Step{Reply: fourItems}
	})
	s := newService(t, data, func(c *Config) { c.LLM = client })
	req := GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, PerKP: 4, UseLLM: true, Source: "auto"}
	res, err := s.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	rows := questions(t, data, "A1")
	if got := idsOf(rows); !reflect.DeepEqual(got, []string{"K1-B01", "GEN-KP1-LLM-01", "GEN-KP1-LLM-02", "GEN-KP1-LLM-03"}) || res.QuestionCount != 4 {
		t.Fatalf("selected %v", got)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || isRewrite(reqs[0]) || !isRewrite(reqs[1]) {
		t.Fatalf("%d requests", len(reqs))
	}
	ask := reqs[0].Messages[1].Content
	if !strings.Contains(ask, "「KP1」编写 3 道") || !strings.Contains(ask, `"required":["stem","answer","solution","type"]`) {
		t.Fatalf("prompt: %s", ask)
	}
	if got := readText(t, data, rows[1].StemRef); got != "一个小球从高 0.8 m 的光滑斜面顶端由静止滑下，求到达底端的速度。" {
		t.Fatalf("rewritten stem %q", got)
	}
	if got := readText(t, data, rows[2].StemRef); got != "质量 2 kg 的物体受 10 N 合力，加速度多大？\nA. 2 m/s²\nB. 5 m/s²" {
		t.Fatalf("stem with options %q", got)
	}
	if got := readText(t, data, rows[3].AnswerRef); got != "答案: 0\n解析: 牛顿第一定律。" {
		t.Fatalf("solution %q", got)
	}
	want := Row{QuestionID: "GEN-KP1-LLM-02", KPID: "KP1", Difficulty: "advanced", Type: "选择题",
		StemRef: "assignments/A1/generated_stems/GEN-KP1-LLM-02.md", AnswerRef: "assignments/A1/generated_solutions/GEN-KP1-LLM-02.md",
		Source: "generated", Tags: "LLM"}
	if rows[2] != want {
		t.Fatalf("row %+v", rows[2])
	}

	// A second run does not overwrite the first run's files.
	if _, err := s.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := idsOf(questions(t, data, "A1")); !reflect.DeepEqual(got, []string{"K1-B01", "GEN-KP1-LLM-04", "GEN-KP1-LLM-05", "GEN-KP1-LLM-06"}) {
		t.Fatalf("second run %v", got)
	}
	if _, err := os.Stat(filepath.Join(data, "assignments", "A1", "generated_stems", "GEN-KP1-LLM-01.md")); err != nil {
		t.Fatal(err)
	}
}

// A rewrite that still refers to a figure (or has another length) is not
// taken: the figure phrases are deleted instead.
func TestLLMFigureSubstitution(t *testing.T) {
	data := t.TempDir()
	client, srv := fakeLLM(t)
	srv.Respond(func(r llmtest.Recorded) llmtest.Step {
		if isRewrite(r) {
			return llmtest.Step{Reply: `[{"stem":"见图2，仍有图。","answer":"a","solution":"b","type":"t"}]`}
		}
		return llmtest.Step{Reply: `[{"stem":"如图所示，  一根弹簧\n劲度系数 100 N/m，见图1 伸长多少？","answer":"a","solution":"b","type":"t"}]`}
	})
	s := newService(t, data, func(c *Config) { c.LLM = client })
	if _, err := s.Generate(context.Background(), GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, PerKP: 1, UseLLM: true, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, data, "assignments/A1/generated_stems/GEN-KP1-LLM-01.md"); got != "一根弹簧 劲度系数 100 N/m，伸长多少？" {
		t.Fatalf("substituted %q", got)
	}
	if n := len(srv.Requests()); n != 2 {
		t.Fatalf("%d requests", n)
	}
}

// A reply that is not the array asked for fails the generation with an
// AnswerError; nothing of the assignment is written.
func TestLLMBadAnswer(t *testing.T) {
	data := t.TempDir()
	client, srv := fakeLLM(t)
	srv.Script(llmtest.Step{Reply: "抱歉，我无法完成。"})
	s := newService(t, data, func(c *Config) { c.LLM = client })
	_, err := s.Generate(context.Background(), GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, PerKP: 2, UseLLM: true, Source: "auto"})
	var ae *structured.AnswerError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "assignments", "A1", "meta.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("meta.json written")
	}
	if f := failure(err); f["error"] != "llm_generate_failed" || f["hints"] == nil {
		t.Fatalf("failure %v", f)
	}
}

// POST /assignment/generate with generate=true and an LLM runs in the
// background: queued at once, the status followed to done; one
// generation per assignment (409), two per tenant (429); Stop cancels
// and the status says interrupted.
func TestGenerateInBackground(t *testing.T) {
	data := t.TempDir()
	client, srv := fakeLLM(t)
	var mu sync.Mutex
	hold := map[string]bool{}
	srv.Respond(func(r llmtest.Recorded) llmtest.Step {
		mu.Lock()
		defer mu.Unlock()
		for kp := range hold {
			if strings.Contains(r.Messages[1].Content, "「"+kp+"」") {
				return llmtest.Step{Hang: true}
			}
		}
		return llmtest.Step{Reply: rewrittenThree}
	})
	s := newService(t, data, func(c *Config) { c.LLM = client })
	hs := newServer(t, s)
	for _, id := range []string{"A1", "A2", "A3", "A4"} {
		saveRequirements(t, data, id)
	}
	r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"A1"}, "kp": {"KP1"}, "per_kp": {"2"}, "generate": {"true"}})
	body := r.json(t)
	if r.status != 200 || body["status"] != "queued" || body["assignment_id"] != "A1" || body["status_url"] != "/assignment/A1/generate/status" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	st := hs.waitStatus(t, "A1")
	if st["status"] != StatusDone || st["question_count"] != 2.0 || st["teacher_id"] != "t1" {
		t.Fatalf("status %v", st)
	}
	if got := idsOf(questions(t, data, "A1")); !reflect.DeepEqual(got, []string{"GEN-KP1-LLM-01", "GEN-KP1-LLM-02"}) {
		t.Fatalf("A1 %v", got)
	}

	mu.Lock()
	hold["HANG"] = true
	mu.Unlock()
	for _, id := range []string{"A2", "A3"} {
		if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {id}, "kp": {"HANG"}, "generate": {"1"}}); r.status != 200 {
			t.Fatalf("%s: %d %s", id, r.status, r.body)
		}
	}
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"A2"}, "kp": {"KP1"}, "generate": {"1"}}); r.status != 409 ||
		!strings.Contains(string(r.body), "generation_running") {
		t.Fatalf("same assignment: %d %s", r.status, r.body)
	}
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"A2"}, "kp": {"KP1"}}); r.status != 409 {
		t.Fatalf("same assignment without LLM: %d %s", r.status, r.body)
	}
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"A4"}, "kp": {"KP1"}, "generate": {"yes"}}); r.status != 429 ||
		r.header.Get("Retry-After") == "" {
		t.Fatalf("third at once: %d %s", r.status, r.body)
	}
	if st := hs.get(t, "/assignment/A2/generate/status", "").json(t); st["status"] != StatusProcessing && st["status"] != StatusQueued {
		t.Fatalf("A2 status %v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"A2", "A3"} {
		st := readSmallJSON(filepath.Join(data, "assignments", id, statusFile))
		if st["status"] != StatusFailed || st["error"] != "generation_interrupted" {
			t.Fatalf("%s after stop: %v", id, st)
		}
	}
	if r := hs.postForm(t, "/assignment/generate", url.Values{"assignment_id": {"A4"}, "kp": {"KP1"}}); r.status != 503 {
		t.Fatalf("after stop: %d %s", r.status, r.body)
	}
}

// A status left "processing" by an earlier process reads as interrupted,
// without the GET writing anything.
func TestStatusInterruptedReadOnly(t *testing.T) {
	data := t.TempDir()
	writeJSON(t, data, "assignments/A1/"+statusFile, map[string]any{"assignment_id": "A1", "status": "processing"})
	s := newService(t, data)
	hs := newServer(t, s)
	before := treeState(t, data)
	st := hs.get(t, "/assignment/A1/generate/status", "").json(t)
	if st["status"] != StatusFailed || st["error"] != "generation_interrupted" {
		t.Fatalf("%v", st)
	}
	if r := hs.get(t, "/assignment/A9/generate/status", ""); r.status != 404 {
		t.Fatalf("missing: %d", r.status)
	}
	if r := hs.get(t, "/assignment/..%2fx/generate/status", ""); r.status != 400 && r.status != 404 {
		t.Fatalf("traversal: %d", r.status)
	}
	if treeState(t, data) != before {
		t.Fatal("a GET wrote")
	}
}
