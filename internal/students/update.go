package students

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/lectern/lectern/internal/textcut"
)

// Update kinds.
const (
	KindForm   = "form"   // POST /student/profile/update
	KindChat   = "chat"   // a student's chat reply
	KindImport = "import" // POST /student/import
	KindExam   = "exam"   // a confirmed exam
	// KindGrading is a graded submission (POST /student/submit): mastery,
	// practice history, knowledge-point lists and next focus.
	KindGrading = "grading"
)

// Update is one change to a profile, as stored in its job record.
type Update struct {
	Kind      string `json:"kind"`
	StudentID string `json:"student_id"`

	// form (and an LLM judgement of a chat)
	WeakKP    []string `json:"weak_kp,omitempty"`
	StrongKP  []string `json:"strong_kp,omitempty"`
	MediumKP  []string `json:"medium_kp,omitempty"`
	NextFocus string   `json:"next_focus,omitempty"`
	Note      string   `json:"interaction_note,omitempty"`

	// chat
	AssignmentID string `json:"assignment_id,omitempty"`
	UserText     string `json:"user_text,omitempty"`
	Reply        string `json:"reply,omitempty"`

	// import
	StudentName string `json:"student_name,omitempty"`
	ClassName   string `json:"class_name,omitempty"`
	Source      string `json:"source,omitempty"`
	File        string `json:"file,omitempty"`
	ExamID      string `json:"exam_id,omitempty"`
	Mode        string `json:"mode,omitempty"`

	// exam
	Exam *ExamResult `json:"exam,omitempty"`

	// grading
	Grading *GradingResult `json:"grading,omitempty"`
}

// GradingResult is what a graded submission tells the profile. The
// grading side classifies the knowledge points (only those with at least
// two counted items) and picks the next focus; apply only records them.
type GradingResult struct {
	AssignmentID string `json:"assignment_id"`
	// SubmissionID is the submission folder (submission_<ts>[_n]): a
	// result applied twice replaces its practice_history entry.
	SubmissionID string  `json:"submission_id"`
	SubmittedAt  string  `json:"submitted_at,omitempty"`
	Matched      int     `json:"matched"`
	Graded       int     `json:"graded"`
	Ungraded     int     `json:"ungraded"`
	ScoreEarned  float64 `json:"score_earned"`
	MaxScore     float64 `json:"max_score"`
	// Mastery is the accuracy of each knowledge point with counted items.
	Mastery   map[string]KPMastery `json:"mastery,omitempty"`
	WeakKP    []string             `json:"weak_kp,omitempty"`
	MediumKP  []string             `json:"medium_kp,omitempty"`
	StrongKP  []string             `json:"strong_kp,omitempty"`
	NextFocus string               `json:"next_focus,omitempty"`
	// ReviewPending (PROFILE_UPDATE_REQUIRE_REVIEW with items to review)
	// leaves the profile untouched.
	ReviewPending bool `json:"review_pending,omitempty"`
}

// KPMastery is one knowledge point's counted items in one submission.
type KPMastery struct {
	Accuracy float64 `json:"accuracy"`
	Counted  int     `json:"counted"`
	Correct  int     `json:"correct"`
}

// ExamResult is one student's result in a confirmed exam.
type ExamResult struct {
	ExamID       string         `json:"exam_id"`
	Date         string         `json:"date,omitempty"`
	Total        float64        `json:"total"`
	MaxTotal     *float64       `json:"max_total"`
	Rank         int            `json:"rank"`
	Percentile   float64        `json:"percentile"`
	StudentCount int            `json:"student_count"`
	LostMost     []QuestionLoss `json:"lost_most"`
	// Knowledge is the student's points per knowledge point (not copied
	// into exam_results; it feeds mastery_by_kp).
	Knowledge map[string]KPScore `json:"knowledge,omitempty"`
}

// QuestionLoss is a question on which the student lost points.
type QuestionLoss struct {
	QuestionID string  `json:"question_id"`
	Score      float64 `json:"score"`
	MaxScore   float64 `json:"max_score"`
	Lost       float64 `json:"lost"`
}

// KPScore is a student's points on one knowledge point in one exam.
type KPScore struct {
	Score     float64 `json:"score"`
	Max       float64 `json:"max"`
	Questions int     `json:"questions"`
}

// Judgement is an LLM's structured reading of a student conversation.
type Judgement struct {
	WeakKP    []string `json:"weak_kp"`
	StrongKP  []string `json:"strong_kp"`
	NextFocus string   `json:"next_focus"`
	Evidence  string   `json:"evidence"`
	Model     string   `json:"-"`
}

