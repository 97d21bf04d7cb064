package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/textcut"
)

// process runs one chat job on a worker. A job that fails in a way it
// cannot record itself (the runner then marks it failed) still ends its
// stream: job.failed with chat_job_failed.
func (s *Service) process(ctx context.Context, id string) (err error) {
	// The job's processing is over: its events, still in memory, go with
	// its record (sealed) or to their file.
	defer s.events.end(id, func(files map[string][]byte) (bool, error) { return s.store.Seal(id, files) })
	defer func() {
		if p := recover(); p != nil {
			s.emit(id, EventJobFailed, map[string]any{"status": StatusFailed, "error": "chat_job_failed",
				"error_detail": textcut.Head(fmt.Sprint(p), 200)})
			panic(p)
		}
		if err != nil && ctx.Err() == nil {
			s.emit(id, EventJobFailed, map[string]any{"status": StatusFailed, "error": "chat_job_failed",
				"error_detail": textcut.Head(err.Error(), 200)})
		}
	}()
	return s.run(ctx, id)
}

func (s *Service) run(ctx context.Context, id string) error {
	// The runner holds the job's claim (jobs.Store.Claim): no other
	// process runs it meanwhile.
	defer s.prewrites.Delete(id)
	defer s.commits.Delete(id)

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
	// A job this process did not start is resumed (after a stop or a
	// crash): it may have run before, even when its record says queued
	// (its "processing" was held in memory). If its reply already reached
	// the history, that effect happened; end the job with it instead of
	// asking the model again and writing it twice.
	if _, fresh := s.fresh.LoadAndDelete(id); !fresh || rec["status"] == StatusProcessing {
		if reply, ok := s.recordedReply(c, strField(rec, "session_id"), id); ok {
			return s.finishRecorded(id, rec, reply)
		}
	}
	// The record says processing, in memory (the record is resident; a
	// resumed job's, written out, is rewritten unsynced): a crash leaves
	// the job queued or processing, and it resumes either way.
	if _, err := s.store.Mark(id, func(r map[string]any) error {
		r["status"], r["step"], r["error"] = StatusProcessing, "agent", ""
		return nil
	}); err != nil {
		return err
	}
	cur := maps.Clone(rec)
	cur["status"], cur["step"], cur["error"] = StatusProcessing, "agent", ""
	s.emit(id, EventJobProcessing, statusPayload(cur))

	started := time.Now()
	session := strField(rec, "session_id")
	extra, warnings := s.attachmentContext(ctx, c, session, req.attachmentIDs())
	if len(req.Attachments) > 0 && ctx.Err() == nil {
		if err := s.durable(id); err != nil {
			return err
		}
		s.store.Update(id, func(r map[string]any) error {
			if m, ok := r["request"].(map[string]any); ok {
				m["attachment_context"] = extra
			}
			if len(warnings) > 0 {
				prev, _ := r["warnings"].([]any)
				for _, w := range warnings {
					prev = append(prev, w)
				}
				r["warnings"] = prev
			}
			return nil
		})
	}
	turn := &turnEvents{s: s, id: id}
	reply, err := s.reply(agent.WithEvents(ctx, turn.sink), c, session, &req, extra)
	streamed := turn.close()
	skill := turn.skill(rec)
	// From here on the job has effects: its record must be durable first.
	if err := s.durable(id); err != nil {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err() // stopped: the job stays processing and resumes at the next start
	case errors.Is(err, ErrNotConfigured):
		return s.fail(id, "llm_not_configured", "no LLM provider is configured", notConfiguredHints)
	case err != nil:
		return s.fail(id, textcut.Head(err.Error(), 200), "", nil)
	}

	markDone := func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["duration_ms"] = time.Since(started).Milliseconds()
		r["reply"], r["role"] = reply, rec["role"]
		maps.Copy(r, skill)
		return nil
	}
	var done map[string]any
	if kind, owner, ok := historyOwner(c, session); ok {
		// The start's write of the user turn runs beside the reply: let it
		// end first, so the turns keep their order.
		written := false // the start's write of the user turn, known to have ended well
		if v, ok := s.prewrites.LoadAndDelete(id); ok {
			pw := v.(*prewriteState)
			<-pw.done
			written = pw.ok
		}
		var records []map[string]any
		now := jobs.Timestamp(s.now())
		if !written && (rec["user_turn_persisted"] != true || !s.hasUserTurn(kind, owner, session, strField(rec, "request_id"))) {
			if text := lastUser(req.Messages); text != "" {
				records = append(records, map[string]any{"ts": now, "role": "user", "content": text, "request_id": rec["request_id"]})
			}
		}
		records = append(records, map[string]any{"ts": now, "role": "assistant", "content": reply, "job_id": id,
			"request_id": rec["request_id"], "agent_id": rec["agent_id"], "skill_id": rec["skill_id"],
			"skill_id_requested": skill["skill_id_requested"], "skill_id_effective": skill["skill_id_effective"]})
		// The job's end is one durable step: the turns appended unsynced,
		// then "done" journaled with them as the job's effect (a crash
		// replays the append if the history lost it), one sync shared with
		// the jobs ending meanwhile. A job resumed without it finds its
		// reply in the history (recordedReply).
		eff := historyEffect{Kind: kind, Owner: owner, Session: session, Records: records, Index: indexExtra(c, &req, s.now())}
		if len(records) == 1 {
			// The user turn is the start's early copy (written unsynced):
			// journaled too, so a crash that lost both brings both back.
			if text := lastUser(req.Messages); text != "" {
				eff.UserTurn = map[string]any{"ts": now, "role": "user", "content": text, "request_id": rec["request_id"]}
			}
		}
		if err := s.cfg.History.AppendAs(history.Volatile, kind, owner, session, records, eff.Index); err != nil {
			return s.fail(id, "history_persist_failed", err.Error(), nil)
		}
		files, _ := s.cfg.History.Files(kind, owner, session)
		effect, err := json.Marshal(eff)
		if err != nil {
			return err
		}
		if done, err = s.store.Finish(id, markDone, effect, files...); err != nil {
			return err
		}
	} else if done, err = s.store.Mark(id, markDone); err != nil {
		return err // nothing but the record to keep: a crash reruns the job
	}
	if c.Role == caller.RoleStudent && c.StudentID != "" && s.cfg.OnStudentReply != nil {
		s.cfg.OnStudentReply(c.StudentID, str(req.AssignmentID), lastUser(req.Messages), reply)
	}
	if c.Role == caller.RoleTeacher {
		defer s.compactTeacher(c.TeacherID, session)
	}
	if !streamed {
		s.replay(id, reply) // not streamed (a replier without events): the text all the same
	}
	s.emit(id, EventAssistantDone, map[string]any{"text": reply})
	s.emit(id, EventJobDone, statusPayload(done))
	// The predecessor's teacher post-step order: memory, then compaction
	// (deferred above), both after done.
	if c.Role == caller.RoleTeacher {
		s.teacherReplied(c.TeacherID, session, lastUser(req.Messages), reply)
	}
	return nil
}

