package exams

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"
)

// Analysis is analysis/<exam_id>/draft.json: the predecessor's fields
// (totals, knowledge_points, high_loss_questions, question_metrics, notes)
// plus per-student ranks, per-class figures and score bands.
type Analysis struct {
	ExamID            string            `json:"exam_id"`
	GeneratedAt       string            `json:"generated_at"`
	Totals            AnalysisTotals    `json:"totals"`
	KnowledgePoints   []KnowledgePoint  `json:"knowledge_points"`
	HighLossQuestions []QuestionMetrics `json:"high_loss_questions"`
	QuestionMetrics   []QuestionMetrics `json:"question_metrics"`
	Students          []StudentResult   `json:"students"`
	Classes           []ClassResult     `json:"classes"`
	ScoreBands        []ScoreBand       `json:"score_bands"`
	Notes             string            `json:"notes"`
}

// AnalysisTotals adds the exam's full marks to the totals summary.
type AnalysisTotals struct {
	Totals
	// MaxTotal is the sum of the questions' full marks (null if any is
	// unknown).
	MaxTotal *float64 `json:"max_total"`
}

// QuestionMetrics describe one question.
type QuestionMetrics struct {
	QuestionID  string   `json:"question_id"`
	QuestionNo  string   `json:"question_no"`
	SubNo       string   `json:"sub_no"`
	MaxScore    *float64 `json:"max_score"`
	AvgScore    float64  `json:"avg_score"`
	ScoreRate   *float64 `json:"score_rate"`
	LossRate    *float64 `json:"loss_rate"`
	CorrectRate *float64 `json:"correct_rate"`
	FullMarks   int      `json:"full_mark_count"`
	Zeros       int      `json:"zero_count"`
	// Distribution maps a score ("4", "2.5") to how many students got it.
	Distribution map[string]int `json:"distribution"`
	// Discrimination is (upper 27 % mean - lower 27 % mean) / full marks,
	// the groups taken by total score.
	Discrimination *float64 `json:"discrimination"`
	ResponseCount  int      `json:"response_count"`
}

// KnowledgePoint aggregates the questions mapped to one knowledge point.
type KnowledgePoint struct {
	KPID          string  `json:"kp_id"`
	AvgScore      float64 `json:"avg_score"`
	LossRate      float64 `json:"loss_rate"`
	CoverageCount int     `json:"coverage_count"`
	CoverageScore float64 `json:"coverage_score"`
}

// StudentResult is one student's line in the analysis.
type StudentResult struct {
	StudentID   string  `json:"student_id"`
	StudentName string  `json:"student_name"`
	ClassName   string  `json:"class_name"`
	Total       float64 `json:"total_score"`
	Rank        int     `json:"rank"`
	Percentile  float64 `json:"percentile"`
}

// ClassResult summarises one class.
type ClassResult struct {
	ClassName    string  `json:"class_name"`
	StudentCount int     `json:"student_count"`
	AvgTotal     float64 `json:"avg_total"`
	MedianTotal  float64 `json:"median_total"`
	MaxTotal     float64 `json:"max_total"`
	MinTotal     float64 `json:"min_total"`
}

