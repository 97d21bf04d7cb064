package modelconfig

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// The routing view. The predecessor's older teacher app edits a routing
// DSL (channels, rules, proposals, versions, rollback) at
// /teacher/llm-routing*; its later version replaced it with the model
// config. Lectern keeps one truth, the model config, and shows it through
// the DSL: one channel "conversation" and one rule "teacher_conversation"
// when the teacher chose a model other than the default, an empty,
// disabled config otherwise. A proposed config is translated back into the
// conversation model; whatever it says that one model per teacher cannot
// mean (per-skill or per-kind models, student rules, fallback channels,
// per-channel temperature) is refused with the reason.

// Bounds of the routing view.
const (
	maxProposals      = 200
	maxProposalBytes  = 256 << 10
	maxCandidateBytes = 64 << 10
	maxNoteRunes      = 500
)

// The view's names.
const (
	viewChannelID = "conversation"
	viewRuleID    = "teacher_conversation"
	viewTitle     = "教师对话模型"
)

// conversationKinds are the calls a teacher's conversation model serves
// (agent rounds, the final answer without tools, skill rounds); a kind
// with an agent id (chat.agent.<id>) counts as its base.
var conversationKinds = []string{"chat.agent", "chat.agent_no_tools", "chat.skill"}

func conversationKind(k string) (string, bool) {
	if slices.Contains(conversationKinds, k) {
		return k, true
	}
	for _, base := range []string{"chat.agent_no_tools", "chat.agent"} {
		if strings.HasPrefix(k, base+".") {
			return base, true
		}
	}
	return k, false
}

var (
	routingIDRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,80}$`)
	kindRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{1,120}$`)
	proposalIDRE = regexp.MustCompile(`^proposal_[0-9a-f]{12}$`)
)

// routingConfig and its parts are the predecessor's routing config shape.
type routingConfig struct {
	SchemaVersion int              `json:"schema_version"`
	Enabled       bool             `json:"enabled"`
	Version       int              `json:"version"`
	UpdatedAt     string           `json:"updated_at"`
	UpdatedBy     string           `json:"updated_by"`
	Channels      []routingChannel `json:"channels"`
	Rules         []routingRule    `json:"rules"`
}

type routingChannel struct {
	ID               string        `json:"id"`
	Title            string        `json:"title"`
	Target           ModelEntry    `json:"target"`
	Params           routingParams `json:"params"`
	FallbackChannels []string      `json:"fallback_channels"`
	Capabilities     capabilities  `json:"capabilities"`
}

type routingParams struct {
	Temperature *float64 `json:"temperature"`
	MaxTokens   *int     `json:"max_tokens"`
}

type capabilities struct {
	Tools bool `json:"tools"`
	JSON  bool `json:"json"`
}

type routingRule struct {
	ID       string       `json:"id"`
	Priority int          `json:"priority"`
	Enabled  bool         `json:"enabled"`
	Match    routingMatch `json:"match"`
	Route    routingRoute `json:"route"`
}

type routingMatch struct {
	Roles      []string `json:"roles"`
	Skills     []string `json:"skills"`
	Kinds      []string `json:"kinds"`
	NeedsTools *bool    `json:"needs_tools"`
	NeedsJSON  *bool    `json:"needs_json"`
}

type routingRoute struct {
	ChannelID string `json:"channel_id"`
}

// view shows the teacher's conversation model as a routing config.
func view(st *settings) routingConfig {
	rc := routingConfig{SchemaVersion: 1, Version: st.cfg.Version, UpdatedAt: st.cfg.UpdatedAt, UpdatedBy: st.cfg.UpdatedBy,
		Channels: []routingChannel{}, Rules: []routingRule{}}
	conv := st.cfg.Models[PurposeConversation]
	if !st.exists || conv == st.cat.defaultEntry(PurposeConversation) {
		return rc
	}
	rc.Enabled = true
	rc.Channels = []routingChannel{{ID: viewChannelID, Title: viewTitle, Target: conv, FallbackChannels: []string{},
		Capabilities: capabilities{Tools: true, JSON: true}}}
	rc.Rules = []routingRule{{ID: viewRuleID, Priority: 100, Enabled: true,
		Match: routingMatch{Roles: []string{"teacher"}, Skills: []string{}, Kinds: slices.Clone(conversationKinds)},
		Route: routingRoute{ChannelID: viewChannelID}}}
	return rc
}

// The input forms, as lenient as the predecessor's parser where the types
// allow.
type routingInput struct {
	Enabled  *bool             `json:"enabled"`
	Channels []json.RawMessage `json:"channels"`
	Rules    []json.RawMessage `json:"rules"`
}

type channelInput struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Target *struct {
		Provider string `json:"provider"`
		Mode     string `json:"mode"`
		Model    string `json:"model"`
	} `json:"target"`
	Params *struct {
		Temperature *float64 `json:"temperature"`
		MaxTokens   *float64 `json:"max_tokens"`
	} `json:"params"`
	FallbackChannels []string `json:"fallback_channels"`
	Capabilities     *struct {
		Tools *bool `json:"tools"`
		JSON  *bool `json:"json"`
	} `json:"capabilities"`
}