// teacherReplied tells OnTeacherReply about a finished teacher turn. It
// is best-effort: a panic in it is logged, never the turn's failure.
func (s *Service) teacherReplied(teacherID, session, userText, reply string) {
	if s.cfg.OnTeacherReply == nil || teacherID == "" {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("teacher reply hook panicked", "teacher_id", teacherID, "session_id", session, "panic", fmt.Sprint(p))
		}
	}()
	s.cfg.OnTeacherReply(teacherID, session, userText, reply)
}

// fail records a failure the job itself explains; the runner sees success.
func (s *Service) fail(id, code, detail string, hints []string) error {
	if err := s.durable(id); err != nil {
		return err
	}
	rec, err := s.store.Update(id, func(r map[string]any) error {
		r["status"], r["error"] = StatusFailed, code
		if detail != "" {
			r["error_detail"] = textcut.Head(detail, 200)
		}
		if hints != nil {
			r["hints"] = hints
		}
		return nil
	})
	if err == nil {
		s.emit(id, EventJobFailed, statusPayload(rec))
	}
	return err
}

// SyncResult is the body of a POST /chat answer.
type SyncResult struct {
	Reply string `json:"reply"`
	Role  any    `json:"role"`
	// Warnings name the referenced attachments that were not used.
	Warnings []string `json:"warnings,omitempty"`
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
	return fault.Wrap(fault.Upstream, err, map[string]any{"error": "llm_failed", "message": textcut.Head(err.Error(), 200)})
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
	usable, warnings := s.checkAttachments(c, session, req)
	extra, more := s.attachmentContext(ctx, c, session, usable)
	reply, err := s.reply(ctx, c, session, req, extra)
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
		if err := s.cfg.History.AppendAs(history.RecordsDurable, kind, owner, session, records, indexExtra(c, req, now)); err != nil {
			s.log.Error("chat history write failed", "err", err)
		}
	}
	if c.Role == caller.RoleStudent && c.StudentID != "" && s.cfg.OnStudentReply != nil {
		s.cfg.OnStudentReply(c.StudentID, str(req.AssignmentID), lastUser(req.Messages), reply)
	}
	if c.Role == caller.RoleTeacher && c.TeacherID != "" && s.cfg.OnTeacherReply != nil {
		go s.teacherReplied(c.TeacherID, session, lastUser(req.Messages), reply) // not on the way to the reply
	}
	var r any
	if c.Role != "" {
		r = string(c.Role)
	}
	return SyncResult{Reply: reply, Role: r, Warnings: append(warnings, more...)}, nil
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

