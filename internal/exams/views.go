package exams

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/lectern/lectern/internal/fault"
)

// The views build the bodies of the exam endpoints (GET /exam/{id} and its
// sub-resources) and of the exam tools the agent calls. The HTTP handlers
// write them as they are; a failure a client may see is a *ViewError.

// Kinds of *ViewError, for errors.Is. ErrNotFound and ErrNoResponses are
// in model.go.
var (
	ErrStudentNotFound  = errors.New("student not found")
	ErrMultipleStudents = errors.New("multiple students match")
	ErrQuestionNotFound = errors.New("question not found")
	ErrAnalysisParse    = errors.New("analysis_parse_failed")
	ErrBadQuery         = errors.New("invalid query")
)

// ViewError is a failure of a view that a caller may show: Code is its
// kind of failure (httpjson.Status gives the HTTP status), Detail the
// "detail" of the HTTP error body (a string or an object, as the endpoints
// always answered), Message a readable sentence for the agent's tools.
// errors.Is matches Kind; errors.As finds a *fault.Error with Code and
// Detail, so httpjson.Fail answers a ViewError as the endpoints did.
type ViewError struct {
	Kind    error
	Code    fault.Code
	Detail  any
	Message string
}

func (e *ViewError) Error() string { return e.Message }

// Unwrap gives errors.Is the Kind and errors.As the fault.
func (e *ViewError) Unwrap() []error {
	return []error{e.Kind, &fault.Error{Code: e.Code, Detail: e.Detail, Err: e.Kind}}
}

// ErrorDetail is the structured detail (nil when it is only a string), for
// callers that pass errors on as JSON.
func (e *ViewError) ErrorDetail() any {
	if _, ok := e.Detail.(string); ok {
		return nil
	}
	return e.Detail
}

func examNotFound(id string) error {
	return &ViewError{Kind: ErrNotFound, Code: fault.NotFound, Detail: "exam not found",
		Message: "exam not found: " + id}
}

func responsesMissing(e *Exam) error {
	return &ViewError{Kind: ErrNoResponses, Code: fault.Invalid,
		Detail:  map[string]any{"error": "responses_missing", "exam_id": e.ID},
		Message: "exam " + e.ID + " has no scored responses"}
}

func badQuery(msg string) error {
	return &ViewError{Kind: ErrBadQuery, Code: fault.Invalid, Detail: msg, Message: msg}
}

// examView loads exam id; a missing exam is a *ViewError, other failures
// are returned as they are.
func (s *Service) examView(id string) (*Exam, error) {
	e, err := s.Exam(id)
	if errors.Is(err, ErrNotFound) {
		return nil, examNotFound(id)
	}
	return e, err
}

// examWithResponses is examView that also needs scored responses.
func (s *Service) examWithResponses(id string) (*Exam, error) {
	e, err := s.examView(id)
	if err != nil {
		return nil, err
	}
	if !e.HasResponses {
		return nil, responsesMissing(e)
	}
	return e, nil
}

