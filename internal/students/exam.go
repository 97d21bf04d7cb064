package students

import (
	"cmp"
	"slices"

	"github.com/lectern/lectern/internal/exams"
)

// ExamUpdates turns an exam into one update per student: identity, the
// result (total, rank, percentile, the questions lost most) and the points
// per knowledge point where kpMap maps questions to them.
func ExamUpdates(e *exams.Exam, kind, source, file, date string, kpMap map[string]string) []Update {
	a := e.Analysis()
	maxBy := map[string]float64{}
	for _, q := range e.Questions {
		if q.HasMax {
			maxBy[q.ID] = q.MaxScore
		}
	}
	var out []Update
	for _, s := range e.Students {
		scores := e.StudentScores(exams.StudentKey(s))
		var lost []QuestionLoss
		kp := map[string]KPScore{}
		for qid, max := range maxBy {
			got := scores[qid]
			if l := max - got; l > 0 {
				lost = append(lost, QuestionLoss{QuestionID: qid, Score: got, MaxScore: max, Lost: l})
			}
			if k := kpMap[qid]; k != "" {
				v := kp[k]
				v.Score += got
				v.Max += max
				v.Questions++
				kp[k] = v
			}
		}
		slices.SortFunc(lost, func(x, y QuestionLoss) int {
			if c := cmp.Compare(y.Lost, x.Lost); c != 0 {
				return c
			}
			return cmp.Compare(x.QuestionID, y.QuestionID)
		})
		id := s.ID
		if id == "" {
			id = s.Name
		}
		out = append(out, Update{
			Kind: kind, StudentID: id, StudentName: s.Name, ClassName: s.Class,
			Source: source, File: file, ExamID: e.ID, Mode: "merge",
			Exam: &ExamResult{ExamID: e.ID, Date: date, Total: s.Total, MaxTotal: a.Totals.MaxTotal, Rank: s.Rank,
				Percentile: s.Percentile, StudentCount: len(e.Students), LostMost: lost[:min(3, len(lost))], Knowledge: kp},
		})
	}
	return out
}