// ChatNote is the interaction note of a chat turn, as the predecessor
// wrote it: "assignment_id=<id> | U:<user> | A:<reply>", at most 900
// characters plus "…".
func ChatNote(assignmentID, user, reply string) string {
	return textcut.Short(fmt.Sprintf("assignment_id=%s | U:%s | A:%s", assignmentID, strings.TrimSpace(user), strings.TrimSpace(reply)), noteMaxRunes)
}

// apply changes prof by u (and, for a chat, by the LLM's judgement j). It
// reports false, leaving prof as it was, for an update that changes
// nothing (a grading result held for review).
func apply(prof Profile, u Update, j *Judgement, ts string) bool {
	if u.Kind == KindGrading && (u.Grading == nil || u.Grading.ReviewPending) {
		return false
	}
	if str(prof["student_id"]) == "" {
		prof["student_id"] = u.StudentID
	}
	if str(prof["created_at"]) == "" {
		prof["created_at"] = ts
	}
	prof["last_updated"] = ts
	switch u.Kind {
	case KindForm:
		applyKP(prof, u.WeakKP, u.MediumKP, u.StrongKP, u.NextFocus)
		if strings.TrimSpace(u.Note) != "" {
			prof["interaction_notes"] = appendKeep(prof["interaction_notes"], keepNotes, map[string]any{"timestamp": ts, "note": u.Note})
		}
	case KindChat:
		note := ChatNote(u.AssignmentID, u.UserText, u.Reply)
		prof["interaction_notes"] = appendKeep(prof["interaction_notes"], keepNotes, map[string]any{"timestamp": ts, "note": note})
		if j != nil {
			applyKP(prof, j.WeakKP, nil, j.StrongKP, j.NextFocus)
			prof["llm_judgements"] = appendKeep(prof["llm_judgements"], 10, map[string]any{
				"timestamp": ts, "source": "chat", "model": j.Model, "weak_kp": j.WeakKP, "strong_kp": j.StrongKP,
				"next_focus": j.NextFocus, "evidence": textcut.Short(j.Evidence, 300)})
		}
	case KindImport:
		applyIdentity(prof, u.StudentName, u.ClassName)
		prof["import_history"] = appendKeep(prof["import_history"], keepImports, map[string]any{
			"timestamp": ts, "source": orDefault(u.Source, "exam_responses"), "file": u.File, "exam_id": u.ExamID, "mode": orDefault(u.Mode, "merge")})
		if u.Exam != nil {
			applyExam(prof, u.Exam, ts)
		}
	case KindExam:
		applyIdentity(prof, u.StudentName, u.ClassName)
		if u.Exam != nil {
			applyExam(prof, u.Exam, ts)
		}
	case KindGrading:
		applyGrading(prof, u.Grading, ts)
	}
	return true
}

// applyGrading is grade_submission.py's profile write, without its two
// faults: a knowledge-point list is replaced only by a non-empty one (the
// points now classified otherwise leave the lists that stay), and
// next_focus is set only when there is a weak or medium point (never
// "(none)"). mastery_by_kp gets the accuracy of each point with counted
// items (evidence: the assignment id); practice_history one entry per
// submission (keeps 20).
func applyGrading(prof Profile, g *GradingResult, ts string) {
	if len(g.Mastery) > 0 {
		m := map[string]any{}
		if old, ok := prof["mastery_by_kp"].(map[string]any); ok {
			maps.Copy(m, old)
		}
		for kp, v := range g.Mastery {
			m[kp] = map[string]any{"accuracy": math.Round(v.Accuracy*1000) / 1000, "evidence": g.AssignmentID, "updated_at": ts}
		}
		prof["mastery_by_kp"] = m
	}
	when := orDefault(g.SubmittedAt, ts)
	entry := map[string]any{"assignment_id": g.AssignmentID, "timestamp": when, "matched": g.Matched, "graded": g.Graded,
		"ungraded": g.Ungraded, "score_earned": g.ScoreEarned, "max_score": g.MaxScore, "submission_id": g.SubmissionID}
	var kept []any
	for _, e := range list(prof["practice_history"]) {
		if m, ok := e.(map[string]any); ok && g.SubmissionID != "" && str(m["submission_id"]) == g.SubmissionID {
			continue
		}
		kept = append(kept, e)
	}
	prof["practice_history"] = appendKeep(kept, keepPractice, entry)

	classified := map[string]bool{}
	for _, l := range [][]string{g.WeakKP, g.MediumKP, g.StrongKP} {
		for _, kp := range l {
			classified[kp] = true
		}
	}
	for key, l := range map[string][]string{"recent_weak_kp": g.WeakKP, "recent_medium_kp": g.MediumKP, "recent_strong_kp": g.StrongKP} {
		if len(l) > 0 {
			prof[key] = l
			continue
		}
		if old, ok := prof[key]; ok && len(classified) > 0 {
			rest := []string{}
			for _, kp := range strs(old) {
				if !classified[kp] {
					rest = append(rest, kp)
				}
			}
			prof[key] = rest
		}
	}
	summary := fmt.Sprintf("%s: matched %d/%d", g.AssignmentID, g.Matched, g.Graded)
	if g.NextFocus != "" {
		prof["next_focus"] = g.NextFocus
		summary += ", next focus " + g.NextFocus
	}
	prof["summary"] = summary
}

