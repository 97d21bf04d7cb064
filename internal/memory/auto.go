package memory

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
)

// The predecessor's auto-memory settings (TEACHER_MEMORY_AUTO_*).
const (
	autoMinChars      = 12 // AUTO_MIN_CONTENT_CHARS
	autoMaxPerDay     = 8  // AUTO_MAX_PROPOSALS_PER_DAY
	autoContentChars  = 1200
	inferMinChars     = 16 // AUTO_INFER_MIN_CHARS
	inferMinRepeats   = 2  // AUTO_INFER_MIN_REPEATS
	inferLookback     = 24 // AUTO_INFER_LOOKBACK_TURNS
	inferMinPriority  = 58 // AUTO_INFER_MIN_PRIORITY
	turnPreviewChars  = 160
	recentTurnMaxRune = 400

	// The flush before compaction (TEACHER_MEMORY_FLUSH_*).
	FlushMargin    = 24   // FLUSH_MARGIN_MESSAGES: how near the compaction threshold
	flushTurns     = 12   // the excerpt's last turns
	flushMaxChars  = 2400 // FLUSH_MAX_SOURCE_CHARS
	flushLineRunes = 240
)

// AutoResult is what ObserveTurn did.
type AutoResult struct {
	// Created is true when a proposal was stored.
	Created bool
	// Reason says why not: too_short, no_intent, daily_quota_reached,
	// low_priority, duplicate, sensitive.
	Reason   string
	Proposal *Proposal
}

// ObserveTurn is the teacher post-step of a chat turn: it proposes a
// memory entry from the teacher's message when it states a durable
// intent ("记住…", "以后都…": source auto_intent, target DAILY when it
// also has a temporary hint, else MEMORY), or repeats a stable preference
// (auto_infer: a formatting or workload preference loosely matching at
// least two of recentUserTurns, with priority ≥ 58). recentUserTurns are
// the session's latest user messages, this one included (the predecessor
// read them from the history it had just written); only the last 24
// count. At most 8 auto proposals a day per teacher; duplicates and text
// holding secrets are skipped. The proposal waits for review unless
// auto-apply is on. Errors are only those of storing it.
func (s *Service) ObserveTurn(teacherID, sessionID, userText, assistantText string, recentUserTurns []string) (AutoResult, error) {
	text := strings.TrimSpace(userText)
	if utf8.RuneCountInString(normText(text)) < autoMinChars {
		return AutoResult{Reason: "too_short"}, nil
	}
	if sessionID = strings.TrimSpace(sessionID); sessionID == "" {
		sessionID = "main"
	}
	meta := map[string]any{"session_id": sessionID,
		"user_text_preview": textcut.Head(text, turnPreviewChars), "assistant_text_preview": Redact(textcut.Head(assistantText, turnPreviewChars))}
	content := textcut.Head(text, autoContentChars)
	owner := WorkspaceName(teacherID)
	var in Input
	switch {
	case matchAny(durableIntent, text):
		target, title := TargetMemory, "自动记忆：老师长期偏好"
		if matchAny(temporaryHint, text) {
			target, title = TargetDaily, "自动记录：老师临时偏好"
		}
		meta["trigger"] = "explicit_intent"
		in = Input{Target: target, Title: title, Content: content, Source: SourceAutoIntent, Meta: meta,
			DedupeKey: stableHash(SourceAutoIntent, owner, target, normText(content))}
	default:
		hits, ok := inferCandidate(text, recentUserTurns)
		if !ok {
			return AutoResult{Reason: "no_intent"}, nil
		}
		meta["trigger"], meta["similar_hits"] = "implicit_repeated_preference", hits
		in = Input{Target: TargetMemory, Title: "自动记忆：老师默认偏好", Content: content, Source: SourceAutoInfer,
			Meta: meta, DedupeKey: stableHash(SourceAutoInfer, owner, TargetMemory, normText(content))}
		if score := PriorityScore(in.Target, in.Title, in.Content, in.Source, meta); score < inferMinPriority {
			return AutoResult{Reason: "low_priority"}, nil
		}
	}
	if Sensitive(in.Title + "\n" + in.Content) {
		return AutoResult{Reason: "sensitive"}, nil
	}
	return s.proposeAuto(teacherID, in)
}

