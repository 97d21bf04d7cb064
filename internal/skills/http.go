package skills

import (
	"net/http"

	"github.com/lectern/lectern/internal/httpjson"
)

// publicSkill is a skill as GET /skills shows it (exams-uploads.md §3), with
// HEAD's routing.regex_keywords, Lectern's routing.rules and the source.
type publicSkill struct {
	ID            string        `json:"id"`
	SchemaVersion int           `json:"schema_version"`
	Title         string        `json:"title"`
	Desc          string        `json:"desc"`
	AllowedRoles  []string      `json:"allowed_roles"`
	Prompts       []string      `json:"prompts"`
	Examples      []string      `json:"examples"`
	Routing       publicRouting `json:"routing"`
	Agent         publicAgent   `json:"agent"`
	Source        string        `json:"source"`
}

type publicRouting struct {
	Keywords         []string              `json:"keywords"`
	NegativeKeywords []string              `json:"negative_keywords"`
	Intents          []string              `json:"intents"`
	KeywordWeights   map[string]int        `json:"keyword_weights"`
	RegexKeywords    map[string]int        `json:"regex_keywords"`
	MinScore         int                   `json:"min_score"`
	MinMargin        int                   `json:"min_margin"`
	ConfidenceFloor  float64               `json:"confidence_floor"`
	MatchMode        string                `json:"match_mode"`
	Rules            map[string][]RuleSpec `json:"rules"`
}

type publicAgent struct {
	PromptModules    []string    `json:"prompt_modules"`
	ContextProviders []string    `json:"context_providers"`
	Tools            publicTools `json:"tools"`
	Budgets          struct {
		MaxToolRounds *int `json:"max_tool_rounds"`
		MaxToolCalls  *int `json:"max_tool_calls"`
	} `json:"budgets"`
	ModelPolicy ModelPolicy `json:"model_policy"`
}

type publicTools struct {
	Allow []string `json:"allow"` // null: every tool of the role
	Deny  []string `json:"deny"`
}

func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (sk *Skill) public() publicSkill {
	r := sk.Routing
	p := publicSkill{ID: sk.ID, SchemaVersion: sk.SchemaVersion, Title: sk.Title, Desc: sk.Desc,
		AllowedRoles: list(sk.AllowedRoles), Prompts: list(sk.Prompts), Examples: list(sk.Examples), Source: sk.Source,
		Routing: publicRouting{Keywords: list(r.Keywords), NegativeKeywords: list(r.NegativeKeywords),
			Intents: list(r.Intents), KeywordWeights: r.KeywordWeights, RegexKeywords: r.RegexKeywords,
			MinScore: r.MinScore, MinMargin: r.MinMargin, ConfidenceFloor: r.ConfidenceFloor, MatchMode: r.MatchMode,
			Rules: r.Rules}}
	a := sk.Agent
	p.Agent = publicAgent{PromptModules: list(a.PromptModules), ContextProviders: list(a.ContextProviders),
		Tools: publicTools{Allow: a.Allow, Deny: list(a.Deny)}, ModelPolicy: a.ModelPolicy}
	if p.Routing.KeywordWeights == nil {
		p.Routing.KeywordWeights = map[string]int{}
	}
	if p.Routing.RegexKeywords == nil {
		p.Routing.RegexKeywords = map[string]int{}
	}
	if p.Routing.Rules == nil {
		p.Routing.Rules = map[string][]RuleSpec{}
	}
	if p.Agent.ModelPolicy.Routes == nil {
		p.Agent.ModelPolicy.Routes = []map[string]any{}
	}
	if a.MaxToolRounds > 0 {
		p.Agent.Budgets.MaxToolRounds = &a.MaxToolRounds
	}
	if a.MaxToolCalls > 0 {
		p.Agent.Budgets.MaxToolCalls = &a.MaxToolCalls
	}
	return p
}

// HandleSkills serves GET /skills: {"skills":[…sorted by id],
// "errors"?:[{skill_id,path,message}]}. It only reads (a changed tenant
// file is read again, nothing is written).
func (s *Set) HandleSkills(w http.ResponseWriter, r *http.Request) {
	skills, errs := s.List()
	out := make([]publicSkill, 0, len(skills))
	for _, sk := range skills {
		out = append(out, sk.public())
	}
	body := map[string]any{"skills": out}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	httpjson.Write(w, http.StatusOK, body)
}