// applyKP is update_profile.py: non-empty lists replace recent_*_kp;
// next_focus is the given one, else the first weak point; the summary is
// rebuilt when any of them was given.
func applyKP(prof Profile, weak, medium, strong []string, next string) {
	if len(weak) > 0 {
		prof["recent_weak_kp"] = weak
	}
	if len(medium) > 0 {
		prof["recent_medium_kp"] = medium
	}
	if len(strong) > 0 {
		prof["recent_strong_kp"] = strong
	}
	if next == "" && len(weak) > 0 {
		next = weak[0]
	}
	if next != "" {
		prof["next_focus"] = next
	}
	if len(weak) > 0 || len(strong) > 0 || next != "" {
		prof["summary"] = fmt.Sprintf("weak: %s | strong: %s | next: %s",
			strings.Join(strs(prof["recent_weak_kp"]), ", "), strings.Join(strs(prof["recent_strong_kp"]), ", "), str(prof["next_focus"]))
	}
}

// applyIdentity: the first name seen is student_name, later ones aliases.
func applyIdentity(prof Profile, name, class string) {
	if name != "" {
		switch current := str(prof["student_name"]); {
		case current == "":
			prof["student_name"] = name
		case current != name:
			aliases := strs(prof["aliases"])
			if !slices.Contains(aliases, name) {
				aliases = append(aliases, name)
			}
			sort.Strings(aliases)
			prof["aliases"] = aliases
		}
	}
	if class != "" && str(prof["class_name"]) == "" {
		prof["class_name"] = class
	}
}

// applyExam records the result (one entry per exam: applying an exam again
// replaces its entry) and recomputes mastery_by_kp from the recorded exams,
// so the same exam never counts twice.
func applyExam(prof Profile, r *ExamResult, ts string) {
	entry := map[string]any{"exam_id": r.ExamID, "date": r.Date, "total": r.Total, "max_total": r.MaxTotal,
		"rank": r.Rank, "percentile": r.Percentile, "student_count": r.StudentCount, "lost_most": r.LostMost, "recorded_at": ts}
	if len(r.Knowledge) > 0 {
		entry["knowledge"] = r.Knowledge
	}
	var kept []any
	for _, e := range list(prof["exam_results"]) {
		if m, ok := e.(map[string]any); ok && str(m["exam_id"]) == r.ExamID {
			continue
		}
		kept = append(kept, e)
	}
	results := appendKeep(kept, keepExams, entry)
	prof["exam_results"] = results
	if len(r.Knowledge) > 0 {
		// Merged: the points the exams cover are recomputed, the others
		// (from graded submissions) kept.
		m := map[string]any{}
		if old, ok := prof["mastery_by_kp"].(map[string]any); ok {
			maps.Copy(m, old)
		}
		maps.Copy(m, mastery(results, ts))
		prof["mastery_by_kp"] = m
	}
}

// mastery is, per knowledge point, the points scored over the points
// possible in the recorded exams; evidence counts the questions behind it.
func mastery(results []any, ts string) map[string]any {
	type acc struct {
		score, max, questions float64
		last                  string
	}
	by := map[string]*acc{}
	for _, e := range results {
		m, _ := e.(map[string]any)
		var kps map[string]KPScore
		switch k := m["knowledge"].(type) {
		case map[string]KPScore:
			kps = k
		case map[string]any:
			data, _ := json.Marshal(k)
			json.Unmarshal(data, &kps)
		}
		for kp, s := range kps {
			a := by[kp]
			if a == nil {
				a = &acc{}
				by[kp] = a
			}
			a.score += s.Score
			a.max += s.Max
			a.questions += float64(s.Questions)
			a.last = str(m["exam_id"])
		}
	}
	out := map[string]any{}
	for kp, a := range by {
		if a.max <= 0 {
			continue
		}
		out[kp] = map[string]any{"accuracy": math.Round(a.score/a.max*10000) / 10000, "evidence": a.questions,
			"updated_at": ts, "last_exam": a.last}
	}
	return out
}

func strs(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SplitKP reads a form's knowledge-point list: comma, Chinese comma, 、 or
// newline separated.
func SplitKP(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' || r == '、' || r == '\n' || r == ';' || r == '；' })
	out := make([]string, 0, len(f))
	for _, x := range f {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
