package examupload

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/scoresheet"
)

func TestQuestionIDs(t *testing.T) {
	for in, want := range map[string]string{
		"11(1)": "Q11_1", "Q11_1": "Q11_1", "q3": "Q3", "3": "Q3", "12a": "Q12_a", "Q12_a": "Q12_a",
		"总分": "TOTAL", "total": "TOTAL", "21": "Q21", "2(1)": "Q2_1",
	} {
		if got, ok := questionID(in); !ok || got != want {
			t.Errorf("questionID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "abc", "Q", "Qx", "1000"} {
		if got, ok := questionID(bad); ok {
			t.Errorf("questionID(%q) = %q, want refused", bad, got)
		}
	}
}

func TestMaxScores(t *testing.T) {
	qs := []exams.Question{{ID: "Q1"}, {ID: "Q11_1"}}
	got, err := maxScores(map[string]any{"1": 4.0, "11(1)": "8"}, qs)
	if err != nil || fmt.Sprint(got) != "map[Q1:4 Q11_1:8]" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, in := range []map[string]any{{"1": 0.0}, {"1": -2.0}, {"1": "x"}, {"1": true}, {"9": 4.0}, {"??": 1.0}} {
		if _, err := maxScores(in, qs); err == nil {
			t.Errorf("%v accepted", in)
		}
	}
}

// Letters are scored only with both a key and full marks; nothing is
// guessed, and what is missing is listed.
func TestApplyScoring(t *testing.T) {
	rows := []exams.Response{
		{StudentID: "a", QuestionID: "Q1", RawAnswer: "A"},
		{StudentID: "a", QuestionID: "Q2", RawAnswer: "AC"},
		{StudentID: "a", QuestionID: "Q3", Score: 7, Scored: true},
		{StudentID: "b", QuestionID: "Q1", RawAnswer: "B"},
		{StudentID: "b", QuestionID: "Q2", RawAnswer: "C"},
		{StudentID: "b", QuestionID: "Q4", RawAnswer: "D"},
	}
	qs := []exams.Question{{ID: "Q1"}, {ID: "Q2"}, {ID: "Q3"}, {ID: "Q4"}}
	key := scoresheet.AnswerKey{"Q1": "A", "Q2": "AC"}
	scored, questions, sc := applyScoring(rows, qs, key, map[string]float64{"Q1": 4, "Q3": 10, "Q4": 2})
	var got []string
	for _, r := range scored {
		got = append(got, fmt.Sprintf("%s/%s:%v:%s", r.StudentID, r.QuestionID, r.Scored && true, exams.FormatScore(r.Score)))
	}
	want := "a/Q1:true:4 a/Q2:false:0 a/Q3:true:7 b/Q1:true:0 b/Q2:false:0 b/Q4:false:0"
	if strings.Join(got, " ") != want {
		t.Fatalf("scored\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if fmt.Sprint(sc.MissingMaxScoreQIDs) != "[Q2]" || fmt.Sprint(sc.DefaultMaxScoreQIDs) != "[Q2]" ||
		fmt.Sprint(sc.MissingAnswerQIDs) != "[Q4]" || sc.Status != "partial" {
		t.Fatalf("scoring %+v", sc)
	}
	if !questions[0].HasMax || questions[1].HasMax || rows[0].Scored {
		t.Fatal("full marks not applied to copies only")
	}
}

func TestCrossCheck(t *testing.T) {
	rows := []exams.Response{
		{StudentID: "a", QuestionID: "Q1", Score: 4, Scored: true},
		{StudentID: "a", QuestionID: "Q2", Score: 3, Scored: true},
		{StudentID: "b", QuestionID: "Q1", Score: 4, Scored: true},
		{StudentID: "c", QuestionID: "Q1", RawAnswer: "A"}, // unscored: not checked
	}
	w := crossCheck(rows, map[string]float64{"a": 7, "b": 5, "c": 1}, 8)
	if len(w) != 1 || !strings.Contains(w[0], "b") {
		t.Fatalf("warnings %v", w)
	}
}
