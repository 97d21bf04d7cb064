package scoresheet

import (
	"math/bits"
	"regexp"
	"strings"
)

// AnswerKey maps a question id (see Label.QuestionID) to its correct
// letters: upper-case, sorted, without duplicates.
type AnswerKey map[string]string

// maxKeyLetters bounds the letters of one answer as written.
const maxKeyLetters = 8

// keyLabel is a question label inside answer-key text (after width folding).
const keyLabel = `(\d{1,3}(?:\([0-9A-Za-z]{1,8}\)|[-_][0-9A-Za-z]{1,8}|[A-Za-z][0-9A-Za-z]{0,7})?)`

// keySep is the separator between a label and its letters.
const keySep = `[.):,、]`

// Read-only compiled patterns (a *regexp.Regexp is safe for concurrent use).
var (
	// keyLine: one answer on a whole line; a bare space also separates.
	keyLine = regexp.MustCompile(`^\s*` + keyLabel + `\s*(?:` + keySep + `\s*|\s+)([A-Za-z]+)\s*$`)
	// keyInline: an answer anywhere in the text; a separator is required.
	keyInline = regexp.MustCompile(keyLabel + `\s*` + keySep + `\s*([A-Za-z]+)`)
)

// ParseAnswerKey reads an answer key, line by line. A line that holds one
// answer — a label (anything ParseLabel accepts, so `11(1) B` works), a
// separator (. ) ： : 、 ， or white space) and 1–8 letters — gives that
// answer. Any other line is searched for inline `label sep letters` runs,
// for example "1.A 2.C 3、B 9:AC"; there a bare space does not separate a
// label from its letters. So a key may mix both forms ("1.A 2.C" on one
// line, "9. AC" on the next). Letters are case-insensitive; a later entry
// for the same question overwrites an earlier one. The warnings say when
// the text is empty or nothing in it was recognised.
func ParseAnswerKey(text string) (AnswerKey, []string) {
	key := AnswerKey{}
	t := foldWidth(text)
	if strings.TrimFunc(t, isSpace) == "" {
		return key, []string{"答案文本为空 (the answer key is empty)"}
	}
	for line := range strings.Lines(t) {
		if m := keyLine.FindStringSubmatch(line); m != nil {
			key.add(m[1], m[2])
			continue
		}
		scanInline(line, key.add)
	}
	if len(key) == 0 {
		return key, []string{"未识别到任何答案，格式应为每行“1. A”或“1.A 2.C 9.AC” (no answers recognised; expected lines like \"1. A\" or \"1.A 2.C 9.AC\")"}
	}
	return key, nil
}

// scanInline passes each `label sep letters` run in s to add.
func scanInline(s string, add func(label, letters string) bool) {
	for _, loc := range keyInline.FindAllStringSubmatchIndex(s, -1) {
		if start := loc[0]; start > 0 {
			// "21.A" must not read as "1.A", nor "(1)B" as "1)B".
			if p := s[start-1]; isDigit(p) || strings.IndexByte("(-_.", p) >= 0 {
				continue
			}
		}
		add(s[loc[2]:loc[3]], s[loc[4]:loc[5]])
	}
}

// add records one answer if its label parses and it has 1–8 letters.
// and reports whether it did.
func (k AnswerKey) add(label, letters string) bool {
	if len(letters) == 0 || len(letters) > maxKeyLetters {
		return false
	}
	l, ok := ParseLabel(label)
	if !ok {
		return false
	}
	k[l.QuestionID()] = setString(letterSet(letters))
	return true
}

// ScoreAnswer scores a student's letters against a key's letters with full
// marks max. Letters compare as sets (case, order and duplicates ignored;
// anything but ASCII letters is ignored). The same set scores (max, true);
// for a multi-letter key, a non-empty proper subset scores (max/2, false);
// anything else, and an empty key, scores (0, false).
func ScoreAnswer(answer, key string, max float64) (score float64, full bool) {
	a, k := letterSet(foldWidth(answer)), letterSet(foldWidth(key))
	switch {
	case k == 0:
		return 0, false
	case a == k:
		return max, true
	case bits.OnesCount32(k) > 1 && a != 0 && a&^k == 0:
		return max / 2, false
	}
	return 0, false
}
