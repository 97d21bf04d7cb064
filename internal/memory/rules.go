package memory

import (
	"crypto/sha1"
	"encoding/hex"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The predecessor's pattern classes (agent-extras.md §2.1), matched
// case-insensitively against title + content or a chat turn.
var (
	durableIntent = compileAll(
		`(?:请|帮我)?记住`,
		`以后(?:都|默认|统一|请)`,
		`默认(?:按|用|采用|是)`,
		`长期(?:按|使用|采用)`,
		`固定(?:格式|风格|模板|流程|做法)`,
		`偏好(?:是|为|改为)`,
		`今后(?:都|统一|默认)`,
	)
	temporaryHint = compileAll(`今天`, `本周`, `这次`, `临时`, `暂时`, `先按`)
	stablePref    = compileAll(
		`(?:输出|回复|讲解|批改|反馈|总结)`,
		`(?:格式|结构|风格|模板|语气)`,
		`(?:结论|行动项|先.+再.+|条目|分点|markdown)`,
		`(?:难度|题量|时长|作业要求)`,
	)
	inferBlock = compileAll(
		`(?:这道题|这题|本题|这个题)`,
		`(?:这次|本次|今天|临时|暂时)`,
		`(?:帮我解|请解答|算一下)`,
	)
)

// secret is one kind of sensitive text: re finds it, and a match is
// replaced with repl (which keeps the boundary groups of the digit
// patterns).
type secret struct {
	name string
	re   *regexp.Regexp
	repl string
}

// secrets is the secret filter: the predecessor's five patterns (OpenAI,
// Google and AWS keys, key/token assignments, passwords) and what its list
// lacked (agent-extras.md §8.2): JWTs, bearer tokens, private key blocks,
// GitHub/Slack tokens, long hex secrets, Chinese password phrases, and the
// personal data its student filter refused (mainland mobile numbers and
// ID card numbers).
var secrets = []secret{
	{"api_key", regexp.MustCompile(`(?i)sk-[A-Za-z0-9_-]{16,}`), "[REDACTED]"},
	{"api_key", regexp.MustCompile(`(?i)AIza[0-9A-Za-z\\_-]{20,}`), "[REDACTED]"},
	{"api_key", regexp.MustCompile(`(?i)AKIA[0-9A-Z]{12,}`), "[REDACTED]"},
	{"api_key", regexp.MustCompile(`(?i)(?:gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,})`), "[REDACTED]"},
	{"token", regexp.MustCompile(`(?i)(?:api|access|secret|refresh|auth)[-_ ]?(?:key|token)\s*[:=：]\s*\S{6,}`), "[REDACTED]"},
	{"token", regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/-]{16,}=*`), "[REDACTED]"},
	{"token", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`), "[REDACTED]"},
	{"private_key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`), "[REDACTED]"},
	{"password", regexp.MustCompile(`(?i)(?:password|passwd|pwd)\s*[:=：]\s*\S{4,}`), "[REDACTED]"},
	{"password", regexp.MustCompile(`(?:密码|口令|密钥)\s*(?:是|为|[:=：])\s*\S{4,}`), "[REDACTED]"},
	{"secret_hex", regexp.MustCompile(`(?i)(^|[^0-9a-f])([0-9a-f]{32,})([^0-9a-f]|$)`), "${1}[REDACTED]${3}"},
	{"id_number", regexp.MustCompile(`(^|\D)(\d{17}[\dXx])(\D|$)`), "${1}[REDACTED]${3}"},
	{"phone_number", regexp.MustCompile(`(^|\D)(1[3-9]\d{9})(\D|$)`), "${1}[REDACTED]${3}"},
}

// conflictGroups are opposite preferences: a new applied entry holding a
// term of one side supersedes older entries holding a term of the other.
var conflictGroups = [][2][]string{
	{{"简洁", "精简", "简短"}, {"详细", "展开", "长文"}},
	{{"中文", "汉语"}, {"英文", "英语", "english"}},
	{{"先结论", "先总结"}, {"先过程", "先推导", "先分析"}},
	{{"条目", "要点", "bullet"}, {"段落", "叙述"}},
}

func compileAll(patterns ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		out[i] = regexp.MustCompile(`(?i)` + p)
	}
	return out
}

func matchAny(res []*regexp.Regexp, text string) bool {
	for _, re := range res {
		if re.MatchString(text) {
			return true
		}
	}
	return false
}

