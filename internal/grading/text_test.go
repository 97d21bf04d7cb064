package grading

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestSplitBlocks(t *testing.T) {
	cases := []struct {
		name, text string
		pre        string
		want       map[int]string // number → body
	}{
		{"OCR variants", "作业ID: HW1\n1. 答案: B\n2 AC\n3.9.8\n4, 牛顿第二定律 F=ma\n5、物体\n受力平衡",
			"作业ID: HW1", map[int]string{1: "答案: B", 2: "AC", 3: "9.8", 4: "牛顿第二定律 F=ma", 5: "物体\n受力平衡"}},
		{"answer line under its number", "3.\n4 N\n4. x\n12.5\n5) y", "",
			map[int]string{3: "\n4 N", 4: "x\n12.5", 5: "y"}},
		{"parts of an answer", "1. 理由\n(1) 重力\n(2) 支持力\n2. B", "",
			map[int]string{1: "理由\n(1) 重力\n(2) 支持力", 2: "B"}},
		{"parenthesised numbers", "(1) A\n(2) B", "", map[int]string{1: "A", 2: "B"}},
		{"第N题", "第1题 A\n第 2 题: B", "", map[int]string{1: "A", 2: "B"}},
		{"a list inside an answer", "1. 三点：\n1. 重力\n2. B", "", map[int]string{1: "三点:\n1. 重力", 2: "B"}},
		{"no numbers", "B\nAC", "B\nAC", map[int]string{}},
	}
	for _, c := range cases {
		pre, blocks := splitBlocks(cleanText(c.text))
		got := map[int]string{}
		for _, b := range blocks {
			got[b.No] = b.body
		}
		if pre != c.pre || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: preamble %q blocks %v, want %q %v", c.name, pre, got, c.pre, c.want)
		}
	}
}

