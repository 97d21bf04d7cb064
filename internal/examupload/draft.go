package examupload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/scoresheet"
)

// Override is draft_override.json: the teacher's edits to the draft. Saves
// merge into it.
type Override struct {
	Meta          map[string]any   `json:"meta,omitempty"`
	Questions     []map[string]any `json:"questions,omitempty"`
	ScoreSchema   map[string]any   `json:"score_schema,omitempty"`
	AnswerKeyText *string          `json:"answer_key_text,omitempty"`
	// MaxScores are full marks by label ("11(1)") or question id.
	MaxScores map[string]any `json:"max_scores,omitempty"`
}

func (o *Override) empty() bool {
	return len(o.Meta) == 0 && len(o.Questions) == 0 && len(o.ScoreSchema) == 0 && o.AnswerKeyText == nil && len(o.MaxScores) == 0
}

// merge applies a save: each field given replaces or extends the stored one.
func (o *Override) merge(in Override) {
	if in.Meta != nil {
		if o.Meta == nil {
			o.Meta = map[string]any{}
		}
		maps.Copy(o.Meta, in.Meta)
	}
	if in.Questions != nil {
		o.Questions = in.Questions
	}
	if in.ScoreSchema != nil {
		if o.ScoreSchema == nil {
			o.ScoreSchema = map[string]any{}
		}
		maps.Copy(o.ScoreSchema, in.ScoreSchema)
	}
	if in.AnswerKeyText != nil {
		o.AnswerKeyText = in.AnswerKeyText
	}
	if in.MaxScores != nil {
		if o.MaxScores == nil {
			o.MaxScores = map[string]any{}
		}
		maps.Copy(o.MaxScores, in.MaxScores)
	}
}

// state is a job's draft with the teacher's edits applied and the
// responses re-scored accordingly.
type state struct {
	parsed    Parsed
	override  Override
	questions []exams.Question
	unscored  []exams.Response
	scored    []exams.Response
	scoring   scoring
	key       scoresheet.AnswerKey
	keySource string
	keyWarn   []string
	max       map[string]float64
	meta      map[string]any
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// load rebuilds the effective draft of job id.
func (p *Pipeline) load(id string) (*state, error) {
	dir := p.jobDir(id)
	st := &state{}
	if err := readJSON(filepath.Join(dir, "parsed.json"), &st.parsed); err != nil {
		return nil, fmt.Errorf("parsed result missing: %w", err)
	}
	if err := readJSON(filepath.Join(dir, "draft_override.json"), &st.override); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("draft_override.json: %w", err)
	}
	var err error
	derived := filepath.Join(dir, "derived")
	if st.unscored, err = exams.ReadResponses(filepath.Join(derived, "responses_unscored.csv")); err != nil {
		return nil, err
	}
	if st.questions, err = exams.ReadQuestions(filepath.Join(derived, "questions.csv")); err != nil {
		return nil, err
	}
	for i := range st.questions { // full marks come from st.max only
		st.questions[i].HasMax, st.questions[i].MaxScore = false, 0
	}

	st.key, st.keySource = scoresheet.AnswerKey{}, "none"
	switch {
	case st.override.AnswerKeyText != nil && strings.TrimSpace(*st.override.AnswerKeyText) != "":
		st.key, st.keyWarn = scoresheet.ParseAnswerKey(*st.override.AnswerKeyText)
		st.keySource = "override"
	default:
		if k, err := readAnswers(filepath.Join(derived, "answers.csv")); err == nil && len(k) > 0 {
			st.key, st.keySource = k, "upload"
		}
	}

	st.max = maps.Clone(st.parsed.MaxScores)
	if st.max == nil {
		st.max = map[string]float64{}
	}
	for _, q := range st.override.Questions {
		qid, _ := q["question_id"].(string)
		if f, ok := toFloat(q["max_score"]); ok && f > 0 && qid != "" {
			st.max[qid] = f
		}
	}
	om, err := maxScores(st.override.MaxScores, st.questions)
	if err != nil {
		return nil, err
	}
	maps.Copy(st.max, om)
	st.scored, st.questions, st.scoring = applyScoring(st.unscored, st.questions, st.key, st.max)

	st.meta = maps.Clone(st.parsed.Meta)
	if st.meta == nil {
		st.meta = map[string]any{}
	}
	maps.Copy(st.meta, st.override.Meta)
	return st, nil
}

