package examupload

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/scoresheet"
)

// totalID is the question id of a total-only exam.
const totalID = "TOTAL"

// sheetRows turns a parsed sheet into the unscored response rows and the
// questions: points are kept as scores, letters as raw answers.
func sheetRows(examID string, sh *scoresheet.Sheet) ([]exams.Response, []exams.Question) {
	var rows []exams.Response
	if sh.Mode == scoresheet.ModeTotal {
		for _, s := range sh.Students {
			if s.SheetTotal == nil {
				continue
			}
			raw := exams.FormatScore(*s.SheetTotal)
			rows = append(rows, exams.Response{ExamID: examID, StudentID: s.ID, StudentName: s.Name, ClassName: s.Class,
				QuestionID: totalID, RawLabel: totalID, RawValue: raw, HasRawValue: true, HasRawAnswer: true,
				Score: *s.SheetTotal, Scored: true})
		}
		return rows, []exams.Question{{ID: totalID, Order: "1"}}
	}
	cells := 0
	for _, s := range sh.Students {
		cells += len(s.Cells)
	}
	rows = make([]exams.Response, 0, cells)
	qs := make([]exams.Question, 0, len(sh.Questions))
	for _, q := range sh.Questions {
		qs = append(qs, exams.Question{ID: q.ID, No: strconv.Itoa(q.No), SubNo: q.Sub, Order: strconv.Itoa(q.Order)})
	}
	for _, s := range sh.Students {
		for _, q := range sh.Questions {
			c, ok := s.Cells[q.ID]
			if !ok {
				continue
			}
			r := exams.Response{ExamID: examID, StudentID: s.ID, StudentName: s.Name, ClassName: s.Class,
				QuestionID: q.ID, QuestionNo: strconv.Itoa(q.No), SubNo: q.Sub, RawLabel: q.Label,
				RawValue: c.Raw, HasRawValue: true, HasRawAnswer: true}
			if c.Score != nil {
				r.Score, r.Scored = *c.Score, true
			} else {
				r.RawAnswer = c.Answer
			}
			rows = append(rows, r)
		}
	}
	return rows, qs
}

// scoring is the outcome of applying full marks and the answer key.
type scoring struct {
	Status              string   `json:"status"` // unscored | partial | scored
	ResponsesTotal      int      `json:"responses_total"`
	ResponsesScored     int      `json:"responses_scored"`
	StudentsTotal       int      `json:"students_total"`
	StudentsScored      int      `json:"students_scored"`
	MissingMaxScoreQIDs []string `json:"missing_max_score_qids"`
	// DefaultMaxScoreQIDs is the predecessor's name for the questions
	// whose full marks are missing, the only one its teacher client
	// warns about. It always holds the same ids as MissingMaxScoreQIDs;
	// Lectern never defaults them to 1 point as the predecessor did.
	DefaultMaxScoreQIDs []string `json:"default_max_score_qids"`
	MissingAnswerQIDs   []string `json:"missing_answer_qids"`
}

// applyScoring scores letter answers against key with full marks from max,
// and sets every question's max_score from max. It never guesses full
// marks: a question without them is listed in MissingMaxScoreQIDs.
func applyScoring(unscored []exams.Response, qs []exams.Question, key scoresheet.AnswerKey, max map[string]float64) ([]exams.Response, []exams.Question, scoring) {
	out := slices.Clone(unscored)
	questions, sc := scoreInPlace(out, qs, key, max)
	return out, questions, sc
}

