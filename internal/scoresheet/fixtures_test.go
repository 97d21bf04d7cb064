package scoresheet

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/testfixtures"
)

func fixturesDir(t testing.TB) string { return testfixtures.ExamsDir(t) }

// readFixture returns a fixture file's bytes.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expected is the part of physics_midterm_expected.json the tests use.
type expected struct {
	Students    int `json:"students"`
	Questions   int `json:"questions"`
	PerQuestion map[string]struct {
		MaxScore  float64 `json:"max_score"`
		Avg       float64 `json:"avg"`
		FullMarks int     `json:"full_marks"`
		Zero      int     `json:"zero"`
	} `json:"per_question"`
	PerStudent map[string]struct {
		Total float64 `json:"total"`
	} `json:"per_student"`
}

func loadExpected(t testing.TB) expected {
	t.Helper()
	var e expected
	if err := json.Unmarshal(readFixture(t, "physics_midterm_expected.json"), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// fullMarks are the physics mid-term's full marks by question id (the
// teacher supplies them; letter columns cannot reveal them).
var fullMarks = map[string]float64{
	"Q1": 4, "Q2": 4, "Q3": 4, "Q4": 4, "Q5": 4, "Q6": 4, "Q7": 4, "Q8": 4,
	"Q9": 5, "Q10": 5, "Q11_1": 8, "Q11_2": 10, "Q12": 18, "Q13": 22,
}

// cellScore scores one cell: points as they are, letters against the key.
func cellScore(t testing.TB, c Cell, key AnswerKey, qid string) (score float64, full bool) {
	t.Helper()
	max := fullMarks[qid]
	if c.Score != nil {
		return *c.Score, *c.Score == max
	}
	k, ok := key[qid]
	if !ok {
		t.Fatalf("%s: letter answer %q but no key", qid, c.Answer)
	}
	return ScoreAnswer(c.Answer, k, max)
}

// checkAgainstExpected scores every student of sh and compares the totals
// and per-question statistics with physics_midterm_expected.json. An absent
// cell counts as 0 points.
func checkAgainstExpected(t *testing.T, sh *Sheet, key AnswerKey) {
	t.Helper()
	exp := loadExpected(t)
	if len(sh.Students) != exp.Students {
		t.Fatalf("students = %d, want %d", len(sh.Students), exp.Students)
	}
	if len(sh.Questions) != exp.Questions {
		t.Fatalf("questions = %d, want %d", len(sh.Questions), exp.Questions)
	}
	type agg struct {
		sum        float64
		full, zero int
	}
	perQ := map[string]*agg{}
	for _, q := range sh.Questions {
		perQ[q.ID] = &agg{}
	}
	for _, st := range sh.Students {
		var total float64
		for _, q := range sh.Questions {
			a := perQ[q.ID]
			c, ok := st.Cells[q.ID]
			if !ok {
				a.zero++
				continue
			}
			s, full := cellScore(t, c, key, q.ID)
			total += s
			a.sum += s
			if full {
				a.full++
			}
			if s == 0 {
				a.zero++
			}
		}
		want, ok := exp.PerStudent[st.Name+"|"+st.Class]
		if !ok {
			t.Errorf("student %s|%s not in expected.json", st.Name, st.Class)
			continue
		}
		if total != want.Total {
			t.Errorf("total of %s|%s (row %d) = %v, want %v", st.Name, st.Class, st.Row, total, want.Total)
		}
		if st.SheetTotal != nil && *st.SheetTotal != want.Total {
			t.Errorf("sheet 总分 of %s|%s = %v, want %v", st.Name, st.Class, *st.SheetTotal, want.Total)
		}
	}
	for _, q := range sh.Questions {
		want, ok := exp.PerQuestion[q.Label]
		if !ok {
			t.Errorf("question %s (%s) not in expected.json", q.Label, q.ID)
			continue
		}
		if want.MaxScore != fullMarks[q.ID] {
			t.Errorf("%s: expected.json max_score %v, test full marks %v", q.ID, want.MaxScore, fullMarks[q.ID])
		}
		a := perQ[q.ID]
		avg := a.sum / float64(len(sh.Students))
		if math.Abs(avg-want.Avg) > 0.0005 {
			t.Errorf("%s avg = %.4f, want %.4f", q.ID, avg, want.Avg)
		}
		if a.full != want.FullMarks {
			t.Errorf("%s full marks = %d, want %d", q.ID, a.full, want.FullMarks)
		}
		if a.zero != want.Zero {
			t.Errorf("%s zeros = %d, want %d", q.ID, a.zero, want.Zero)
		}
	}
}

func fixtureKey(t testing.TB) AnswerKey {
	t.Helper()
	key, warn := ParseAnswerKey(string(readFixture(t, "physics_midterm_answers.txt")))
	if len(warn) > 0 {
		t.Fatalf("answer key warnings: %v", warn)
	}
	return key
}

func wantIDs() []string {
	return strings.Fields("Q1 Q2 Q3 Q4 Q5 Q6 Q7 Q8 Q9 Q10 Q11_1 Q11_2 Q12 Q13")
}