func readAnswers(path string) (scoresheet.AnswerKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key := scoresheet.AnswerKey{}
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if i == 0 || len(f) < 5 || f[0] == "" || f[4] == "" {
			continue
		}
		key[f[0]] = f[4]
	}
	return key, nil
}

// summary is the draft's counts_scored and totals_summary, as the draft
// and the job record show them.
func (p *Pipeline) summary(st *state) (map[string]int, map[string]float64) {
	e := exams.NewExam(st.parsed.ExamID, st.meta, st.scored, st.questions, nil, p.now())
	t := e.Totals()
	return map[string]int{"students": st.scoring.StudentsScored, "responses": st.scoring.ResponsesScored},
		map[string]float64{"avg_total": t.AvgTotal, "median_total": t.MedianTotal, "max_total_observed": t.MaxTotalObserved}
}

// view is the body of GET /exam/upload/draft.
func (p *Pipeline) view(id string, rec map[string]any, st *state) map[string]any {
	countsScored, totals := p.summary(st)
	questions := make([]ParsedQ, 0, len(st.questions))
	byID := map[string]ParsedQ{}
	for _, q := range st.parsed.Questions {
		byID[q.QuestionID] = q
	}
	maxByLabel := map[string]float64{}
	for _, q := range st.questions {
		pq := byID[q.ID]
		pq.QuestionID, pq.QuestionNo, pq.SubNo = q.ID, q.No, q.SubNo
		pq.MaxScore, pq.MaxScoreMissing = nil, !q.HasMax
		if q.HasMax {
			v := q.MaxScore
			pq.MaxScore = &v
			label := pq.RawLabel
			if label == "" {
				label = q.ID
			}
			maxByLabel[label] = v
		}
		questions = append(questions, pq)
	}
	keyText := ""
	if st.override.AnswerKeyText != nil {
		keyText = *st.override.AnswerKeyText
	}
	answerText, _ := os.ReadFile(filepath.Join(p.jobDir(id), "answer_text.txt"))
	excerpt := string(answerText)
	if utf8.RuneCountInString(excerpt) > 6000 {
		excerpt = string([]rune(excerpt)[:6000]) + "…"
	}
	warnings := append([]string{}, st.parsed.Warnings...)
	for _, w := range st.keyWarn {
		warnings = append(warnings, "答案解析提示："+w)
	}
	version := rec["draft_version"]
	if version == nil {
		version = 1
	}
	date, _ := st.meta["date"].(string)
	class, _ := st.meta["class_name"].(string)
	return map[string]any{
		"job_id":              id,
		"exam_id":             st.parsed.ExamID,
		"date":                date,
		"class_name":          class,
		"paper_files":         st.parsed.PaperFiles,
		"score_files":         st.parsed.ScoreFiles,
		"answer_files":        st.parsed.AnswerFiles,
		"counts":              st.parsed.Counts,
		"counts_scored":       countsScored,
		"totals_summary":      totals,
		"scoring":             st.scoring,
		"meta":                st.meta,
		"questions":           questions,
		"max_scores":          maxByLabel,
		"score_schema":        nonNilMap(st.override.ScoreSchema),
		"answer_key":          map[string]any{"count": len(st.key), "source": st.keySource, "warnings": nonNil(st.keyWarn)},
		"answer_key_text":     keyText,
		"answer_text_excerpt": excerpt,
		"warnings":            warnings,
		"text_extraction":     st.parsed.TextExtraction,
		"draft_saved":         !st.override.empty(),
		"draft_version":       version,
	}
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
