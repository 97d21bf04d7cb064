package skills

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/lectern/lectern/internal/caller"
)

// Reasons of a Decision (agent-extras.md §1.2). A bad requested skill id
// prefixes the reason with ReasonPrefixInvalid, …Unknown or …NotAllowed.
const (
	ReasonExplicit           = "explicit"
	ReasonAutoRule           = "auto_rule"
	ReasonThresholdBlocked   = "auto_threshold_blocked_default"
	ReasonAmbiguous          = "ambiguous_auto_rule_default"
	ReasonRoleDefault        = "role_default"
	ReasonNoSkill            = "no_skill_available"
	ReasonSuffixFirstAllowed = "_first_available"

	ReasonPrefixInvalid    = "requested_invalid_"
	ReasonPrefixUnknown    = "requested_unknown_"
	ReasonPrefixNotAllowed = "requested_not_allowed_"
)

// Resolution modes of a Decision.
const (
	ModeExplicit = "explicit" // the requested skill
	ModeAuto     = "auto"     // chosen by the scores
	ModeDefault  = "default"  // the role's default (or no skill)
)

// TopCandidates is how many scored candidates a Decision lists.
const TopCandidates = 3

// maxRoutedChars bounds the message the router reads (the agent cuts
// messages at 2000 characters too).
const maxRoutedChars = 4000

// Decision is how a turn's skill was chosen.
type Decision struct {
	Requested string `json:"requested_skill_id"`
	// Effective is the skill the turn runs with; "" when the role may use
	// no skill at all.
	Effective  string  `json:"effective_skill_id"`
	Reason     string  `json:"reason"`
	Confidence float64 `json:"confidence"`
	Mode       string  `json:"resolution_mode"`
	// MatchedRule is the winner's first three hits joined by "," (auto
	// decisions only).
	MatchedRule string      `json:"matched_rule,omitempty"`
	BestScore   int         `json:"best_score"`
	SecondScore int         `json:"second_score"`
	Candidates  []Candidate `json:"candidates"`
}

// Candidate is a scored skill.
type Candidate struct {
	SkillID string   `json:"skill_id"`
	Score   int      `json:"score"`
	Hits    []string `json:"hits"`
}

// JobFields are the decision's fields on a chat job (HEAD's names), for
// the job record and so for GET /chat/status.
func (d Decision) JobFields() map[string]any {
	return map[string]any{
		"skill_id_requested":    d.Requested,
		"skill_id_effective":    d.Effective,
		"skill_reason":          d.Reason,
		"skill_confidence":      d.Confidence,
		"skill_candidates":      d.Candidates,
		"skill_resolution_mode": d.Mode,
	}
}

// Route chooses the skill of a turn from role, the requested skill id
// ("" for none) and the last user message.
func (s *Set) Route(role caller.Role, requested, message string) Decision {
	_, d := s.Resolve(role, requested, message)
	return d
}

// Resolve is Route that also returns the effective skill (nil when there
// is none), from the same view of the skills.
func (s *Set) Resolve(role caller.Role, requested, message string) (*Skill, Decision) {
	c := s.current()
	d := s.data.route(c, string(role), requested, message)
	return c.byID[d.Effective], d
}

