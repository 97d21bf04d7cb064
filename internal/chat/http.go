package chat

import (
	"errors"
	"net/http"

	"github.com/lectern/lectern/internal/caller"
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
		httpjson.Error(w, http.StatusBadRequest, "messages is required")
		return
	}
	res, err := s.Chat(r.Context(), caller.From(r.Context()), &req)
	switch {
	case err == nil:
		httpjson.Write(w, http.StatusOK, res)
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "2")
		httpjson.Error(w, http.StatusTooManyRequests, BusyReply)
	case errors.Is(err, ErrNotConfigured):
		httpjson.Error(w, http.StatusServiceUnavailable, map[string]any{"error": "llm_not_configured",
			"message": "LLM 未配置，暂时无法对话。(no LLM provider is configured)", "hints": notConfiguredHints})
	case r.Context().Err() != nil:
		// The client went away; nothing to answer.
	default:
		s.log.Error("chat reply failed", "err", err)
		httpjson.Error(w, http.StatusBadGateway, map[string]any{"error": "llm_failed", "message": truncate(err.Error(), 200)})
	}
}

// HandleStart serves POST /chat/start.
func (s *Service) HandleStart(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	if req.RequestID == nil {
		httpjson.Error(w, http.StatusBadRequest, "request_id is required")
		return
	}
	if req.Messages == nil {
		httpjson.Error(w, http.StatusBadRequest, "messages is required")
		return
	}
	res, err := s.Start(caller.From(r.Context()), &req)
	var se *startError
	switch {
	case err == nil:
		httpjson.Write(w, http.StatusOK, res)
	case errors.As(err, &se):
		if se.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "2")
		}
		httpjson.Error(w, se.status, se.detail)
	default:
		s.log.Error("chat start failed", "err", err)
		httpjson.Error(w, http.StatusInternalServerError, "chat start failed")
	}
}

// HandleStatus serves GET /chat/status?job_id=.
func (s *Service) HandleStatus(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("job_id")
	if id == "" {
		httpjson.Error(w, http.StatusBadRequest, "job_id is required")
		return
	}
	rec, err := s.Status(caller.From(r.Context()), id)
	switch {
	case errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID):
		httpjson.Error(w, http.StatusNotFound, "job not found")
	case errors.Is(err, ErrForbiddenJob):
		httpjson.Error(w, http.StatusForbidden, ErrForbiddenJob.Error())
	case err != nil:
		s.log.Error("chat status failed", "err", err)
		httpjson.Error(w, http.StatusInternalServerError, "chat status failed")
	default:
		httpjson.Write(w, http.StatusOK, rec)
	}
}
