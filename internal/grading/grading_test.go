package grading

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/students"
	"github.com/lectern/lectern/internal/testfixtures"
)

// sheetCSV is an assignment of every kind of question: single and multiple
// choice, a number (its answer in an answer file), text, a subjective
// question with a rubric file, one the sheet does not answer, and one with
// neither answer nor rubric.
const sheetCSV = `question_id,kp_id,question_no,score,answer_text,answer_ref,rubric_ref
Q1,力学基础,1,1,B,,
Q2,力学基础,2,3,ACD,,
Q3,运动学,3,2,,assignments/HW_0301/answers/q3.md,
Q4,牛顿定律,4,2,F=ma,,
Q5,牛顿定律,5,4,,,assignments/HW_0301/rubric_q5.json
Q6,运动学,6,1,12,,
Q7,运动学,7,1,,,
`

const rubricQ5 = `{"steps":[
 {"id":"s1","score":1,"keywords":["重力"]},
 {"id":"s2","score":1,"keywords":["支持力"]},
 {"id":"s3","score":1,"keywords":["二力平衡"],"regex":["平衡"]},
 {"id":"s4","score":1,"keywords":["牛顿第一定律","惯性"]}]}`

func writeSheetAssignment(t testing.TB, data string) {
	writeAssignment(t, data, "HW_0301", sheetCSV, map[string]string{
		"assignments/HW_0301/answers/q3.md":  "# 第3题\n答案：9.8 m/s^2\n",
		"assignments/HW_0301/rubric_q5.json": rubricQ5,
		"assignments/HW_0301/meta.json":      `{"assignment_id":"HW_0301","date":"2026-03-02","scope":"student","student_ids":["高二3班_张三"]}`,
		"student_profiles/高二3班_张三.json":      `{"student_id":"高二3班_张三","student_name":"张三","recent_weak_kp":["受力分析"],"next_focus":"受力分析"}`,
	})
}

// sheetImage is a photographed answer sheet: Latin and Chinese, numbered
// answers, choice letters.
func sheetImage(t testing.TB) []byte {
	img := testfixtures.RenderText(t, testfixtures.CJKFont(t), 36,
		"作业ID: HW_0301   姓名: 张三",
		"1. 答案：B",
		"2. AC",
		"3. 9.8",
		"4. 牛顿第二定律 F=ma",
		"5. 物体受重力和支持力，二力平衡，所以加速度为零。")
	return testfixtures.PNG(t, photo(img, 0.7))
}

