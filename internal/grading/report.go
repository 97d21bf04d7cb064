package grading

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/students"
)

// Report is one graded submission: what grading_report.json holds and
// what the profile update and OnGraded need.
type Report struct {
	JobID        string `json:"job_id"`
	StudentID    string `json:"student_id"`
	AssignmentID string `json:"assignment_id"`
	// SubmissionID is the submission folder's name, submission_<ts>
	// (with _2, _3 … when one of that second exists).
	SubmissionID string `json:"submission_id"`
	SubmittedAt  string `json:"submitted_at"`
	// The predecessor's counts: an item counts when it is not ungraded
	// and its confidence is at least ReviewThreshold; ungraded = items
	// that do not count; graded_total = questions - ungraded; correct =
	// counted and matched.
	GradedTotal int     `json:"graded_total"`
	Ungraded    int     `json:"ungraded"`
	Correct     int     `json:"correct"`
	ScoreEarned float64 `json:"score_earned"` // points of the counted items
	MaxScore    float64 `json:"max_score"`    // points of all questions
	Items       []Item  `json:"items"`
	// ReviewThreshold is the confidence an item needs to count; the
	// items that do not count (Ungraded of them) are the review queue.
	ReviewThreshold float64  `json:"review_threshold"`
	KnowledgePoints []KPStat `json:"knowledge_points"`
	// The profile suggestion: knowledge points with at least two counted
	// items, by accuracy (< 0.5 weak, ≥ 0.8 strong, else medium); the
	// first weak (else medium) one is the next focus.
	WeakKP    []string `json:"weak_kp"`
	MediumKP  []string `json:"medium_kp"`
	StrongKP  []string `json:"strong_kp"`
	NextFocus string   `json:"next_focus"`
	// ProfileHeld: PROFILE_UPDATE_REQUIRE_REVIEW is set and there are
	// items to review, so the profile is not updated.
	ProfileHeld bool `json:"profile_held"`
	// StudentDir and AssignmentDir are the two copies of the submission,
	// relative to DATA_DIR.
	StudentDir    string `json:"student_dir"`
	AssignmentDir string `json:"assignment_dir"`
	Pages         int    `json:"pages"`
	Numbering     string `json:"numbering"`
}

// KPStat is one knowledge point's items.
type KPStat struct {
	KP       string `json:"kp_id"`
	Total    int    `json:"total"` // counted items
	Correct  int    `json:"correct"`
	Ungraded int    `json:"ungraded"`
}

func (r *Report) counted(it Item) bool {
	return it.Status != StatusUngraded && it.Confidence >= r.ReviewThreshold
}

// tally fills the counts, the knowledge points and the suggestion from
// the items.
func (r *Report) tally() {
	r.GradedTotal, r.Ungraded, r.Correct, r.ScoreEarned, r.MaxScore = 0, 0, 0, 0, 0
	byKP := map[string]*KPStat{}
	var order []string
	for _, it := range r.Items {
		r.MaxScore += it.MaxScore
		k := byKP[it.KPID]
		if k == nil {
			k = &KPStat{KP: it.KPID}
			byKP[it.KPID] = k
			order = append(order, it.KPID)
		}
		if !r.counted(it) {
			r.Ungraded++
			k.Ungraded++
			continue
		}
		r.ScoreEarned += it.Score
		k.Total++
		if it.Status == StatusMatched {
			r.Correct++
			k.Correct++
		}
	}
	r.GradedTotal = len(r.Items) - r.Ungraded
	r.ScoreEarned, r.MaxScore = round(r.ScoreEarned, 2), round(r.MaxScore, 2)
	r.KnowledgePoints = []KPStat{}
	r.WeakKP, r.MediumKP, r.StrongKP = []string{}, []string{}, []string{}
	for _, kp := range order {
		k := byKP[kp]
		r.KnowledgePoints = append(r.KnowledgePoints, *k)
		if k.Total < 2 {
			continue
		}
		switch acc := float64(k.Correct) / float64(k.Total); {
		case acc < 0.5:
			r.WeakKP = append(r.WeakKP, kp)
		case acc >= 0.8:
			r.StrongKP = append(r.StrongKP, kp)
		default:
			r.MediumKP = append(r.MediumKP, kp)
		}
	}
	r.NextFocus = ""
	if len(r.WeakKP) > 0 {
		r.NextFocus = r.WeakKP[0]
	} else if len(r.MediumKP) > 0 {
		r.NextFocus = r.MediumKP[0]
	}
}