type ruleInput struct {
	ID       string   `json:"id"`
	Priority *float64 `json:"priority"`
	Enabled  *bool    `json:"enabled"`
	Match    *struct {
		Roles      []string `json:"roles"`
		Skills     []string `json:"skills"`
		Kinds      []string `json:"kinds"`
		NeedsTools *bool    `json:"needs_tools"`
		NeedsJSON  *bool    `json:"needs_json"`
		WithTools  *bool    `json:"with_tools"`
		WithJSON   *bool    `json:"with_json"`
	} `json:"match"`
	Route *struct {
		ChannelID string `json:"channel_id"`
	} `json:"route"`
}

// translation is a proposed routing config read as a conversation model.
type translation struct {
	entry         ModelEntry    // the conversation model it means
	normalized    routingConfig // the config as understood
	errors        []string
	warnings      []string
	inexpressible bool // some errors say what the view cannot express
}

func (t *translation) fail(format string, args ...any) {
	t.errors = append(t.errors, fmt.Sprintf(format, args...))
}
func (t *translation) warn(format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf(format, args...))
}
func (t *translation) cannot(format string, args ...any) {
	t.inexpressible = true
	t.fail("not expressible in Lectern: "+format, args...)
}

func isObject(raw json.RawMessage) bool {
	b := bytes.TrimSpace(raw)
	return len(b) > 0 && b[0] == '{'
}

// translate validates a routing config as the predecessor did and reads
// it as the teacher's conversation model.
func translate(st *settings, raw json.RawMessage) *translation {
	t := &translation{normalized: routingConfig{SchemaVersion: 1, Channels: []routingChannel{}, Rules: []routingRule{}}}
	var in routingInput
	if !isObject(raw) {
		t.fail("config must be a JSON object")
		return t
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		t.fail("config: %v", err)
		return t
	}
	t.normalized.Enabled = in.Enabled == nil || *in.Enabled

	byID := map[string]*routingChannel{}
	for i, rawc := range in.Channels {
		if !isObject(rawc) {
			t.warn("channels[%d] ignored: not an object", i)
			continue
		}
		var c channelInput
		if err := json.Unmarshal(rawc, &c); err != nil {
			t.fail("channels[%d]: %v", i, err)
			continue
		}
		id := strings.TrimSpace(c.ID)
		if !routingIDRE.MatchString(id) {
			t.fail("channels[%d].id invalid", i)
			continue
		}
		if byID[id] != nil {
			t.fail("channel id duplicated: %s", id)
			continue
		}
		if c.Target == nil || strings.TrimSpace(c.Target.Provider) == "" {
			t.fail("channel %s: target.provider required", id)
			continue
		}
		if strings.TrimSpace(c.Target.Model) == "" {
			t.fail("channel %s: target.model required", id)
			continue
		}
		target, msg := st.check(PurposeConversation, ModelEntry{Provider: c.Target.Provider, Mode: c.Target.Mode, Model: c.Target.Model})
		if msg != "" {
			t.fail("channel %s: %s", id, strings.TrimPrefix(msg, "models.conversation"))
			continue
		}
		ch := routingChannel{ID: id, Title: strings.TrimSpace(c.Title), Target: target, FallbackChannels: []string{},
			Capabilities: capabilities{Tools: true, JSON: true}}
		if ch.Title == "" {
			ch.Title = id
		}
		if c.Params != nil {
			if tp := c.Params.Temperature; tp != nil {
				if *tp < 0 || *tp > 2 {
					t.fail("channel %s: params.temperature must be in [0,2]", id)
					continue
				}
				ch.Params.Temperature = tp
			}
			if mt := c.Params.MaxTokens; mt != nil {
				if *mt <= 0 || *mt > 1<<30 {
					t.fail("channel %s: params.max_tokens must be > 0", id)
					continue
				}
				n := int(*mt)
				ch.Params.MaxTokens = &n
			}
		}
		if c.Capabilities != nil {
			ch.Capabilities.Tools = c.Capabilities.Tools == nil || *c.Capabilities.Tools
			ch.Capabilities.JSON = c.Capabilities.JSON == nil || *c.Capabilities.JSON
		}
		for _, fb := range c.FallbackChannels {
			if fb = strings.TrimSpace(fb); routingIDRE.MatchString(fb) {
				ch.FallbackChannels = append(ch.FallbackChannels, fb)
			} else {
				t.warn("channel %s: ignored invalid fallback channel id: %s", id, fb)
			}
		}
		byID[id] = &ch
	}
	// Fallbacks: unknown ones dropped, self-references and cycles refused.
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ch := byID[id]
		var kept []string
		for _, fb := range ch.FallbackChannels {
			switch {
			case byID[fb] == nil:
				t.warn("channel %s: fallback channel not found: %s", id, fb)
			case fb == id:
				t.fail("channel %s: fallback cannot reference itself", id)
			case reaches(byID, fb, id, map[string]bool{}):
				t.fail("channel %s: fallback cycle detected via %s", id, fb)
			case !slices.Contains(kept, fb):
				kept = append(kept, fb)
			}
		}
		ch.FallbackChannels = append([]string{}, kept...)
		t.normalized.Channels = append(t.normalized.Channels, *ch)
	}

	seen := map[string]bool{}
	for i, rawr := range in.Rules {
		if !isObject(rawr) {
			t.warn("rules[%d] ignored: not an object", i)
			continue
		}
		var r ruleInput
		if err := json.Unmarshal(rawr, &r); err != nil {
			t.fail("rules[%d]: %v", i, err)
			continue
		}
		id := strings.TrimSpace(r.ID)
		if id == "" {
			id = fmt.Sprintf("rule_%d", i+1)
		}
		if !routingIDRE.MatchString(id) {
			t.fail("rules[%d].id invalid", i)
			continue
		}
		if seen[id] {
			t.fail("rule id duplicated: %s", id)
			continue
		}
		seen[id] = true
		if r.Route == nil || strings.TrimSpace(r.Route.ChannelID) == "" {
			t.fail("rule %s: route.channel_id required", id)
			continue
		}
		chID := strings.TrimSpace(r.Route.ChannelID)
		if byID[chID] == nil {
			t.fail("rule %s: route.channel_id not found: %s", id, chID)
			continue
		}
		rule := routingRule{ID: id, Priority: 100, Enabled: r.Enabled == nil || *r.Enabled, Route: routingRoute{ChannelID: chID},
			Match: routingMatch{Roles: []string{}, Skills: []string{}, Kinds: []string{}}}
		if r.Priority != nil {
			rule.Priority = max(int(*r.Priority), 0)
		}
		if m := r.Match; m != nil {
			rule.Match.Roles = filterIDs(m.Roles, routingIDRE)
			rule.Match.Skills = filterIDs(m.Skills, routingIDRE)
			rule.Match.Kinds = filterIDs(m.Kinds, kindRE)
			rule.Match.NeedsTools, rule.Match.NeedsJSON = m.NeedsTools, m.NeedsJSON
			if rule.Match.NeedsTools == nil {
				rule.Match.NeedsTools = m.WithTools
			}
			if rule.Match.NeedsJSON == nil {
				rule.Match.NeedsJSON = m.WithJSON
			}
		}
		t.normalized.Rules = append(t.normalized.Rules, rule)
	}
	sort.SliceStable(t.normalized.Rules, func(i, j int) bool {
		a, b := t.normalized.Rules[i], t.normalized.Rules[j]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.ID < b.ID
	})
	if len(t.errors) > 0 {
		return t
	}
	t.express(st, byID)
	return t
}

