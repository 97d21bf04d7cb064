package chat

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
)

// process runs one chat job on a worker.
func (s *Service) process(ctx context.Context, id string) error {
	dir, err := s.store.JobDir(id)
	if err != nil {
		return err
	}
	release, ok, err := flock(filepath.Join(dir, "claim.lock"))
	if err != nil || !ok {
		return err // !ok: another process is running this job right now
	}
	defer release()

	rec, err := s.store.Load(id)
	if err != nil {
		return err
	}
	switch rec["status"] {
	case StatusDone, StatusFailed, StatusCancelled:
		return nil
	}
	var req Request
	raw, _ := json.Marshal(rec["request"])
	if err := json.Unmarshal(raw, &req); err != nil {
		return s.fail(id, "invalid_request", err.Error(), nil)
	}
	if len(req.Messages) == 0 {
		return s.fail(id, "missing_messages", "", nil)
	}
	c := principalOf(rec, s.cfg.Resolver)
	if _, err := s.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["error"] = StatusProcessing, "agent", ""
		return nil
	}); err != nil {
		return err
	}

	started := time.Now()
	reply, err := s.cfg.Replier.Reply(ctx, c, strField(rec, "session_id"), req.Messages, str(req.AgentID))
	switch {
	case ctx.Err() != nil:
		return ctx.Err() // stopped: the job stays processing and resumes at the next start
	case errors.Is(err, ErrNotConfigured):
		return s.fail(id, "llm_not_configured", "no LLM provider is configured", notConfiguredHints)
	case err != nil:
		return s.fail(id, truncate(err.Error(), 200), "", nil)
	}

	session := strField(rec, "session_id")
	if kind, owner, ok := historyOwner(c, session); ok {
		var records []map[string]any
		now := jobs.Timestamp(s.now())
		if rec["user_turn_persisted"] != true {
			if text := lastUser(req.Messages); text != "" {
				records = append(records, map[string]any{"ts": now, "role": "user", "content": text, "request_id": rec["request_id"]})
			}
		}
		records = append(records, map[string]any{"ts": now, "role": "assistant", "content": reply, "job_id": id,
			"request_id": rec["request_id"], "agent_id": rec["agent_id"], "skill_id": rec["skill_id"],
			"skill_id_requested": rec["skill_id"], "skill_id_effective": rec["skill_id"]})
		if err := s.cfg.History.Append(kind, owner, session, records, indexExtra(c, &req, s.now())); err != nil {
			return s.fail(id, "history_persist_failed", err.Error(), nil)
		}
	}
	if c.Role == caller.RoleStudent && c.StudentID != "" && s.cfg.OnStudentReply != nil {
		s.cfg.OnStudentReply(c.StudentID, str(req.AssignmentID), lastUser(req.Messages), reply)
	}
	if c.Role == caller.RoleTeacher {
		defer s.compactTeacher(c.TeacherID, session)
	}
	_, err = s.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["duration_ms"] = time.Since(started).Milliseconds()
		r["reply"], r["role"] = reply, rec["role"]
		r["skill_id_requested"], r["skill_id_effective"] = rec["skill_id"], rec["skill_id"]
		return nil
	})
	return err
}

// fail records a failure the job itself explains; the runner sees success.
func (s *Service) fail(id, code, detail string, hints []string) error {
	_, err := s.store.Update(id, func(r map[string]any) error {
		r["status"], r["error"] = StatusFailed, code
		if detail != "" {
			r["error_detail"] = truncate(detail, 200)
		}
		if hints != nil {
			r["hints"] = hints
		}
		return nil
	})
	return err
}

// SyncResult is the body of a POST /chat answer.
type SyncResult struct {
	Reply string `json:"reply"`
	Role  any    `json:"role"`
}

// errBusy: a reply for this student is already being generated.
var errBusy = &fault.Error{Code: fault.TooMany, Detail: BusyReply, RetryAfter: busyRetry}

