package assignupload

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

const parseReplyJSON = "```json\n" + `{"questions":[
 {"stem":"下列关于惯性的说法正确的是","answer":"B","kp":"惯性","difficulty":"基础","score":3,"tags":["选择"],"type":"选择题"},
 {"stem":"汽车刹车，求刹车距离。","answer":null,"kp":"","difficulty":"压轴题","score":"5","tags":"计算, 综合","type":null}],
 "requirements":{"subject":"物理","topic":"牛顿第二定律","grade_level":null,"core_concepts":["惯性"],"duration_minutes":"40分钟"},
 "missing":["grade_level"]}` + "\n```"

const autofillReplyJSON = `好的，补全如下：{"requirements":{"subject":"化学","grade_level":"高一","class_level":"一般",
 "core_concepts":["牛顿第二定律","加速度","惯性"],"typical_problem":"已知合力求加速度",
 "misconceptions":["质量与重量混淆","合力方向判断错误","单位换算错误"],"preferences":["A","B"],"duration_minutes":60},
 "uncertain":"class_level， grade_level"}`

// With an LLM: the parse call gets both texts, the autofill call the
// missing keys; the autofill fills gaps but never overwrites, extends a
// list of fewer than three items, and its uncertain keys join the missing
// ones. Both calls are the teacher's, with their kinds.
func TestLLMParseAndAutofill(t *testing.T) {
	fake, opt := newFakeLLM(t)
	fake.srv.Script(llmtest.Step{Reply: parseReplyJSON}, llmtest.Step{Reply: autofillReplyJSON})
	f := newFixture(t, false, opt)
	id := f.start(value("assignment_id", "LLM1"), file("files", "paper.md", []byte(paperMD)),
		file("answer_files", "answers.txt", []byte(answersMD)))
	rec := f.wait(id)
	if rec["status"] != StatusDone || rec["autofilled"] != true || rec["question_count"] != 2.0 {
		t.Fatalf("job: %v", rec)
	}
	reqs := fake.srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d LLM requests", len(reqs))
	}
	parse, fill := reqs[0].Messages, reqs[1].Messages
	if len(parse) != 2 || !strings.Contains(parse[0].Content, "作业解析助手") || !strings.Contains(parse[0].Content, `"questions"`) ||
		!strings.Contains(parse[1].Content, "【试卷文本】\n# 第三章") || !strings.Contains(parse[1].Content, "【答案文本】\n1. B 2. 5 m/s²") {
		t.Errorf("parse request: %+v", parse)
	}
	if !strings.Contains(fill[0].Content, "作业分析助手") || !strings.Contains(fill[1].Content, "缺失字段：grade_level, class_level, core_concepts") ||
		!strings.Contains(fill[1].Content, `"subject":"物理"`) || !strings.Contains(fill[1].Content, "题目摘要：[{\"id\":1") ||
		!strings.Contains(fill[1].Content, "试卷文本：# 第三章") {
		t.Errorf("autofill request: %+v", fill)
	}
	logs := fake.log.String()
	for _, kind := range []string{"kind=" + KindParse, "kind=" + KindAutofill} {
		if !strings.Contains(logs, kind) {
			t.Errorf("no call of %s in the gateway log:\n%s", kind, logs)
		}
	}

	d := f.draft(id)
	req := d["requirements"].(map[string]any)
	if req["subject"] != "物理" || req["grade_level"] != "高一" || req["duration_minutes"] != 40.0 {
		t.Errorf("merge overwrote or missed: %v", req)
	}
	if got := strs(req["core_concepts"]); !reflect.DeepEqual(got, []string{"惯性", "牛顿第二定律", "加速度"}) {
		t.Errorf("core_concepts %v", got)
	}
	// misconceptions (3 < 4) still missing; class_level and grade_level
	// were guesses.
	if got := strs(d["requirements_missing"]); !reflect.DeepEqual(got, []string{"grade_level", "class_level", "misconceptions"}) {
		t.Errorf("requirements_missing %v", got)
	}
	if w := strs(d["warnings"]); !slices.Contains(w, "已自动补全部分要求，请核对并补充缺失项。") {
		t.Errorf("warnings %v", w)
	}
	qs := d["questions"].([]any)
	q2 := qs[1].(map[string]any)
	if q2["score"] != 5.0 || !reflect.DeepEqual(strs(q2["tags"]), []string{"计算", "综合"}) || q2["answer"] != "" {
		t.Errorf("q2: %v", q2)
	}

	// Saving the guessed keys clears them.
	code, out := f.postJSON("/assignment/upload/draft/save", map[string]any{"job_id": id, "requirements": map[string]any{
		"class_level": "中等", "grade_level": "高一", "misconceptions": "a, b, c, d"}})
	if code != http.StatusOK || len(strs(out["requirements_missing"])) != 0 {
		t.Fatalf("save: %d %v", code, out)
	}
	code, out = f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": id})
	if code != http.StatusOK {
		t.Fatalf("confirm: %d %v", code, out)
	}
	rows := readCSV(t, f.data+"/assignments/LLM1/questions.csv")
	if rows[1][1] != "惯性" || rows[1][2] != "basic" || rows[1][3] != "选择题" || rows[2][2] != "challenge" || rows[2][3] != "upload" {
		t.Errorf("rows %v", rows)
	}
	if meta := readJSONFile(t, f.data+"/assignments/LLM1/meta.json"); meta["requirements_autofilled"] != true {
		t.Errorf("meta %v", meta)
	}
}