// express reads a valid config as one conversation model, refusing what
// that cannot mean.
func (t *translation) express(st *settings, byID map[string]*routingChannel) {
	t.entry = st.cat.defaultEntry(PurposeConversation)
	rc := &t.normalized
	if !rc.Enabled {
		if len(rc.Channels)+len(rc.Rules) > 0 {
			t.warn("routing is disabled: your conversations use the default model %q; the channels and rules are not kept", t.entry.Provider)
		}
		return
	}
	used := ""
	for _, r := range rc.Rules {
		if !r.Enabled {
			t.warn("disabled rule %s is not kept", r.ID)
			continue
		}
		for _, role := range r.Match.Roles {
			if role != "teacher" {
				t.cannot("rule %s: role %q: only your own (teacher) conversations can use your model; students and other roles always use the school's default", r.ID, role)
			}
		}
		if len(r.Match.Roles) == 0 {
			t.warn("rule %s matches every role: in Lectern it applies to your own conversations only", r.ID)
		}
		if len(r.Match.Skills) > 0 {
			t.cannot("rule %s: per-skill routing (skills %s): one model serves all your conversations", r.ID, strings.Join(r.Match.Skills, ", "))
		}
		for _, k := range r.Match.Kinds {
			if _, ok := conversationKind(k); !ok {
				t.cannot("rule %s: kind %q: only conversation calls (%s) use your model; uploads, grading and other calls use the school's default", r.ID, k, strings.Join(conversationKinds, ", "))
			}
		}
		if len(r.Match.Kinds) == 0 {
			t.warn("rule %s matches every kind: in Lectern it applies to conversation calls only", r.ID)
		}
		if r.Match.NeedsTools != nil || r.Match.NeedsJSON != nil {
			t.cannot("rule %s: conditions on needs_tools/needs_json: the same model serves calls with and without tools or JSON", r.ID)
		}
		switch {
		case used == "":
			used = r.Route.ChannelID
		case used != r.Route.ChannelID:
			t.cannot("rules route to different channels (%s, %s): one model serves all your conversations", used, r.Route.ChannelID)
		}
	}
	if used == "" {
		t.warn("no enabled rule: your conversations use the default model %q", t.entry.Provider)
	}
	for _, c := range rc.Channels {
		if c.ID != used {
			t.warn("channel %s is not used by an enabled rule and is not kept", c.ID)
			continue
		}
		if c.Params.Temperature != nil || c.Params.MaxTokens != nil {
			t.cannot("channel %s: params.temperature/max_tokens: the agent's own settings apply to every call", c.ID)
		}
		if !c.Capabilities.Tools || !c.Capabilities.JSON {
			t.cannot("channel %s: capabilities tools/json = false: conversations need tool calls and JSON", c.ID)
		}
		if len(c.FallbackChannels) > 0 {
			t.cannot("channel %s: fallback_channels: when your model fails, Lectern falls back to the school's providers in their order", c.ID)
		}
		t.entry = byID[c.ID].Target
	}
}