func (rd *routingData) route(c *catalog, role, requested, message string) Decision {
	requested = strings.TrimSpace(requested)
	d := Decision{Requested: requested, Candidates: []Candidate{}}

	var allowed []*Skill // by id
	for _, sk := range c.sorted {
		if role == "" || sk.AllowsRole(caller.Role(role)) {
			allowed = append(allowed, sk)
		}
	}

	prefix := ""
	if requested != "" {
		sk, known := c.byID[requested]
		switch {
		case !ValidID(requested):
			prefix = ReasonPrefixInvalid
		case !known:
			prefix = ReasonPrefixUnknown
		case !slices.Contains(allowed, sk):
			prefix = ReasonPrefixNotAllowed
		default:
			d.Effective, d.Reason, d.Confidence, d.Mode = requested, ReasonExplicit, 1, ModeExplicit
			return d
		}
	}

	ranked := rd.score(allowed, role, message)
	for i := range min(len(ranked), TopCandidates) {
		d.Candidates = append(d.Candidates, ranked[i].Candidate)
	}
	fallback := func(reason string, confidence float64) Decision {
		d.Reason, d.Confidence, d.Mode = prefix+reason, confidence, ModeDefault
		def := rd.roleDefault(role)
		if i := slices.IndexFunc(allowed, func(sk *Skill) bool { return sk.ID == def }); i >= 0 {
			d.Effective = def
		} else if len(allowed) > 0 {
			d.Effective = allowed[0].ID
			d.Reason += ReasonSuffixFirstAllowed
		} else {
			d.Reason = prefix + ReasonNoSkill
		}
		return d
	}
	if len(ranked) == 0 {
		if prefix != "" {
			return fallback("default", DefaultConfidenceFloor)
		}
		return fallback(ReasonRoleDefault, DefaultConfidenceFloor)
	}

	best := ranked[0]
	d.BestScore = best.Score
	if len(ranked) > 1 {
		d.SecondScore = ranked[1].Score
	}
	r := best.skill.Routing
	switch {
	case d.BestScore < r.MinScore:
		return fallback(ReasonThresholdBlocked, r.ConfidenceFloor)
	case d.BestScore-d.SecondScore < r.MinMargin:
		return fallback(ReasonAmbiguous, r.ConfidenceFloor)
	}
	margin := d.BestScore - d.SecondScore
	conf := r.ConfidenceFloor + math.Min(0.35, 0.04*float64(d.BestScore))
	switch {
	case margin >= 4:
		conf += 0.08
	case margin >= 2:
		conf += 0.04
	}
	d.Effective, d.Reason, d.Mode = best.skill.ID, prefix+ReasonAutoRule, ModeAuto
	d.Confidence = math.Round(clamp(conf, 0, maxConfidence)*1000) / 1000
	d.MatchedRule = strings.Join(best.Hits[:min(3, len(best.Hits))], ",")
	return d
}

type scored struct {
	Candidate
	skill *Skill
}

// score scores every candidate skill against message; only skills with a
// score above 0 are returned, best first.
func (rd *routingData) score(skills []*Skill, role, message string) []scored {
	original := strings.TrimSpace(message)
	if rs := []rune(original); len(rs) > maxRoutedChars {
		original = string(rs[len(rs)-maxRoutedChars:])
	}
	lower := strings.ToLower(original)
	if lower == "" {
		return nil
	}
	signals := rd.evalSignals(role, original, lower)
	var out []scored
	for _, sk := range skills {
		score, hits := rd.scoreSkill(sk, role, lower, signals)
		if score > 0 {
			out = append(out, scored{Candidate{SkillID: sk.ID, Score: score, Hits: hits}, sk})
		}
	}
	rank := func(id string) int {
		if r, ok := rd.tieBreak[id]; ok {
			return r
		}
		return len(rd.tieBreak)
	}
	slices.SortFunc(out, func(a, b scored) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(rank(a.SkillID), rank(b.SkillID)),
			strings.Compare(a.SkillID, b.SkillID))
	})
	return out
}

// scoreSkill is one skill's config score (keywords, negative keywords,
// regex keywords, intent bonuses) plus its rule score for role.
func (rd *routingData) scoreSkill(sk *Skill, role, text string, signals map[string]bool) (int, []string) {
	c := &sk.router
	score := 0
	hits := []string{}
	has := func(kw string) bool {
		if c.wordBoundary {
			return hasWordBoundary(text, kw)
		}
		return strings.Contains(text, kw)
	}
	for _, k := range c.keywords {
		if has(k.kw) {
			score += k.weight
			hits = append(hits, "cfg:"+k.kw)
		}
	}
	for _, kw := range c.negatives {
		if has(kw) {
			score -= negativeWeight
			hits = append(hits, "cfg-neg:"+kw)
		}
	}
	for _, r := range c.regexes {
		if r.re.MatchString(text) {
			score += r.weight
			hits = append(hits, "cfg-regex:"+r.raw)
		}
	}
	holds := map[string]bool{}
	for _, name := range c.intents {
		for _, cd := range rd.intents[name].when {
			if ok, _ := cd.eval(text, nil, signals); ok {
				holds[name] = true
				break
			}
		}
	}
	for _, name := range c.intents {
		if !holds[name] {
			continue
		}
		superseded := false
		for other := range holds {
			if other != name && slices.Contains(rd.intents[other].supersedes, name) {
				superseded = true
			}
		}
		if !superseded {
			score += rd.intents[name].bonus
			hits = append(hits, "cfg-intent:"+name)
		}
	}
	for _, r := range c.rules[role] {
		if ok, matched := r.cond.eval(text, &rd.neg, signals); ok {
			score += r.score
			label := r.label
			if label == "" {
				label = strings.Join(matched, "+")
			}
			if label == "" {
				label = strings.Join(r.cond.signals, "+")
			}
			hits = append(hits, label)
		}
	}
	return score, hits
}