// scoreInPlace is applyScoring without the copy: it scores rows where they
// are (the worker's rows of a large sheet are not held twice).
func scoreInPlace(out []exams.Response, qs []exams.Question, key scoresheet.AnswerKey, max map[string]float64) ([]exams.Question, scoring) {
	questions := make([]exams.Question, len(qs))
	copy(questions, qs)
	missingMax, missingKey := map[string]bool{}, map[string]bool{}
	for i := range questions {
		if m, ok := max[questions[i].ID]; ok {
			questions[i].MaxScore, questions[i].HasMax = m, true
		} else {
			missingMax[questions[i].ID] = true
		}
	}
	sc := scoring{ResponsesTotal: len(out)}
	students, scoredStudents := map[string]bool{}, map[string]bool{}
	for i := range out {
		r := &out[i]
		students[r.StudentID] = true
		if !r.Scored && r.RawAnswer != "" {
			k, hasKey := key[r.QuestionID]
			m, hasMax := max[r.QuestionID]
			switch {
			case !hasKey:
				missingKey[r.QuestionID] = true
			case hasMax:
				s, full := scoresheet.ScoreAnswer(r.RawAnswer, k, m)
				r.Score, r.Scored = s, true
				r.IsCorrect = "0"
				if full {
					r.IsCorrect = "1"
				}
			}
		}
		if r.Scored {
			sc.ResponsesScored++
			scoredStudents[r.StudentID] = true
		}
	}
	sc.StudentsTotal, sc.StudentsScored = len(students), len(scoredStudents)
	switch {
	case sc.ResponsesScored == 0:
		sc.Status = "unscored"
	case sc.ResponsesScored == sc.ResponsesTotal:
		sc.Status = "scored"
	default:
		sc.Status = "partial"
	}
	sc.MissingMaxScoreQIDs = sortedKeys(missingMax)
	sc.DefaultMaxScoreQIDs = sortedKeys(missingMax)
	sc.MissingAnswerQIDs = sortedKeys(missingKey)
	return questions, sc
}

// crossCheck compares each student's computed total with the sheet's own
// 总分 and returns one warning per mismatch (at most limit, then a count).
func crossCheck(rows []exams.Response, sheetTotals map[string]float64, limit int) []string {
	totals := map[string]float64{}
	complete := map[string]bool{}
	for _, r := range rows {
		if _, ok := complete[r.StudentID]; !ok {
			complete[r.StudentID] = true
		}
		if !r.Scored {
			complete[r.StudentID] = false
			continue
		}
		totals[r.StudentID] += r.Score
	}
	var ids []string
	for id := range sheetTotals {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var warnings []string
	mismatches := 0
	for _, id := range ids {
		if !complete[id] {
			continue
		}
		got, want := totals[id], sheetTotals[id]
		if math.Abs(got-want) > 1e-6 {
			mismatches++
			if mismatches <= limit {
				warnings = append(warnings, fmt.Sprintf("总分核对不一致：%s 计算得 %s 分，表中“总分”为 %s 分 (total mismatch)",
					id, exams.FormatScore(got), exams.FormatScore(want)))
			}
		}
	}
	if mismatches > limit {
		warnings = append(warnings, fmt.Sprintf("另有 %d 名学生总分不一致 (%d more total mismatches)", mismatches-limit, mismatches-limit))
	}
	return warnings
}

// maxScores reads full marks given by label ("11(1)") or question id
// ("Q11_1", "TOTAL"). Values must be positive numbers.
func maxScores(in map[string]any, qs []exams.Question) (map[string]float64, error) {
	known := map[string]bool{}
	for _, q := range qs {
		known[q.ID] = true
	}
	out := map[string]float64{}
	for label, v := range in {
		f, ok := toFloat(v)
		if !ok || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("max_scores[%q] must be a positive number, got %v", label, v)
		}
		id, ok := questionID(label)
		if !ok {
			return nil, fmt.Errorf("max_scores: %q is not a question label", label)
		}
		if len(known) > 0 && !known[id] {
			return nil, fmt.Errorf("max_scores: question %q is not in the score sheet", label)
		}
		out[id] = f
	}
	return out, nil
}

// questionID maps a label or an id to the question id.
func questionID(label string) (string, bool) {
	l := strings.TrimSpace(label)
	switch strings.ToUpper(l) {
	case totalID, "总分":
		return totalID, true
	}
	if strings.HasPrefix(l, "Q") || strings.HasPrefix(l, "q") {
		if lb, ok := scoresheet.ParseLabel(strings.ReplaceAll(l[1:], "_", "-")); ok && lb.QuestionID() == "Q"+l[1:] {
			return lb.QuestionID(), true
		}
	}
	if lb, ok := scoresheet.ParseLabel(l); ok {
		return lb.QuestionID(), true
	}
	return "", false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