type totalsSummary struct {
	AvgTotal         float64 `json:"avg_total"`
	MedianTotal      float64 `json:"median_total"`
	MedianTotalUpper float64 `json:"median_total_upper"`
	MaxTotalObserved float64 `json:"max_total_observed"`
	MinTotalObserved float64 `json:"min_total_observed"`
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// DetailView is the body of GET /exam/{exam_id}: manifest, counts, score
// summary and files.
func (s *Service) DetailView(id string) (map[string]any, error) {
	e, err := s.examView(id)
	if err != nil {
		return nil, err
	}
	t := e.Totals()
	return map[string]any{
		"ok":           true,
		"exam_id":      e.ID,
		"generated_at": e.Manifest.GeneratedAt,
		"meta":         e.Manifest.Meta,
		"counts":       map[string]int{"students": len(e.Students), "questions": e.qFromCSV},
		"totals_summary": totalsSummary{
			AvgTotal: round(t.AvgTotal, 3), MedianTotal: round(t.MedianTotal, 3), MedianTotalUpper: round(t.MedianTotalUpper, 3),
			MaxTotalObserved: t.MaxTotalObserved, MinTotalObserved: t.MinTotalObserved,
		},
		"score_mode": e.ScoreMode(),
		"files": map[string]any{
			"manifest":       e.ManifestFile,
			"responses":      nullable(e.ResponsesFile),
			"questions":      nullable(e.QuestionsFile),
			"analysis_draft": nullable(e.DraftFile),
		},
	}, nil
}

// AnalysisView is the body of GET /exam/{exam_id}/analysis: the stored
// draft (source = its path), else the analysis computed from the responses
// (source "computed").
func (s *Service) AnalysisView(id string) (map[string]any, error) {
	e, err := s.examView(id)
	if err != nil {
		return nil, err
	}
	draft, src, found, err := s.Draft(e.PathID)
	if errors.Is(err, errDraftParse) {
		return nil, &ViewError{Kind: ErrAnalysisParse, Code: fault.Invalid,
			Detail:  map[string]any{"error": "analysis_parse_failed", "exam_id": e.ID, "source": src},
			Message: "the stored analysis of exam " + e.ID + " is not valid JSON"}
	}
	if err != nil {
		return nil, err
	}
	if found {
		return map[string]any{"ok": true, "exam_id": e.ID, "analysis": draft, "source": src}, nil
	}
	if !e.HasResponses {
		return nil, responsesMissing(e)
	}
	return map[string]any{"ok": true, "exam_id": e.ID, "analysis": e.Analysis(), "source": "computed"}, nil
}

// StudentLine is one student of StudentsView.
type StudentLine struct {
	StudentID   string  `json:"student_id"`
	StudentName string  `json:"student_name"`
	ClassName   string  `json:"class_name"`
	TotalScore  float64 `json:"total_score"`
	Rank        int     `json:"rank"`
	Percentile  float64 `json:"percentile"`
}

// StudentsView is the body of GET /exam/{exam_id}/students: the first
// limit students by rank. limit 0 means 50, a negative limit 1.
func (s *Service) StudentsView(id string, limit int) (map[string]any, error) {
	switch {
	case limit == 0:
		limit = 50
	case limit < 0:
		limit = 1
	}
	e, err := s.examWithResponses(id)
	if err != nil {
		return nil, err
	}
	out := make([]StudentLine, 0, min(limit, len(e.Students)))
	for _, s := range e.Students[:min(limit, len(e.Students))] {
		out = append(out, StudentLine{s.ID, s.Name, s.Class, round(s.Total, 3), s.Rank, round(s.Percentile, 4)})
	}
	return map[string]any{"ok": true, "exam_id": e.ID, "total_students": len(e.Students), "students": out}, nil
}

type qscore struct {
	QuestionID string `json:"question_id"`
	QuestionNo any    `json:"question_no"`
	SubNo      string `json:"sub_no"`
	Score      any    `json:"score"`
	MaxScore   any    `json:"max_score"`
	IsCorrect  any    `json:"is_correct"`
	RawValue   any    `json:"raw_value"`
	RawAnswer  any    `json:"raw_answer"`
}

// StudentView is the body of GET /exam/{exam_id}/student/{student_id}: one
// student's per-question scores; key is the student id (the name for rows
// without one).
func (s *Service) StudentView(examID, key string) (map[string]any, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	return e.studentView(key)
}

func (e *Exam) studentView(key string) (map[string]any, error) {
	st, found := e.Student(key)
	rows := e.rowsByStudent[key]
	if !found && len(rows) == 0 {
		return nil, &ViewError{Kind: ErrStudentNotFound, Code: fault.NotFound,
			Detail: map[string]any{"error": "student_not_found", "exam_id": e.ID,
				"student_id": key, "message": "未找到该学生的成绩，请检查学生编号。"},
			Message: "student " + key + " not found in exam " + e.ID}
	}
	if !found { // rows, but none scored
		first := e.Responses[rows[0]]
		st = Student{ID: first.StudentID, Name: first.StudentName, Class: first.ClassName}
	}
	byQ := map[string]qscore{}
	var order []string
	for _, i := range rows {
		resp := &e.Responses[i]
		q, _ := e.Question(resp.QuestionID)
		qs := qscore{QuestionID: resp.QuestionID, SubNo: resp.SubNo}
		qs.QuestionNo = nullable(resp.QuestionNo)
		if qs.QuestionNo == nil {
			qs.QuestionNo = nullable(q.No)
		}
		if resp.Scored {
			qs.Score = resp.Score
		}
		if q.HasMax {
			qs.MaxScore = q.MaxScore
		}
		if c, err := strconv.Atoi(resp.IsCorrect); err == nil {
			qs.IsCorrect = c
		}
		if resp.HasRawValue {
			qs.RawValue = resp.RawValue
		}
		if resp.HasRawAnswer {
			qs.RawAnswer = resp.RawAnswer
		}
		if _, seen := byQ[resp.QuestionID]; !seen {
			order = append(order, resp.QuestionID)
		}
		byQ[resp.QuestionID] = qs
	}
	slices.SortStableFunc(order, func(x, y string) int {
		return questionNoKey(noOf(byQ[x].QuestionNo)) - questionNoKey(noOf(byQ[y].QuestionNo))
	})
	scores := make([]qscore, 0, len(order))
	for _, id := range order {
		scores = append(scores, byQ[id])
	}
	student := map[string]any{"student_id": st.ID, "student_name": st.Name, "class_name": st.Class, "total_score": round(st.Total, 3)}
	if found {
		student["rank"], student["percentile"] = st.Rank, round(st.Percentile, 4)
	}
	return map[string]any{"ok": true, "exam_id": e.ID, "student": student,
		"question_scores": scores, "question_count": len(scores)}, nil
}

func noOf(v any) string {
	s, _ := v.(string)
	return s
}

// StudentCandidate is one of several students a name lookup matched.
type StudentCandidate struct {
	StudentID   string `json:"student_id"`
	StudentName string `json:"student_name"`
	ClassName   string `json:"class_name"`
}

// StudentLookup is StudentView for the exam.student.get tool: by student
// id when given (falling back to the name if the id is unknown), else by
// name, narrowed by class when given. Names and classes compare without
// whitespace and case. Several matches fail with ErrMultipleStudents, whose
// detail lists up to 10 candidates.
func (s *Service) StudentLookup(examID, studentID, name, class string) (map[string]any, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	studentID, name, class = strings.TrimSpace(studentID), normName(name), normName(class)
	if studentID != "" {
		v, err := e.studentView(studentID)
		if err == nil || name == "" {
			return v, err
		}
	}
	if name == "" {
		return nil, &ViewError{Kind: ErrBadQuery, Code: fault.Invalid,
			Detail:  map[string]any{"error": "missing_student", "exam_id": e.ID, "message": "请提供学生编号或姓名。"},
			Message: "student_id or student_name is required"}
	}
	var matches []StudentCandidate
	var keys []string
	seen := map[string]bool{}
	for i := range e.Responses {
		r := &e.Responses[i]
		k := r.key()
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		n := normName(r.StudentName)
		if n != name && normName(r.ClassName+r.StudentName) != name && normName(r.StudentID) != name {
			continue
		}
		if class != "" && normName(r.ClassName) != class {
			continue
		}
		matches = append(matches, StudentCandidate{r.StudentID, r.StudentName, r.ClassName})
		keys = append(keys, k)
	}
	switch len(matches) {
	case 0:
		return nil, &ViewError{Kind: ErrStudentNotFound, Code: fault.NotFound,
			Detail: map[string]any{"error": "student_not_found", "exam_id": e.ID, "student_name": name,
				"message": "未找到该学生的成绩，请检查姓名或班级。"},
			Message: "no student named " + name + " in exam " + e.ID}
	case 1:
		return e.studentView(keys[0])
	}
	return nil, &ViewError{Kind: ErrMultipleStudents, Code: fault.Conflict,
		Detail: map[string]any{"error": "multiple_students", "exam_id": e.ID, "student_name": name,
			"candidates": matches[:min(10, len(matches))], "message": "有多名学生匹配，请提供班级或学生编号。"},
		Message: fmt.Sprintf("%d students named %s in exam %s; give class_name or student_id", len(matches), name, e.ID)}
}

func normName(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s))
}

