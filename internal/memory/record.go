package memory

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Targets: the workspace file an applied proposal is written to.
const (
	TargetMemory    = "MEMORY"
	TargetDaily     = "DAILY"
	TargetUser      = "USER"
	TargetAgents    = "AGENTS"
	TargetSoul      = "SOUL"
	TargetHeartbeat = "HEARTBEAT"
)

// allTargets lists the valid targets.
var allTargets = []string{TargetMemory, TargetDaily, TargetUser, TargetAgents, TargetSoul, TargetHeartbeat}

// Sources: who proposed.
const (
	SourceManual     = "manual"      // the teacher, through the agent's tool
	SourceAutoIntent = "auto_intent" // a "remember / from now on" turn
	SourceAutoInfer  = "auto_infer"  // a preference repeated over recent turns
	SourceAutoFlush  = "auto_flush"  // a session excerpt near compaction
)

// Statuses.
const (
	StatusProposed = "proposed"
	StatusApplied  = "applied"
	StatusRejected = "rejected"
	StatusDeleted  = "deleted"
)

// Proposal is one record proposals/<id>.json, in the predecessor's
// fields. Fields Lectern does not know (mem0, ...) are kept as they are
// when the record is rewritten.
type Proposal struct {
	ID        string `json:"proposal_id"`
	TeacherID string `json:"teacher_id"`
	Target    string `json:"target"`
	Title     string `json:"title"`
	Content   string `json:"content"`
	Source    string `json:"source"`
	// PriorityScore is nil for a record without one (it is computed).
	PriorityScore *int           `json:"priority_score"`
	TTLDays       *int           `json:"ttl_days"`
	Status        string         `json:"status"`
	CreatedAt     string         `json:"created_at"`
	ExpiresAt     string         `json:"expires_at,omitempty"`
	Meta          map[string]any `json:"meta,omitempty"`
	DedupeKey     string         `json:"dedupe_key,omitempty"`
	Provenance    map[string]any `json:"provenance,omitempty"`
	AppliedAt     string         `json:"applied_at,omitempty"`
	// AppliedTo is the file the entry was written to, relative to the
	// teacher's workspace ("MEMORY.md", "memory/2026-02-08.md"); the
	// predecessor stored an absolute server path.
	AppliedTo         string   `json:"applied_to,omitempty"`
	Supersedes        []string `json:"supersedes,omitempty"`
	SupersededBy      string   `json:"superseded_by,omitempty"`
	SupersededAt      string   `json:"superseded_at,omitempty"`
	RejectedAt        string   `json:"rejected_at,omitempty"`
	RejectReason      string   `json:"reject_reason,omitempty"`
	DeletedAt         string   `json:"deleted_at,omitempty"`
	DeletedFromStatus string   `json:"deleted_from_status,omitempty"`
	DeletedFromPath   string   `json:"deleted_from_path,omitempty"`

	extra map[string]json.RawMessage
}

// field is one known key: how to read it leniently and write it.
type field struct {
	key   string
	read  func(p *Proposal, raw json.RawMessage)
	write func(p *Proposal) (any, bool) // value, present
}

func strField(key string, get func(p *Proposal) *string, always bool) field {
	return field{key: key,
		read: func(p *Proposal, raw json.RawMessage) { *get(p) = rawString(raw) },
		write: func(p *Proposal) (any, bool) {
			v := *get(p)
			return v, always || v != ""
		}}
}

func intField(key string, get func(p *Proposal) **int) field {
	return field{key: key,
		read: func(p *Proposal, raw json.RawMessage) {
			if n, ok := rawInt(raw); ok {
				*get(p) = &n
			}
		},
		write: func(p *Proposal) (any, bool) {
			v := *get(p)
			if v == nil {
				return nil, false
			}
			return *v, true
		}}
}

func mapField(key string, get func(p *Proposal) *map[string]any) field {
	return field{key: key,
		read: func(p *Proposal, raw json.RawMessage) {
			var m map[string]any
			if json.Unmarshal(raw, &m) == nil {
				*get(p) = m
			}
		},
		write: func(p *Proposal) (any, bool) {
			v := *get(p)
			return v, len(v) > 0
		}}
}

