package skills

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
	"go.yaml.in/yaml/v3"
)

// Bounds of a manifest and of what it adds to a turn.
const (
	// MaxManifestBytes bounds a skill.yaml.
	MaxManifestBytes = 64 << 10
	// MaxModuleBytes bounds one prompt module file.
	MaxModuleBytes = 32 << 10
	// MaxPromptChars bounds the whole prompt a skill adds to a turn.
	MaxPromptChars = 8000

	maxPromptModules = 8
	maxKeywords      = 200
	maxKeywordRunes  = 64
	maxRegexKeywords = 50
	maxRulesPerRole  = 100
	maxToolNames     = 200
	maxUIItems       = 50
	maxItemRunes     = 300
	maxTitleRunes    = 100
	maxDescRunes     = 1000
	maxRoutes        = 50

	defaultWeight    = 3
	negativeWeight   = 3
	defaultMinScore  = 3
	defaultMinMargin = 1
	// DefaultConfidenceFloor is a skill's confidence_floor when it sets
	// none, and the confidence of a role-default decision.
	DefaultConfidenceFloor = 0.28
	maxConfidence          = 0.95
)

// idRE is the predecessor's skill id rule (skills/router.resolve_skill).
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{1,80}$`)

// ValidID reports whether id can name a skill (and its folder).
func ValidID(id string) bool { return idRE.MatchString(id) }

// compiledRouting is a skill's routing block ready to score.
type compiledRouting struct {
	keywords     []weighted
	negatives    []string
	regexes      []weightedRE
	intents      []string
	wordBoundary bool
	rules        map[string][]compiledRule
}

type weighted struct {
	kw     string // lower-cased
	weight int
}

type weightedRE struct {
	raw    string
	re     *regexp.Regexp
	weight int
}

type compiledRule struct {
	label string
	cond  cond
	score int
}

// parseManifest reads one skill.yaml. A returned error means the skill
// cannot load; warnings are problems it loads despite (an invalid regex
// keyword is skipped, an unknown intent never applies).
func parseManifest(id string, data []byte, source string, shared *routingData) (*Skill, []string, error) {
	if len(data) > MaxManifestBytes {
		return nil, nil, fmt.Errorf("skill.yaml is larger than %d bytes", MaxManifestBytes)
	}
	if !utf8.Valid(data) {
		return nil, nil, errors.New("skill.yaml is not UTF-8")
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("invalid YAML: %v", err)
	}
	m, ok := asMap(doc)
	if !ok {
		return nil, nil, errors.New("skill.yaml must be a mapping")
	}
	var warns []string
	sk := &Skill{ID: id, Source: source} // the folder name wins over an id field
	var err error
	if sk.SchemaVersion, err = intField(m, "schema_version", "", 1); err != nil {
		return nil, nil, err
	}
	if sk.Title, err = stringField(m, "title", "", maxTitleRunes); err != nil {
		return nil, nil, err
	}
	if sk.Title == "" {
		sk.Title = id
	}
	if sk.Desc, err = stringField(m, "desc", "", maxDescRunes); err != nil {
		return nil, nil, err
	}
	if sk.AllowedRoles, err = stringsField(m, "allowed_roles", "", 8); err != nil {
		return nil, nil, err
	}
	ui, err := mapField(m, "ui", "")
	if err != nil {
		return nil, nil, err
	}
	if sk.Prompts, err = stringsField(ui, "prompts", "ui", maxUIItems); err != nil {
		return nil, nil, err
	}
	if sk.Examples, err = stringsField(ui, "examples", "ui", maxUIItems); err != nil {
		return nil, nil, err
	}

	routing, err := mapField(m, "routing", "")
	if err != nil {
		return nil, nil, err
	}
	w, err := parseRouting(sk, routing, shared)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, w...)

	agent, err := mapField(m, "agent", "")
	if err != nil {
		return nil, nil, err
	}
	w, err = parseAgent(sk, agent)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, w...)
	return sk, warns, nil
}

func parseRouting(sk *Skill, m map[string]any, shared *routingData) ([]string, error) {
	const where = "routing"
	r := &sk.Routing
	c := &sk.router
	var warns []string
	var err error
	if r.Keywords, err = keywordList(m, "keywords"); err != nil {
		return nil, err
	}
	if r.NegativeKeywords, err = keywordList(m, "negative_keywords"); err != nil {
		return nil, err
	}
	if r.Intents, err = stringsField(m, "intents", where, 32); err != nil {
		return nil, err
	}
	for _, in := range r.Intents {
		if _, ok := shared.intents[in]; !ok {
			warns = append(warns, fmt.Sprintf("routing.intents: unknown intent %q (ignored)", in))
		}
	}
	if r.KeywordWeights, err = weights(m, "keyword_weights", maxKeywords); err != nil {
		return nil, err
	}
	if r.RegexKeywords, err = weights(m, "regex_keywords", maxRegexKeywords); err != nil {
		return nil, err
	}
	if r.MinScore, err = intField(m, "min_score", where, defaultMinScore); err != nil {
		return nil, err
	}
	if r.MinMargin, err = intField(m, "min_margin", where, defaultMinMargin); err != nil {
		return nil, err
	}
	if r.ConfidenceFloor, err = floatField(m, "confidence_floor", where, DefaultConfidenceFloor); err != nil {
		return nil, err
	}
	r.ConfidenceFloor = clamp(r.ConfidenceFloor, 0, maxConfidence)
	if r.MatchMode, err = stringField(m, "match_mode", where, 32); err != nil {
		return nil, err
	}
	switch r.MatchMode {
	case "":
		r.MatchMode = "substring"
	case "substring", "word_boundary":
	default:
		warns = append(warns, fmt.Sprintf("routing.match_mode: unknown mode %q (substring used)", r.MatchMode))
		r.MatchMode = "substring"
	}

	c.wordBoundary = r.MatchMode == "word_boundary"
	lowerWeights := map[string]int{}
	for kw, wt := range r.KeywordWeights {
		lowerWeights[strings.ToLower(kw)] = wt
	}
	for _, kw := range r.Keywords {
		low := strings.ToLower(kw)
		wt, ok := lowerWeights[low]
		if !ok {
			wt = defaultWeight
		}
		c.keywords = append(c.keywords, weighted{kw: low, weight: wt})
	}
	for _, kw := range r.NegativeKeywords {
		c.negatives = append(c.negatives, strings.ToLower(kw))
	}
	for _, raw := range slices.Sorted(maps.Keys(r.RegexKeywords)) {
		re, err := regexp.Compile("(?i)" + raw)
		if err != nil || len(raw) > maxPatternBytes {
			warns = append(warns, fmt.Sprintf("routing.regex_keywords: invalid pattern %q (skipped)", raw))
			continue
		}
		c.regexes = append(c.regexes, weightedRE{raw: raw, re: re, weight: r.RegexKeywords[raw]})
	}
	for _, in := range r.Intents {
		if _, ok := shared.intents[in]; ok {
			c.intents = append(c.intents, in)
		}
	}

	rules, err := mapField(m, "rules", where)
	if err != nil {
		return nil, err
	}
	r.Rules = map[string][]RuleSpec{}
	c.rules = map[string][]compiledRule{}
	for _, role := range slices.Sorted(maps.Keys(rules)) {
		list, ok := rules[role].([]any)
		if !ok {
			return nil, fmt.Errorf("routing.rules.%s: must be a list of rules", role)
		}
		if len(list) > maxRulesPerRole {
			return nil, fmt.Errorf("routing.rules.%s: more than %d rules", role, maxRulesPerRole)
		}
		for i, item := range list {
			at := fmt.Sprintf("routing.rules.%s[%d]", role, i)
			spec, rule, err := parseRule(item, at, shared)
			if err != nil {
				warns = append(warns, err.Error()+" (rule skipped)")
				continue
			}
			r.Rules[role] = append(r.Rules[role], spec)
			c.rules[role] = append(c.rules[role], rule)
		}
	}
	return warns, nil
}

// keywordList reads a keyword list; keywords longer than maxKeywordRunes are
// an error (cutting one would change what it matches).
func keywordList(m map[string]any, key string) ([]string, error) {
	list, err := stringsField(m, key, "routing", maxKeywords)
	if err != nil {
		return nil, err
	}
	for _, kw := range list {
		if utf8.RuneCountInString(kw) > maxKeywordRunes {
			return nil, fmt.Errorf("routing.%s: keyword longer than %d characters", key, maxKeywordRunes)
		}
	}
	return list, nil
}

// weights reads a {keyword or pattern: weight} mapping, weights clamped to
// 1..50 (a value that is not a number is the default 3).
func weights(m map[string]any, key string, maxItems int) (map[string]int, error) {
	sub, err := mapField(m, key, "routing")
	if err != nil {
		return nil, err
	}
	if len(sub) > maxItems {
		return nil, fmt.Errorf("routing.%s: more than %d entries", key, maxItems)
	}
	out := make(map[string]int, len(sub))
	for k, v := range sub {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		wt := defaultWeight
		if f, ok := number(v); ok {
			wt = int(clamp(f, 1, 50))
		}
		out[k] = wt
	}
	return out, nil
}

func parseRule(v any, at string, shared *routingData) (RuleSpec, compiledRule, error) {
	m, ok := asMap(v)
	if !ok {
		return RuleSpec{}, compiledRule{}, fmt.Errorf("%s: a rule must be a mapping", at)
	}
	c, err := parseCond(m, true, at)
	if err != nil {
		return RuleSpec{}, compiledRule{}, err
	}
	for _, s := range append(slices.Clone(c.signals), c.notSignals...) {
		if _, ok := shared.signals[s]; !ok {
			return RuleSpec{}, compiledRule{}, fmt.Errorf("%s: unknown signal %q", at, s)
		}
	}
	score, err := intField(m, "score", at, 0)
	if err != nil {
		return RuleSpec{}, compiledRule{}, err
	}
	score = clamp(score, -50, 50)
	if score == 0 {
		return RuleSpec{}, compiledRule{}, fmt.Errorf("%s: a rule needs a non-zero score", at)
	}
	name, _ := stringField(m, "name", at, maxKeywordRunes)
	spec := RuleSpec{Name: name, Signals: c.signals, NotSignals: c.notSignals, Score: score}
	for _, p := range c.any {
		spec.Any = append(spec.Any, p.raw)
	}
	for _, g := range c.all {
		var raws []string
		for _, p := range g {
			raws = append(raws, p.raw)
		}
		spec.All = append(spec.All, raws)
	}
	return spec, compiledRule{label: name, cond: c, score: score}, nil
}

func parseAgent(sk *Skill, m map[string]any) ([]string, error) {
	const where = "agent"
	a := &sk.Agent
	var warns []string
	var err error
	if a.PromptModules, err = stringsField(m, "prompt_modules", where, maxPromptModules); err != nil {
		return nil, err
	}
	for _, mod := range a.PromptModules {
		if _, ok := modulePath(mod); !ok {
			return nil, fmt.Errorf("agent.prompt_modules: %q is not a relative path inside the skill's folder", mod)
		}
	}
	if a.ContextProviders, err = stringsField(m, "context_providers", where, 16); err != nil {
		return nil, err
	}
	tools, err := mapField(m, "tools", where)
	if err != nil {
		return nil, err
	}
	if _, present := field(tools, "allow"); present {
		if a.Allow, err = stringsField(tools, "allow", "agent.tools", maxToolNames); err != nil {
			return nil, err
		}
	}
	if a.Deny, err = stringsField(tools, "deny", "agent.tools", maxToolNames); err != nil {
		return nil, err
	}
	if a.Deny == nil {
		a.Deny = []string{}
	}
	budgets, err := mapField(m, "budgets", where)
	if err != nil {
		return nil, err
	}
	if a.MaxToolRounds, err = intField(budgets, "max_tool_rounds", "agent.budgets", 0); err != nil {
		return nil, err
	}
	if a.MaxToolCalls, err = intField(budgets, "max_tool_calls", "agent.budgets", 0); err != nil {
		return nil, err
	}
	// Set budgets are at least 1 (0 or absent: the global budget).
	if a.MaxToolRounds < 0 {
		a.MaxToolRounds = 1
	}
	if a.MaxToolCalls < 0 {
		a.MaxToolCalls = 1
	}
	w, err := parseModelPolicy(a, m)
	if err != nil {
		return nil, err
	}
	return append(warns, w...), nil
}

// modulePath cleans a prompt module path: relative, inside the skill's
// folder, a .md or .txt file.
func modulePath(p string) (string, bool) {
	p = strings.ReplaceAll(p, `\`, "/")
	clean := path.Clean(p)
	if p == "" || path.IsAbs(clean) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", false
	}
	if ext := path.Ext(clean); ext != ".md" && ext != ".txt" {
		return "", false
	}
	return clean, true
}

func parseModelPolicy(a *AgentSpec, m map[string]any) ([]string, error) {
	mp, err := mapField(m, "model_policy", "agent")
	if err != nil {
		return nil, err
	}
	p := ModelPolicy{Routes: []map[string]any{}}
	if d, ok := field(mp, "default"); ok {
		if p.Default, ok = asMap(d); !ok {
			return nil, errors.New("agent.model_policy.default: must be a mapping")
		}
		p.Default = plain(p.Default).(map[string]any)
	}
	if rs, ok := field(mp, "routes"); ok {
		list, ok := rs.([]any)
		if !ok {
			return nil, errors.New("agent.model_policy.routes: must be a list")
		}
		if len(list) > maxRoutes {
			return nil, fmt.Errorf("agent.model_policy.routes: more than %d routes", maxRoutes)
		}
		for _, item := range list {
			r, ok := asMap(item)
			if !ok {
				return nil, errors.New("agent.model_policy.routes: each route must be a mapping")
			}
			p.Routes = append(p.Routes, plain(r).(map[string]any))
		}
	}
	p.Enabled = p.Default != nil || len(p.Routes) > 0
	if v, ok := field(mp, "enabled"); ok {
		b, ok := v.(bool)
		if !ok {
			return nil, errors.New("agent.model_policy.enabled: must be true or false")
		}
		p.Enabled = b
	}
	a.ModelPolicy = p
	return nil, nil
}

// plain turns yaml's map[any]any into map[string]any all the way down, so
// the value encodes as JSON.
func plain(v any) any {
	if m, ok := asMap(v); ok {
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[k] = plain(val)
		}
		return out
	}
	if list, ok := v.([]any); ok {
		out := make([]any, len(list))
		for i, val := range list {
			out[i] = plain(val)
		}
		return out
	}
	return v
}

// assemblePrompt builds the skill's prompt from its header, description and
// modules (read by read, relative to the skill's folder). A module that
// cannot be read is a warning.
func assemblePrompt(sk *Skill, read func(rel string) ([]byte, error)) []string {
	var warns []string
	var b strings.Builder
	fmt.Fprintf(&b, "激活技能：%s（%s）", sk.ID, sk.Title)
	if sk.Desc != "" {
		b.WriteString("\n" + sk.Desc)
	}
	for _, mod := range sk.Agent.PromptModules {
		rel, _ := modulePath(mod)
		data, err := read(rel)
		if err != nil {
			warns = append(warns, fmt.Sprintf("agent.prompt_modules: %s: %s", mod, errText(err)))
			continue
		}
		if text := strings.TrimSpace(strings.ToValidUTF8(string(data), "\uFFFD")); text != "" {
			b.WriteString("\n\n" + text)
		}
	}
	sk.prompt = textcut.Short(b.String(), MaxPromptChars)
	return warns
}