type sample struct {
	StudentID   string  `json:"student_id"`
	StudentName string  `json:"student_name"`
	ClassName   string  `json:"class_name"`
	Score       float64 `json:"score"`
	RawValue    any     `json:"raw_value"`
}

func clampTop(n, def int) int {
	if n <= 0 {
		return def
	}
	return min(n, 100)
}

// QuestionView is the body of GET /exam/{exam_id}/question/{question_id}:
// the question's figures, score distribution and the topN best and worst
// scored answers (topN ≤ 0 means 5; at most 100).
func (s *Service) QuestionView(examID, qid string, topN int) (map[string]any, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	return e.questionView(qid, clampTop(topN, 5))
}

func (e *Exam) questionView(qid string, topN int) (map[string]any, error) {
	m, found := e.Metrics(qid)
	if !found {
		return nil, &ViewError{Kind: ErrQuestionNotFound, Code: fault.NotFound,
			Detail:  map[string]any{"error": "question_not_found", "exam_id": e.ID, "question_id": qid},
			Message: "question " + qid + " not found in exam " + e.ID}
	}
	q, _ := e.Question(qid)
	var scored []*Response
	for _, i := range e.rowsByQ[qid] {
		if resp := &e.Responses[i]; resp.Scored {
			scored = append(scored, resp)
		}
	}
	toSample := func(rs []*Response) []sample {
		out := make([]sample, 0, min(topN, len(rs)))
		for _, resp := range rs[:min(topN, len(rs))] {
			s := sample{StudentID: resp.StudentID, StudentName: resp.StudentName, ClassName: resp.ClassName, Score: resp.Score}
			if resp.HasRawValue {
				s.RawValue = resp.RawValue
			}
			out = append(out, s)
		}
		return out
	}
	slices.SortStableFunc(scored, func(x, y *Response) int { return compareFloat(y.Score, x.Score) })
	top := toSample(scored)
	slices.SortStableFunc(scored, func(x, y *Response) int { return compareFloat(x.Score, y.Score) })
	bottom := toSample(scored)
	question := map[string]any{
		"question_id":     qid,
		"question_no":     nullable(q.No),
		"sub_no":          q.SubNo,
		"max_score":       m.MaxScore,
		"avg_score":       round(m.AvgScore, 3),
		"score_rate":      m.ScoreRate,
		"loss_rate":       m.LossRate,
		"correct_rate":    m.CorrectRate,
		"full_mark_count": m.FullMarks,
		"zero_count":      m.Zeros,
		"discrimination":  m.Discrimination,
	}
	return map[string]any{"ok": true, "exam_id": e.ID, "question": question,
		"distribution": m.Distribution, "sample_top_students": top, "sample_bottom_students": bottom,
		"response_count": m.ResponseCount}, nil
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// questionNo is a question's number: questions.csv's, else its rows'.
func (e *Exam) questionNo(q Question) string {
	if q.No != "" {
		return q.No
	}
	for _, i := range e.rowsByQ[q.ID] {
		if no := e.Responses[i].QuestionNo; no != "" {
			return no
		}
	}
	return ""
}

// QuestionIDs returns the ids of the questions numbered no, in exam order:
// "11" matches every part of question 11; "11(2)", "11-2" or "11.2" match
// the part whose sub_no is 2.
func (e *Exam) QuestionIDs(no string) []string {
	no = strings.TrimSpace(no)
	base, sub := no, ""
	if i := strings.IndexAny(no, "(（-._"); i > 0 {
		base = no[:i]
		sub = strings.Trim(no[i:], "(（)）-._ ")
	}
	var ids []string
	for _, q := range e.Questions {
		qno := e.questionNo(q)
		switch {
		case qno == no && no != "":
		case qno == base && base != "" && (sub == "" || q.SubNo == sub):
		default:
			continue
		}
		ids = append(ids, q.ID)
	}
	return ids
}

// QuestionLookup is QuestionView for the exam.question.get tool: by
// question id, else by question number. A number with several parts
// answers {"ok","exam_id","question_no","questions":[one QuestionView body
// per part]}.
func (s *Service) QuestionLookup(examID, qid, no string, topN int) (map[string]any, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	topN = clampTop(topN, 5)
	if qid = strings.TrimSpace(qid); qid != "" {
		return e.questionView(qid, topN)
	}
	if strings.TrimSpace(no) == "" {
		return nil, badQuery("question_id or question_no is required")
	}
	ids := e.QuestionIDs(no)
	if _, isID := e.questionIndex[strings.TrimSpace(no)]; len(ids) == 0 && isID {
		ids = []string{strings.TrimSpace(no)} // a question id given as the number
	}
	switch len(ids) {
	case 0:
		return nil, &ViewError{Kind: ErrQuestionNotFound, Code: fault.NotFound,
			Detail:  map[string]any{"error": "question_not_found", "exam_id": e.ID, "question_no": no},
			Message: "no question numbered " + no + " in exam " + e.ID}
	case 1:
		return e.questionView(ids[0], topN)
	}
	parts := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		v, err := e.questionView(id, topN)
		if err != nil {
			return nil, err
		}
		parts = append(parts, v)
	}
	return map[string]any{"ok": true, "exam_id": e.ID, "question_no": no, "questions": parts}, nil
}

