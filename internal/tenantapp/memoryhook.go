package tenantapp

import (
	"log/slog"

	"github.com/lectern/lectern/internal/chat"
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

// observe proposes a memory from one finished teacher turn, and flushes
// the session's last turns into the day's memory when its compaction is
// near.
func (o *memoryObserver) observe(teacherID, session, userText, reply string) {
	recs, _, err := o.history.Messages(history.Teacher, teacherID, session, -1, observeRecords, false)
	if err != nil {
		o.log.Warn("automatic teacher memory: session history unreadable", "teacher_id", teacherID, "session_id", session, "err", err)
	}
	o.report(teacherID, session)(o.memory.ObserveTurn(teacherID, session, userText, reply, recentUserTurns(recs, userText)))
	if session == "main" && len(dialog(recs)) >= chat.CompactMax-memory.FlushMargin {
		o.flush(teacherID, session)
	}
}

// report logs what an automatic proposal did.
func (o *memoryObserver) report(teacherID, session string) func(memory.AutoResult, error) {
	return func(res memory.AutoResult, err error) {
		switch {
		case err != nil:
			o.log.Error("automatic teacher memory failed", "teacher_id", teacherID, "session_id", session, "err", err)
		case res.Created:
			o.log.Info("automatic teacher memory proposed", "teacher_id", teacherID, "session_id", session,
				"proposal_id", res.Proposal.ID, "source", res.Proposal.Source, "target", res.Proposal.Target)
		}
	}
}

// flush is the memory flush before compaction, once per compaction cycle:
// the session's index item counts the cycles (compaction_runs) and keeps
// the last flushed one (memory_flush_cycle, the predecessor's field).
func (o *memoryObserver) flush(teacherID, session string) {
	err := o.history.Rewrite(history.Teacher, teacherID, session, func(recs []map[string]any, item map[string]any) ([]map[string]any, map[string]any, error) {
		runs, _ := item["compaction_runs"].(float64)
		if flushed, ok := item["memory_flush_cycle"].(float64); ok && flushed >= runs {
			return nil, nil, nil // this cycle's flush is done
		}
		d := dialog(recs)
		if len(d) < chat.CompactMax-memory.FlushMargin {
			return nil, nil, nil
		}
		turns := make([]memory.Turn, 0, len(d))
		for _, r := range d {
			text, _ := r["content"].(string)
			role, _ := r["role"].(string)
			turns = append(turns, memory.Turn{Role: role, Content: text})
		}
		res, err := o.memory.FlushSession(teacherID, session, turns, int(runs))
		o.report(teacherID, session)(res, err)
		if err != nil {
			return nil, nil, nil // tried again at the next turn
		}
		return recs, map[string]any{"memory_flush_cycle": int(runs)}, nil
	})
	if err != nil {
		o.log.Warn("teacher memory flush: session not updated", "teacher_id", teacherID, "session_id", session, "err", err)
	}
}

// dialog is the session's user and assistant messages, summaries and
// other synthetic records left out (what compaction counts).
func dialog(recs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if role := r["role"]; (role == "user" || role == "assistant") && r["synthetic"] != true {
			out = append(out, r)
		}
	}
	return out
}

// recentUserTurns are the session's last user messages, oldest first,
// ending with this turn's (the chat has just recorded it; if that write
// failed it is added here, as ObserveTurn counts it among the repeats).
func recentUserTurns(recs []map[string]any, userText string) []string {
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
