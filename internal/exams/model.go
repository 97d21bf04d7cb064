package exams

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Exam is one exam's data, parsed once and shared read-only by every
// request until its files change.
type Exam struct {
	PathID   string // the folder name under DATA_DIR/exams
	ID       string // manifest exam_id, else PathID
	Manifest *Manifest

	// Files, relative to DATA_DIR ("" when absent).
	ManifestFile, ResponsesFile, QuestionsFile, DraftFile string

	HasResponses bool
	Responses    []Response
	Questions    []Question // questions.csv order, then questions only seen in responses

	questionIndex map[string]int // question id → index in Questions
	qFromCSV      int            // how many Questions came from questions.csv
	Students      []Student      // ranked: total descending, ties in first-appearance order
	studentIndex  map[string]int // student key → index in Students
	rowsByStudent map[string][]int
	rowsByQ       map[string][]int

	kpMap        map[string]string
	parsedAt     time.Time
	analysisOnce sync.Once
	analysis     *Analysis
	chartMu      sync.Mutex
	charts       map[string][]byte
}

// Analysis is the full analysis, computed once per parse.
func (e *Exam) Analysis() *Analysis {
	e.analysisOnce.Do(func() { e.analysis = e.Analyse(e.kpMap, e.parsedAt) })
	return e.analysis
}

// Metrics returns the analysis line of one question.
func (e *Exam) Metrics(questionID string) (QuestionMetrics, bool) {
	i, ok := e.questionIndex[questionID]
	if !ok {
		return QuestionMetrics{}, false
	}
	return e.Analysis().QuestionMetrics[i], true
}

// Student is a student's result in one exam.
type Student struct {
	ID, Name, Class string
	Total           float64
	Rank            int
	Percentile      float64
}

// build indexes the rows and ranks the students.
func (e *Exam) build() {
	e.questionIndex = make(map[string]int, len(e.Questions))
	for i, q := range e.Questions {
		if _, dup := e.questionIndex[q.ID]; !dup {
			e.questionIndex[q.ID] = i
		}
	}
	e.qFromCSV = len(e.Questions)
	e.rowsByStudent = map[string][]int{}
	e.rowsByQ = map[string][]int{}
	e.studentIndex = map[string]int{}
	for i := range e.Responses {
		r := &e.Responses[i]
		k := r.key()
		if k == "" {
			continue
		}
		e.rowsByStudent[k] = append(e.rowsByStudent[k], i)
		if r.QuestionID != "" {
			if _, ok := e.questionIndex[r.QuestionID]; !ok {
				e.questionIndex[r.QuestionID] = len(e.Questions)
				e.Questions = append(e.Questions, Question{ID: r.QuestionID, No: r.QuestionNo, SubNo: r.SubNo})
			}
			e.rowsByQ[r.QuestionID] = append(e.rowsByQ[r.QuestionID], i)
		}
		if !r.Scored {
			continue
		}
		si, ok := e.studentIndex[k]
		if !ok {
			si = len(e.Students)
			e.studentIndex[k] = si
			e.Students = append(e.Students, Student{ID: r.StudentID, Name: r.StudentName, Class: r.ClassName})
		}
		e.Students[si].Total += r.Score
	}
	rankStudents(e.Students)
	for i, s := range e.Students {
		e.studentIndex[studentKey(s)] = i
	}
}

func studentKey(s Student) string {
	if s.ID != "" {
		return s.ID
	}
	return s.Name
}

// rankStudents orders by total, highest first (stable), and gives equal
// totals the same, better rank: 1, 2, 2, 4.
func rankStudents(ss []Student) {
	slices.SortStableFunc(ss, func(a, b Student) int { return cmp.Compare(round(b.Total, 6), round(a.Total, 6)) })
	n := float64(len(ss))
	for i := range ss {
		if i > 0 && round(ss[i].Total, 6) == round(ss[i-1].Total, 6) {
			ss[i].Rank = ss[i-1].Rank
		} else {
			ss[i].Rank = i + 1
		}
		ss[i].Percentile = 1 - float64(ss[i].Rank-1)/n
	}
}

// Student returns a student's result by key (student_id, else name).
func (e *Exam) Student(key string) (Student, bool) {
	i, ok := e.studentIndex[key]
	if !ok {
		return Student{}, false
	}
	return e.Students[i], true
}

// Question returns a question by id.
func (e *Exam) Question(id string) (Question, bool) {
	i, ok := e.questionIndex[id]
	if !ok {
		return Question{}, false
	}
	return e.Questions[i], true
}

// ScoreMode is meta.score_mode, else "question" when the exam has
// questions, else "unknown".
func (e *Exam) ScoreMode() string {
	if m, ok := e.Manifest.Meta["score_mode"].(string); ok && m != "" {
		return m
	}
	if e.qFromCSV > 0 {
		return "question"
	}
	return "unknown"
}

// Totals summarises the students' totals.
type Totals struct {
	StudentCount int     `json:"student_count"`
	AvgTotal     float64 `json:"avg_total"`
	// MedianTotal is the true median (the mean of the two middle totals
	// for an even count); MedianTotalUpper is the predecessor's median,
	// the upper-middle element.
	MedianTotal      float64 `json:"median_total"`
	MedianTotalUpper float64 `json:"median_total_upper"`
	MaxTotalObserved float64 `json:"max_total_observed"`
	MinTotalObserved float64 `json:"min_total_observed"`
	StdevTotal       float64 `json:"stdev_total"`
}

// Totals computes the totals summary (zeros when nobody has a score).
func (e *Exam) Totals() Totals {
	totals := make([]float64, len(e.Students))
	for i, s := range e.Students {
		totals[i] = s.Total
	}
	return summarise(totals)
}

func summarise(xs []float64) Totals {
	t := Totals{StudentCount: len(xs)}
	if len(xs) == 0 {
		return t
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	n := len(sorted)
	var sum float64
	for _, x := range sorted {
		sum += x
	}
	mean := sum / float64(n)
	var sq float64
	for _, x := range sorted {
		sq += (x - mean) * (x - mean)
	}
	t.AvgTotal = round(mean, 4)
	t.MedianTotalUpper = sorted[n/2]
	if n%2 == 1 {
		t.MedianTotal = sorted[n/2]
	} else {
		t.MedianTotal = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	t.MaxTotalObserved = sorted[n-1]
	t.MinTotalObserved = sorted[0]
	t.StdevTotal = round(math.Sqrt(sq/float64(n)), 4)
	return t
}

func round(x float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(x*p) / p
}

func isNaNOrInf(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// questionNoKey sorts by integer question number, non-numbers last.
func questionNoKey(no string) int {
	n, err := strconv.Atoi(no)
	if err != nil {
		return 9999
	}
	return n
}

// StudentScores returns a student's score per question id (the best one
// when a question appears twice); unscored rows are left out.
func (e *Exam) StudentScores(key string) map[string]float64 {
	out := map[string]float64{}
	for _, i := range e.rowsByStudent[key] {
		r := &e.Responses[i]
		if !r.Scored || r.QuestionID == "" {
			continue
		}
		if prev, ok := out[r.QuestionID]; !ok || r.Score > prev {
			out[r.QuestionID] = r.Score
		}
	}
	return out
}

// StudentKey is the key Student and StudentScores take for s.
func StudentKey(s Student) string { return studentKey(s) }
