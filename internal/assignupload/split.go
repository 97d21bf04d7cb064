package assignupload

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
)

// numbered is one question found by splitQuestions: its number and its
// text (the rest of the numbered line and the lines that follow it).
type numbered struct {
	No   int
	Text string
}

// Numbering styles a question can start with, in the order that wins a
// tie: 1. 1． 1、 | 第1题 | 1) 1） | (1) （1） | 一、 一．
type style int

const (
	styleArabic style = iota
	styleTi
	styleParen
	styleWrapped
	styleCJK
	styleCount
)

// maxGap is how far the next number may jump (a question lost to OCR, or
// a page missing) and still continue the sequence.
const maxGap = 3

// splitQuestions splits text into numbered questions, for sources read
// without an LLM. A line starts a question when it begins with a number
// (1 to 3 digits, or a Chinese numeral up to 999) in one of the styles
// above and the number continues the sequence of that style. Of the
// styles present, the one with the longest sequence is the questions'
// level: lines of the other styles stay in the question they are in
// (sub-questions such as (1) (2)), except 一、 二、 headings above 1. 2.
// questions, which are section titles and dropped. Lines before the first
// question (the title) are dropped. Nil when no line is numbered.
func splitQuestions(text string) []numbered {
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n"), "\n")
	type mark struct {
		st   style
		no   int
		rest string
	}
	marks := make([]*mark, len(lines))
	for i, l := range lines {
		if st, no, rest, ok := lineMarker(l); ok {
			marks[i] = &mark{st, no, rest}
		}
	}
	// The accepted starts of each style: the greedy increasing sequence.
	var starts [styleCount][]int
	for st := range styleCount {
		last := 0
		for i, m := range marks {
			if m == nil || m.st != st {
				continue
			}
			if len(starts[st]) == 0 || (m.no > last && m.no <= last+maxGap) {
				starts[st] = append(starts[st], i)
				last = m.no
			}
		}
	}
	best := styleArabic
	for st := range styleCount {
		if len(starts[st]) > len(starts[best]) {
			best = st
		}
	}
	if len(starts[best]) == 0 {
		return nil
	}
	isStart := make(map[int]bool, len(starts[best]))
	for _, i := range starts[best] {
		isStart[i] = true
	}
	var out []numbered
	var body []string
	flush := func() {
		if len(out) > 0 {
			out[len(out)-1].Text = strings.TrimSpace(strings.Join(body, "\n"))
		}
		body = body[:0]
	}
	for i, l := range lines {
		switch {
		case isStart[i]:
			flush()
			out = append(out, numbered{No: marks[i].no})
			body = append(body, marks[i].rest)
		case len(out) == 0:
			// the title and anything above the first question
		case marks[i] != nil && marks[i].st == styleCJK && best != styleCJK:
			// a section heading (一、选择题) between questions
		default:
			body = append(body, strings.TrimRightFunc(l, unicode.IsSpace))
		}
	}
	flush()
	return out
}

// splitAnswers splits an answer key by number like splitQuestions, but
// first breaks lines that hold several numbered answers ("1. B  2. C 3. A")
// where the numbers follow one another.
func splitAnswers(text string) map[int]string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		b.WriteString(breakInline(line))
		b.WriteByte('\n')
	}
	out := map[int]string{}
	for _, a := range splitQuestions(b.String()) {
		if _, seen := out[a.No]; !seen {
			out[a.No] = a.Text
		}
	}
	return out
}

// inlineMarker is an arabic number mark after a space, inside a line.
var inlineMarker = regexp.MustCompile(`[ \t\x{3000}]+([0-9０-９]{1,3})[ \t]*[.．、]`)

// breakInline puts each numbered answer of a line that starts with one on
// its own line, when its number is the previous one plus one.
func breakInline(line string) string {
	st, no, _, ok := lineMarker(line)
	if !ok || st != styleArabic {
		return line
	}
	var b strings.Builder
	from := 0
	for _, m := range inlineMarker.FindAllStringSubmatchIndex(line, -1) {
		n, err := strconv.Atoi(asciiDigits(line[m[2]:m[3]]))
		if err != nil || n != no+1 || followedByDigit(line, m[1]) {
			continue
		}
		b.WriteString(line[from:m[0]])
		b.WriteByte('\n')
		from = m[2]
		no = n
	}
	b.WriteString(line[from:])
	return b.String()
}