// ProfileUpdate is the profile update of a graded submission, for the
// tenant's profile writer:
//
//	OnGraded: func(r *grading.Report) error { _, err := worker.Enqueue(grading.ProfileUpdate(r)); return err }
//
// A report held for review (ProfileHeld) gives an update that leaves the
// profile as it is.
func ProfileUpdate(r *Report) students.Update {
	g := &students.GradingResult{
		AssignmentID: r.AssignmentID, SubmissionID: r.SubmissionID, SubmittedAt: r.SubmittedAt,
		Matched: r.Correct, Graded: r.GradedTotal, Ungraded: r.Ungraded,
		ScoreEarned: r.ScoreEarned, MaxScore: r.MaxScore,
		WeakKP: r.WeakKP, MediumKP: r.MediumKP, StrongKP: r.StrongKP, NextFocus: r.NextFocus,
		ReviewPending: r.ProfileHeld,
	}
	for _, k := range r.KnowledgePoints {
		if k.Total > 0 {
			if g.Mastery == nil {
				g.Mastery = map[string]students.KPMastery{}
			}
			g.Mastery[k.KP] = students.KPMastery{Accuracy: float64(k.Correct) / float64(k.Total), Counted: k.Total, Correct: k.Correct}
		}
	}
	return students.Update{Kind: students.KindGrading, StudentID: r.StudentID, AssignmentID: r.AssignmentID, Grading: g}
}

// gradingFile is grading_report.json: the predecessor's fields first.
type gradingFile struct {
	StudentID    string  `json:"student_id"`
	AssignmentID string  `json:"assignment_id"`
	GradedTotal  int     `json:"graded_total"`
	Ungraded     int     `json:"ungraded"`
	Correct      int     `json:"correct"`
	Items        []Item  `json:"items"`
	ScoreEarned  float64 `json:"score_earned"`
	MaxScore     float64 `json:"max_score"`
	SubmissionID string  `json:"submission_id"`
	SubmittedAt  string  `json:"submitted_at"`
}

func (r *Report) file() gradingFile {
	return gradingFile{StudentID: r.StudentID, AssignmentID: r.AssignmentID, GradedTotal: r.GradedTotal,
		Ungraded: r.Ungraded, Correct: r.Correct, Items: r.Items, ScoreEarned: r.ScoreEarned, MaxScore: r.MaxScore,
		SubmissionID: r.SubmissionID, SubmittedAt: r.SubmittedAt}
}

// reviewItem is one entry of review_queue.json.
type reviewItem struct {
	QuestionID   string   `json:"question_id"`
	KPID         string   `json:"kp_id"`
	Status       string   `json:"status"`
	Confidence   float64  `json:"confidence"`
	Reason       string   `json:"reason"`
	MatchedSteps []string `json:"matched_steps"`
	MissingSteps []string `json:"missing_steps"`
}

func (r *Report) reviewQueue() map[string]any {
	items := []reviewItem{}
	for _, it := range r.Items {
		if !r.counted(it) {
			items = append(items, reviewItem{it.QuestionID, it.KPID, it.Status, it.Confidence, it.Reason, it.MatchedSteps, it.MissingSteps})
		}
	}
	return map[string]any{"student_id": r.StudentID, "assignment_id": r.AssignmentID, "items": items}
}

// feedback is feedback.md.
func (r *Report) feedback() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Student: %s\nAssignment: %s\n", r.StudentID, r.AssignmentID)
	fmt.Fprintf(&b, "Total matched: %d/%d (graded: %d)\n", r.Correct, len(r.Items), r.GradedTotal)
	fmt.Fprintf(&b, "Score: %s/%s\n\nItem Feedback:\n", pyFloat(r.ScoreEarned), pyFloat(r.MaxScore))
	for _, it := range r.Items {
		mark := "✘"
		switch {
		case it.Status == StatusUngraded:
			mark = "△"
		case it.Status == StatusMatched:
			mark = "✔"
		}
		var parts []string
		if it.Reason != "text_match" {
			parts = append(parts, it.Reason)
		}
		if it.Score != 0 {
			parts = append(parts, "score="+pyFloat(it.Score)+"/"+pyFloat(it.MaxScore))
		}
		parts = append(parts, "conf="+pyFloat(it.Confidence))
		fmt.Fprintf(&b, "- %s (%s): %s (%s)\n", it.QuestionID, it.KPID, mark, strings.Join(parts, ", "))
	}
	return b.String()
}