// QuestionBatchResult answers QuestionBatch.
type QuestionBatchResult struct {
	OK      bool                 `json:"ok"`
	ExamID  string               `json:"exam_id"`
	TopN    int                  `json:"top_n"`
	Entries []QuestionBatchEntry `json:"questions"`
	// Missing lists the requested numbers no question has.
	Missing []int `json:"missing_question_nos"`
}

// QuestionBatchEntry is one question (or part) of QuestionBatch: the
// QuestionView body without "ok" and "exam_id".
type QuestionBatchEntry struct {
	QuestionNo           int            `json:"question_no"`
	Question             map[string]any `json:"question"`
	Distribution         map[string]int `json:"distribution"`
	SampleTopStudents    any            `json:"sample_top_students"`
	SampleBottomStudents any            `json:"sample_bottom_students"`
	ResponseCount        int            `json:"response_count"`
}

// QuestionBatch gives the QuestionView figures of every question (each
// part of it) whose integer question number is in nos.
func (s *Service) QuestionBatch(examID string, nos []int, topN int) (*QuestionBatchResult, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	topN = clampTop(topN, 5)
	res := &QuestionBatchResult{OK: true, ExamID: e.ID, TopN: topN, Entries: []QuestionBatchEntry{}, Missing: []int{}}
	done := map[int]bool{}
	for _, no := range nos {
		if done[no] {
			continue
		}
		done[no] = true
		found := false
		for _, q := range e.Questions {
			if qn, ok := intNo(e.questionNo(q)); !ok || qn != no {
				continue
			}
			v, err := e.questionView(q.ID, topN)
			if err != nil {
				return nil, err
			}
			found = true
			res.Entries = append(res.Entries, QuestionBatchEntry{QuestionNo: no, Question: v["question"].(map[string]any),
				Distribution: v["distribution"].(map[string]int), SampleTopStudents: v["sample_top_students"],
				SampleBottomStudents: v["sample_bottom_students"], ResponseCount: v["response_count"].(int)})
		}
		if !found {
			res.Missing = append(res.Missing, no)
		}
	}
	return res, nil
}