// fields are the known keys in the order they are written.
var fields = []field{
	strField("proposal_id", func(p *Proposal) *string { return &p.ID }, true),
	strField("teacher_id", func(p *Proposal) *string { return &p.TeacherID }, true),
	strField("target", func(p *Proposal) *string { return &p.Target }, true),
	strField("title", func(p *Proposal) *string { return &p.Title }, true),
	strField("content", func(p *Proposal) *string { return &p.Content }, true),
	strField("source", func(p *Proposal) *string { return &p.Source }, true),
	intField("priority_score", func(p *Proposal) **int { return &p.PriorityScore }),
	intField("ttl_days", func(p *Proposal) **int { return &p.TTLDays }),
	strField("status", func(p *Proposal) *string { return &p.Status }, true),
	strField("created_at", func(p *Proposal) *string { return &p.CreatedAt }, true),
	strField("expires_at", func(p *Proposal) *string { return &p.ExpiresAt }, false),
	mapField("meta", func(p *Proposal) *map[string]any { return &p.Meta }),
	strField("dedupe_key", func(p *Proposal) *string { return &p.DedupeKey }, false),
	mapField("provenance", func(p *Proposal) *map[string]any { return &p.Provenance }),
	strField("applied_at", func(p *Proposal) *string { return &p.AppliedAt }, false),
	strField("applied_to", func(p *Proposal) *string { return &p.AppliedTo }, false),
	{key: "supersedes",
		read: func(p *Proposal, raw json.RawMessage) {
			var l []any
			if json.Unmarshal(raw, &l) == nil {
				p.Supersedes = nil
				for _, x := range l {
					if s := scalarString(x); s != "" {
						p.Supersedes = append(p.Supersedes, s)
					}
				}
			}
		},
		write: func(p *Proposal) (any, bool) { return p.Supersedes, len(p.Supersedes) > 0 }},
	strField("superseded_by", func(p *Proposal) *string { return &p.SupersededBy }, false),
	strField("superseded_at", func(p *Proposal) *string { return &p.SupersededAt }, false),
	strField("rejected_at", func(p *Proposal) *string { return &p.RejectedAt }, false),
	strField("reject_reason", func(p *Proposal) *string { return &p.RejectReason }, false),
	strField("deleted_at", func(p *Proposal) *string { return &p.DeletedAt }, false),
	strField("deleted_from_status", func(p *Proposal) *string { return &p.DeletedFromStatus }, false),
	strField("deleted_from_path", func(p *Proposal) *string { return &p.DeletedFromPath }, false),
}

// UnmarshalJSON reads a record leniently, as the predecessor's readers
// did: a field of an unexpected type is taken as empty (numbers and
// strings convert), and unknown fields are kept. Status, target and
// source are normalised.
func (p *Proposal) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*p = Proposal{}
	for _, f := range fields {
		if raw, ok := m[f.key]; ok {
			if !isNull(raw) {
				f.read(p, raw)
			}
			delete(m, f.key)
		}
	}
	if len(m) > 0 {
		p.extra = m
	}
	p.Status = strings.ToLower(strings.TrimSpace(p.Status))
	p.Target = normTarget(p.Target)
	p.Source = normSource(p.Source)
	return nil
}

// MarshalJSON writes the known fields in the predecessor's order, then
// the kept unknown ones (sorted).
func (p Proposal) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	n := 0
	put := func(key string, v any) error {
		data, err := marshalNoEscape(v)
		if err != nil {
			return err
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		k, _ := marshalNoEscape(key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(data)
		return nil
	}
	for _, f := range fields {
		if v, ok := f.write(&p); ok {
			if err := put(f.key, v); err != nil {
				return nil, err
			}
		}
	}
	keys := make([]string, 0, len(p.extra))
	for k := range p.extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := put(k, p.extra[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Extra returns an unknown field kept from disk (nil if absent).
func (p *Proposal) Extra(key string) json.RawMessage { return p.extra[key] }

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// rawString reads a JSON scalar as a string ("" for objects and arrays).
func rawString(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return strings.TrimSpace(scalarString(v))
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func rawInt(raw json.RawMessage) (int, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	switch x := v.(type) {
	case float64:
		return clampInt(x), true
	case string:
		if f, ok := parseNumber(x); ok {
			return clampInt(f), true
		}
	}
	return 0, false
}

func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func clampInt(f float64) int {
	return int(math.Max(math.Min(math.Round(f), math.MaxInt32), math.MinInt32))
}

// normTarget upper-cases a target; blank is MEMORY.
func normTarget(t string) string {
	t = strings.ToUpper(strings.TrimSpace(t))
	t = strings.TrimSuffix(t, ".MD")
	if t == "" {
		return TargetMemory
	}
	return t
}

// normSource lower-cases a source; blank is manual.
func normSource(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return SourceManual
	}
	return s
}

// validTarget reports whether t (normalised) is a target.
func validTarget(t string) bool { return slices.Contains(allTargets, t) }

// provenanceOf is the HEAD provenance of a record without one:
// {layer:"memory_proposal", source, origin} plus side_effect_source,
// upstream, session_id and trigger from meta.
func provenanceOf(p *Proposal) map[string]any {
	src := normSource(p.Source)
	origin := "manual_input"
	switch {
	case src == SourceAutoFlush:
		origin = "session_summary"
	case src == SourceAutoIntent || src == SourceAutoInfer:
		origin = "session_context"
	case strings.HasPrefix(src, "auto_"):
		origin = "workflow_auto_proposal"
	}
	out := map[string]any{"layer": "memory_proposal", "source": src, "origin": origin}
	for _, k := range []string{"side_effect_source", "upstream", "session_id", "trigger"} {
		if v, ok := p.Meta[k]; ok && v != nil && v != "" {
			out[k] = v
		}
	}
	return out
}
