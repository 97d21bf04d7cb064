package tenantapp

import (
	"log/slog"

	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/memory"
)

// Bounds of the recent user turns handed to memory.ObserveTurn: the
// predecessor's AUTO_INFER_LOOKBACK_TURNS (24) user messages, found among
// the session's last 200 records (a page of history.Store.Messages), which
// hold them in any ordinary dialog of user and assistant turns.
const (
	observeUserTurns = 24
	observeRecords   = 200
)

// memoryObserver is the teacher post-step of a chat turn
// (chat.Config.OnTeacherReply): it proposes a teacher memory from the
// turn when the teacher states a durable intent or repeats a stable
// preference (memory.Service.ObserveTurn). It is best-effort: the turn is
// already answered and recorded, so failures are logged, never returned.
type memoryObserver struct {
	memory  *memory.Service
	history *history.Store
	log     *slog.Logger
}

// observe proposes a memory from one finished teacher turn.
func (o *memoryObserver) observe(teacherID, session, userText, reply string) {
	res, err := o.memory.ObserveTurn(teacherID, session, userText, reply, o.recentUserTurns(teacherID, session, userText))
	switch {
	case err != nil:
		o.log.Error("automatic teacher memory failed", "teacher_id", teacherID, "session_id", session, "err", err)
	case res.Created:
		o.log.Info("automatic teacher memory proposed", "teacher_id", teacherID, "session_id", session,
			"proposal_id", res.Proposal.ID, "source", res.Proposal.Source, "target", res.Proposal.Target)
	}
}

// recentUserTurns are the session's last user messages, oldest first,
// ending with this turn's (the chat has just recorded it; if that write
// failed it is added here, as ObserveTurn counts it among the repeats).
func (o *memoryObserver) recentUserTurns(teacherID, session, userText string) []string {
	recs, _, err := o.history.Messages(history.Teacher, teacherID, session, -1, observeRecords, false)
	if err != nil {
		o.log.Warn("automatic teacher memory: session history unreadable", "teacher_id", teacherID, "session_id", session, "err", err)
	}
	var turns []string
	for _, r := range recs {
		text, _ := r["content"].(string)
		if r["role"] == "user" && r["synthetic"] != true && text != "" {
			turns = append(turns, text)
		}
	}
	if userText != "" && (len(turns) == 0 || turns[len(turns)-1] != userText) {
		turns = append(turns, userText)
	}
	return turns[max(0, len(turns)-observeUserTurns):]
}
