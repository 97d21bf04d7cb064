package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// API holds the history endpoints' handlers; the tenant's routes.go maps
// them. Whose history it is comes only from caller.From(r.Context()): the
// tenant's authenticate middleware (which also reads the owner a
// view-state PUT body names).
type API struct {
	store *Store
	log   *slog.Logger
}

// NewAPI returns the handlers over s.
func NewAPI(s *Store, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{store: s, log: log}
}

// StudentSessions serves GET /student/history/sessions?student_id&limit&cursor.
func (a *API) StudentSessions(w http.ResponseWriter, r *http.Request) {
	sid := strings.TrimSpace(caller.From(r.Context()).StudentID)
	if sid == "" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "student_id is required"))
		return
	}
	a.sessions(w, r, Student, "student_id", sid)
}

// TeacherSessions serves GET /teacher/history/sessions?teacher_id&limit&cursor.
func (a *API) TeacherSessions(w http.ResponseWriter, r *http.Request) {
	a.sessions(w, r, Teacher, "teacher_id", a.teacherID(r))
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request, kind Kind, idKey, owner string) {
	limit, ok := httpjson.IntQuery(w, r, "limit", sessionsDefaultLimit)
	if !ok {
		return
	}
	cursor, ok := httpjson.IntQuery(w, r, "cursor", 0)
	if !ok {
		return
	}
	page, next, total, err := a.store.sessionsRaw(kind, owner, limit, cursor)
	if err != nil {
		a.fail(w, "read sessions", err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, idKey: owner, "sessions": page, "next_cursor": next, "total": total,
	})
}

// StudentSession serves GET /student/history/session?student_id&session_id&cursor&limit&direction.
func (a *API) StudentSession(w http.ResponseWriter, r *http.Request) {
	sid := strings.TrimSpace(caller.From(r.Context()).StudentID)
	session := strings.TrimSpace(r.URL.Query().Get("session_id"))
	if sid == "" || session == "" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "student_id and session_id are required"))
		return
	}
	a.session(w, r, Student, "student_id", sid, session)
}

// TeacherSession serves GET /teacher/history/session?teacher_id&session_id&cursor&limit&direction.
func (a *API) TeacherSession(w http.ResponseWriter, r *http.Request) {
	tid := a.teacherID(r)
	session := strings.TrimSpace(r.URL.Query().Get("session_id"))
	if session == "" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "session_id is required"))
		return
	}
	a.session(w, r, Teacher, "teacher_id", tid, session)
}

func (a *API) session(w http.ResponseWriter, r *http.Request, kind Kind, idKey, owner, session string) {
	cursor, ok := httpjson.IntQuery(w, r, "cursor", -1)
	if !ok {
		return
	}
	limit, ok := httpjson.IntQuery(w, r, "limit", messagesDefaultLimit)
	if !ok {
		return
	}
	limit = max(limit, 1) // an explicit 0 is 1, as before; the store reads 0 as its default
	// Anything but "forward" is backward, as before.
	forward := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("direction"))) == "forward"
	msgs, next, err := a.store.messagesRaw(kind, owner, session, cursor, limit, forward)
	if err != nil {
		a.fail(w, "read session", err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, idKey: owner, "session_id": session, "messages": msgs, "next_cursor": next,
	})
}

// StudentViewState serves GET /student/session/view-state?student_id.
func (a *API) StudentViewState(w http.ResponseWriter, r *http.Request) {
	sid := strings.TrimSpace(caller.From(r.Context()).StudentID)
	if sid == "" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "student_id is required"))
		return
	}
	a.getViewState(w, Student, "student_id", sid)
}

// TeacherViewState serves GET /teacher/session/view-state?teacher_id.
func (a *API) TeacherViewState(w http.ResponseWriter, r *http.Request) {
	a.getViewState(w, Teacher, "teacher_id", a.teacherID(r))
}

func (a *API) getViewState(w http.ResponseWriter, kind Kind, idKey, owner string) {
	v, err := a.store.viewState(kind, owner)
	if err != nil {
		a.fail(w, "read view state", err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, idKey: owner, "state": v})
}

// viewStateBody is the PUT body of both view-state endpoints.
type viewStateBody struct {
	StudentID *string         `json:"student_id"`
	TeacherID *string         `json:"teacher_id"`
	State     json.RawMessage `json:"state"`
}

// PutStudentViewState serves PUT /student/session/view-state with body
// {student_id, state}.
func (a *API) PutStudentViewState(w http.ResponseWriter, r *http.Request) {
	c, state, ok := a.viewStateRequest(w, r)
	if !ok {
		return
	}
	sid := strings.TrimSpace(c.StudentID)
	if sid == "" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "student_id is required"))
		return
	}
	a.putViewState(w, Student, "student_id", sid, state)
}

// PutTeacherViewState serves PUT /teacher/session/view-state with body
// {teacher_id?, state}.
func (a *API) PutTeacherViewState(w http.ResponseWriter, r *http.Request) {
	c, state, ok := a.viewStateRequest(w, r)
	if !ok {
		return
	}
	a.putViewState(w, Teacher, "teacher_id", teacherOf(c), state)
}

// viewStateRequest decodes a PUT body; its owner is the principal's.
func (a *API) viewStateRequest(w http.ResponseWriter, r *http.Request) (caller.Principal, json.RawMessage, bool) {
	var body viewStateBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return caller.Principal{}, nil, false
	}
	state := bytes.TrimSpace(body.State)
	if len(state) == 0 || string(state) == "null" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "state is required"))
		return caller.Principal{}, nil, false
	}
	if state[0] != '{' {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "state must be an object"))
		return caller.Principal{}, nil, false
	}
	return caller.From(r.Context()), state, true
}

func (a *API) putViewState(w http.ResponseWriter, kind Kind, idKey, owner string, state json.RawMessage) {
	v, stale, err := a.store.putViewState(kind, owner, state)
	if err != nil {
		a.fail(w, "save view state", err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, idKey: owner, "state": v, "stale": stale})
}

// teacherID is the principal's teacher.
func (a *API) teacherID(r *http.Request) string { return teacherOf(caller.From(r.Context())) }

// teacherOf is p's teacher: every resolved principal has one; a request
// that bypassed the middleware gets the predecessor's default teacher.
func teacherOf(p caller.Principal) string {
	if p.TeacherID != "" {
		return p.TeacherID
	}
	return "teacher"
}

func trimPtr(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}

func (a *API) fail(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, ErrInvalidID) {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Invalid, err, err.Error()))
		return
	}
	httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, err, what+" failed"))
}