func reaches(g map[string]*routingChannel, from, to string, seen map[string]bool) bool {
	if from == to {
		return true
	}
	if seen[from] || g[from] == nil {
		return false
	}
	seen[from] = true
	for _, n := range g[from].FallbackChannels {
		if reaches(g, n, to, seen) {
			return true
		}
	}
	return false
}

func filterIDs(in []string, re *regexp.Regexp) []string {
	out := []string{}
	for _, s := range in {
		if s = strings.TrimSpace(s); re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

// simContext is what a simulated call is.
type simContext struct {
	Role       string  `json:"role"`
	SkillID    *string `json:"skill_id"`
	Kind       *string `json:"kind"`
	NeedsTools bool    `json:"needs_tools"`
	NeedsJSON  bool    `json:"needs_json"`
}

type candidate struct {
	ChannelID    string       `json:"channel_id"`
	Provider     string       `json:"provider"`
	Mode         string       `json:"mode"`
	Model        string       `json:"model"`
	Temperature  *float64     `json:"temperature"`
	MaxTokens    *int         `json:"max_tokens"`
	Capabilities capabilities `json:"capabilities"`
}

type decision struct {
	Enabled       bool        `json:"enabled"`
	MatchedRuleID *string     `json:"matched_rule_id"`
	Reason        string      `json:"reason"`
	Selected      bool        `json:"selected"`
	Candidates    []candidate `json:"candidates"`
}

// matches is the predecessor's rule match, with Lectern's own limits: a
// teacher's settings serve only teacher conversation calls.
func matches(r routingRule, c simContext) bool {
	if !r.Enabled {
		return false
	}
	kind := ""
	if c.Kind != nil {
		kind = *c.Kind
	}
	base, conv := conversationKind(kind)
	if c.Role != "teacher" || (kind != "" && !conv) {
		return false
	}
	if len(r.Match.Roles) > 0 && !slices.Contains(r.Match.Roles, c.Role) {
		return false
	}
	if len(r.Match.Skills) > 0 && (c.SkillID == nil || !slices.Contains(r.Match.Skills, *c.SkillID)) {
		return false
	}
	if len(r.Match.Kinds) > 0 && !slices.Contains(r.Match.Kinds, kind) && !slices.Contains(r.Match.Kinds, base) {
		return false
	}
	if r.Match.NeedsTools != nil && *r.Match.NeedsTools != c.NeedsTools {
		return false
	}
	return r.Match.NeedsJSON == nil || *r.Match.NeedsJSON == c.NeedsJSON
}

// resolve is the predecessor's routing decision over rc.
func resolve(rc routingConfig, invalid bool, c simContext) decision {
	d := decision{Enabled: rc.Enabled, Candidates: []candidate{}}
	switch {
	case !rc.Enabled:
		d.Reason = "routing_disabled"
		return d
	case invalid:
		d.Reason = "routing_invalid"
		return d
	}
	byID := map[string]routingChannel{}
	for _, ch := range rc.Channels {
		byID[ch.ID] = ch
	}
	for _, r := range rc.Rules {
		if !matches(r, c) {
			continue
		}
		id := r.ID
		d.MatchedRuleID = &id
		queue, seen := []string{r.Route.ChannelID}, map[string]bool{}
		for len(queue) > 0 {
			cid := queue[0]
			queue = queue[1:]
			ch, ok := byID[cid]
			if seen[cid] || !ok {
				continue
			}
			seen[cid] = true
			queue = append(queue, ch.FallbackChannels...)
			if (c.NeedsTools && !ch.Capabilities.Tools) || (c.NeedsJSON && !ch.Capabilities.JSON) {
				continue
			}
			d.Candidates = append(d.Candidates, candidate{ChannelID: cid, Provider: ch.Target.Provider, Mode: ch.Target.Mode,
				Model: ch.Target.Model, Temperature: ch.Params.Temperature, MaxTokens: ch.Params.MaxTokens, Capabilities: ch.Capabilities})
		}
		if len(d.Candidates) > 0 {
			d.Reason, d.Selected = "matched", true
			return d
		}
	}
	if d.MatchedRuleID != nil {
		d.Reason = "no_capable_channel"
	} else {
		d.Reason = "no_rule_matched"
	}
	return d
}

// RoutingQuery are the query parameters of GET /teacher/llm-routing.
type RoutingQuery struct {
	HistoryLimit   int    // 1..200, 0 → 20
	ProposalLimit  int    // 1..200, 0 → 20
	ProposalStatus string // "" → every status
}

func clampLimit(n int) int {
	if n <= 0 {
		return 20
	}
	return min(n, 200)
}

// historyItem is one version in the routing view's history.
type historyItem struct {
	File    string `json:"file"`
	Version int    `json:"version"`
	SavedAt string `json:"saved_at"`
	SavedBy string `json:"saved_by"`
	Source  string `json:"source"`
	Note    string `json:"note"`
}

type snapshot struct {
	SavedAt string `json:"saved_at"`
	SavedBy string `json:"saved_by"`
	Source  string `json:"source"`
	Note    string `json:"note"`
	Config  struct {
		Version int                   `json:"version"`
		Models  map[string]ModelEntry `json:"models"`
	} `json:"config"`
}

// history lists the teacher's saved versions, newest first.
func (s *Service) history(teacherID string) ([]historyItem, map[string]snapshot) {
	dir, err := s.workspace(teacherID)
	if err != nil {
		return []historyItem{}, nil
	}
	ents, _ := os.ReadDir(filepath.Join(dir, historyDir))
	items := []historyItem{}
	snaps := map[string]snapshot{}
	for i, e := range ents {
		if i >= maxHistoryFiles || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var sn snapshot
		if ok, err := readJSON(filepath.Join(dir, historyDir, e.Name()), maxConfigBytes, &sn); !ok || err != nil {
			continue
		}
		rel := relPath(teacherID, historyDir, e.Name())
		snaps[rel] = sn
		items = append(items, historyItem{File: rel, Version: sn.Config.Version, SavedAt: sn.SavedAt, SavedBy: sn.SavedBy,
			Source: sn.Source, Note: sn.Note})
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Version != items[j].Version {
			return items[i].Version > items[j].Version
		}
		return items[i].SavedAt > items[j].SavedAt
	})
	return items, snaps
}

// proposalFile is model_config_proposals/<id>.json.
type proposalFile struct {
	ProposalID     string                `json:"proposal_id"`
	CreatedAt      string                `json:"created_at"`
	CreatedBy      string                `json:"created_by"`
	Status         string                `json:"status"` // pending, applied, rejected, failed
	Note           string                `json:"note"`
	Candidate      routingConfig         `json:"candidate"`
	Models         map[string]ModelEntry `json:"models"` // what applying it sets (when it was proposed)
	Validation     validation            `json:"validation"`
	ReviewedAt     string                `json:"reviewed_at,omitempty"`
	ReviewedBy     string                `json:"reviewed_by,omitempty"`
	AppliedVersion int                   `json:"applied_version,omitempty"`
	HistoryPath    string                `json:"history_path,omitempty"`
	ApplyError     any                   `json:"apply_error,omitempty"`
}

type validation struct {
	OK       bool     `json:"ok"`
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type proposalItem struct {
	ProposalID   string `json:"proposal_id"`
	CreatedAt    string `json:"created_at"`
	CreatedBy    string `json:"created_by"`
	Status       string `json:"status"`
	Note         string `json:"note"`
	ValidationOK bool   `json:"validation_ok"`
	ProposalPath string `json:"proposal_path"`
}

// proposals lists the teacher's proposals, newest first.
func (s *Service) proposals(teacherID, status string) []proposalItem {
	out := []proposalItem{}
	dir, err := s.workspace(teacherID)
	if err != nil {
		return out
	}
	ents, _ := os.ReadDir(filepath.Join(dir, proposalsDir))
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !proposalIDRE.MatchString(id) {
			continue
		}
		var p proposalFile
		if ok, err := readJSON(filepath.Join(dir, proposalsDir, e.Name()), maxProposalBytes, &p); !ok || err != nil {
			continue
		}
		if p.Status == "" {
			p.Status = "pending"
		}
		if status != "" && p.Status != status {
			continue
		}
		out = append(out, proposalItem{ProposalID: id, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy, Status: p.Status,
			Note: p.Note, ValidationOK: p.Validation.OK, ProposalPath: relPath(teacherID, proposalsDir, e.Name())})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt > out[j].CreatedAt })
	return out
}