func TestStudentChoice(t *testing.T) {
	for in, want := range map[string]string{
		"答案: B": "B", "AC": "AC", "A, C": "AC", "选 C": "C", "D C B": "BCD", "ａｃ": "AC",
		"F=ma": "", "答:BECAUSE": "", "ABCDE": "", "我认为是 B。": "B", "A 和 CD": "CD",
	} {
		if got := studentChoice(in); got != want {
			t.Errorf("studentChoice(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGradeObjective(t *testing.T) {
	cases := []struct {
		expected, body string
		max            float64
		status, reason string
		score, conf    float64
	}{
		{"B", "答案：B", 1, "matched", "mcq_single", 1, 1},
		{"B", "A", 1, "missed", "mcq_single_wrong", 0, 1},
		{"b", "B", 1, "matched", "mcq_single", 1, 1},
		{"A、C", "CA", 2, "matched", "mcq_multi_full", 2, 1},
		{"AC", "A", 2, "missed", "mcq_multi_partial", 1, 1},
		{"ABD", "AB", 1, "missed", "mcq_multi_partial", 0.67, 1},
		{"AC", "AB", 2, "missed", "mcq_multi_wrong", 0, 1},
		{"AC", "不会", 2, "missed", "choice_not_found", 0, 0.5},
		{"9.8", "g = 9.81 m/s2", 1, "matched", "numeric_match", 1, 1},
		{"9.8 m/s^2", "9.80", 3, "matched", "numeric_match", 3, 1},
		{"0", "0.005", 1, "matched", "numeric_match", 1, 1},
		{"9.8", "9.5", 1, "missed", "numeric_mismatch", 0, 1},
		{"9.8", "不知道", 1, "missed", "numeric_not_found", 0, 1},
		{"F=ma", "牛顿第二定律 F = m a", 2, "matched", "text_match", 2, 1},
		{"F=ma", "F=mv", 2, "missed", "text_mismatch", 0, 0.5},
	}
	for _, c := range cases {
		it := Item{MaxScore: c.max}
		gradeObjective(&it, c.expected, c.body)
		if it.Status != c.status || it.Reason != c.reason || it.Score != c.score || it.Confidence != c.conf {
			t.Errorf("%q vs %q: %s %s %v %v, want %+v", c.expected, c.body, it.Status, it.Reason, it.Score, it.Confidence, c)
		}
	}
}

// Without numbered blocks every question is graded against the whole
// sheet, below the review threshold.
func TestWholeTextIsReviewed(t *testing.T) {
	s := &Service{threshold: 0.6}
	calls := 0
	it, err := s.gradeItem(context.Background(), question{ID: "Q1", KP: "k", MaxScore: 1, Expected: "B"}, "答案 B", SourceWholeText, &calls)
	if err != nil || it.Status != StatusMatched || it.Confidence != 0.5 {
		t.Fatalf("%+v %v", it, err)
	}
	r := &Report{ReviewThreshold: 0.6, Items: []Item{it}}
	r.tally()
	if r.Ungraded != 1 || r.GradedTotal != 0 {
		t.Fatalf("counted: %+v", r)
	}
}

func TestDetectAssignment(t *testing.T) {
	root := t.TempDir()
	for _, id := range []string{"HW1", "HW12", "2026-03-02_力学", "NOQ"} {
		os.MkdirAll(filepath.Join(root, id), 0o755)
	}
	exists := func(id string) bool { return id != "NOQ" && dirExists(filepath.Join(root, id)) }
	for text, want := range map[string]string{
		"作业ID: HW12\n1. A":            "HW12",
		"Assignment: HW1.":            "HW1",
		"练习：HW1":                      "HW1",
		"姓名 张三 HW12 第一页":              "HW12",
		"作业 HW1 与 HW12":               "HW12", // the longest id found
		"今天的2026-03-02_力学作业":          "2026-03-02_力学",
		"HW123 is not HW12":           "HW12",
		"Assignment ID: NOQ\nnothing": "",
		"HW1234":                      "",
	} {
		if got := detectAssignment(cleanText(text), root, exists); got != want {
			t.Errorf("detect(%q) = %q, want %q", text, got, want)
		}
	}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func TestNumbering(t *testing.T) {
	blocks := []block{{No: 1}, {No: 2}, {No: 5}}
	qs := []question{{ID: "Q1", No: 5}, {ID: "Q2", No: 1}}
	if name, nums := numbering(qs, blocks); name != "question_no" || fmt.Sprint(nums) != "[5 1]" {
		t.Errorf("question_no: %s %v", name, nums)
	}
	qs = []question{{ID: "GEN-KP1-basic-01"}, {ID: "GEN-KP1-basic-02"}}
	if name, nums := numbering(qs, blocks); name != "position" || fmt.Sprint(nums) != "[1 2]" {
		t.Errorf("position: %s %v", name, nums)
	}
	qs = []question{{ID: "Q5"}, {ID: "Q2"}}
	if name, nums := numbering(qs, []block{{No: 2}, {No: 5}}); name != "question_id" || fmt.Sprint(nums) != "[5 2]" {
		t.Errorf("question_id: %s %v", name, nums)
	}
}

func TestAnswerFile(t *testing.T) {
	for in, want := range map[string]string{
		"# 第3题\n答案：9.8 m/s^2": "9.8 m/s^2", "Answer: C\n": "C", "解：\n先受力分析": "解：", "参考答案B": "参考答案B",
	} {
		if got := answerFromFile(in); got != want {
			t.Errorf("answerFromFile(%q) = %q, want %q", in, got, want)
		}
	}
}

// References are read inside DATA_DIR only, symlinks resolved.
func TestResolveRef(t *testing.T) {
	data, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(data, "assignments", "A", "a.md"), "答案：B")
	writeFile(t, filepath.Join(outside, "secret.md"), "secret")
	os.Symlink(filepath.Join(outside, "secret.md"), filepath.Join(data, "link.md"))
	for ref, ok := range map[string]bool{
		"assignments/A/a.md": true, "data/assignments/A/a.md": true, filepath.Join(data, "assignments/A/a.md"): true,
		"../" + filepath.Base(outside) + "/secret.md": false, filepath.Join(outside, "secret.md"): false, "link.md": false, "": false,
	} {
		_, err := resolveRef(data, ref)
		if (err == nil) != ok {
			t.Errorf("resolveRef(%q): %v", ref, err)
		}
	}
}