// lineMarker reads the number a line starts with: its style, the number
// and the rest of the line. Leading spaces and Markdown marks (#, >, *)
// are skipped.
func lineMarker(line string) (style, int, string, bool) {
	s := strings.TrimLeftFunc(line, func(r rune) bool { return unicode.IsSpace(r) || r == '#' || r == '>' || r == '*' })
	if s == "" {
		return 0, 0, "", false
	}
	rest := func(t string) string {
		return strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(t), "*:： "))
	}
	if t, ok := strings.CutPrefix(s, "第"); ok {
		t = strings.TrimLeftFunc(t, unicode.IsSpace)
		n, t, ok := number(t)
		t = strings.TrimLeftFunc(t, unicode.IsSpace)
		if after, found := strings.CutPrefix(t, "题"); ok && found {
			return styleTi, n, rest(strings.TrimLeft(after, ".．、")), true
		}
		return 0, 0, "", false
	}
	if r, size := utf8.DecodeRuneInString(s); r == '(' || r == '（' {
		n, t, ok := arabic(strings.TrimLeftFunc(s[size:], unicode.IsSpace))
		t = strings.TrimLeftFunc(t, unicode.IsSpace)
		if r, size := utf8.DecodeRuneInString(t); ok && (r == ')' || r == '）') {
			return styleWrapped, n, rest(t[size:]), true
		}
		return 0, 0, "", false
	}
	if n, t, ok := arabic(s); ok {
		t = strings.TrimLeft(t, " \t")
		r, size := utf8.DecodeRuneInString(t)
		switch {
		case r == '、':
			return styleArabic, n, rest(t[size:]), true
		case (r == '.' || r == '．') && !followedByDigit(t, size):
			return styleArabic, n, rest(t[size:]), true
		case r == ')' || r == '）':
			return styleParen, n, rest(t[size:]), true
		}
		return 0, 0, "", false
	}
	if n, t, ok := chinese(s); ok {
		t = strings.TrimLeft(t, " \t")
		if r, size := utf8.DecodeRuneInString(t); r == '、' || r == '.' || r == '．' {
			return styleCJK, n, rest(t[size:]), true
		}
	}
	return 0, 0, "", false
}

func followedByDigit(s string, at int) bool {
	r, _ := utf8.DecodeRuneInString(s[at:])
	return r >= '0' && r <= '9' || r >= '０' && r <= '９'
}

// number reads an arabic or Chinese number (1 to 999).
func number(s string) (int, string, bool) {
	if n, t, ok := arabic(s); ok {
		return n, t, true
	}
	return chinese(s)
}

// arabic reads 1 to 3 digits (ASCII or full-width) at the start of s: not
// a fourth one, not 0.
func arabic(s string) (int, string, bool) {
	i, digits := 0, 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !(r >= '0' && r <= '9' || r >= '０' && r <= '９') {
			break
		}
		i += size
		digits++
	}
	if digits == 0 || digits > 3 {
		return 0, s, false
	}
	n, err := strconv.Atoi(asciiDigits(s[:i]))
	if err != nil || n == 0 {
		return 0, s, false
	}
	return n, s[i:], true
}

func asciiDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '０' && r <= '９' {
			return r - '０' + '0'
		}
		return r
	}, s)
}

var cjkDigits = map[rune]int{'一': 1, '二': 2, '三': 3, '四': 4, '五': 5, '六': 6, '七': 7, '八': 8, '九': 9}

// chinese reads a Chinese numeral of 1 to 999 (一 … 十 … 九百九十九) at the
// start of s.
func chinese(s string) (int, string, bool) {
	var rs []rune
	i := 0
	for i < len(s) && len(rs) < 6 {
		r, size := utf8.DecodeRuneInString(s[i:])
		if _, ok := cjkDigits[r]; !ok && r != '十' && r != '百' && r != '零' {
			break
		}
		rs = append(rs, r)
		i += size
	}
	n, ok := chineseValue(rs)
	if !ok {
		return 0, s, false
	}
	return n, s[i:], true
}

// chineseValue is the value of a numeral such as 十二, 二十, 一百零五.
func chineseValue(rs []rune) (int, bool) {
	if len(rs) == 0 {
		return 0, false
	}
	total, cur := 0, 0
	seenTen, seenHundred := false, false
	for _, r := range rs {
		switch r {
		case '百':
			if seenHundred || seenTen || cur == 0 {
				return 0, false
			}
			total += cur * 100
			cur, seenHundred = 0, true
		case '十':
			if seenTen {
				return 0, false
			}
			if cur == 0 {
				cur = 1
			}
			total += cur * 10
			cur, seenTen = 0, true
		case '零':
			if cur != 0 {
				return 0, false
			}
		default:
			if cur != 0 {
				return 0, false // 二三: not a numeral
			}
			cur = cjkDigits[r]
		}
	}
	total += cur
	return total, total >= 1 && total <= 999
}

// scoreMark is a score given with a question: (3分) （10 分）.
var scoreMark = regexp.MustCompile(`[(（]\s*(\d{1,3})\s*分\s*[)）]`)

// ruleQuestions are the questions of a source split by rule, with the
// answers of an answer text numbered the same way.
func ruleQuestions(source, answers string) []Question {
	key := splitAnswers(answers)
	var out []Question
	for _, n := range splitQuestions(source) {
		q := Question{Stem: textcut.Head(n.Text, maxStemRunes), Answer: textcut.Head(key[n.No], maxStemRunes), Tags: []string{}}
		first, _, _ := strings.Cut(n.Text, "\n")
		if m := scoreMark.FindStringSubmatch(first); m != nil {
			q.Score, _ = strconv.ParseFloat(m[1], 64)
		}
		out = append(out, q)
	}
	return out
}