// Routing is GET /teacher/llm-routing: the teacher's model settings as a
// routing config, with history, proposals and catalog (also for the
// teacher.llm_routing.get tool).
func (s *Service) Routing(teacherID string, q RoutingQuery) (map[string]any, error) {
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	hist, _ := s.history(teacherID)
	hist = hist[:min(len(hist), clampLimit(q.HistoryLimit))]
	props := s.proposals(teacherID, strings.TrimSpace(q.ProposalStatus))
	props = props[:min(len(props), clampLimit(q.ProposalLimit))]
	return map[string]any{"ok": true, "teacher_id": teacherID, "routing": view(st),
		"validation": validation{OK: true, Errors: []string{}, Warnings: orEmpty(st.warnings)},
		"history":    hist, "proposals": props, "catalog": st.cat, "config_path": relPath(teacherID, modelConfigFile)}, nil
}

// SimulateInput is the body of POST /teacher/llm-routing/simulate (and the
// teacher.llm_routing.simulate tool's arguments).
type SimulateInput struct {
	TeacherID  string          `json:"teacher_id"`
	Role       string          `json:"role"`
	SkillID    string          `json:"skill_id"`
	Kind       string          `json:"kind"`
	NeedsTools *bool           `json:"needs_tools"`
	NeedsJSON  *bool           `json:"needs_json"`
	Config     json.RawMessage `json:"config"`
}

