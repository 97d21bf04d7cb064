package memory

import (
	"net/http"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// The handlers of /teacher/memory/*; the tenant's routes map them (rule
// policy.Teacher). Whose memory it is comes only from the principal
// (caller.From): the authenticate middleware has already bound a
// teacher_id the query or body names to the caller's scope.

// teacherOf is the principal's teacher; a request that bypassed the
// middleware gets the predecessor's default teacher.
func teacherOf(p caller.Principal) string {
	if p.TeacherID != "" {
		return p.TeacherID
	}
	return "teacher"
}

// ServeProposals serves GET /teacher/memory/proposals?teacher_id&status&limit=20:
// {ok, teacher_id, proposals:[record…]}, most recently changed first,
// deleted ones hidden; a status other than proposed, applied or rejected
// is 400 "invalid_status".
func (s *Service) ServeProposals(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	limit, ok := httpjson.IntQuery(w, r, "limit", 20)
	if !ok {
		return
	}
	list, err := s.List(tid, r.URL.Query().Get("status"), limit)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "list memory proposals failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "teacher_id": WorkspaceName(tid), "proposals": list})
}

// ServeInsights serves GET /teacher/memory/insights?teacher_id&days=14.
func (s *Service) ServeInsights(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	days, ok := httpjson.IntQuery(w, r, "days", 14)
	if !ok {
		return
	}
	out, err := s.Insights(tid, days)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "memory insights failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// reviewBody is the review request: {teacher_id?, approve=true}.
type reviewBody struct {
	TeacherID *string `json:"teacher_id"`
	Approve   *bool   `json:"approve"`
}

// ServeReview serves POST /teacher/memory/proposals/{proposal_id}/review
// with body {teacher_id?, approve=true} (an empty body approves):
// applied {ok, proposal_id, status:"applied", applied_to, provenance,
// supersedes?}, rejected {ok, proposal_id, status:"rejected"}, decided
// before {ok, proposal_id, status, detail:"already processed"}; 404
// "proposal not found", 400 "empty content" or "sensitive_content_blocked".
func (s *Service) ServeReview(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	var body reviewBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if err := httpjson.Decode(w, r, &body); err != nil {
			httpjson.DecodeFailed(w, err)
			return
		}
	}
	approve := body.Approve == nil || *body.Approve
	res, err := s.Review(tid, r.PathValue("proposal_id"), approve)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "review memory proposal failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, res.Body())
}

// ServeDelete serves DELETE /teacher/memory/proposals/{proposal_id}?teacher_id:
// {ok, proposal_id, status:"deleted"} (detail "already_deleted" the second
// time); an applied entry is removed from its memory file. 404 "proposal
// not found", 400 "proposal_id_required".
func (s *Service) ServeDelete(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	res, err := s.Delete(tid, r.PathValue("proposal_id"))
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "delete memory proposal failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, res.Body())
}
