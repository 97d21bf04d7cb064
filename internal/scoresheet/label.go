package scoresheet

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSubLen bounds the sub-question part of a label ("11(1)" → "1").
const maxSubLen = 8

// Label is a parsed question column header.
type Label struct {
	// Raw is the header as written, with surrounding white space removed.
	Raw string
	// No is the question number, 1..999.
	No int
	// Sub is the sub-question, lower-cased ASCII letters and digits
	// ("" for a question without sub-questions).
	Sub string
}

// ParseLabel parses a question column header. It accepts `3`, `12.0` (→ 12),
// `11(1)`, full-width `11（1）`, `12-1`, `12_1`, `12a` and `12(a)`; the sub
// part is lower-cased ASCII letters and digits, at most 8 of them. Anything
// else, and any number outside 1..999, gives ok=false.
func ParseLabel(s string) (Label, bool) {
	t := normalize(s)
	digits := 0
	for digits < len(t) && isDigit(t[digits]) {
		digits++
	}
	if digits == 0 || digits > 3 {
		return Label{}, false
	}
	no, _ := strconv.Atoi(t[:digits])
	if no < 1 || no > 999 {
		return Label{}, false
	}
	rest := t[digits:]
	var sub string
	switch {
	case rest == "":
	case rest[0] == '(' && strings.HasSuffix(rest, ")"):
		sub = rest[1 : len(rest)-1]
	case rest[0] == '-' || rest[0] == '_':
		sub = rest[1:]
	case isASCIILetter(rest[0]):
		sub = rest
	default:
		return Label{}, false
	}
	if rest != "" {
		if len(sub) == 0 || len(sub) > maxSubLen || !isASCIIAlnum(sub) {
			return Label{}, false
		}
		sub = strings.ToLower(sub)
	}
	return Label{Raw: trimSpace(s), No: no, Sub: sub}, true
}

// QuestionID returns the question's stable id: "Q<No>" without a sub-question,
// "Q<No>_<Sub>" with one, so 2(1) → Q2_1 and 21 → Q21 never collide, and
// 12a and 12(a) are the same question Q12_a.
func (l Label) QuestionID() string {
	if l.Sub == "" {
		return "Q" + strconv.Itoa(l.No)
	}
	return "Q" + strconv.Itoa(l.No) + "_" + l.Sub
}

// String returns the label in canonical form: "12" or "11(1)".
func (l Label) String() string {
	if l.Sub == "" {
		return strconv.Itoa(l.No)
	}
	return strconv.Itoa(l.No) + "(" + l.Sub + ")"
}

// isSpace reports white space, including the ideographic space, the BOM and
// the zero-width space that spreadsheets leave around values.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r == '\u3000' || r == '\uFEFF' || r == '\u200B'
}

// trimSpace removes leading and trailing white space (see isSpace).
func trimSpace(s string) string {
	if s == "" || (isPlainASCII(s[0]) && isPlainASCII(s[len(s)-1])) {
		return s // fast path: nothing to trim
	}
	return strings.TrimFunc(s, isSpace)
}

// isPlainASCII reports an ASCII byte that is not white space.
func isPlainASCII(c byte) bool { return c > ' ' && c < utf8.RuneSelf }

// foldWidth maps full-width ASCII forms (U+FF01–U+FF5E) to ASCII and the
// ideographic space to a plain space.
func foldWidth(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFEE0
		case r == '\u3000':
			return ' '
		}
		return r
	}, s)
}

// normalize folds full-width forms, trims white space and turns an integer
// written as a float ("12.0") into the integer ("12").
func normalize(s string) string {
	t := trimSpace(foldWidth(s))
	if dot := strings.IndexByte(t, '.'); dot > 0 && dot < len(t)-1 {
		allDigits := true
		for i := 0; i < dot; i++ {
			if !isDigit(t[i]) {
				allDigits = false
				break
			}
		}
		if allDigits && strings.Trim(t[dot+1:], "0") == "" {
			t = t[:dot]
		}
	}
	return t
}

// collapseSpace trims s and replaces each inner run of white space by sep.
func collapseSpace(s, sep string) string {
	return strings.Join(strings.FieldsFunc(s, isSpace), sep)
}

func isDigit(c byte) bool       { return c >= '0' && c <= '9' }
func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isASCIIAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && !isASCIILetter(s[i]) {
			return false
		}
	}
	return true
}

// letterSet returns the set of ASCII letters in s (case-folded) as a bit mask,
// bit 0 for A.
func letterSet(s string) uint32 {
	var m uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			m |= 1 << (c - 'A')
		case c >= 'a' && c <= 'z':
			m |= 1 << (c - 'a')
		}
	}
	return m
}

// setString spells a letter set as sorted upper-case letters.
func setString(m uint32) string {
	var b [26]byte
	n := 0
	for i := 0; i < 26; i++ {
		if m&(1<<i) != 0 {
			b[n] = byte('A' + i)
			n++
		}
	}
	return string(b[:n])
}

// parseNumber parses a plain decimal number such as "4", "4.0", "2.5", "-1"
// or "1E-3" (an already normalised cell), rounded to 6 decimals. It rejects
// anything else, including infinities, NaN, hex and digit separators.
func parseNumber(s string) (float64, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	intDigits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		intDigits++
	}
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			fracDigits++
		}
	}
	if intDigits+fracDigits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expDigits := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			expDigits++
		}
		if expDigits == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil { // out of range
		return 0, false
	}
	if math.Abs(f) < 1e9 {
		// Drop binary noise of spreadsheet arithmetic (0.30000000000000004
		// → 0.3); scores never carry six decimals.
		f = math.Round(f*1e6) / 1e6
	}
	return f, true
}