// Simulate says which model a call would use, under the teacher's settings
// or under the config given.
func (s *Service) Simulate(teacherID string, in SimulateInput) (map[string]any, error) {
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	c := simContext{Role: strings.TrimSpace(in.Role), NeedsTools: in.NeedsTools != nil && *in.NeedsTools,
		NeedsJSON: in.NeedsJSON != nil && *in.NeedsJSON}
	if c.Role == "" {
		c.Role = "teacher"
	}
	if v := strings.TrimSpace(in.SkillID); v != "" {
		c.SkillID = &v
	}
	if v := strings.TrimSpace(in.Kind); v != "" {
		c.Kind = &v
	}
	out := map[string]any{"ok": true, "teacher_id": teacherID, "context": c}
	var d decision
	if raw := bytes.TrimSpace(in.Config); len(raw) > 0 && string(raw) != "null" {
		t := translate(st, raw)
		d = resolve(t.normalized, len(t.errors) > 0, c)
		v := validation{OK: len(t.errors) == 0, Errors: orEmpty(t.errors), Warnings: orEmpty(t.warnings)}
		out["config_override"] = true
		out["override_validation"] = v
		out["validation"] = map[string]any{"errors": v.Errors, "warnings": v.Warnings}
	} else {
		d = resolve(view(st), false, c)
		out["validation"] = map[string]any{"errors": []string{}, "warnings": orEmpty(st.warnings)}
	}
	out["decision"] = d
	eff := map[string]any{"source": "gateway_default"}
	e := st.cat.defaultEntry(PurposeConversation)
	if d.Selected {
		first := d.Candidates[0]
		e = ModelEntry{Provider: first.Provider, Mode: first.Mode, Model: first.Model}
		eff["source"] = "teacher_model_config"
	}
	eff["provider"], eff["mode"], eff["model"] = e.Provider, e.Mode, e.Model
	out["effective"] = eff
	return out, nil
}

func newProposalID() string {
	var b [6]byte
	rand.Read(b[:])
	return "proposal_" + hex.EncodeToString(b[:])
}

// Propose records a routing config as a pending proposal. A config that is
// invalid or that the model settings cannot express is refused with the
// reasons (the predecessor stored it and failed at review).
func (s *Service) Propose(teacherID, note string, config json.RawMessage) (map[string]any, error) {
	raw := bytes.TrimSpace(config)
	if len(raw) == 0 || string(raw) == "null" || !isObject(raw) {
		return nil, refusal(fault.Invalid, "config_required", nil)
	}
	if len(raw) > maxCandidateBytes {
		return nil, refusal(fault.TooLarge, "config_too_large", map[string]any{"limit_bytes": maxCandidateBytes})
	}
	note, err := cleanText("note", note, maxNoteRunes)
	if err != nil {
		return nil, err
	}
	defer s.lock(teacherID)()
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	t := translate(st, raw)
	if len(t.errors) > 0 {
		code := "invalid_routing_config"
		if t.inexpressible {
			code = "routing_not_expressible"
		}
		return nil, refusal(fault.Invalid, code, map[string]any{"errors": t.errors, "warnings": orEmpty(t.warnings),
			"message": "这份路由配置无法保存：" + strings.Join(t.errors, "；")})
	}
	dir, err := s.workspace(teacherID)
	if err != nil {
		return nil, err
	}
	pdir := filepath.Join(dir, proposalsDir)
	if err := s.makeRoomForProposal(pdir); err != nil {
		return nil, err
	}
	id := newProposalID()
	v := validation{OK: true, Errors: []string{}, Warnings: orEmpty(t.warnings)}
	p := proposalFile{ProposalID: id, CreatedAt: s.timestamp(), CreatedBy: teacherID, Status: "pending", Note: note,
		Candidate: t.normalized, Models: map[string]ModelEntry{PurposeConversation: t.entry}, Validation: v}
	if err := atomicfile.WriteJSON(filepath.Join(pdir, id+".json"), p); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "saving the routing proposal failed")
	}
	return map[string]any{"ok": true, "proposal_id": id, "status": "pending", "validation": v,
		"proposal_path": relPath(teacherID, proposalsDir, id+".json"), "teacher_id": teacherID}, nil
}

