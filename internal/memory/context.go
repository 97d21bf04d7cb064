package memory

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
)

// readWorkspaceFile reads a workspace file (rel) up to limit bytes; a
// seeded file that does not exist yet reads as its default, so reading
// never needs to create the workspace.
func readWorkspaceFile(dir, rel string, limit int64) (string, error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	text, _, err := readText(path, limit)
	if err != nil {
		return "", err
	}
	if text == "" {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return defaultContent(rel), nil
		}
	}
	return text, nil
}

// activeEntries are the teacher's active applied entries of target ("":
// any), by rank (then newest first).
func (s *Service) activeEntries(dir, target string, scanFiles int) ([]*Proposal, error) {
	now := s.now()
	recs, err := scan(dir, scanFiles, scanFiles, func(p *Proposal) bool {
		return s.rules.active(p, now) && (target == "" || p.Target == target)
	})
	if err != nil {
		return nil, err
	}
	type ranked struct {
		p    *Proposal
		rank float64
		at   string
	}
	rs := make([]ranked, len(recs))
	for i, p := range recs {
		rs[i] = ranked{p, s.rules.rankScore(p, now), cmp.Or(p.AppliedAt, p.CreatedAt)}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(b.rank, a.rank); c != 0 {
			return c
		}
		return strings.Compare(b.at, a.at)
	})
	out := make([]*Proposal, len(rs))
	for i, r := range rs {
		out[i] = r.p
	}
	return out, nil
}

// inactiveIDs are the entries that are no longer memory: rejected or
// deleted proposals, superseded or expired entries. Their blocks (which
// stay in the Markdown files until deleted) are left out of the context
// and of search.
func (s *Service) inactiveIDs(dir string) map[string]bool {
	now := s.now()
	recs, _ := scan(dir, 1500, 1500, nil)
	out := map[string]bool{}
	for _, p := range recs {
		if p.Status != StatusProposed && p.Status != "" && !s.rules.active(p, now) {
			out[p.ID] = true
		}
	}
	return out
}

// blockIDs gives, for every line of a Markdown memory file, the entry id
// of the block it belongs to ("" outside entry blocks).
func blockIDs(lines []string) []string {
	ids := make([]string, len(lines))
	cur := ""
	for i, l := range lines {
		if strings.HasPrefix(l, "## ") {
			cur = ""
			for _, hl := range lines[i+1:] {
				t := strings.TrimSpace(hl)
				if t == "" || strings.HasPrefix(hl, "## ") {
					break
				}
				if id, ok := strings.CutPrefix(t, "- entry_id: "); ok {
					cur = strings.TrimSpace(id)
					break
				}
			}
		}
		ids[i] = cur
	}
	return ids
}