// replyFailed is how a synchronous reply's failure is answered: no LLM
// (503, with hints), or the LLM failed (502, logged).
func (s *Service) replyFailed(err error) error {
	if errors.Is(err, ErrNotConfigured) {
		return fault.Wrap(fault.Unavailable, err, map[string]any{"error": "llm_not_configured",
			"message": "LLM 未配置，暂时无法对话。(no LLM provider is configured)", "hints": notConfiguredHints})
	}
	s.log.Error("chat reply failed", "err", err)
	return fault.Wrap(fault.Upstream, err, map[string]any{"error": "llm_failed", "message": truncate(err.Error(), 200)})
}

// Chat answers synchronously (POST /chat) and writes the turn to history.
func (s *Service) Chat(ctx context.Context, p caller.Principal, req *Request) (SyncResult, error) {
	c, err := runAs(p, req)
	if err != nil {
		return SyncResult{}, err
	}
	if c.Role == caller.RoleStudent && c.StudentID != "" {
		if !s.enter(c.StudentID) {
			return SyncResult{}, errBusy
		}
		defer s.leave(c.StudentID)
	}
	now := s.now()
	session := sessionFor(c, req, now)
	reply, err := s.cfg.Replier.Reply(ctx, c, session, req.Messages, str(req.AgentID))
	if err != nil {
		if ctx.Err() != nil {
			return SyncResult{}, err
		}
		return SyncResult{}, s.replyFailed(err)
	}
	if kind, owner, ok := historyOwner(c, session); ok {
		ts := jobs.Timestamp(now)
		var records []map[string]any
		if text := lastUser(req.Messages); text != "" {
			records = append(records, map[string]any{"ts": ts, "role": "user", "content": text, "source": "chat"})
		}
		records = append(records, map[string]any{"ts": ts, "role": "assistant", "content": reply, "source": "chat", "agent_id": str(req.AgentID)})
		if err := s.cfg.History.Append(kind, owner, session, records, indexExtra(c, req, now)); err != nil {
			s.log.Error("chat history write failed", "err", err)
		}
	}
	if c.Role == caller.RoleStudent && c.StudentID != "" && s.cfg.OnStudentReply != nil {
		s.cfg.OnStudentReply(c.StudentID, str(req.AssignmentID), lastUser(req.Messages), reply)
	}
	var r any
	if c.Role != "" {
		r = string(c.Role)
	}
	return SyncResult{Reply: reply, Role: r}, nil
}

// enter admits one synchronous reply per student, and none while one of
// the student's jobs is running.
func (s *Service) enter(studentID string) bool {
	group := laneFor(caller.Principal{Role: caller.RoleStudent, StudentID: studentID}, "", "").group
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[studentID] > 0 || s.lanes.groupBusy(group) {
		return false
	}
	s.inflight[studentID]++
	return true
}

func (s *Service) leave(studentID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[studentID]--; s.inflight[studentID] <= 0 {
		delete(s.inflight, studentID)
	}
}

// principalRecord is the principal a job runs as, as its record keeps it
// (the job runs as the same principal after a restart).
func principalRecord(p caller.Principal) map[string]any {
	return map[string]any{"role": string(p.Role), "teacher_id": p.TeacherID, "student_id": p.StudentID, "via": string(p.Via)}
}

// principalOf is the principal job rec runs as: its "principal", or for a
// record written before it (or by the predecessor) its role and ids, the
// teacher defaulting to the tenant's.
func principalOf(rec map[string]any, res caller.Resolver) caller.Principal {
	if m, ok := rec["principal"].(map[string]any); ok {
		s := func(k string) string { v, _ := m[k].(string); return v }
		return caller.Principal{Tenant: res.Tenant, Role: caller.Role(s("role")), TeacherID: s("teacher_id"),
			StudentID: s("student_id"), Via: caller.Source(s("via"))}
	}
	p := caller.Principal{Tenant: res.Tenant, Role: caller.Role(strField(rec, "role")), TeacherID: strField(rec, "teacher_id"),
		StudentID: strField(rec, "student_id"), Via: caller.Claimed}
	if p.Role == "unknown" {
		p.Role = ""
	}
	if p.Role == caller.RoleTeacher && p.TeacherID == "" {
		p.TeacherID = res.Resolve(caller.Claims{}).TeacherID
	}
	return p
}
