package assignupload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/textcut"
)

// Question is one question of a draft, as the LLM parse, the rule split
// and the teacher's edits give it.
type Question struct {
	Stem       string   `json:"stem"`
	Answer     string   `json:"answer"`
	KP         string   `json:"kp"`
	Difficulty string   `json:"difficulty"`
	Score      float64  `json:"score"`
	Tags       []string `json:"tags"`
	Type       string   `json:"type"`
}

// Bounds of one question's fields.
const (
	maxStemRunes  = 20000
	maxKPRunes    = 200
	maxShortRunes = 64
	maxTags       = 20
)

// questionFrom reads a question object (from the model or the teacher):
// values are taken as text and trimmed, a score may be a numeric string,
// tags a list or a string split on , ， ;.
func questionFrom(m map[string]any) Question {
	q := Question{
		Stem:       textcut.Head(strings.TrimSpace(text(m["stem"])), maxStemRunes),
		Answer:     textcut.Head(strings.TrimSpace(text(m["answer"])), maxStemRunes),
		KP:         textcut.Head(strings.TrimSpace(text(m["kp"])), maxKPRunes),
		Difficulty: textcut.Head(strings.TrimSpace(text(m["difficulty"])), maxShortRunes),
		Type:       textcut.Head(strings.TrimSpace(text(m["type"])), maxShortRunes),
		Tags:       []string{},
	}
	switch s := m["score"].(type) {
	case float64:
		q.Score = s
	case string:
		q.Score, _ = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "分")), 64)
	}
	for _, t := range listOf(m["tags"]) {
		if len(q.Tags) < maxTags {
			q.Tags = append(q.Tags, textcut.Head(t, maxShortRunes))
		}
	}
	return q
}

// override is draft_override.json: the teacher's edits. Saves merge into
// it: requirements key by key, questions replaced when given.
type override struct {
	Requirements        map[string]any `json:"requirements,omitempty"`
	Questions           []Question     `json:"questions,omitempty"`
	RequirementsMissing []string       `json:"requirements_missing"`
	SavedAt             string         `json:"saved_at,omitempty"`
}

// state is a job's draft with the teacher's edits applied.
type state struct {
	parsed       Parsed
	ov           override
	saved        bool // draft_override.json exists
	questions    []Question
	requirements map[string]any
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// errNoParsed: a job whose parsed.json is missing or damaged.
var errNoParsed = errors.New("parsed result missing")

// load rebuilds the effective draft of job id: non-empty override
// questions replace the parsed ones; override requirements overwrite the
// parsed ones key by key.
func (p *Pipeline) load(id string) (*state, error) {
	dir := p.jobDir(id)
	st := &state{}
	if err := readJSON(filepath.Join(dir, "parsed.json"), &st.parsed); err != nil {
		return nil, fault.Wrap(fault.Invalid, errors.Join(errNoParsed, err), "parsed result missing")
	}
	err := readJSON(filepath.Join(dir, "draft_override.json"), &st.ov)
	switch {
	case err == nil:
		st.saved = true
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("draft_override.json: %w", err)
	}
	st.questions = st.parsed.Questions
	if len(st.ov.Questions) > 0 {
		st.questions = st.ov.Questions
	}
	st.requirements = mergeRequirements(st.parsed.Requirements, st.ov.Requirements, true)
	return st, nil
}

// draftMissing is the draft's requirements_missing: the keys that do not
// pass, and the keys the autofill only guessed until the teacher saves
// them, in checklist order.
func (st *state) draftMissing() []string {
	miss := missingKeys(st.requirements)
	for _, k := range st.parsed.Uncertain {
		if !slices.Contains(miss, k) && isEmpty(cleanRequirements(st.ov.Requirements)[k]) {
			miss = append(miss, k)
		}
	}
	return inKeyOrder(miss)
}

// inKeyOrder sorts checklist keys in requirementKeys order.
func inKeyOrder(keys []string) []string {
	slices.SortStableFunc(keys, func(a, b string) int {
		return slices.Index(requirementKeys, a) - slices.Index(requirementKeys, b)
	})
	return nonNil(keys)
}

// notReady refuses an action on a job that is not in a state it accepts;
// message says which action (the teacher app shows it).
func notReady(rec map[string]any, message string) error {
	return fault.New(fault.Invalid, map[string]any{"error": "job_not_ready", "message": message,
		"status": rec["status"], "step": rec["step"], "progress": rec["progress"]})
}

// view is the body of GET /assignment/upload/draft.
func view(id string, rec map[string]any, st *state) map[string]any {
	version := rec["draft_version"]
	if version == nil {
		version = 1
	}
	dueAt := rec["due_at"]
	if dueAt == nil {
		dueAt = ""
	}
	studentIDs := rec["student_ids"]
	if studentIDs == nil {
		studentIDs = []any{}
	}
	deliveryMode := st.parsed.DeliveryMode
	if deliveryMode == "" {
		deliveryMode, _ = rec["delivery_mode"].(string)
	}
	return map[string]any{
		"job_id":               id,
		"assignment_id":        rec["assignment_id"],
		"date":                 rec["date"],
		"due_at":               dueAt,
		"scope":                rec["scope"],
		"class_name":           rec["class_name"],
		"student_ids":          studentIDs,
		"delivery_mode":        deliveryMode,
		"source_files":         orEmpty(rec["source_files"]),
		"answer_files":         orEmpty(rec["answer_files"]),
		"question_count":       len(st.questions),
		"requirements":         st.requirements,
		"requirements_missing": st.draftMissing(),
		"warnings":             nonNil(st.parsed.Warnings),
		"questions":            st.questions,
		"autofilled":           st.parsed.Autofilled,
		"draft_saved":          st.saved,
		"draft_version":        version,
		"text_extraction":      nonNilMaps(st.parsed.TextExtraction),
	}
}

func orEmpty(v any) any {
	if v == nil {
		return []any{}
	}
	return v
}
