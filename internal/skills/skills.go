// Package skills holds the agent's skills: named work modes (teacher
// operations, homework, student focus, lesson capture, core examples, the
// student coach) that narrow a chat turn's tools and budgets and add a
// prompt. Each skill is a skills/<id>/skill.yaml manifest with the
// predecessor's fields (chat-agent-tenancy.md §4.4, agent-extras.md §1).
//
// A tenant's Set is the skills built into the binary plus the tenant's own
// DATA_DIR/skills/<id>/skill.yaml, a tenant skill replacing a built-in one of
// the same id. Tenant files are re-read when they change, checked on access
// at most once per CheckEvery (no goroutine, no polling); a bad file is
// listed in the load errors and never hides the other skills (a bad override
// leaves the built-in in place).
//
// The Set also routes a turn to a skill (Route): an explicitly requested
// skill the caller's role may use wins; otherwise every candidate is scored
// against the last user message with the predecessor's scoring, thresholds
// and fallbacks. The scoring is data, not code (the predecessor's weak spot):
// each skill's keywords, regex keywords and role rules are in its manifest,
// and the shared signals, intent bonuses, tie-break order and role defaults
// are in routing.yaml.
package skills

import (
	"slices"
	"strings"

	"github.com/lectern/lectern/internal/caller"
)

// Skill is one loaded skill. It is immutable once loaded: callers must not
// change its fields (a reload builds a new Skill).
type Skill struct {
	ID            string
	SchemaVersion int
	Title         string
	Desc          string
	// AllowedRoles are the roles that may use the skill; empty: every role.
	AllowedRoles []string
	Prompts      []string // ui.prompts
	Examples     []string // ui.examples
	Routing      Routing
	Agent        AgentSpec
	// Source is "builtin" or "tenant".
	Source string

	prompt string // the assembled, bounded prompt (Prompt)
	router compiledRouting
}

// Routing is a skill's routing block as the manifest gives it (after
// defaults and clamps).
type Routing struct {
	Keywords         []string
	NegativeKeywords []string
	Intents          []string
	KeywordWeights   map[string]int // 1..50
	// RegexKeywords (HEAD) maps a pattern to its weight (1..50); invalid
	// patterns are skipped (and listed in the load errors).
	RegexKeywords   map[string]int
	MinScore        int
	MinMargin       int
	ConfidenceFloor float64 // 0..0.95
	MatchMode       string  // "substring" or "word_boundary"
	// Rules are the role-specific rule scores (the predecessor's hard-coded
	// rules, as data) by role.
	Rules map[string][]RuleSpec
}

// RuleSpec is one role rule: Score is added once when the condition holds.
type RuleSpec struct {
	Name       string     `json:"name,omitempty"`
	Any        []string   `json:"any,omitempty"`
	All        [][]string `json:"all,omitempty"`
	Signals    []string   `json:"signals,omitempty"`
	NotSignals []string   `json:"not_signals,omitempty"`
	Score      int        `json:"score"`
}

// AgentSpec is what the skill changes in the agent loop.
type AgentSpec struct {
	PromptModules    []string
	ContextProviders []string // parsed, unused (as in the predecessor)
	// Allow is the tool allow-list; nil: every tool of the role. A name
	// ending in ".*" names every tool under that prefix, "*" every tool.
	Allow []string
	Deny  []string
	// MaxToolRounds, MaxToolCalls: 0 = the global budget. They can only
	// tighten it (the agent takes the minimum).
	MaxToolRounds int
	MaxToolCalls  int
	ModelPolicy   ModelPolicy
}

// ModelPolicy is parsed and shown by GET /skills; Lectern's model choice
// comes from the tenant's and teacher's model settings, not from skills
// (the predecessor's always-on skill policies cost a failed attempt per
// missing key: weak spot 11).
type ModelPolicy struct {
	Enabled bool             `json:"enabled"`
	Default map[string]any   `json:"default"`
	Routes  []map[string]any `json:"routes"`
}

// AllowsRole reports whether role may use the skill.
func (s *Skill) AllowsRole(role caller.Role) bool {
	if s == nil {
		return false
	}
	return len(s.AllowedRoles) == 0 || slices.Contains(s.AllowedRoles, string(role))
}

// AllowsTool reports whether the skill lets the model see and call the
// tool named (dotted name): not denied (deny wins), and in the allow-list if
// there is one. A nil skill allows everything.
func (s *Skill) AllowsTool(name string) bool {
	if s == nil {
		return true
	}
	if toolListed(s.Agent.Deny, name) {
		return false
	}
	return s.Agent.Allow == nil || toolListed(s.Agent.Allow, name)
}

func toolListed(list []string, name string) bool {
	for _, entry := range list {
		switch {
		case entry == name, entry == "*":
			return true
		case strings.HasSuffix(entry, ".*") && strings.HasPrefix(name, entry[:len(entry)-1]):
			return true
		}
	}
	return false
}

// Budgets are the skill's tool rounds and calls (0: no limit of its own).
func (s *Skill) Budgets() (rounds, calls int) {
	if s == nil {
		return 0, 0
	}
	return s.Agent.MaxToolRounds, s.Agent.MaxToolCalls
}

// Prompt is the system text the skill adds to a turn: the header
// 激活技能：<id>（<title>）, the description, then its prompt modules, at most
// MaxPromptChars characters. "" for a nil skill.
func (s *Skill) Prompt() string {
	if s == nil {
		return ""
	}
	return s.prompt
}