// makeRoomForProposal keeps at most maxProposals files, dropping the
// oldest reviewed ones; all pending is a refusal.
func (s *Service) makeRoomForProposal(pdir string) error {
	ents, _ := os.ReadDir(pdir)
	if len(ents) < maxProposals {
		return nil
	}
	type old struct{ name, created string }
	var done []old
	for _, e := range ents {
		var p proposalFile
		if ok, err := readJSON(filepath.Join(pdir, e.Name()), maxProposalBytes, &p); ok && err == nil && p.Status != "" && p.Status != "pending" {
			done = append(done, old{e.Name(), p.CreatedAt})
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].created < done[j].created })
	count := len(ents)
	for ; count >= maxProposals && len(done) > 0; count-- {
		os.Remove(filepath.Join(pdir, done[0].name))
		done = done[1:]
	}
	if count >= maxProposals {
		return refusal(fault.TooMany, "too_many_proposals", map[string]any{"limit": maxProposals,
			"message": "review or reject pending proposals first"})
	}
	return nil
}

func (s *Service) readProposal(teacherID, id string) (proposalFile, string, error) {
	notFound := refusal(fault.NotFound, "proposal_not_found", map[string]any{"proposal_id": id})
	if !proposalIDRE.MatchString(id) {
		return proposalFile{}, "", notFound
	}
	dir, err := s.workspace(teacherID)
	if err != nil {
		return proposalFile{}, "", err
	}
	path := filepath.Join(dir, proposalsDir, id+".json")
	var p proposalFile
	ok, err := readJSON(path, maxProposalBytes, &p)
	if err != nil {
		return proposalFile{}, "", fault.Wrap(fault.Internal, err, "the proposal cannot be read")
	}
	if !ok {
		return proposalFile{}, "", notFound
	}
	if p.Status == "" {
		p.Status = "pending"
	}
	return p, path, nil
}

// Proposal is one proposal (GET /teacher/llm-routing/proposals/{id}).
func (s *Service) Proposal(teacherID, id string) (map[string]any, error) {
	p, _, err := s.readProposal(teacherID, id)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "proposal": p, "proposal_path": relPath(teacherID, proposalsDir, id+".json"),
		"teacher_id": teacherID, "config_path": relPath(teacherID, modelConfigFile)}, nil
}

// Review applies (approve) or rejects a pending proposal. Applying checks
// it again against today's providers.
func (s *Service) Review(teacherID, id string, approve bool) (map[string]any, error) {
	defer s.lock(teacherID)()
	p, path, err := s.readProposal(teacherID, id)
	if err != nil {
		return nil, err
	}
	if p.Status == "applied" || p.Status == "rejected" {
		return nil, refusal(fault.Invalid, "proposal_already_reviewed", map[string]any{"proposal_id": id, "status": p.Status})
	}
	p.ReviewedAt, p.ReviewedBy = s.timestamp(), teacherID
	if !approve {
		p.Status = "rejected"
		if err := atomicfile.WriteJSON(path, p); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "saving the proposal failed")
		}
		return map[string]any{"ok": true, "proposal_id": id, "status": "rejected", "teacher_id": teacherID}, nil
	}
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(p.Candidate)
	t := translate(st, raw)
	if len(t.errors) > 0 {
		p.Status = "failed"
		applyErr := map[string]any{"ok": false, "errors": t.errors, "warnings": orEmpty(t.warnings)}
		p.ApplyError = applyErr
		if err := atomicfile.WriteJSON(path, p); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "saving the proposal failed")
		}
		// The predecessor's shape: error is the apply result itself.
		return nil, fault.New(fault.Invalid, map[string]any{"ok": false, "proposal_id": id, "status": "failed", "error": applyErr})
	}
	models := make(map[string]ModelEntry, len(purposes))
	for k, v := range st.cfg.Models {
		models[k] = v
	}
	models[PurposeConversation] = t.entry
	cfg, hist, err := s.save(teacherID, st, models, "proposal:"+id, p.Note)
	if err != nil {
		return nil, err
	}
	p.Status, p.AppliedVersion, p.HistoryPath, p.ApplyError = "applied", cfg.Version, hist, nil
	if err := atomicfile.WriteJSON(path, p); err != nil {
		s.log.Warn("routing proposal applied but its record not updated", "teacher_id", teacherID, "proposal_id", id, "err", err)
	}
	return map[string]any{"ok": true, "proposal_id": id, "status": "applied", "version": cfg.Version,
		"history_path": hist, "teacher_id": teacherID}, nil
}

