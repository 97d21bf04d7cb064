package grading

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
)

// Bounds of what an assignment may make the grader read.
const (
	maxQuestions   = 500
	maxRefBytes    = 1 << 20 // an answer or rubric file
	maxRubricSteps = 100
	maxStepTerms   = 50 // keywords, and regexes, of one step
	maxRegexLen    = 500
)

// question is one questions.csv row as the grader needs it.
type question struct {
	ID, KP string
	// No is the question_no column when it is an integer, else 0.
	No       int
	MaxScore float64 // the score column; 1 when absent
	// hasMax says the score column gave MaxScore.
	hasMax   bool
	Expected string // the expected answer; "" for a subjective question
	Rubric   *rubric
	// RubricErr says why a named rubric could not be used.
	RubricErr string
	Stem      string
}

// rubric is {"steps":[{"id","score","keywords":[],"regex":[]}]}.
type rubric struct {
	Steps []step
}

type step struct {
	ID       string
	Score    float64
	Keywords []string
	Regex    []*regexp.Regexp
}

func (r *rubric) total() float64 {
	t := 0.0
	for _, s := range r.Steps {
		t += s.Score
	}
	return t
}

// loadQuestions reads an assignment's questions (through the assignments
// service, which also reads each stem within DATA_DIR).
func (s *Service) loadQuestions(aid string) ([]question, error) {
	d, err := s.assignments.Get(aid)
	if err != nil {
		return nil, err
	}
	var out []question
	for i, row := range d.Questions {
		if i >= maxQuestions {
			break
		}
		col := func(names ...string) string {
			for _, n := range names {
				if v, ok := row.Values[n].(string); ok && strings.TrimSpace(v) != "" {
					return strings.TrimSpace(v)
				}
			}
			return ""
		}
		q := question{
			ID:       col("question_id"),
			KP:       col("kp_id", "kp"),
			MaxScore: 1,
			Stem:     col("stem_text"),
		}
		if q.ID == "" {
			q.ID = fmt.Sprintf("Q%d", i+1)
		}
		if q.KP == "" {
			q.KP = "uncategorized"
		}
		if n, err := strconv.Atoi(col("question_no")); err == nil && n > 0 {
			q.No = n
		}
		if v, err := strconv.ParseFloat(col("score", "max_score"), 64); err == nil && v > 0 {
			q.MaxScore, q.hasMax = v, true
		}
		q.Expected = col("answer_text")
		if q.Expected == "" {
			if ref := col("answer_ref"); ref != "" {
				if text, err := s.readRef(ref); err == nil {
					q.Expected = answerFromFile(text)
				}
			}
		}
		if ref := col("rubric_ref", "rubric"); ref != "" && q.Expected == "" {
			q.Rubric, err = s.loadRubric(ref)
			if err != nil {
				q.RubricErr = err.Error()
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// readRef reads a referenced file inside DATA_DIR, up to maxRefBytes.
func (s *Service) readRef(ref string) (string, error) {
	p, err := resolveRef(s.dataDir, ref)
	if err != nil {
		return "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", ref)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRefBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxRefBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", ref, maxRefBytes)
	}
	return strings.ToValidUTF8(string(data), ""), nil
}

// answerFromFile is the expected answer in an answer file: the value
// after the first ':'/'：' on the first line containing 答案 or starting
// with "answer" (or that whole line), else the first non-empty line.
func answerFromFile(text string) string {
	first := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if first == "" {
			first = l
		}
		if strings.Contains(l, "答案") || strings.HasPrefix(strings.ToLower(l), "answer") {
			if i := strings.IndexAny(l, ":："); i >= 0 {
				_, size := utf8.DecodeRuneInString(l[i:])
				return strings.TrimSpace(l[i+size:])
			}
			return l
		}
	}
	return first
}

// loadRubric reads a rubric: inline JSON in the column, or a JSON file
// (any extension; YAML is not read).
func (s *Service) loadRubric(ref string) (*rubric, error) {
	text := ref
	if !strings.HasPrefix(strings.TrimSpace(ref), "{") {
		var err error
		if text, err = s.readRef(ref); err != nil {
			return nil, fmt.Errorf("rubric %s: %w", ref, err)
		}
	}
	var raw struct {
		Steps []struct {
			ID       any      `json:"id"`
			Score    any      `json:"score"`
			Keywords []string `json:"keywords"`
			Regex    []string `json:"regex"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("rubric %s is not valid JSON: %w", ref, err)
	}
	if len(raw.Steps) == 0 {
		return nil, fmt.Errorf("rubric %s has no steps", ref)
	}
	r := &rubric{}
	for i, st := range raw.Steps {
		if i >= maxRubricSteps {
			break
		}
		id := strings.TrimSpace(fmt.Sprint(orNil(st.ID)))
		if id == "" {
			id = fmt.Sprintf("step_%d", i+1)
		}
		score := 0.0
		switch v := st.Score.(type) {
		case float64:
			score = v
		case string:
			score, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if score <= 0 {
			score = 1 // a missing or 0 score counts as 1, as the predecessor did
		}
		out := step{ID: id, Score: score}
		for j, k := range st.Keywords {
			if j < maxStepTerms && strings.TrimSpace(k) != "" {
				out.Keywords = append(out.Keywords, k)
			}
		}
		for j, pat := range st.Regex {
			if j >= maxStepTerms || len(pat) > maxRegexLen {
				continue
			}
			if re, err := regexp.Compile("(?i)" + pat); err == nil { // invalid ones are skipped
				out.Regex = append(out.Regex, re)
			}
		}
		r.Steps = append(r.Steps, out)
	}
	return r, nil
}

func orNil(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// numbering maps each question to the number its answer block carries:
// the question_no column when every row has a distinct one; the digits of
// question ids like Q1/Q2 when every id has a distinct one; the position
// 1..n otherwise. Of these, the one whose numbers find the most blocks
// is used (ties: question_no, then position, then ids).
func numbering(qs []question, blocks []block) (string, []int) {
	have := map[int]bool{}
	for _, b := range blocks {
		have[b.No] = true
	}
	position := make([]int, len(qs))
	for i := range qs {
		position[i] = i + 1
	}
	type choice struct {
		name string
		nums []int
	}
	choices := []choice{}
	if nos, ok := distinct(qs, func(q question) int { return q.No }); ok {
		choices = append(choices, choice{"question_no", nos})
	}
	choices = append(choices, choice{"position", position})
	if ids, ok := distinct(qs, func(q question) int { return idNumber(q.ID) }); ok {
		choices = append(choices, choice{"question_id", ids})
	}
	best, bestHits := choices[0], -1
	for _, c := range choices {
		hits := 0
		for _, n := range c.nums {
			if have[n] {
				hits++
			}
		}
		if hits > bestHits {
			best, bestHits = c, hits
		}
	}
	return best.name, best.nums
}

// distinct returns num of every question when all are positive and
// distinct.
func distinct(qs []question, num func(question) int) ([]int, bool) {
	seen := map[int]bool{}
	out := make([]int, len(qs))
	for i, q := range qs {
		n := num(q)
		if n <= 0 || seen[n] {
			return nil, false
		}
		seen[n] = true
		out[i] = n
	}
	return out, len(qs) > 0
}

// idNumber is the number of an id like "Q3", "q03" or "T12" (letters,
// then at most three digits); 0 otherwise.
var idNumberRe = regexp.MustCompile(`^[A-Za-z]{0,3}[_-]?0*(\d{1,3})$`)

func idNumber(id string) int {
	m := idNumberRe.FindStringSubmatch(id)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// stemFor bounds the stem sent to the model.
func stemFor(q question) string {
	return textcut.Head(q.Stem, 2000)
}