// suggestion is profile_update_suggestion.md.
func (r *Report) suggestion() string {
	list := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Profile update suggestion\n\nStudent: %s\nAssignment: %s\n\n", r.StudentID, r.AssignmentID)
	fmt.Fprintf(&b, "- recent_weak_kp: %s\n- recent_medium_kp: %s\n- recent_strong_kp: %s\n", list(r.WeakKP), list(r.MediumKP), list(r.StrongKP))
	next := r.NextFocus
	if next == "" {
		next = "-"
	}
	fmt.Fprintf(&b, "- next_focus: %s\n", next)
	fmt.Fprintf(&b, "- practice_history: assignment_id=%s, timestamp=%s, matched=%d, graded=%d, ungraded=%d\n",
		r.AssignmentID, r.SubmittedAt, r.Correct, r.GradedTotal, r.Ungraded)
	var notes []string
	if r.GradedTotal < 3 {
		notes = append(notes, "Fewer than 3 graded items; the knowledge-point lists need more evidence.")
	}
	if r.Ungraded > 0 {
		notes = append(notes, fmt.Sprintf("%d item(s) excluded (ungraded or confidence below %s).", r.Ungraded, pyFloat(r.ReviewThreshold)))
	}
	if r.ProfileHeld {
		notes = append(notes, "Review required before the profile is updated (PROFILE_UPDATE_REQUIRE_REVIEW).")
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// blocksFile is ocr/question_blocks.json.
type blocksFile struct {
	Numbering string          `json:"numbering"` // question_no, position or question_id
	Preamble  string          `json:"preamble"`
	Blocks    []block         `json:"blocks"`
	Questions []questionBlock `json:"questions"`
}

type questionBlock struct {
	QuestionID string `json:"question_id"`
	Block      *int   `json:"block"` // the number of its block; null when none
	Source     string `json:"answer_source"`
}

// writeSubmission writes one copy of the submission into dir: the OCR
// pages (page_N.json the engine's page, page_N.txt the cleaned text), the
// question blocks, feedback, the profile suggestion, the review queue
// (when there is something to review) and, last, grading_report.json, so
// a reader that finds the report finds everything.
func (r *Report) writeSubmission(dir string, pages *ocr.Result, cleaned []string, blocks blocksFile) error {
	if err := pages.WritePages(dir); err != nil {
		return err
	}
	for i, p := range pages.Pages {
		if err := atomicfile.WriteFile(filepath.Join(dir, "ocr", "page_"+strconv.Itoa(p.N)+".txt"), []byte(cleaned[i]), 0o644); err != nil {
			return err
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "ocr", "question_blocks.json"), blocks); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "feedback.md"), []byte(r.feedback()), 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "profile_update_suggestion.md"), []byte(r.suggestion()), 0o644); err != nil {
		return err
	}
	queue := filepath.Join(dir, "review_queue.json")
	if r.Ungraded > 0 {
		if err := atomicfile.WriteJSON(queue, r.reviewQueue()); err != nil {
			return err
		}
	} else if err := os.Remove(queue); err != nil && !os.IsNotExist(err) {
		return err
	}
	return atomicfile.WriteJSON(filepath.Join(dir, "grading_report.json"), r.file())
}

// output is the predecessor's stdout lines, with paths relative to
// DATA_DIR.
func (r *Report) output() string {
	lines := []string{
		"[OK] Saved OCR to " + filepath.ToSlash(filepath.Join(r.StudentDir, "ocr")),
		"[OK] Saved feedback to " + filepath.ToSlash(filepath.Join(r.StudentDir, "feedback.md")),
		"[OK] Saved profile suggestion to " + filepath.ToSlash(filepath.Join(r.StudentDir, "profile_update_suggestion.md")),
	}
	if r.ProfileHeld {
		lines = append(lines, "[WARN] Profile update skipped: review required (PROFILE_UPDATE_REQUIRE_REVIEW)")
	}
	return strings.Join(lines, "\n")
}

// pyFloat formats like Python's str(float): 1.0, 0.5, 0.667.
func pyFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}