// Rollback restores the models of a saved version as a new version.
func (s *Service) Rollback(teacherID string, target int, note string) (map[string]any, error) {
	if target <= 0 {
		return nil, refusal(fault.Invalid, "invalid_target_version", nil)
	}
	note, err := cleanText("note", note, maxNoteRunes)
	if err != nil {
		return nil, err
	}
	defer s.lock(teacherID)()
	hist, snaps := s.history(teacherID)
	if len(hist) == 0 {
		return nil, refusal(fault.NotFound, "history_not_found", nil)
	}
	var chosen *snapshot
	saved := ""
	for _, h := range hist {
		if h.Version == target && (chosen == nil || h.SavedAt > saved) {
			sn := snaps[h.File]
			chosen, saved = &sn, h.SavedAt
		}
	}
	if chosen == nil {
		return nil, refusal(fault.NotFound, "target_version_not_found", map[string]any{"target_version": target})
	}
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	models := make(map[string]ModelEntry, len(purposes))
	var warnings []string
	for _, p := range purposes {
		old, present := chosen.Config.Models[p]
		if p == PurposeConversation && present {
			entry, msg := st.check(p, old)
			if msg != "" {
				return nil, refusal(fault.Invalid, "rollback_not_applicable", map[string]any{"target_version": target,
					"errors": []string{msg}, "message": "该版本的对话模型已不可用：" + msg})
			}
			models[p] = entry
			continue
		}
		entry, warn := st.normalize(p, old, present)
		models[p] = entry
		if warn != "" {
			warnings = append(warnings, warn)
		}
	}
	if note == "" {
		note = fmt.Sprintf("rollback to version %d", target)
	}
	cfg, histPath, err := s.save(teacherID, st, models, "rollback:"+strconv.Itoa(target), note)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "version": cfg.Version, "restored_from_version": target,
		"config_path": relPath(teacherID, modelConfigFile), "history_path": histPath, "warnings": orEmpty(warnings),
		"teacher_id": teacherID}, nil
}

// GetRouting serves GET /teacher/llm-routing?history_limit&proposal_limit&proposal_status.
func (s *Service) GetRouting(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var rq RoutingQuery
	for _, f := range []struct {
		name string
		dst  *int
	}{{"history_limit", &rq.HistoryLimit}, {"proposal_limit", &rq.ProposalLimit}} {
		if v := strings.TrimSpace(q.Get(f.name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				httpjson.Fail(w, s.log, fault.Newf(fault.Invalid, "%s must be an integer", f.name))
				return
			}
			*f.dst = n
		}
	}
	rq.ProposalStatus = q.Get("proposal_status")
	out, err := s.Routing(caller.From(r.Context()).TeacherID, rq)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// PostRoutingSimulate serves POST /teacher/llm-routing/simulate.
func (s *Service) PostRoutingSimulate(w http.ResponseWriter, r *http.Request) {
	var in SimulateInput
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	out, err := s.Simulate(caller.From(r.Context()).TeacherID, in)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// PostRoutingProposal serves POST /teacher/llm-routing/proposals
// {teacher_id?, note?, config}.
func (s *Service) PostRoutingProposal(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TeacherID string          `json:"teacher_id"`
		Note      string          `json:"note"`
		Config    json.RawMessage `json:"config"`
	}
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	out, err := s.Propose(caller.From(r.Context()).TeacherID, in.Note, in.Config)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// GetRoutingProposal serves GET /teacher/llm-routing/proposals/{proposal_id}.
func (s *Service) GetRoutingProposal(w http.ResponseWriter, r *http.Request) {
	out, err := s.Proposal(caller.From(r.Context()).TeacherID, r.PathValue("proposal_id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// PostRoutingProposalReview serves POST
// /teacher/llm-routing/proposals/{proposal_id}/review {teacher_id?, approve=true}.
func (s *Service) PostRoutingProposalReview(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TeacherID string `json:"teacher_id"`
		Approve   *bool  `json:"approve"`
	}
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	out, err := s.Review(caller.From(r.Context()).TeacherID, r.PathValue("proposal_id"), in.Approve == nil || *in.Approve)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// PostRoutingRollback serves POST /teacher/llm-routing/rollback
// {teacher_id?, target_version, note?}.
func (s *Service) PostRoutingRollback(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TeacherID     string          `json:"teacher_id"`
		TargetVersion json.RawMessage `json:"target_version"`
		Note          string          `json:"note"`
	}
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	target := 0
	if raw := bytes.TrimSpace(in.TargetVersion); len(raw) > 0 {
		var text string
		if json.Unmarshal(raw, &text) == nil {
			raw = []byte(strings.TrimSpace(text))
		}
		if n, err := strconv.Atoi(string(raw)); err == nil {
			target = n
		}
	}
	out, err := s.Rollback(caller.From(r.Context()).TeacherID, target, in.Note)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}