// TestSubmitAnswerSheet: a photographed sheet over HTTP, real tesseract,
// every question graded against its own answer, both copies written, the
// profile updated through the profile worker and the progress view fed.
func TestSubmitAnswerSheet(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract")
	data, uploads := t.TempDir(), t.TempDir()
	writeSheetAssignment(t, data)
	profiles := students.NewStore(data)
	worker := students.NewWorker(students.WorkerConfig{UploadsDir: uploads, Profiles: profiles})
	if err := worker.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { worker.Runner().Stop(context.Background()) })
	var pjobs []string
	f := newFixture(t, data, uploads, true, func(c *Config) { c.Text = ocr.New(ocr.Options{}) })
	f.hook = func(r *Report) error {
		id, err := worker.Enqueue(ProfileUpdate(r))
		pjobs = append(pjobs, id)
		return err
	}

	code, out := f.submit([][2]string{{"student_id", "高二3班_张三"}, {"assignment_id", "HW_0301"}},
		[]file{{name: "answer sheet.png", data: sheetImage(t)}})
	if code != http.StatusOK || out["status"] != "queued" || out["assignment_id"] != "HW_0301" || !strings.Contains(out["output"].(string), "正在批改") {
		t.Fatalf("submit: %d %v", code, out)
	}
	rec := f.waitJob(out["job_id"].(string))
	if rec["status"] != StatusDone {
		t.Fatalf("job: %v", rec)
	}
	rep := rec["report"].(map[string]any)
	got := items(t, rep)
	want := []struct {
		id, status, reason string
		score, max, conf   float64
	}{
		{"Q1", "matched", "mcq_single", 1, 1, 1},
		{"Q2", "missed", "mcq_multi_partial", 2, 3, 1}, // AC of ACD: 3 × 2/3
		{"Q3", "matched", "numeric_match", 2, 2, 1},
		{"Q4", "matched", "text_match", 2, 2, 1},
		{"Q5", "matched", "rubric", 3, 4, 0.75},
		{"Q6", "missed", "answer_not_found", 0, 1, 0.5},
		{"Q7", "ungraded", "missing_expected", 0, 1, 0},
	}
	for _, w := range want {
		it := got[w.id]
		if it["status"] != w.status || it["reason"] != w.reason || it["score"] != w.score || it["max_score"] != w.max || it["confidence"] != w.conf {
			t.Errorf("%s: %v, want %+v", w.id, it, w)
		}
	}
	if s := got["Q5"]; !slices.Equal(strs(s["matched_steps"]), []string{"s1", "s2", "s3"}) || !slices.Equal(strs(s["missing_steps"]), []string{"s4"}) {
		t.Errorf("Q5 steps: %v", s)
	}
	if got["Q3"]["answer_source"] != "block" || got["Q6"]["answer_source"] != "none" {
		t.Errorf("answer sources: %v %v", got["Q3"], got["Q6"])
	}
	// Counted: Q1–Q5; Q6 (low confidence) and Q7 are ungraded.
	if rep["graded_total"] != 5.0 || rep["ungraded"] != 2.0 || rep["correct"] != 4.0 || rep["score_earned"] != 10.0 || rep["max_score"] != 14.0 || rep["assignment_id"] != "HW_0301" {
		t.Errorf("report counts: %v", rep)
	}

	// Both copies are complete.
	name := rec["submission_id"].(string)
	if name != "submission_20260302_093000" {
		t.Errorf("submission folder %q", name)
	}
	for _, dir := range []string{
		filepath.Join(data, "student_submissions", "高二3班_张三", name),
		filepath.Join(data, "student_submissions", "HW_0301", "高二3班_张三", name),
	} {
		for _, f := range []string{"ocr/page_1.json", "ocr/page_1.txt", "ocr/question_blocks.json", "feedback.md",
			"profile_update_suggestion.md", "review_queue.json", "grading_report.json"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("missing %s", filepath.Join(dir, f))
			}
		}
		fb, _ := os.ReadFile(filepath.Join(dir, "feedback.md"))
		for _, line := range []string{"Student: 高二3班_张三", "Assignment: HW_0301", "Total matched: 4/7 (graded: 5)",
			"- Q1 (力学基础): ✔ (mcq_single, score=1.0/1.0, conf=1.0)", "- Q4 (牛顿定律): ✔ (score=2.0/2.0, conf=1.0)",
			"- Q7 (运动学): △ (missing_expected, conf=0.0)"} {
			if !strings.Contains(string(fb), line) {
				t.Errorf("feedback.md lacks %q:\n%s", line, fb)
			}
		}
		var blocks blocksFile
		raw, _ := os.ReadFile(filepath.Join(dir, "ocr", "question_blocks.json"))
		if json.Unmarshal(raw, &blocks) != nil || len(blocks.Blocks) != 5 || blocks.Numbering != "question_no" || !strings.Contains(blocks.Preamble, "HW_0301") {
			t.Errorf("question_blocks.json: %s", raw)
		}
		var queue struct{ Items []map[string]any }
		raw, _ = os.ReadFile(filepath.Join(dir, "review_queue.json"))
		if json.Unmarshal(raw, &queue) != nil || len(queue.Items) != 2 {
			t.Errorf("review_queue.json: %s", raw)
		}
		txt, _ := os.ReadFile(filepath.Join(dir, "ocr", "page_1.txt"))
		if !strings.Contains(string(txt), "支持力,二力平衡,所以加速度为零.") { // cleaned: ， and 。 normalised
			t.Errorf("page_1.txt not cleaned: %q", txt)
		}
	}

	// OnGraded once; the profile through the worker.
	time.Sleep(100 * time.Millisecond)
	if n := f.gradedCount(); n != 1 || len(pjobs) != 1 {
		t.Fatalf("OnGraded called %d times", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := worker.Wait(ctx, pjobs[0]); err != nil {
		t.Fatal(err)
	}
	prof, err := profiles.Get("高二3班_张三")
	if err != nil {
		t.Fatal(err)
	}
	// 力学基础: 1 of 2 → medium; 牛顿定律: 2 of 2 → strong; 运动学 has one
	// counted item only. The teacher's weak list stays.
	if !slices.Equal(strs(prof["recent_weak_kp"]), []string{"受力分析"}) || !slices.Equal(strs(prof["recent_medium_kp"]), []string{"力学基础"}) ||
		!slices.Equal(strs(prof["recent_strong_kp"]), []string{"牛顿定律"}) || prof["next_focus"] != "力学基础" ||
		prof["summary"] != "HW_0301: matched 4/5, next focus 力学基础" {
		t.Errorf("profile lists: %v", prof)
	}
	m := prof["mastery_by_kp"].(map[string]any)
	if m["力学基础"].(map[string]any)["accuracy"] != 0.5 || m["运动学"].(map[string]any)["accuracy"] != 1.0 || m["力学基础"].(map[string]any)["evidence"] != "HW_0301" {
		t.Errorf("mastery: %v", m)
	}
	if h := prof["practice_history"].([]any); len(h) != 1 || h[0].(map[string]any)["matched"] != 4.0 {
		t.Errorf("practice_history: %v", h)
	}

	// The teacher's progress view reads the assignment copy as it is.
	p, err := assignments.NewService(data).Progress("HW_0301", true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	best := p.Students[0].Submission.Best
	if p.Counts.Submitted != 1 || best == nil || best.ScoreEarned != 10 || best.GradedTotal != 5 || best.Correct != 4 || best.AttemptID != name {
		t.Errorf("progress: %+v best %+v", p.Counts, best)
	}
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
