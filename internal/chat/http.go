package chat

import (
	"errors"
	"net/http"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
)

// HandleChat serves POST /chat.
func (s *Service) HandleChat(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	if req.Messages == nil {
		httpjson.Fail(w, s.log, errNoMessages)
		return
	}
	res, err := s.Chat(r.Context(), caller.From(r.Context()), &req)
	switch {
	case err == nil:
		httpjson.Write(w, http.StatusOK, res)
	case r.Context().Err() != nil:
		// The client went away; nothing to answer.
	default:
		httpjson.Fail(w, s.log, err)
	}
}

var (
	errNoMessages  = fault.New(fault.Invalid, "messages is required")
	errNoRequestID = fault.New(fault.Invalid, "request_id is required")
	errNoJobID     = fault.New(fault.Invalid, "job_id is required")
)

// HandleStart serves POST /chat/start.
func (s *Service) HandleStart(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	switch {
	case req.RequestID == nil:
		httpjson.Fail(w, s.log, errNoRequestID)
		return
	case req.Messages == nil:
		httpjson.Fail(w, s.log, errNoMessages)
		return
	}
	res, err := s.Start(caller.From(r.Context()), &req)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "chat start failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// HandleStatus serves GET /chat/status?job_id=.
func (s *Service) HandleStatus(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("job_id")
	if id == "" {
		httpjson.Fail(w, s.log, errNoJobID)
		return
	}
	rec, err := s.Status(caller.From(r.Context()), id)
	switch {
	case errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID):
		httpjson.Fail(w, s.log, fault.Wrap(fault.NotFound, err, "job not found"))
	case err != nil:
		httpjson.Fail(w, s.log, fault.OrInternal(err, "chat status failed"))
	default:
		httpjson.Write(w, http.StatusOK, rec)
	}
}