// intNo parses an integer question number ("11"; not "11(1)").
func intNo(no string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(no))
	return n, err == nil
}

// Range is a labelled range of question numbers, both ends included.
type Range struct {
	Label string `json:"label"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// RangeStudent is one student's score over a range of questions.
type RangeStudent struct {
	StudentID   string  `json:"student_id"`
	StudentName string  `json:"student_name"`
	ClassName   string  `json:"class_name"`
	Score       float64 `json:"range_score"`
	// Rank is within the range (equal scores share the better rank).
	Rank       int     `json:"range_rank"`
	TotalScore float64 `json:"total_score"`
	TotalRank  int     `json:"total_rank"`
}

// RangeResult answers RangeTopStudents, and is one entry of
// RangeSummaryBatch.
type RangeResult struct {
	OK              bool     `json:"ok"`
	ExamID          string   `json:"exam_id"`
	Label           string   `json:"label,omitempty"`
	StartQuestionNo int      `json:"start_question_no"`
	EndQuestionNo   int      `json:"end_question_no"`
	QuestionIDs     []string `json:"question_ids"`
	// MaxScore is the sum of the questions' full marks (null if any is
	// unknown).
	MaxScore     *float64       `json:"max_score"`
	StudentCount int            `json:"student_count"`
	AvgScore     float64        `json:"avg_score"`
	ScoreRate    *float64       `json:"score_rate"`
	TopN         int            `json:"top_n"`
	Top          []RangeStudent `json:"top_students"`
	Bottom       []RangeStudent `json:"bottom_students"`
	// Error is set instead of the figures when one range of a batch fails.
	Error string `json:"error,omitempty"`
}

// RangeTopStudents sums each ranked student's scores over the questions
// whose integer question number is in [startNo, endNo] and lists the topN
// best and worst (topN ≤ 0 means 10; at most 100). A student without a
// scored answer to a question counts 0 for it.
func (s *Service) RangeTopStudents(examID string, startNo, endNo, topN int) (*RangeResult, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	return e.rangeResult(Range{Start: startNo, End: endNo}, clampTop(topN, 10))
}

// RangeSummaryBatch is RangeTopStudents for several ranges (topN ≤ 0
// means 5). A range that fails carries its error instead of failing the
// batch.
func (s *Service) RangeSummaryBatch(examID string, ranges []Range, topN int) (map[string]any, error) {
	e, err := s.examWithResponses(examID)
	if err != nil {
		return nil, err
	}
	topN = clampTop(topN, 5)
	out := make([]*RangeResult, 0, len(ranges))
	for _, r := range ranges {
		res, err := e.rangeResult(r, topN)
		if err != nil {
			res = &RangeResult{ExamID: e.ID, Label: r.Label, StartQuestionNo: r.Start, EndQuestionNo: r.End,
				QuestionIDs: []string{}, Top: []RangeStudent{}, Bottom: []RangeStudent{}, Error: err.Error()}
		}
		out = append(out, res)
	}
	return map[string]any{"ok": true, "exam_id": e.ID, "ranges": out}, nil
}

func (e *Exam) rangeResult(r Range, topN int) (*RangeResult, error) {
	if r.Start > r.End {
		return nil, badQuery(fmt.Sprintf("start_question_no %d is after end_question_no %d", r.Start, r.End))
	}
	res := &RangeResult{OK: true, ExamID: e.ID, Label: r.Label, StartQuestionNo: r.Start, EndQuestionNo: r.End,
		QuestionIDs: []string{}, TopN: topN, StudentCount: len(e.Students)}
	in := map[string]bool{}
	maxSum, allMax := 0.0, true
	for _, q := range e.Questions {
		n, ok := intNo(e.questionNo(q))
		if !ok || n < r.Start || n > r.End || in[q.ID] {
			continue
		}
		in[q.ID] = true
		res.QuestionIDs = append(res.QuestionIDs, q.ID)
		if q.HasMax {
			maxSum += q.MaxScore
		} else {
			allMax = false
		}
	}
	if len(res.QuestionIDs) == 0 {
		return nil, &ViewError{Kind: ErrQuestionNotFound, Code: fault.NotFound,
			Detail:  map[string]any{"error": "question_not_found", "exam_id": e.ID, "start_question_no": r.Start, "end_question_no": r.End},
			Message: fmt.Sprintf("no questions numbered %d to %d in exam %s", r.Start, r.End, e.ID)}
	}
	if allMax {
		res.MaxScore = ptr(maxSum)
	}
	lines := make([]RangeStudent, len(e.Students))
	sum := 0.0
	for i, st := range e.Students {
		score := 0.0
		for _, ri := range e.rowsByStudent[studentKey(st)] {
			if resp := &e.Responses[ri]; resp.Scored && in[resp.QuestionID] {
				score += resp.Score
			}
		}
		sum += score
		lines[i] = RangeStudent{StudentID: st.ID, StudentName: st.Name, ClassName: st.Class, Score: round(score, 3),
			TotalScore: round(st.Total, 3), TotalRank: st.Rank}
	}
	if n := len(lines); n > 0 {
		res.AvgScore = round(sum/float64(n), 4)
		if res.MaxScore != nil && *res.MaxScore > 0 {
			res.ScoreRate = ptr(round(sum/float64(n)/(*res.MaxScore), 4))
		}
	}
	slices.SortStableFunc(lines, func(a, b RangeStudent) int { return compareFloat(b.Score, a.Score) })
	for i := range lines {
		if i > 0 && lines[i].Score == lines[i-1].Score {
			lines[i].Rank = lines[i-1].Rank
		} else {
			lines[i].Rank = i + 1
		}
	}
	res.Top = slices.Clone(lines[:min(topN, len(lines))])
	bottom := make([]RangeStudent, 0, min(topN, len(lines)))
	for i := len(lines) - 1; i >= 0 && len(bottom) < topN; i-- {
		bottom = append(bottom, lines[i])
	}
	res.Bottom = bottom
	return res, nil
}
