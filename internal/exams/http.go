package exams

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// API holds the exam endpoints' handlers; the tenant's routes.go maps them.
// The bodies are built by the Service's views (views.go), which the agent's
// exam tools share.
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
		httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, err, "list exams failed"))
		return
	}
	httpjson.WriteRaw(w, http.StatusOK, body)
}

// Get serves GET /exam/{exam_id}.
func (a *API) Get(w http.ResponseWriter, r *http.Request) {
	v, err := a.exams.DetailView(r.PathValue("exam_id"))
	a.write(w, v, err, "read exam")
}

// Analysis serves GET /exam/{exam_id}/analysis: the stored draft, else the
// analysis computed from the responses.
func (a *API) Analysis(w http.ResponseWriter, r *http.Request) {
	v, err := a.exams.AnalysisView(r.PathValue("exam_id"))
	a.write(w, v, err, "read analysis")
}

// Students serves GET /exam/{exam_id}/students?limit=50.
func (a *API) Students(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			httpjson.Fail(w, a.log, fault.New(fault.Invalid, "limit must be an integer"))
			return
		}
		limit = n
	}
	v, err := a.exams.StudentsView(r.PathValue("exam_id"), limit)
	a.write(w, v, err, "read exam")
}

// Student serves GET /exam/{exam_id}/student/{student_id}.
func (a *API) Student(w http.ResponseWriter, r *http.Request) {
	v, err := a.exams.StudentView(r.PathValue("exam_id"), r.PathValue("student_id"))
	a.write(w, v, err, "read exam")
}

// Question serves GET /exam/{exam_id}/question/{question_id}.
func (a *API) Question(w http.ResponseWriter, r *http.Request) {
	v, err := a.exams.QuestionView(r.PathValue("exam_id"), r.PathValue("question_id"), 5)
	a.write(w, v, err, "read exam")
}

// examWithResponses loads {exam_id}, which must have scored responses, and
// answers the error itself when it cannot.
func (a *API) examWithResponses(w http.ResponseWriter, r *http.Request) (*Exam, bool) {
	e, err := a.exams.examWithResponses(r.PathValue("exam_id"))
	if err != nil {
		a.write(w, nil, err, "read exam")
		return nil, false
	}
	return e, true
}

// write answers a view: its body, the fault a *ViewError is, or an
// internal "<what> failed" (logged by httpjson.Fail).
func (a *API) write(w http.ResponseWriter, v any, err error, what string) {
	if err != nil {
		httpjson.Fail(w, a.log, fault.OrInternal(err, what+" failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, v)
}
