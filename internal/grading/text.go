package grading

import (
	"cmp"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/lectern/lectern/internal/datapath"
	"github.com/lectern/lectern/internal/exams"
)

// symbols is the predecessor's symbol normalisation (assignments-detail.md
// §4.2 step 4).
var symbols = strings.NewReplacer(
	"×", "x", "＊", "x", "*", "x", "＝", "=", "－", "-", "—", "-", "–", "-", "＋", "+",
	"·", ".", "．", ".", "，", ",", "。", ".", "：", ":", "；", ";",
	"（", "(", "）", ")", "【", "[", "】", "]",
)

// normalize applies the symbol normalisation, then folds the remaining
// full-width ASCII forms (Ａ, １, ？ …) that OCR of Chinese pages often
// gives for Latin letters and digits.
func normalize(s string) string {
	s = symbols.Replace(s)
	return strings.Map(func(r rune) rune {
		if r >= 0xFF01 && r <= 0xFF5E {
			return r - 0xFEE0
		}
		if r == 0x3000 { // ideographic space
			return ' '
		}
		return r
	}, s)
}

// cleanText is a page's cleaned text: lines trimmed, blank lines dropped,
// symbols normalised.
func cleanText(s string) string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, normalize(l))
		}
	}
	return strings.Join(out, "\n")
}

// matchText is the form texts are compared in: normalised, lowercased,
// without any white space.
func matchText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, normalize(s))
}

// block is the answer to one numbered question.
type block struct {
	No   int    `json:"question_no"`
	Text string `json:"text"` // its lines, the number included
	body string // the text after the question's own number
}

// Question-number markers at the start of a (normalised) line:
//   - strong: "3." (not followed by a digit), "3、", "3)", "第3题";
//   - paren: "(3)", a question number only where the page has no strong
//     markers (otherwise it numbers the parts of an answer);
//   - weak: "3.9.8" (OCR dropped the space after "3."), "3," "3:" and
//     "3 answer" (OCR dropped the dot): taken only when they continue the
//     sequence (3 right after 2) and the block before is not empty, so an
//     answer line like "4 N" under "3." stays an answer.
var (
	strongMark = regexp.MustCompile(`^(\d{1,3})\s*([.、)])\s*(.*)$`)
	tiMark     = regexp.MustCompile(`^第\s*(\d{1,3})\s*题\s*[:.、]?\s*(.*)$`)
	parenMark  = regexp.MustCompile(`^\(\s*(\d{1,3})\s*\)\s*(.*)$`)
	weakMark   = regexp.MustCompile(`^(\d{1,3})(?:\s*[,:]\s*|\s+)(.*)$`)
	dotDigit   = regexp.MustCompile(`^\d{1,3}\.\d`)
)

type mark struct {
	no           int
	rest         string
	strong, weak bool
	paren        bool
}

func parseMark(line string) (mark, bool) {
	if m := tiMark.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		return mark{no: n, rest: m[2], strong: true}, n > 0
	}
	if m := strongMark.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		if dotDigit.MatchString(line) {
			return mark{no: n, rest: m[3], weak: true}, n > 0 // "3.9.8", or an answer "12.5 N"
		}
		return mark{no: n, rest: m[3], strong: true}, n > 0
	}
	if m := parenMark.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		return mark{no: n, rest: m[2], paren: true}, n > 0
	}
	if m := weakMark.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		return mark{no: n, rest: m[2], weak: true}, n > 0
	}
	return mark{}, false
}

// splitBlocks splits cleaned text into the answers of numbered questions;
// preamble is what comes before the first (name, class, assignment id). A
// number seen before does not start a block again (a list inside an
// answer).
func splitBlocks(text string) (preamble string, blocks []block) {
	lines := strings.Split(text, "\n")
	marks := make([]mark, len(lines))
	ok := make([]bool, len(lines))
	strongPage := false
	for i, l := range lines {
		marks[i], ok[i] = parseMark(strings.TrimSpace(l))
		if ok[i] && marks[i].strong {
			strongPage = true
		}
	}
	var pre []string
	seen := map[int]bool{}
	last := 0
	for i, l := range lines {
		m := marks[i]
		start := false
		if ok[i] && !seen[m.no] {
			switch {
			case m.strong:
				start = true
			case m.paren:
				start = !strongPage
			case m.weak:
				prevEmpty := len(blocks) > 0 && strings.TrimSpace(blocks[len(blocks)-1].body) == ""
				start = m.no == last+1 && !prevEmpty
			}
		}
		switch {
		case start:
			seen[m.no] = true
			last = m.no
			blocks = append(blocks, block{No: m.no, Text: l, body: m.rest})
		case len(blocks) > 0:
			b := &blocks[len(blocks)-1]
			b.Text += "\n" + l
			b.body += "\n" + l
		default:
			pre = append(pre, l)
		}
	}
	return strings.Join(pre, "\n"), blocks
}

// idLabel finds the labels a sheet names its assignment with.
var idLabel = regexp.MustCompile(`(?i)(?:assignment\s*id|assignment|作业\s*id|作业|练习)\s*:\s*([\p{L}\p{N}_.\-]+)`)