// historyEffect is a finished job's history append, journaled with its
// end (jobs.Store.Finish) and replayed by restoreHistory.
type historyEffect struct {
	Kind    history.Kind     `json:"kind"`
	Owner   string           `json:"owner"`
	Session string           `json:"session"`
	Records []map[string]any `json:"records"`
	Index   map[string]any   `json:"index,omitempty"`
	// UserTurn is the start's early copy of the user turn, when Records
	// does not hold it: restored only if the session lacks it.
	UserTurn map[string]any `json:"user_turn,omitempty"`
}

// restoreHistory is the job store's effect replay after a crash: the
// job's turns appended again, durably, unless the session has them (the
// reply by job id, the user turn by request id).
func (s *Service) restoreHistory(id string, effect []byte) error {
	var e historyEffect
	if err := json.Unmarshal(effect, &e); err != nil || len(e.Records) == 0 {
		return nil // not ours
	}
	recs, _, err := s.cfg.History.Messages(e.Kind, e.Owner, e.Session, -1, 200, false)
	if err != nil {
		return err
	}
	hasReply, hasUser := false, e.UserTurn == nil
	for _, r := range recs {
		hasReply = hasReply || r["role"] == "assistant" && r["job_id"] == id
		hasUser = hasUser || r["role"] == "user" && r["request_id"] == e.UserTurn["request_id"]
	}
	var missing []map[string]any
	if !hasUser {
		missing = append(missing, e.UserTurn)
	}
	if !hasReply {
		missing = append(missing, e.Records...)
	}
	if len(missing) == 0 {
		return nil
	}
	return s.cfg.History.AppendAs(history.Durable, e.Kind, e.Owner, e.Session, missing, e.Index)
}

// recordedReply is the assistant reply job id wrote to its session's
// history, if it did (among the session's last records: a resumed job's
// reply is at most a few turns old).
func (s *Service) recordedReply(c caller.Principal, session, jobID string) (string, bool) {
	kind, owner, ok := historyOwner(c, session)
	if !ok {
		return "", false
	}
	recs, _, err := s.cfg.History.Messages(kind, owner, session, -1, 200, false)
	if err != nil {
		return "", false
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["role"] == "assistant" && recs[i]["job_id"] == jobID {
			text, _ := recs[i]["content"].(string)
			return text, true
		}
	}
	return "", false
}

// finishRecorded ends a resumed job whose reply is already in the
// history: done, with that reply, and its events.
func (s *Service) finishRecorded(id string, rec map[string]any, reply string) error {
	s.replay(id, reply)
	s.emit(id, EventAssistantDone, map[string]any{"text": reply})
	done, err := s.store.Mark(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["reply"], r["role"] = reply, rec["role"]
		r["resumed_from_history"] = true
		return nil
	})
	if err != nil {
		return err
	}
	s.emit(id, EventJobDone, statusPayload(done))
	return nil
}

// hasUserTurn reports whether the session's history holds the user turn
// of requestID, among its last records (the start writes it just before
// the job runs; a crash in between leaves it out).
func (s *Service) hasUserTurn(kind history.Kind, owner, session, requestID string) bool {
	recs, _, err := s.cfg.History.Messages(kind, owner, session, -1, 50, false)
	if err != nil {
		return true // unknown: do not write the turn twice
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["role"] == "user" && recs[i]["request_id"] == requestID {
			return true
		}
	}
	return false
}