// SensitiveKinds names the kinds of secret or personal data text holds
// (api_key, token, private_key, password, secret_hex, id_number,
// phone_number), each once; nil when there is none.
func SensitiveKinds(text string) []string {
	var out []string
	for _, s := range secrets {
		if s.re.MatchString(text) && !slices.Contains(out, s.name) {
			out = append(out, s.name)
		}
	}
	return out
}

// Sensitive reports whether text holds anything the secret filter refuses.
func Sensitive(text string) bool {
	if strings.TrimSpace(text) == "" {
		return false
	}
	for _, s := range secrets {
		if s.re.MatchString(text) {
			return true
		}
	}
	return false
}

// Redact replaces what the secret filter finds with [REDACTED]. It is for
// text already on disk (written by the predecessor, or by hand): new
// proposals holding a secret are refused, never stored.
func Redact(text string) string {
	for _, s := range secrets {
		if s.re.MatchString(text) {
			text = s.re.ReplaceAllString(text, s.repl)
		}
	}
	return text
}

var (
	spaceRun = regexp.MustCompile(`\s+`)
	// The punctuation, quotes and brackets normalisation removes.
	punct = strings.NewReplacer(
		"，", "", "。", "", "！", "", "？", "", "、", "", ",", "", ".", "", "!", "", "?", "", ";", "", "；", "",
		":", "", "：", "", "`", "", "'", "", `"`, "", "“", "", "”", "", "‘", "", "’", "", "（", "", "）", "",
		"(", "", ")", "", "[", "", "]", "", "{", "", "}", "", "<", "", ">", "", `\`, "")
)

// normText is the text duplicate and conflict checks compare: whitespace
// collapsed, lower-cased, punctuation, quotes and brackets removed.
func normText(s string) string {
	s = strings.ToLower(strings.TrimSpace(spaceRun.ReplaceAllString(s, " ")))
	return punct.Replace(s)
}

// stableHash is the first 20 hex digits of SHA-1 over the trimmed parts
// joined with "||" (the auto proposals' dedupe_key).
func stableHash(parts ...string) string {
	trimmed := make([]string, len(parts))
	for i, p := range parts {
		trimmed[i] = strings.TrimSpace(p)
	}
	sum := sha1.Sum([]byte(strings.Join(trimmed, "||")))
	return hex.EncodeToString(sum[:])[:20]
}

func bigrams(s string) map[string]bool {
	compact := []rune(spaceRun.ReplaceAllString(s, ""))
	out := map[string]bool{}
	switch len(compact) {
	case 0:
	case 1:
		out[string(compact)] = true
	default:
		for i := 0; i+1 < len(compact); i++ {
			out[string(compact[i:i+2])] = true
		}
	}
	return out
}

// looseMatch: equal normalised texts, the shorter (at least 12
// characters) inside the longer, or a Jaccard similarity of at least 0.72
// over character bigrams.
func looseMatch(a, b string) bool {
	na, nb := normText(a), normText(b)
	if na == "" || nb == "" {
		return false
	}
	if na == nb {
		return true
	}
	short, long := na, nb
	if utf8.RuneCountInString(short) > utf8.RuneCountInString(long) {
		short, long = long, short
	}
	if utf8.RuneCountInString(short) >= 12 && strings.Contains(long, short) {
		return true
	}
	sa, sb := bigrams(na), bigrams(nb)
	if len(sa) == 0 || len(sb) == 0 {
		return false
	}
	inter := 0
	for g := range sa {
		if sb[g] {
			inter++
		}
	}
	union := len(sa) + len(sb) - inter
	return union > 0 && float64(inter)/float64(union) >= 0.72
}

func hasTerm(text string, terms []string) bool {
	for _, t := range terms {
		if strings.Contains(text, t) {
			return true
		}
	}
	return false
}

// conflicts reports whether two different texts hold opposite sides of a
// conflict group.
func conflicts(newText, oldText string) bool {
	n, o := normText(newText), normText(oldText)
	if n == "" || o == "" || n == o {
		return false
	}
	for _, g := range conflictGroups {
		if hasTerm(n, g[0]) && hasTerm(o, g[1]) || hasTerm(n, g[1]) && hasTerm(o, g[0]) {
			return true
		}
	}
	return false
}

// PriorityScore is a proposal's priority, 0..100 (agent-extras.md §2.2):
// a base by source, then target, intent, preference, temporary-hint,
// secret, length, ordering and template adjustments, and the repeat bonus
// of meta.similar_hits.
func PriorityScore(target, title, content, source string, meta map[string]any) int {
	text := strings.TrimSpace(title + "\n" + content)
	score := 0.0
	switch normSource(source) {
	case SourceManual:
		score += 70
	case SourceAutoIntent:
		score += 62
	case SourceAutoInfer:
		score += 54
	case SourceAutoFlush:
		score += 36
	default:
		score += 44
	}
	switch normTarget(target) {
	case TargetMemory:
		score += 12
	case TargetDaily:
		score += 4
	}
	if matchAny(durableIntent, text) {
		score += 15
	}
	if matchAny(stablePref, text) {
		score += 10
	}
	if matchAny(temporaryHint, text) {
		score -= 18
	}
	if Sensitive(text) {
		score = 0
	}
	if utf8.RuneCountInString(normText(text)) < 12 {
		score -= 8
	}
	if strings.Contains(text, "先") && strings.Contains(text, "后") {
		score += 6
	}
	if strings.Contains(text, "模板") || strings.Contains(text, "格式") || strings.Contains(text, "结构") {
		score += 6
	}
	if hits, ok := intOf(meta["similar_hits"]); ok && hits > 0 {
		score += math.Min(16, float64(4*hits))
	}
	return int(math.Max(0, math.Min(100, math.Round(score))))
}

// rules are the TTL and decay settings of a Service.
type rules struct {
	ttlMemory, ttlDaily int
	decay               bool
}

// ttlDays: the record's ttl_days, else meta.ttl_days (at least 0), else
// the daily TTL for DAILY entries and auto_flush, else the memory TTL. 0
// means the entry never expires.
func (ru rules) ttlDays(p *Proposal) int {
	if p.TTLDays != nil {
		return max(0, *p.TTLDays)
	}
	if n, ok := intOf(p.Meta["ttl_days"]); ok {
		return max(0, n)
	}
	if normTarget(p.Target) == TargetDaily || normSource(p.Source) == SourceAutoFlush {
		return ru.ttlDaily
	}
	return ru.ttlMemory
}

// baseTime is when an entry's age counts from: applied_at, else
// created_at.
func baseTime(p *Proposal, loc *time.Location) (time.Time, bool) {
	if t, ok := parseTime(p.AppliedAt, loc); ok {
		return t, true
	}
	return parseTime(p.CreatedAt, loc)
}

// expiresAt: the record's expires_at, else its base time + TTL days;
// false when it never expires.
func (ru rules) expiresAt(p *Proposal, loc *time.Location) (time.Time, bool) {
	if t, ok := parseTime(p.ExpiresAt, loc); ok {
		return t, true
	}
	ttl := ru.ttlDays(p)
	if ttl <= 0 {
		return time.Time{}, false
	}
	base, ok := baseTime(p, loc)
	if !ok {
		return time.Time{}, false
	}
	return base.AddDate(0, 0, ttl), true
}

// expired reports whether decay is on and the entry's expiry has passed.
func (ru rules) expired(p *Proposal, now time.Time) bool {
	if !ru.decay {
		return false
	}
	t, ok := ru.expiresAt(p, now.Location())
	return ok && !now.Before(t)
}

// ageDays is the whole days since the entry's base time.
func ageDays(p *Proposal, now time.Time) int {
	base, ok := baseTime(p, now.Location())
	if !ok {
		return 0
	}
	return max(0, int(now.Sub(base)/(24*time.Hour)))
}

// priority is the stored priority_score, else the computed one.
func priority(p *Proposal) int {
	if p.PriorityScore != nil {
		return *p.PriorityScore
	}
	return PriorityScore(p.Target, p.Title, p.Content, p.Source, p.Meta)
}

// rankScore orders memory entries: priority × max(0.2, 1 − age/TTL) with
// decay on and a TTL, else the priority.
func (ru rules) rankScore(p *Proposal, now time.Time) float64 {
	pr := float64(priority(p))
	ttl := ru.ttlDays(p)
	if !ru.decay || ttl <= 0 {
		return pr
	}
	return pr * math.Max(0.2, 1-float64(ageDays(p, now))/float64(max(1, ttl)))
}

// active reports whether an entry is in the teacher's memory now: applied,
// not superseded, not expired.
func (ru rules) active(p *Proposal, now time.Time) bool {
	return p.Status == StatusApplied && p.SupersededBy == "" && !ru.expired(p, now)
}

// The timestamp layouts accepted on disk (Python's fromisoformat output,
// with or without a zone).
var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTime reads a stored timestamp; one without a zone is local time
// (loc), as the predecessor wrote it.
func parseTime(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// intOf reads a JSON number (or numeric string) as an int.
func intOf(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		return int(n), true
	case int:
		return n, true
	case string:
		f, ok := parseNumber(n)
		return int(f), ok
	}
	return 0, false
}
