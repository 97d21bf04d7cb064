package chat

import (
	"fmt"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/textcut"
)

// Teacher session compaction (the predecessor's defaults): after a teacher
// job on "main", once the dialog exceeds CompactMax messages (exported for
// the teacher-memory flush that runs shortly before), everything
// but the last compactKeep is replaced by one summary record, built without
// an LLM. At most once per compactEvery per teacher session.
const (
	CompactMax       = 160
	compactKeep      = 39 // min(KEEP_TAIL 40, CHAT_MAX_MESSAGES_TEACHER-1)
	compactEvery     = 60 * time.Second
	compactLines     = 14
	compactLineRunes = 180
	compactSource    = 12000
	compactPrevious  = 1800
)

// compactTeacher runs after a teacher job.
func (s *Service) compactTeacher(teacherID, session string) {
	if session != "main" {
		return
	}
	key := teacherID + "\x00" + session
	s.mu.Lock()
	last := s.compacted[key]
	if time.Since(last) < compactEvery {
		s.mu.Unlock()
		return
	}
	s.compacted[key] = time.Now()
	s.mu.Unlock()
	err := s.cfg.History.Rewrite(history.Teacher, teacherID, session, func(recs []map[string]any, item map[string]any) ([]map[string]any, map[string]any, error) {
		var dialog []map[string]any
		previous := ""
		for _, r := range recs {
			if r["kind"] == "session_summary" {
				previous, _ = r["content"].(string)
				continue
			}
			if role := r["role"]; (role == "user" || role == "assistant") && r["synthetic"] != true {
				dialog = append(dialog, r)
			}
		}
		if len(dialog) <= CompactMax {
			return nil, nil, nil // nothing to do
		}
		head, tail := dialog[:len(dialog)-compactKeep], dialog[len(dialog)-compactKeep:]
		summary := map[string]any{"ts": jobs.Timestamp(s.now()), "role": "assistant", "content": summarize(previous, head),
			"kind": "session_summary", "synthetic": true, "compacted_messages": len(head), "keep_tail": compactKeep}
		runs, _ := item["compaction_runs"].(float64)
		done, _ := item["compacted_messages"].(float64)
		return append([]map[string]any{summary}, tail...), map[string]any{
			"compacted_at": jobs.Timestamp(s.now()), "compaction_runs": int(runs) + 1, "compacted_messages": int(done) + len(head),
		}, nil
	})
	if err != nil {
		s.log.Warn("teacher session compaction failed", "teacher_id", teacherID, "err", err)
	}
}

// summarize is the predecessor's summary: the previous summary, then up to
// 14 lines "老师:/助理: <content>" from the compacted head.
func summarize(previous string, head []map[string]any) string {
	var b strings.Builder
	b.WriteString("【会话压缩摘要】\n")
	if previous != "" {
		prev := strings.TrimPrefix(previous, "【会话压缩摘要】\n")
		fmt.Fprintf(&b, "## 更早的摘要\n%s\n", textcut.Short(prev, compactPrevious))
	}
	b.WriteString("## 本次压缩的对话要点\n")
	var transcript []string
	total := 0
	for _, r := range head {
		who := "助理"
		if r["role"] == "user" {
			who = "老师"
		}
		text, _ := r["content"].(string)
		line := who + ": " + textcut.Short(strings.Join(strings.Fields(text), " "), compactLineRunes)
		if total += len([]rune(line)); total > compactSource {
			break
		}
		transcript = append(transcript, line)
	}
	if len(transcript) > compactLines { // keep the start and the most recent lines
		transcript = append(transcript[:compactLines/2], transcript[len(transcript)-compactLines/2:]...)
	}
	b.WriteString(strings.Join(transcript, "\n"))
	return b.String()
}