// withoutBlocks drops the lines of the blocks of the given entry ids.
func withoutBlocks(text string, drop map[string]bool) string {
	if len(drop) == 0 {
		return text
	}
	lines := strings.Split(text, "\n")
	ids := blockIDs(lines)
	kept := lines[:0:0]
	for i, l := range lines {
		if ids[i] == "" || !drop[ids[i]] {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

// PromptContext is the teacher's memory as the teacher prompt's extra
// system context: 【Teacher Profile】 (USER.md, at most 2,000 characters
// and at most half the budget) and 【Long-Term Memory】 — the active
// MEMORY entries, highest rank first, at most 18, one line each
// "- [source|score] text" (text cut at 240 characters), whole lines only;
// without any active entry, MEMORY.md itself with the blocks of expired,
// superseded, rejected or deleted entries left out. The whole is at most
// maxChars characters (0: DefaultPromptChars). Secrets found in old files
// are redacted. "" when there is nothing to say. Each call is recorded as
// a context_injected event (for insights) when the workspace exists.
func (s *Service) PromptContext(teacherID string, maxChars int) string {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return ""
	}
	if maxChars <= 0 {
		maxChars = DefaultPromptChars
	}
	const profileHead, memoryHead = "【Teacher Profile】\n", "【Long-Term Memory】\n"
	var parts []string
	used := 0
	if profile, err := readWorkspaceFile(dir, "USER.md", 64<<10); err == nil {
		profile = strings.TrimSpace(Redact(profile))
		budget := min(profileMaxChars, maxChars/2) - utf8.RuneCountInString(profileHead)
		if profile != "" && budget > 0 {
			if utf8.RuneCountInString(profile) > budget {
				profile = textcut.Head(profile, budget-1) + "…"
			}
			parts = append(parts, profileHead+profile)
			used += utf8.RuneCountInString(parts[0]) + 2
		}
	}
	budget := maxChars - used - utf8.RuneCountInString(memoryHead)
	mem, entries := s.memoryText(dir, budget)
	if mem != "" {
		parts = append(parts, memoryHead+mem)
	}
	out := strings.Join(parts, "\n\n")
	if utf8.RuneCountInString(out) > maxChars {
		out = textcut.Head(out, maxChars-1) + "…"
	}
	if _, err := os.Stat(dir); err == nil {
		_ = s.withTeacher(dir, func() error {
			s.logEvent(dir, "context_injected", map[string]any{"context_chars": utf8.RuneCountInString(out),
				"memory_chars": utf8.RuneCountInString(mem), "memory_entries": entries})
			return nil
		})
	}
	return out
}

// memoryText is the memory part of the context within budget characters,
// and how many entries it holds.
func (s *Service) memoryText(dir string, budget int) (string, int) {
	if budget <= 0 {
		return "", 0
	}
	active, _ := s.activeEntries(dir, TargetMemory, 500)
	if len(active) == 0 {
		text, err := readWorkspaceFile(dir, "MEMORY.md", 256<<10)
		if err != nil {
			return "", 0
		}
		text = strings.TrimSpace(Redact(withoutBlocks(text, s.inactiveIDs(dir))))
		if utf8.RuneCountInString(text) > budget {
			text = textcut.Head(text, budget-1) + "…"
		}
		return text, 0
	}
	now := s.now()
	var lines []string
	used := 0
	for _, p := range active {
		if len(lines) == contextMaxEntries {
			break
		}
		brief := textcut.Head(strings.Join(strings.Fields(Redact(p.Content)), " "), entryBriefChars)
		if brief == "" {
			continue
		}
		line := "- [" + p.Source + "|" + strconv.Itoa(int(s.rules.rankScore(p, now)+0.5)) + "] " + brief
		n := utf8.RuneCountInString(line)
		if used+n > budget {
			break
		}
		lines = append(lines, line)
		used += n + 1
	}
	return strings.Join(lines, "\n"), len(lines)
}

// Match is one search hit.
type Match struct {
	Source  string `json:"source"` // "keyword"
	File    string `json:"file"`   // relative to the workspace
	Line    int    `json:"line"`   // 1-based
	Snippet string `json:"snippet"`
}

// searchFiles are the fixed files search reads, before the daily notes.
var searchFiles = []string{"MEMORY.md", "USER.md", "AGENTS.md", "SOUL.md"}

// Search finds query (case-insensitive) in the teacher's MEMORY.md,
// USER.md, AGENTS.md, SOUL.md and the 14 most recent daily notes; each
// match is the line with its neighbours (at most 400 characters, secrets
// redacted). Lines of expired, superseded or deleted entries are skipped.
// limit is clamped to 1..20 (0: 5). The call is recorded as a search
// event (for insights).
func (s *Service) Search(teacherID, query string, limit int) ([]Match, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return nil, err
	}
	q := strings.TrimSpace(query)
	if q == "" {
		return []Match{}, nil
	}
	if limit == 0 {
		limit = 5
	}
	limit = min(max(limit, 1), 20)
	files := slices.Clone(searchFiles)
	if ents, err := os.ReadDir(filepath.Join(dir, "memory")); err == nil {
		var daily []string
		for _, e := range ents {
			if rel := "memory/" + e.Name(); e.Type().IsRegular() && dailyFileRE.MatchString(rel) {
				daily = append(daily, rel)
			}
		}
		slices.Sort(daily)
		slices.Reverse(daily)
		files = append(files, daily[:min(len(daily), 14)]...)
	}
	inactive := s.inactiveIDs(dir)
	lq := strings.ToLower(q)
	matches := []Match{}
search:
	for _, rel := range files {
		text, err := readWorkspaceFile(dir, rel, 1<<20)
		if err != nil || text == "" {
			continue
		}
		lines := strings.Split(text, "\n")
		ids := blockIDs(lines)
		for i, l := range lines {
			if inactive[ids[i]] || !strings.Contains(strings.ToLower(l), lq) {
				continue
			}
			snippet := strings.TrimSpace(strings.Join(lines[max(0, i-1):min(len(lines), i+2)], "\n"))
			matches = append(matches, Match{Source: "keyword", File: rel, Line: i + 1,
				Snippet: Redact(textcut.Head(snippet, 400))})
			if len(matches) >= limit {
				break search
			}
		}
	}
	_ = s.withTeacher(dir, func() error {
		s.logEvent(dir, "search", map[string]any{"mode": "keyword", "query": textcut.Head(q, 120),
			"hits": len(matches), "raw_hits": len(matches)})
		return nil
	})
	return matches, nil
}

// seededName maps what teacher.memory.get accepts to a seeded file.
func seededName(file string) (string, bool) {
	f := strings.ToUpper(strings.TrimSpace(file))
	f = strings.TrimSuffix(f, ".MD")
	for _, w := range workspaceFiles {
		if strings.TrimSuffix(w.name, ".md") == f {
			return w.name, true
		}
	}
	return "", false
}

// ReadFile reads a workspace file for teacher.memory.get: file is
// AGENTS, SOUL, USER, MEMORY or HEARTBEAT (with or without .md), or DAILY
// for the daily note of date (YYYY-MM-DD; blank or invalid: today);
// anything else reads MEMORY.md. At most maxChars characters (0: 8000;
// at most 50,000) with "…" when cut; secrets redacted. It returns the
// workspace-relative name and the text ("" for a missing daily note).
func (s *Service) ReadFile(teacherID, file, date string, maxChars int) (string, string, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return "", "", err
	}
	if maxChars <= 0 {
		maxChars = 8000
	}
	maxChars = min(maxChars, 50000)
	rel := "MEMORY.md"
	if strings.EqualFold(strings.TrimSpace(file), TargetDaily) {
		day := s.today()
		if t, ok := parseTime(date, s.now().Location()); ok {
			day = t.Format("2006-01-02")
		}
		rel = "memory/" + day + ".md"
	} else if name, ok := seededName(file); ok {
		rel = name
	}
	text, err := readWorkspaceFile(dir, rel, int64(maxChars)*4+4)
	if err != nil {
		return rel, "", err
	}
	return rel, textcut.Short(Redact(text), maxChars), nil
}
