package memory

import (
	"cmp"
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lectern/lectern/internal/textcut"
)

// Insights is the body of GET /teacher/memory/insights.
type Insights struct {
	OK         bool        `json:"ok"`
	TeacherID  string      `json:"teacher_id"`
	WindowDays int         `json:"window_days"`
	Summary    Summary     `json:"summary"`
	Retrieval  Retrieval   `json:"retrieval"`
	TopQueries []QueryStat `json:"top_queries"`
	TopActive  []Active    `json:"top_active"`
}

// Summary counts proposals. The flow counts (applied_total,
// rejected_total, by_source, by_target, rejected_reasons) are of the
// proposals created inside the window (undated ones count); the state
// counts (active_total, expired_total, superseded_total,
// avg_priority_active) describe the memory as it stands.
type Summary struct {
	AppliedTotal      int            `json:"applied_total"`
	RejectedTotal     int            `json:"rejected_total"`
	ActiveTotal       int            `json:"active_total"`
	ExpiredTotal      int            `json:"expired_total"`
	SupersededTotal   int            `json:"superseded_total"`
	AvgPriorityActive float64        `json:"avg_priority_active"`
	BySource          map[string]int `json:"by_source"`
	ByTarget          map[string]int `json:"by_target"`
	RejectedReasons   map[string]int `json:"rejected_reasons"`
}

// Retrieval counts the search and context events inside the window.
type Retrieval struct {
	SearchCalls         int            `json:"search_calls"`
	SearchHitCalls      int            `json:"search_hit_calls"`
	SearchHitRate       float64        `json:"search_hit_rate"`
	SearchModeBreakdown map[string]int `json:"search_mode_breakdown"`
	ContextInjected     int            `json:"context_injected"`
}

// QueryStat is one searched query.
type QueryStat struct {
	Query    string  `json:"query"`
	Calls    int     `json:"calls"`
	HitCalls int     `json:"hit_calls"`
	HitRate  float64 `json:"hit_rate"`
}

// Active is one active memory entry.
type Active struct {
	ProposalID    string  `json:"proposal_id"`
	Target        string  `json:"target"`
	Source        string  `json:"source"`
	Title         string  `json:"title"`
	Content       string  `json:"content"`
	PriorityScore int     `json:"priority_score"`
	RankScore     float64 `json:"rank_score"`
	AgeDays       int     `json:"age_days"`
	ExpiresAt     string  `json:"expires_at"`
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// Insights aggregates the teacher's 1,500 most recent proposals and last
// 5,000 telemetry events over the last days (clamped to 1..90; 0 is 14).
// Deleted proposals are not counted. It reads only.
func (s *Service) Insights(teacherID string, days int) (Insights, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return Insights{}, err
	}
	if days == 0 {
		days = 14
	}
	days = min(max(days, 1), 90)
	now := s.now()
	start := now.AddDate(0, 0, -days)
	inWindow := func(ts string) bool {
		t, ok := parseTime(ts, now.Location())
		return !ok || !t.Before(start)
	}
	out := Insights{OK: true, TeacherID: filepath.Base(dir), WindowDays: days,
		Summary:   Summary{BySource: map[string]int{}, ByTarget: map[string]int{}, RejectedReasons: map[string]int{}},
		Retrieval: Retrieval{SearchModeBreakdown: map[string]int{}}, TopQueries: []QueryStat{}, TopActive: []Active{}}

	recs, err := scan(dir, 1500, 1500, func(p *Proposal) bool { return p.Status != StatusDeleted })
	if err != nil {
		return Insights{}, err
	}
	sum := &out.Summary
	prioritySum := 0
	for _, p := range recs {
		counted := inWindow(p.CreatedAt)
		if counted {
			sum.BySource[p.Source]++
			sum.ByTarget[p.Target]++
		}
		switch p.Status {
		case StatusApplied:
			if counted {
				sum.AppliedTotal++
			}
			switch {
			case p.SupersededBy != "":
				sum.SupersededTotal++
			case s.rules.expired(p, now):
				sum.ExpiredTotal++
			default:
				sum.ActiveTotal++
				pr := priority(p)
				prioritySum += pr
				out.TopActive = append(out.TopActive, Active{ProposalID: p.ID, Target: p.Target, Source: p.Source,
					Title: textcut.Head(Redact(p.Title), 60), Content: textcut.Head(Redact(p.Content), 180), PriorityScore: pr,
					RankScore: round(s.rules.rankScore(p, now), 2), AgeDays: ageDays(p, now), ExpiresAt: p.ExpiresAt})
			}
		case StatusRejected:
			if counted {
				sum.RejectedTotal++
				sum.RejectedReasons[cmp.Or(p.RejectReason, "unknown")]++
			}
		}
	}
	if sum.ActiveTotal > 0 {
		sum.AvgPriorityActive = round(float64(prioritySum)/float64(sum.ActiveTotal), 2)
	}
	slices.SortStableFunc(out.TopActive, func(a, b Active) int {
		return cmp.Or(cmp.Compare(b.RankScore, a.RankScore), cmp.Compare(b.PriorityScore, a.PriorityScore))
	})
	out.TopActive = out.TopActive[:min(len(out.TopActive), 8)]

	ret := &out.Retrieval
	stats := map[string]*QueryStat{}
	var order []string
	for _, ev := range s.events(dir, 5000) {
		ts, ok := parseTime(scalarString(ev["ts"]), now.Location())
		if !ok || ts.Before(start) {
			continue
		}
		switch strings.TrimSpace(scalarString(ev["event"])) {
		case "context_injected":
			ret.ContextInjected++
		case "search":
			ret.SearchCalls++
			ret.SearchModeBreakdown[cmp.Or(strings.ToLower(strings.TrimSpace(scalarString(ev["mode"]))), "unknown")]++
			hits, _ := intOf(ev["hits"])
			if hits > 0 {
				ret.SearchHitCalls++
			}
			q := textcut.Head(strings.TrimSpace(scalarString(ev["query"])), 120)
			if q == "" {
				continue
			}
			st := stats[q]
			if st == nil {
				st = &QueryStat{Query: q}
				stats[q] = st
				order = append(order, q)
			}
			st.Calls++
			if hits > 0 {
				st.HitCalls++
			}
		}
	}
	if ret.SearchCalls > 0 {
		ret.SearchHitRate = round(float64(ret.SearchHitCalls)/float64(ret.SearchCalls), 4)
	}
	for _, q := range order {
		st := stats[q]
		st.HitRate = round(float64(st.HitCalls)/float64(max(1, st.Calls)), 4)
		out.TopQueries = append(out.TopQueries, *st)
	}
	slices.SortStableFunc(out.TopQueries, func(a, b QueryStat) int {
		return cmp.Or(cmp.Compare(b.HitCalls, a.HitCalls), cmp.Compare(b.Calls, a.Calls))
	})
	out.TopQueries = out.TopQueries[:min(len(out.TopQueries), 10)]
	return out, nil
}

// events are the last n telemetry events (unreadable lines skipped).
func (s *Service) events(dir string, n int) []map[string]any {
	text, _, err := readText(filepath.Join(dir, "telemetry", "memory_events.jsonl"), 2*maxTelemetryBytes)
	if err != nil {
		return nil
	}
	lines := strings.Split(text, "\n")
	var out []map[string]any
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) == nil && ev != nil {
			out = append(out, ev)
		}
	}
	slices.Reverse(out)
	return out
}
