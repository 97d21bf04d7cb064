package exams

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/lectern/lectern/internal/httpjson"
)

// API holds the exam endpoints' handlers; the tenant's routes.go maps them.
type API struct {
	exams  *Service
	prefix string // the tenant's external path prefix, for links
	log    *slog.Logger
}

// NewAPI returns the handlers over svc; prefix is the tenant's external
// path prefix ("/t/<id>", or "" for the default tenant).
func NewAPI(svc *Service, prefix string, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{exams: svc, prefix: prefix, log: log}
}

// List serves GET /exams.
func (a *API) List(w http.ResponseWriter, r *http.Request) {
	body, err := a.exams.Catalog().ListJSON()
	if err != nil {
		a.internal(w, "list exams", err)
		return
	}
	httpjson.WriteRaw(w, http.StatusOK, body)
}

// exam loads {exam_id} and answers the error itself when it cannot.
func (a *API) exam(w http.ResponseWriter, r *http.Request) (*Exam, bool) {
	e, err := a.exams.Exam(r.PathValue("exam_id"))
	switch {
	case errors.Is(err, ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "exam not found")
		return nil, false
	case err != nil:
		a.internal(w, "read exam", err)
		return nil, false
	}
	return e, true
}

func (a *API) needResponses(w http.ResponseWriter, e *Exam) bool {
	if !e.HasResponses {
		httpjson.Error(w, http.StatusBadRequest, map[string]any{"error": "responses_missing", "exam_id": e.ID})
		return false
	}
	return true
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

// Get serves GET /exam/{exam_id}.
func (a *API) Get(w http.ResponseWriter, r *http.Request) {
	e, ok := a.exam(w, r)
	if !ok {
		return
	}
	t := e.Totals()
	httpjson.Write(w, http.StatusOK, map[string]any{
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
	})
}

// Analysis serves GET /exam/{exam_id}/analysis: the stored draft, else the
// analysis computed from the responses.
func (a *API) Analysis(w http.ResponseWriter, r *http.Request) {
	e, ok := a.exam(w, r)
	if !ok {
		return
	}
	draft, src, found, err := a.exams.Draft(e.PathID)
	if errors.Is(err, errDraftParse) {
		httpjson.Error(w, http.StatusBadRequest, map[string]any{"error": "analysis_parse_failed", "exam_id": e.ID, "source": src})
		return
	}
	if err != nil {
		a.internal(w, "read analysis", err)
		return
	}
	if found {
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": e.ID, "analysis": draft, "source": src})
		return
	}
	if !a.needResponses(w, e) {
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": e.ID, "analysis": e.Analysis(), "source": "computed"})
}

// Students serves GET /exam/{exam_id}/students?limit=50.
func (a *API) Students(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, "limit must be an integer")
			return
		}
		switch {
		case n == 0:
			limit = 50
		case n < 0:
			limit = 1
		default:
			limit = n
		}
	}
	e, ok := a.exam(w, r)
	if !ok || !a.needResponses(w, e) {
		return
	}
	type line struct {
		StudentID   string  `json:"student_id"`
		StudentName string  `json:"student_name"`
		ClassName   string  `json:"class_name"`
		TotalScore  float64 `json:"total_score"`
		Rank        int     `json:"rank"`
		Percentile  float64 `json:"percentile"`
	}
	out := make([]line, 0, min(limit, len(e.Students)))
	for _, s := range e.Students[:min(limit, len(e.Students))] {
		out = append(out, line{s.ID, s.Name, s.Class, round(s.Total, 3), s.Rank, round(s.Percentile, 4)})
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": e.ID, "total_students": len(e.Students), "students": out})
}

// Student serves GET /exam/{exam_id}/student/{student_id}.
func (a *API) Student(w http.ResponseWriter, r *http.Request) {
	e, ok := a.exam(w, r)
	if !ok || !a.needResponses(w, e) {
		return
	}
	key := r.PathValue("student_id")
	s, found := e.Student(key)
	rows := e.rowsByStudent[key]
	if !found && len(rows) == 0 {
		httpjson.Error(w, http.StatusNotFound, map[string]any{"error": "student_not_found", "exam_id": e.ID,
			"student_id": key, "message": "未找到该学生的成绩，请检查学生编号。"})
		return
	}
	if !found { // rows, but none scored
		first := e.Responses[rows[0]]
		s = Student{ID: first.StudentID, Name: first.StudentName, Class: first.ClassName}
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
	student := map[string]any{"student_id": s.ID, "student_name": s.Name, "class_name": s.Class, "total_score": round(s.Total, 3)}
	if found {
		student["rank"], student["percentile"] = s.Rank, round(s.Percentile, 4)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": e.ID, "student": student,
		"question_scores": scores, "question_count": len(scores)})
}

func noOf(v any) string {
	s, _ := v.(string)
	return s
}

// Question serves GET /exam/{exam_id}/question/{question_id}.
func (a *API) Question(w http.ResponseWriter, r *http.Request) {
	e, ok := a.exam(w, r)
	if !ok || !a.needResponses(w, e) {
		return
	}
	qid := r.PathValue("question_id")
	m, found := e.Metrics(qid)
	if !found {
		httpjson.Error(w, http.StatusNotFound, map[string]any{"error": "question_not_found", "exam_id": e.ID, "question_id": qid})
		return
	}
	q, _ := e.Question(qid)
	type sample struct {
		StudentID   string  `json:"student_id"`
		StudentName string  `json:"student_name"`
		ClassName   string  `json:"class_name"`
		Score       float64 `json:"score"`
		RawValue    any     `json:"raw_value"`
	}
	var scored []*Response
	for _, i := range e.rowsByQ[qid] {
		if resp := &e.Responses[i]; resp.Scored {
			scored = append(scored, resp)
		}
	}
	toSample := func(rs []*Response) []sample {
		out := make([]sample, 0, 5)
		for _, resp := range rs[:min(5, len(rs))] {
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
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": e.ID, "question": question,
		"distribution": m.Distribution, "sample_top_students": top, "sample_bottom_students": bottom,
		"response_count": m.ResponseCount})
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

func (a *API) internal(w http.ResponseWriter, what string, err error) {
	a.log.Error(what, "err", err)
	httpjson.Error(w, http.StatusInternalServerError, what+" failed")
}
