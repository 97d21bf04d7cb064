package examupload

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/scoresheet"
)

// bigSheet is a CSV score sheet: students × questions, 10 classes, points
// in every cell, and a 总分 column.
func bigSheet(students, questions int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString("姓名,班级")
	for q := 1; q <= questions; q++ {
		fmt.Fprintf(&b, ",%d", q)
	}
	b.WriteString(",总分\n")
	for s := range students {
		fmt.Fprintf(&b, "学生%d,高二(%d)班", s, s%10+1)
		total := 0
		for range questions {
			v := rng.IntN(5)
			total += v
			fmt.Fprintf(&b, ",%d", v)
		}
		fmt.Fprintf(&b, ",%d\n", total)
	}
	return b.Bytes()
}

// BenchmarkParseAndAnalyse is the worker's CPU path for one upload of
// 2,000 students × 50 questions: parse the sheet, build and score the rows,
// cross-check totals, encode the CSVs, and compute the full analysis.
func BenchmarkParseAndAnalyse(b *testing.B) {
	data := bigSheet(2000, 50)
	max := map[string]float64{}
	for q := 1; q <= 50; q++ {
		max[fmt.Sprintf("Q%d", q)] = 4
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sh, err := scoresheet.ParseCSV(bytes.NewReader(data), scoresheet.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rows, qs := sheetRows("BIG", sh)
		scored, qs, _ := applyScoring(rows, qs, nil, max)
		totals := map[string]float64{}
		for _, s := range sh.Students {
			totals[s.ID] = *s.SheetTotal
		}
		if w := crossCheck(scored, totals, 8); len(w) != 0 {
			b.Fatal(w)
		}
		_ = exams.ResponsesCSV(scored)
		a := exams.NewExam("BIG", nil, scored, qs, nil, time.Now()).Analysis()
		if a.Totals.StudentCount != 2000 || len(a.QuestionMetrics) != 50 {
			b.Fatalf("analysis: %d students, %d questions", a.Totals.StudentCount, len(a.QuestionMetrics))
		}
	}
}