// A parse reply that is not the JSON asked for fails the job with
// llm_parse_failed and hints; so does JSON of the wrong shape.
func TestLLMParseReplyNotJSON(t *testing.T) {
	for name, reply := range map[string]string{
		"prose":        "对不起，我无法完成这个任务。",
		"wrong shape":  `{"questions":"none"}`,
		"no questions": `{"requirements":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			fake, opt := newFakeLLM(t)
			fake.srv.Script(llmtest.Step{Reply: reply})
			f := newFixture(t, false, opt)
			id := f.start(value("assignment_id", "BAD1"), file("files", "paper.md", []byte(paperMD)))
			rec := f.wait(id)
			if rec["status"] != StatusFailed || rec["error"] != "llm_parse_failed" || rec["step"] != "parse" ||
				len(strs(rec["hints"])) < 2 || rec["error_detail"] == "" {
				t.Fatalf("job: %v", rec)
			}
			if len(fake.srv.Requests()) != 1 {
				t.Fatalf("%d requests: no autofill after a failed parse", len(fake.srv.Requests()))
			}
		})
	}
}

// A provider that fails is a coded error with hints, not its body; an
// empty question list is "no questions parsed"; a failed autofill keeps
// the parse.
func TestLLMFailures(t *testing.T) {
	fake, opt := newFakeLLM(t)
	f := newFixture(t, false, opt)
	run := func(steps ...llmtest.Step) map[string]any {
		t.Helper()
		fake.srv.Script(steps...)
		return f.wait(f.start(value("assignment_id", "F1"), file("files", "paper.md", []byte(paperMD))))
	}
	rec := run(llmtest.Step{Status: http.StatusServiceUnavailable, Body: `{"error":{"message":"secret upstream detail"}}`})
	if rec["error"] != "llm_unavailable" || len(strs(rec["hints"])) == 0 || strings.Contains(rec["error_detail"].(string), "secret") {
		t.Errorf("503: %v", rec)
	}
	rec = run(llmtest.Step{Status: http.StatusUnauthorized})
	if rec["error"] != "llm_failed" || len(strs(rec["hints"])) == 0 {
		t.Errorf("401: %v", rec)
	}
	rec = run(llmtest.Step{Reply: `{"questions":[],"requirements":{}}`})
	if rec["error"] != "no questions parsed" || len(strs(rec["hints"])) == 0 {
		t.Errorf("no questions: %v", rec)
	}
	rec = run(llmtest.Step{Reply: parseReplyJSON}, llmtest.Step{Reply: "not json"})
	if rec["status"] != StatusDone || rec["autofilled"] != false || rec["question_count"] != 2.0 ||
		len(strs(rec["requirements_missing"])) != 6 {
		t.Errorf("failed autofill: %v", rec)
	}
	rec = run(llmtest.Step{Reply: parseReplyJSON}, llmtest.Step{Status: http.StatusBadGateway})
	if rec["status"] != StatusDone || rec["autofilled"] != false {
		t.Errorf("autofill provider down: %v", rec)
	}
}