// ScoreBand counts students whose total falls in [Min, Max) of full marks
// (the top band includes its upper bound).
type ScoreBand struct {
	Band  string  `json:"band"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Count int     `json:"count"`
}

// bands are fractions of full marks, in the usual Chinese grading words.
var bands = []struct {
	name     string
	from, to float64
}{
	{"不及格", 0, 0.6}, {"及格", 0.6, 0.7}, {"中等", 0.7, 0.8}, {"良好", 0.8, 0.9}, {"优秀", 0.9, 1},
}

// Analyse computes the full analysis of e. kpMap maps question ids to
// knowledge points (may be nil).
func (e *Exam) Analyse(kpMap map[string]string, now time.Time) *Analysis {
	a := &Analysis{ExamID: e.ID, GeneratedAt: now.Format("2006-01-02T15:04:05")}
	a.Totals.Totals = e.Totals()
	n := len(e.Students)

	// Upper and lower 27 % by total, for discrimination.
	groupSize := int(math.Round(0.27 * float64(n)))
	upper, lower := map[string]bool{}, map[string]bool{}
	if groupSize > 0 {
		for i := range groupSize {
			upper[studentKey(e.Students[i])] = true
			lower[studentKey(e.Students[n-1-i])] = true
		}
	}

	maxTotal, allMax := 0.0, true
	for _, q := range e.Questions {
		m := e.questionMetrics(q, upper, lower, groupSize)
		a.QuestionMetrics = append(a.QuestionMetrics, m)
		if m.MaxScore == nil {
			allMax = false
		} else {
			maxTotal += *m.MaxScore
		}
	}
	if allMax && len(e.Questions) > 0 && !(len(e.Questions) == 1 && e.Questions[0].ID == "TOTAL" && !e.Questions[0].HasMax) {
		a.Totals.MaxTotal = &maxTotal
	}

	a.HighLossQuestions = highLoss(a.QuestionMetrics, 5)
	a.KnowledgePoints = knowledgePoints(a.QuestionMetrics, kpMap)
	a.Notes = ""
	if len(kpMap) == 0 {
		a.Notes = "knowledge point mapping missing (DATA_DIR/knowledge/knowledge_point_map.csv); all questions are under kp uncategorized"
	}

	classOrder := []string{}
	perClass := map[string][]float64{}
	for _, s := range e.Students {
		a.Students = append(a.Students, StudentResult{StudentID: s.ID, StudentName: s.Name, ClassName: s.Class,
			Total: round(s.Total, 3), Rank: s.Rank, Percentile: round(s.Percentile, 4)})
		if _, ok := perClass[s.Class]; !ok {
			classOrder = append(classOrder, s.Class)
		}
		perClass[s.Class] = append(perClass[s.Class], s.Total)
	}
	slices.Sort(classOrder)
	for _, c := range classOrder {
		t := summarise(perClass[c])
		a.Classes = append(a.Classes, ClassResult{ClassName: c, StudentCount: t.StudentCount, AvgTotal: t.AvgTotal,
			MedianTotal: t.MedianTotal, MaxTotal: t.MaxTotalObserved, MinTotal: t.MinTotalObserved})
	}

	full := maxTotal
	if a.Totals.MaxTotal == nil {
		full = a.Totals.MaxTotalObserved
	}
	if full > 0 {
		for i, b := range bands {
			sb := ScoreBand{Band: b.name, Min: round(b.from*full, 3), Max: round(b.to*full, 3)}
			for _, s := range e.Students {
				r := s.Total / full
				if r >= b.from && (r < b.to || (i == len(bands)-1)) {
					sb.Count++
				}
			}
			a.ScoreBands = append(a.ScoreBands, sb)
		}
	}
	nilToEmpty(&a.QuestionMetrics)
	nilToEmpty(&a.HighLossQuestions)
	nilToEmpty(&a.KnowledgePoints)
	nilToEmpty(&a.Students)
	nilToEmpty(&a.Classes)
	nilToEmpty(&a.ScoreBands)
	return a
}

func nilToEmpty[T any](s *[]T) {
	if *s == nil {
		*s = []T{}
	}
}

// questionMetrics: every student with a score in the exam counts; a student
// without a scored row for the question counts as 0 (a blank answer).
func (e *Exam) questionMetrics(q Question, upper, lower map[string]bool, groupSize int) QuestionMetrics {
	m := QuestionMetrics{QuestionID: q.ID, QuestionNo: q.No, SubNo: q.SubNo, Distribution: map[string]int{}}
	if q.HasMax {
		m.MaxScore = ptr(q.MaxScore)
	}
	scores := map[string]float64{}
	var correctSum, correctN float64
	for _, i := range e.rowsByQ[q.ID] {
		r := &e.Responses[i]
		if r.QuestionNo != "" && m.QuestionNo == "" {
			m.QuestionNo = r.QuestionNo
		}
		if r.IsCorrect != "" {
			if c, err := strconv.Atoi(r.IsCorrect); err == nil {
				correctSum += float64(c)
				correctN++
			}
		}
		if !r.Scored {
			continue
		}
		m.ResponseCount++
		if prev, seen := scores[r.key()]; !seen || r.Score > prev {
			scores[r.key()] = r.Score
		}
	}
	n := len(e.Students)
	var sum, upSum, lowSum float64
	for _, s := range e.Students {
		k := studentKey(s)
		v := scores[k]
		sum += v
		m.Distribution[formatScore(v)]++
		if m.MaxScore != nil && v >= *m.MaxScore {
			m.FullMarks++
		}
		if v == 0 {
			m.Zeros++
		}
		if upper[k] {
			upSum += v
		}
		if lower[k] {
			lowSum += v
		}
	}
	avg := 0.0
	if n > 0 {
		avg = sum / float64(n)
	}
	m.AvgScore = round(avg, 4)
	if m.MaxScore != nil && *m.MaxScore > 0 {
		m.ScoreRate = ptr(round(avg/(*m.MaxScore), 4))
		m.LossRate = ptr(round((*m.MaxScore-avg)/(*m.MaxScore), 4))
		if groupSize > 0 {
			m.Discrimination = ptr(round((upSum-lowSum)/float64(groupSize)/(*m.MaxScore), 4))
		}
	}
	if correctN > 0 {
		m.CorrectRate = ptr(round(correctSum/correctN, 4))
	}
	return m
}

func highLoss(ms []QuestionMetrics, limit int) []QuestionMetrics {
	var withLoss []QuestionMetrics
	for _, m := range ms {
		if m.LossRate != nil && m.QuestionID != "TOTAL" {
			withLoss = append(withLoss, m)
		}
	}
	slices.SortStableFunc(withLoss, func(a, b QuestionMetrics) int { return cmp.Compare(*b.LossRate, *a.LossRate) })
	return withLoss[:min(limit, len(withLoss))]
}

func knowledgePoints(ms []QuestionMetrics, kpMap map[string]string) []KnowledgePoint {
	type acc struct {
		avg, max float64
		n        int
	}
	order := []string{}
	by := map[string]*acc{}
	for _, m := range ms {
		if m.QuestionID == "TOTAL" {
			continue
		}
		kp := kpMap[m.QuestionID]
		if kp == "" {
			kp = "uncategorized"
		}
		a := by[kp]
		if a == nil {
			a = &acc{}
			by[kp] = a
			order = append(order, kp)
		}
		a.n++
		a.avg += m.AvgScore
		if m.MaxScore != nil {
			a.max += *m.MaxScore
		}
	}
	out := []KnowledgePoint{}
	for _, kp := range order {
		a := by[kp]
		k := KnowledgePoint{KPID: kp, AvgScore: round(a.avg, 4), CoverageCount: a.n, CoverageScore: round(a.max, 4)}
		if a.max > 0 {
			k.LossRate = round((a.max-a.avg)/a.max, 4)
		}
		out = append(out, k)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// formatScore writes "4" for integral scores and "2.5" otherwise.
func formatScore(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
