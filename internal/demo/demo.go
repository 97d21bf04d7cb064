// Package demo writes sample exams in the predecessor's data layout, so a
// first run of `lectern serve --demo` shows real data at once.
package demo

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/layout"
)

// Exam describes one generated exam.
type Exam struct {
	ID        string
	Date      string
	Subject   string
	Classes   []string
	Students  int // per class
	Questions []float64
	Seed      uint64
}

// SampleExams are the exams a demo tenant gets.
func SampleExams(seed uint64) []Exam {
	classes := []string{"高二1班", "高二2班"}
	return []Exam{
		{ID: "DEMO_PHYS_MID", Date: "2026-10-20", Subject: "physics", Classes: classes, Students: 22,
			Questions: []float64{4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 8, 10, 18, 22}, Seed: seed},
		{ID: "DEMO_MATH_Q1", Date: "2026-09-28", Subject: "math", Classes: classes, Students: 20,
			Questions: []float64{5, 5, 5, 5, 5, 5, 10, 12, 12, 16, 20}, Seed: seed + 1},
		{ID: "DEMO_CHEM_W3", Date: "2026-11-12", Subject: "chemistry", Classes: classes[:1], Students: 24,
			Questions: []float64{6, 6, 6, 6, 6, 10, 10, 20, 30}, Seed: seed + 2},
	}
}

// WriteExam writes e under dataDir/exams/<id>/ (manifest.json,
// derived/responses_scored.csv, derived/questions.csv) unless that exam
// already has a manifest; it reports whether it wrote anything.
func WriteExam(dataDir string, e Exam) (bool, error) {
	dir := layout.Tenant{DataDir: dataDir}.ExamDir(e.ID)
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	rng := rand.New(rand.NewPCG(e.Seed, 0x1ec7e2))
	var responses, questions bytes.Buffer
	rw, qw := csv.NewWriter(&responses), csv.NewWriter(&questions)
	rw.Write([]string{"exam_id", "student_id", "student_name", "class_name", "question_id", "question_no", "sub_no",
		"raw_label", "raw_value", "raw_answer", "score", "is_correct"})
	qw.Write([]string{"question_id", "question_no", "sub_no", "order", "max_score", "stem_ref"})
	for i, max := range e.Questions {
		no := strconv.Itoa(i + 1)
		qw.Write([]string{"Q" + no, no, "", no, fmtScore(max), ""})
	}
	students := 0
	for _, class := range e.Classes {
		for s := range e.Students {
			name := studentName(rng, s)
			id := class + "_" + name
			ability := 0.35 + 0.6*rng.Float64()
			for i, max := range e.Questions {
				no := strconv.Itoa(i + 1)
				score := max * clamp(ability+0.25*(rng.Float64()-0.5))
				score = float64(int(score*2+0.5)) / 2 // half points
				correct := "0"
				if score == max {
					correct = "1"
				}
				rw.Write([]string{e.ID, id, name, class, "Q" + no, no, "", no, fmtScore(score), "", fmtScore(score), correct})
			}
			students++
		}
	}
	rw.Flush()
	qw.Flush()
	derived := filepath.Join(dir, "derived")
	if err := atomicfile.WriteFile(filepath.Join(derived, "responses_scored.csv"), responses.Bytes(), 0o644); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(filepath.Join(derived, "questions.csv"), questions.Bytes(), 0o644); err != nil {
		return false, err
	}
	rel := func(name string) string {
		return filepath.ToSlash(filepath.Join(layout.Relative().ExamDerived(e.ID), name))
	}
	manifest := map[string]any{
		"exam_id":      e.ID,
		"generated_at": e.Date + "T09:00:00",
		"meta":         map[string]any{"date": e.Date, "subject": e.Subject, "class_name": joinClasses(e.Classes), "score_mode": "question", "source": "demo"},
		"files": map[string]any{
			"responses_scored": rel("responses_scored.csv"),
			"questions":        rel("questions.csv"),
		},
		"counts": map[string]any{"students": students, "responses": students * len(e.Questions), "questions": len(e.Questions)},
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "manifest.json"), manifest); err != nil {
		return false, err
	}
	return true, nil
}

var (
	surnames = []string{"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"}
	given    = []string{"子涵", "欣怡", "浩然", "梓萱", "宇轩", "思远", "雨桐", "俊杰", "诗涵", "博文", "嘉怡", "明轩", "若曦", "天佑"}
)

func studentName(rng *rand.Rand, i int) string {
	return surnames[rng.IntN(len(surnames))] + given[rng.IntN(len(given))] + strconv.Itoa(i+1)
}

func clamp(x float64) float64 { return min(1, max(0, x)) }

func fmtScore(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func joinClasses(cs []string) string {
	if len(cs) == 1 {
		return cs[0]
	}
	return fmt.Sprintf("%s等%d个班", cs[0], len(cs))
}