// proposeAuto stores an automatic proposal within the daily quota.
func (s *Service) proposeAuto(teacherID string, in Input) (AutoResult, error) {
	today := s.today()
	res, reason, err := s.propose(teacherID, in, func(recent []*Proposal) string {
		count := 0
		for _, p := range recent {
			if strings.HasPrefix(p.CreatedAt, today) && strings.HasPrefix(p.Source, "auto_") &&
				(p.Status == StatusProposed || p.Status == StatusApplied) {
				count++
			}
		}
		if count >= autoMaxPerDay {
			return "daily_quota_reached"
		}
		return ""
	})
	switch {
	case err != nil:
		return AutoResult{}, err
	case reason == "duplicate":
		return AutoResult{Reason: reason, Proposal: &res.Proposal}, nil
	case reason != "":
		return AutoResult{Reason: reason}, nil
	}
	return AutoResult{Created: true, Proposal: &res.Proposal}, nil
}

// inferCandidate reports whether text is a stable preference repeated in
// the recent turns, and how many of them match it.
func inferCandidate(text string, recent []string) (int, bool) {
	if utf8.RuneCountInString(normText(text)) < inferMinChars || matchAny(inferBlock, text) ||
		matchAny(temporaryHint, text) || !matchAny(stablePref, text) {
		return 0, false
	}
	hits := 0
	for _, prior := range recent[max(0, len(recent)-inferLookback):] {
		if looseMatch(text, textcut.Head(prior, recentTurnMaxRune)) {
			hits++
		}
	}
	return hits, hits >= inferMinRepeats
}

// Turn is one message of a dialog: role "user" or "assistant".
type Turn struct {
	Role    string
	Content string
}

// FlushSession is the predecessor's auto_flush: when a teacher session is
// about to be compacted (its caller checks it is within FlushMargin
// messages of the threshold, once per compaction cycle), the last 12
// turns go into a DAILY proposal, so what the summary drops is still in
// the day's memory after review. cycle numbers the compaction cycle (the
// session's compaction runs), which makes the proposal's dedupe key: one
// per cycle. Quota, secret filter and review rules are ObserveTurn's.
func (s *Service) FlushSession(teacherID, sessionID string, dialog []Turn, cycle int) (AutoResult, error) {
	if sessionID = strings.TrimSpace(sessionID); sessionID == "" {
		sessionID = "main"
	}
	dialog = dialog[max(0, len(dialog)-flushTurns):]
	var b strings.Builder
	for _, t := range dialog {
		text := strings.Join(strings.Fields(t.Content), " ")
		if text == "" {
			continue
		}
		who := "老师"
		if t.Role == "assistant" {
			who = "助理"
		}
		line := who + ": " + textcut.Head(text, flushLineRunes) + "\n"
		if utf8.RuneCountInString(b.String())+utf8.RuneCountInString(line) > flushMaxChars {
			break
		}
		b.WriteString(line)
	}
	content := strings.TrimSpace(Redact(b.String()))
	if utf8.RuneCountInString(normText(content)) < autoMinChars {
		return AutoResult{Reason: "too_short"}, nil
	}
	owner := WorkspaceName(teacherID)
	in := Input{Target: TargetDaily, Title: "自动记录：会话要点（压缩前）", Content: content, Source: SourceAutoFlush,
		Meta:      map[string]any{"session_id": sessionID, "trigger": "pre_compaction_flush", "flush_cycle": cycle, "turns": len(dialog)},
		DedupeKey: stableHash(SourceAutoFlush, owner, sessionID, strconv.Itoa(cycle))}
	if Sensitive(in.Title + "\n" + in.Content) {
		return AutoResult{Reason: "sensitive"}, nil
	}
	return s.proposeAuto(teacherID, in)
}
