package assignments

import (
	"log/slog"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// API holds the assignment read endpoints, the requirements endpoints,
// the source download and the lessons listing; the tenant's routes.go
// maps them:
//
//	GET  /assignments                            List
//	GET  /assignment/{assignment_id}             Get
//	GET  /assignment/{assignment_id}/requirements Requirements
//	POST /assignment/requirements                SaveRequirements
//	GET  /assignment/{assignment_id}/download    Download (?file=)
//	GET  /assignment/today                       Today (?student_id=&date=)
//	GET  /lessons                                Lessons
//	GET  /teacher/assignment/progress            Progress (?assignment_id=&include_students=)
//	GET  /teacher/assignments/progress           ProgressByDate (?date=)
type API struct {
	svc *Service
	log *slog.Logger
}

// NewAPI returns the handlers over svc.
func NewAPI(svc *Service, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{svc: svc, log: log}
}

// List serves GET /assignments.
func (a *API) List(w http.ResponseWriter, r *http.Request) {
	list, err := a.svc.List()
	a.write(w, map[string]any{"assignments": list}, err, "list assignments")
}

// Get serves GET /assignment/{assignment_id}.
// A student reads only an assignment meant for them (Service.MayRead).
func (a *API) Get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("assignment_id")
	if err := a.svc.MayRead(caller.From(r.Context()), id); err != nil {
		a.write(w, nil, err, "read assignment")
		return
	}
	d, err := a.svc.Get(id)
	a.write(w, d, err, "read assignment")
}

// Requirements serves GET /assignment/{assignment_id}/requirements.
func (a *API) Requirements(w http.ResponseWriter, r *http.Request) {
	v, err := a.svc.Requirements(r.PathValue("assignment_id"))
	a.write(w, v, err, "read requirements")
}

// SaveRequirements serves POST /assignment/requirements.
func (a *API) SaveRequirements(w http.ResponseWriter, r *http.Request) {
	var req SaveRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	v, err := a.svc.SaveRequirements(req)
	a.write(w, v, err, "save requirements")
}

// Download serves GET /assignment/{assignment_id}/download?file=: a file
// of the assignment's source/ folder, its Content-Type from its extension.
// A student downloads only from an assignment meant for them.
func (a *API) Download(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("assignment_id")
	if err := a.svc.MayRead(caller.From(r.Context()), id); err != nil {
		a.write(w, nil, err, "read assignment source")
		return
	}
	f, fi, err := a.svc.SourceFile(id, r.URL.Query().Get("file"))
	if err != nil {
		a.write(w, nil, err, "read assignment source")
		return
	}
	defer f.Close()
	ctype := mime.TypeByExtension(filepath.Ext(fi.Name()))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox") // an uploaded HTML or SVG runs no script in our origin
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// Lessons serves GET /lessons.
// Today serves GET /assignment/today?student_id=&date=: the student is
// the request's principal's (its own with a student's token).
func (a *API) Today(w http.ResponseWriter, r *http.Request) {
	// Without an auto-generator wired (see TodayWith), auto_generate
	// makes nothing: the answer is null when no assignment is found.
	a.TodayWith(nil)(w, r)
}

// Progress serves GET /teacher/assignment/progress?assignment_id=&include_students=:
// include_students is true unless it is a false value (false, 0, no, off).
func (a *API) Progress(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	include := true
	switch strings.ToLower(strings.TrimSpace(q.Get("include_students"))) {
	case "false", "0", "no", "off", "n", "f":
		include = false
	}
	p, err := a.svc.Progress(q.Get("assignment_id"), include, time.Now())
	a.write(w, p, err, "read assignment progress")
}

// ProgressByDate serves GET /teacher/assignments/progress?date=.
func (a *API) ProgressByDate(w http.ResponseWriter, r *http.Request) {
	p, err := a.svc.ProgressByDate(r.URL.Query().Get("date"), time.Now())
	a.write(w, p, err, "read assignments progress")
}

func (a *API) Lessons(w http.ResponseWriter, r *http.Request) {
	list, err := a.svc.Lessons()
	a.write(w, map[string]any{"lessons": list}, err, "list lessons")
}

// write answers a domain result: its body, its fault, or an internal
// "<what> failed" (logged by httpjson.Fail).
func (a *API) write(w http.ResponseWriter, v any, err error, what string) {
	if err != nil {
		httpjson.Fail(w, a.log, fault.OrInternal(err, what+" failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, v)
}
