package skills

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Bounds of the routing data a manifest may hold; the router runs on every
// chat turn, so a tenant's manifest cannot make it slow.
const (
	maxPatternBytes = 256
	maxGroupLen     = 64 // patterns in one any/all group
	maxGroups       = 8  // groups in one all
	maxWhen         = 16 // alternatives of a signal or intent
)

// pattern is a substring or a regular expression searched in the text.
type pattern struct {
	text string         // the substring (lower-cased unless matching the original text)
	re   *regexp.Regexp // nil for a substring
	raw  string         // as written, for labels
}

// compilePattern reads "re:<RE2>" as a case-insensitive regular expression
// and anything else as a substring (lower-cased when lower is set).
func compilePattern(s string, lower bool) (pattern, error) {
	if s == "" {
		return pattern{}, fmt.Errorf("empty pattern")
	}
	if len(s) > maxPatternBytes {
		return pattern{}, fmt.Errorf("pattern longer than %d bytes", maxPatternBytes)
	}
	if expr, ok := strings.CutPrefix(s, "re:"); ok {
		re, err := regexp.Compile("(?i)" + expr)
		if err != nil {
			return pattern{}, fmt.Errorf("pattern %q: %v", s, err)
		}
		return pattern{re: re, raw: s}, nil
	}
	if lower {
		return pattern{text: strings.ToLower(s), raw: s}, nil
	}
	return pattern{text: s, raw: s}, nil
}

// negation is the rule keywords' negation check: an occurrence preceded
// (within window characters) by one of words does not count.
type negation struct {
	words  []string
	window int
}

// match reports whether p occurs in text; with neg, an occurrence of a
// substring preceded by a negation word is skipped (regexes are taken as
// written: they can say what they mean).
func (p pattern) match(text string, neg *negation) bool {
	if p.re != nil {
		return p.re.MatchString(text)
	}
	if neg == nil || len(neg.words) == 0 {
		return strings.Contains(text, p.text)
	}
	for from := 0; from <= len(text); {
		i := strings.Index(text[from:], p.text)
		if i < 0 {
			return false
		}
		at := from + i
		if !neg.before(text, at) {
			return true
		}
		_, size := utf8.DecodeRuneInString(text[at:])
		from = at + max(size, 1)
	}
	return false
}

// before reports whether a negation word appears in the window characters
// before byte offset at.
func (n *negation) before(text string, at int) bool {
	start := at
	for k := 0; k < n.window && start > 0; k++ {
		_, size := utf8.DecodeLastRuneInString(text[:start])
		start -= size
	}
	win := text[start:at]
	for _, w := range n.words {
		if strings.Contains(win, w) {
			return true
		}
	}
	return false
}

// cond is a conjunction: any (one of), all (each group one of), signals
// (all true), not_signals (none true). An empty cond never holds.
type cond struct {
	any        []pattern
	all        [][]pattern
	signals    []string
	notSignals []string
}

func (c cond) empty() bool {
	return len(c.any) == 0 && len(c.all) == 0 && len(c.signals) == 0
}

// eval reports whether c holds, and the patterns that hit (for labels).
func (c cond) eval(text string, neg *negation, signals map[string]bool) (bool, []string) {
	if c.empty() {
		return false, nil
	}
	for _, s := range c.signals {
		if !signals[s] {
			return false, nil
		}
	}
	for _, s := range c.notSignals {
		if signals[s] {
			return false, nil
		}
	}
	var hits []string
	if len(c.any) > 0 {
		hit := firstHit(c.any, text, neg)
		if hit == "" {
			return false, nil
		}
		hits = append(hits, hit)
	}
	for _, group := range c.all {
		hit := firstHit(group, text, neg)
		if hit == "" {
			return false, nil
		}
		hits = append(hits, hit)
	}
	return true, hits
}

func firstHit(ps []pattern, text string, neg *negation) string {
	for _, p := range ps {
		if p.match(text, neg) {
			return p.raw
		}
	}
	return ""
}

// parseCond reads a condition mapping.
func parseCond(v any, lower bool, where string) (cond, error) {
	m, ok := asMap(v)
	if !ok {
		return cond{}, fmt.Errorf("%s: a condition must be a mapping", where)
	}
	var c cond
	var err error
	if raw, ok := m["any"]; ok {
		if c.any, err = parseGroup(raw, lower, where+".any"); err != nil {
			return cond{}, err
		}
	}
	if raw, ok := m["all"]; ok {
		groups, ok := raw.([]any)
		if !ok {
			return cond{}, fmt.Errorf("%s.all: must be a list of lists", where)
		}
		if len(groups) > maxGroups {
			return cond{}, fmt.Errorf("%s.all: more than %d groups", where, maxGroups)
		}
		for i, g := range groups {
			ps, err := parseGroup(g, lower, fmt.Sprintf("%s.all[%d]", where, i))
			if err != nil {
				return cond{}, err
			}
			c.all = append(c.all, ps)
		}
	}
	if c.signals, err = stringsField(m, "signals", where, maxGroupLen); err != nil {
		return cond{}, err
	}
	if c.notSignals, err = stringsField(m, "not_signals", where, maxGroupLen); err != nil {
		return cond{}, err
	}
	if c.empty() {
		return cond{}, fmt.Errorf("%s: a condition needs any, all or signals", where)
	}
	return c, nil
}

func parseGroup(v any, lower bool, where string) ([]pattern, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("%s: must be a non-empty list of patterns", where)
	}
	if len(list) > maxGroupLen {
		return nil, fmt.Errorf("%s: more than %d patterns", where, maxGroupLen)
	}
	var out []pattern
	for _, item := range list {
		s, ok := scalarString(item)
		if !ok {
			return nil, fmt.Errorf("%s: patterns must be strings", where)
		}
		p, err := compilePattern(s, lower)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// hasWordBoundary reports whether kw occurs in text without an ASCII letter,
// digit or '_' touching it on either side (match_mode word_boundary).
func hasWordBoundary(text, kw string) bool {
	if kw == "" {
		return false
	}
	for from := 0; from <= len(text)-len(kw); {
		i := strings.Index(text[from:], kw)
		if i < 0 {
			return false
		}
		at := from + i
		end := at + len(kw)
		if (at == 0 || !asciiWord(text[at-1])) && (end == len(text) || !asciiWord(text[end])) {
			return true
		}
		from = at + 1
	}
	return false
}

func asciiWord(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