// maxScanned bounds the assignment folders the id scan looks at.
const maxScanned = 5000

// detectAssignment finds the assignment a submission's text names: first
// the labels (Assignment ID: x, Assignment: x, 作业ID: x, 作业: x, 练习: x)
// whose value is an assignment with a questions.csv, then any such
// assignment's id occurring in the text (not inside a longer word; the
// longest match wins, then the earliest). exists reports whether an id is
// such an assignment.
func detectAssignment(text, root string, exists func(id string) bool) string {
	for _, m := range idLabel.FindAllStringSubmatch(text, -1) {
		if v := strings.Trim(m[1], ".-"); v != "" && exists(v) {
			return v
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	hay := strings.ToLower(normalize(text)) // spaces kept: they bound words
	type hit struct {
		id       string
		pos, len int
	}
	var best *hit
	for i, e := range entries {
		if i >= maxScanned {
			break
		}
		id := e.Name()
		if !exams.ValidID(id) {
			continue
		}
		needle := strings.ToLower(id)
		pos := wordIndex(hay, needle)
		if pos < 0 {
			continue
		}
		h := hit{id: id, pos: pos, len: len(needle)}
		if best != nil && cmp.Or(cmp.Compare(best.len, h.len), cmp.Compare(h.pos, best.pos), strings.Compare(h.id, best.id)) >= 0 {
			continue
		}
		if exists(id) {
			best = &h
		}
	}
	if best == nil {
		return ""
	}
	return best.id
}

// wordIndex is the first index of needle in hay that is not inside a
// longer run of ASCII letters, digits, '_' or '-'; -1 if none.
func wordIndex(hay, needle string) int {
	if needle == "" {
		return -1
	}
	word := func(b byte) bool {
		return b == '_' || b == '-' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for off := 0; off < len(hay); {
		i := strings.Index(hay[off:], needle)
		if i < 0 {
			return -1
		}
		i += off
		end := i + len(needle)
		if (i == 0 || !word(hay[i-1])) && (end == len(hay) || !word(hay[end])) {
			return i
		}
		off = i + 1
	}
	return -1
}

// hasQuestions reports whether the assignment folder dir has a regular
// questions.csv.
func hasQuestions(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "questions.csv"))
	return err == nil && fi.Mode().IsRegular()
}

// resolveRef turns a questions.csv reference (stem_ref, answer_ref,
// rubric_ref) into a real path inside dataDir: relative references are
// taken from dataDir (the predecessor's "data/…" form too), absolute ones
// must lie inside it; anything resolving outside it after symlinks is
// refused.
func resolveRef(dataDir, ref string) (string, error) { return datapath.Resolve(dataDir, ref) }

// numbers are the numbers in s.
var numberRe = regexp.MustCompile(`-?\d+(?:\.\d+)?`)

func numbersIn(s string) []float64 {
	var out []float64
	for _, m := range numberRe.FindAllString(s, -1) {
		if v, err := strconv.ParseFloat(m, 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// choiceAfterLabel is an answer given after 答案/答/选: "答案:B", "选A,C".
var choiceAfterLabel = regexp.MustCompile(`(?:答案|答|选)[:]?([A-D](?:[,、/]?[A-D]){0,3})`)

// studentChoice reads the choice letters of an answer: those after
// 答案/答/选, else the longest standalone run of A–D letters (separated
// by nothing, spaces, commas, 、 or /; never part of a longer Latin word),
// as a sorted set. "" when there is none.
func studentChoice(body string) string {
	up := strings.ToUpper(normalize(body))
	compact := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, up)
	for _, loc := range choiceAfterLabel.FindAllStringSubmatchIndex(compact, -1) {
		if end := loc[3]; end < len(compact) && isLatin(rune(compact[end])) {
			continue // "答:BECAUSE"
		}
		return letterSet(compact[loc[2]:loc[3]])
	}
	// Tokens are runs of Latin letters; a run of choice tokens is joined
	// by separators only.
	best, cur := "", ""
	sepOnly := true
	flush := func() {
		if len(letterSet(cur)) > len(letterSet(best)) {
			best = cur
		}
		cur = ""
	}
	rs := []rune(up)
	for i := 0; i < len(rs); {
		if !isLatin(rs[i]) {
			switch rs[i] {
			case ' ', '\t', ',', '、', '/':
			default:
				sepOnly = false
			}
			i++
			continue
		}
		j := i
		for j < len(rs) && isLatin(rs[j]) {
			j++
		}
		tok := string(rs[i:j])
		if len(tok) <= 4 && strings.Trim(tok, "ABCD") == "" {
			if !sepOnly {
				flush()
			}
			cur += tok
		} else {
			flush()
		}
		sepOnly = true
		i = j
	}
	flush()
	if len(letterSet(best)) > 4 {
		return ""
	}
	return letterSet(best)
}

func isLatin(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }

// letterSet is the sorted, de-duplicated A–D letters of s.
func letterSet(s string) string {
	var l []rune
	for _, r := range s {
		if r >= 'A' && r <= 'D' && !slices.Contains(l, r) {
			l = append(l, r)
		}
	}
	slices.Sort(l)
	return string(l)
}
