package attachments

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxPerMessage bounds the attachments one chat message may reference.
const MaxPerMessage = MaxFiles

// Warning reasons of a referenced attachment that is not used
// ("<id>:<reason>"), beside codeInvalid, codeNotFound and codeForbidden.
const (
	reasonNotReady  = "attachment_not_ready"
	reasonTooMany   = "too_many_attachments"
	reasonTruncated = "attachment_context_truncated"
)

// Normalize lowercases, trims and deduplicates referenced ids, in order.
func Normalize(ids []string) []string {
	var out []string
	for _, id := range ids {
		if id = strings.ToLower(strings.TrimSpace(id)); id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Check sorts the attachments a message references (Normalize them
// first): the ones o may use (ready, or still being read), and a warning
// "<id>:<reason>" for each of the others — invalid_attachment_id,
// not_found, forbidden_attachment, a failed one's error code, or
// too_many_attachments past MaxPerMessage.
func (s *Service) Check(o Owner, ids []string) (usable, warnings []string) {
	for _, id := range ids {
		if len(usable) >= MaxPerMessage {
			warnings = append(warnings, id+":"+reasonTooMany)
			continue
		}
		m, code := s.lookup(o, id)
		switch {
		case code != "":
			warnings = append(warnings, id+":"+code)
		case m.Status == StatusFailed:
			warnings = append(warnings, id+":"+orText(m.ErrorCode, CodeExtractFailed))
		default:
			usable = append(usable, id)
		}
	}
	return usable, warnings
}

// Context is the text a chat turn gets of the attachments it references:
// for each ready one of o, "[附件 #<n>: <file_name>]" and its text, joined
// by blank lines and cut at MaxContextChars (+ "…", with the warning
// attachment_context_truncated). An attachment still being read is waited
// for, up to wait (or until ctx ends); those that are not ready then, or
// are not o's, give warnings as Check does.
func (s *Service) Context(ctx context.Context, o Owner, ids []string, wait time.Duration) (string, []string) {
	usable, warnings := s.Check(o, Normalize(ids))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var blocks []string
	for _, id := range usable {
		m, code := s.waitReady(wctx, o, id)
		switch {
		case code != "":
			warnings = append(warnings, id+":"+code)
			continue
		case m.Status == StatusFailed:
			warnings = append(warnings, id+":"+orText(m.ErrorCode, CodeExtractFailed))
			continue
		case m.Status != StatusReady:
			warnings = append(warnings, id+":"+reasonNotReady)
			continue
		}
		text, err := s.text(m)
		if err != nil {
			warnings = append(warnings, id+":"+CodeExtractFailed)
			continue
		}
		blocks = append(blocks, fmt.Sprintf("[附件 #%d: %s]\n%s", len(blocks)+1, m.FileName, strings.TrimSpace(text)))
	}
	out := strings.Join(blocks, "\n\n")
	if utf8.RuneCountInString(out) > MaxContextChars {
		out = string([]rune(out)[:MaxContextChars]) + "…"
		warnings = append(warnings, reasonTruncated)
	}
	return out, warnings
}

// waitReady returns attachment id once it is no longer processing, or as
// it is when ctx ends.
func (s *Service) waitReady(ctx context.Context, o Owner, id string) (*Meta, string) {
	for {
		changed := s.changes() // before the look, so no change is missed
		m, code := s.lookup(o, id)
		if code != "" || m.Status != StatusProcessing {
			return m, code
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return m, ""
		}
	}
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
