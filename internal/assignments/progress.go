package assignments

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/layout"
)

// DefaultDiscussionMarker is the text an assistant message carries when a
// student's discussion of an assignment is done (the predecessor's
// DISCUSSION_COMPLETE_MARKER default).
const DefaultDiscussionMarker = "【个性化作业】"

// GradeCountConfThreshold is GRADE_COUNT_CONF_THRESHOLD: a graded item
// counts towards score_earned only with at least this confidence.
const GradeCountConfThreshold = 0.6

// maxProgressFileBytes bounds every file the progress reads (profiles,
// session files, indexes, grading reports); a larger file is skipped.
const maxProgressFileBytes = 4 << 20

// Progress is GET /teacher/assignment/progress.
type Progress struct {
	OK            bool              `json:"ok"`
	AssignmentID  string            `json:"assignment_id"`
	Date          any               `json:"date"`
	Scope         string            `json:"scope"`
	ClassName     any               `json:"class_name"`
	DueAt         string            `json:"due_at"`
	ExpectedCount int               `json:"expected_count"`
	Counts        ProgressCounts    `json:"counts"`
	Students      []StudentProgress `json:"students"`
	UpdatedAt     string            `json:"updated_at"`
}

// ProgressCounts are the totals over the expected students.
type ProgressCounts struct {
	Expected       int `json:"expected"`
	DiscussionPass int `json:"discussion_pass"`
	Submitted      int `json:"submitted"`
	Completed      int `json:"completed"`
	Overdue        int `json:"overdue"`
}

// StudentProgress is one expected student.
type StudentProgress struct {
	StudentID   string     `json:"student_id"`
	StudentName string     `json:"student_name"`
	ClassName   string     `json:"class_name"`
	Discussion  Discussion `json:"discussion"`
	Submission  Submission `json:"submission"`
	Complete    bool       `json:"complete"`
	Overdue     bool       `json:"overdue"`
}

// Discussion is the student's best discussion session.
type Discussion struct {
	Status       string `json:"status"` // pass, in_progress, not_started
	Pass         bool   `json:"pass"`
	SessionID    string `json:"session_id"`
	MessageCount int    `json:"message_count"`
	LastTS       string `json:"last_ts,omitempty"`
}

// Submission is the student's graded attempts and the best valid one.
type Submission struct {
	Attempts int      `json:"attempts"`
	Best     *Attempt `json:"best"`
}

// Attempt is one submission_* folder's grading report.
type Attempt struct {
	AttemptID       string  `json:"attempt_id"`
	SubmittedAt     string  `json:"submitted_at"`
	GradedTotal     int     `json:"graded_total"`
	Correct         int     `json:"correct"`
	Ungraded        int     `json:"ungraded"`
	ScoreEarned     float64 `json:"score_earned"`
	ValidSubmission bool    `json:"valid_submission"`
	ReportPath      string  `json:"report_path"`
}

// DayProgress is GET /teacher/assignments/progress.
type DayProgress struct {
	OK          bool        `json:"ok"`
	Date        string      `json:"date"`
	Assignments []*Progress `json:"assignments"`
}

// Progress computes an assignment's progress without writing anything:
// the scope, due_at, expected students and completion policy are derived
// in memory from meta.json when it lacks them (a stored
// expected_students snapshot is used as is). students is [] unless
// includeStudents; the counts are the same either way.
func (s *Service) Progress(id string, includeStudents bool, now time.Time) (*Progress, error) {
	if strings.TrimSpace(id) == "" {
		return nil, fault.New(fault.Invalid, "assignment_id is required")
	}
	aid, dir, err := s.existing(id)
	if err != nil {
		return nil, err
	}
	meta := s.jsonObject(filepath.Join(dir, "meta.json"))
	scope := scopeOf(meta)
	due := normalizeDueAt(meta["due_at"])
	marker := discussionMarker(meta)
	expected := ParseList(meta["expected_students"])
	if len(expected) == 0 {
		expected = s.expectedStudents(meta, scope)
	}
	out := &Progress{
		OK:            true,
		AssignmentID:  aid,
		Date:          dateOf(meta, aid),
		Scope:         scope,
		ClassName:     meta["class_name"],
		DueAt:         due,
		ExpectedCount: len(expected),
		Students:      []StudentProgress{},
		UpdatedAt:     now.Format(TimeLayout),
	}
	dueTime, hasDue := parseDueTime(due)
	hist := history.NewStore(s.dataDir, 0)
	var students []StudentProgress
	for _, sid := range expected {
		st := StudentProgress{StudentID: sid}
		if validStudentID(sid) {
			p := s.profile(sid)
			st.StudentName, _ = p["student_name"].(string)
			c, _ := p["class_name"].(string)
			st.ClassName = strings.TrimSpace(c)
			st.Discussion = s.discussion(hist, sid, aid, marker)
			st.Submission = s.submission(aid, sid)
		} else {
			st.Discussion = Discussion{Status: "not_started", SessionID: aid}
		}
		st.Complete = st.Discussion.Pass && st.Submission.Best != nil
		st.Overdue = hasDue && now.After(dueTime) && !st.Complete
		c := &out.Counts
		if st.Discussion.Pass {
			c.DiscussionPass++
		}
		if st.Submission.Best != nil {
			c.Submitted++
		}
		if st.Complete {
			c.Completed++
		}
		if st.Overdue {
			c.Overdue++
		}
		students = append(students, st)
	}
	out.Counts.Expected = len(expected)
	if includeStudents && students != nil {
		sort.SliceStable(students, func(i, j int) bool {
			a, b := students[i], students[j]
			if a.ClassName != b.ClassName {
				return a.ClassName < b.ClassName
			}
			if a.StudentName != b.StudentName {
				return a.StudentName < b.StudentName
			}
			return a.StudentID < b.StudentID
		})
		out.Students = students
	}
	return out, nil
}

// ProgressByDate is the progress (without students) of every assignment
// of date (empty or unparseable: today), newest updated_at first, then by
// id.
func (s *Service) ProgressByDate(date string, now time.Time) (*DayProgress, error) {
	day := parseDate(date, now)
	out := &DayProgress{OK: true, Date: day, Assignments: []*Progress{}}
	entries, err := os.ReadDir(s.root())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fault.Wrap(fault.Internal, err, "read assignments failed")
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !exams.ValidID(name) {
			continue
		}
		meta := s.jsonObject(filepath.Join(s.root(), name, "meta.json"))
		if d, _ := dateOf(meta, name).(string); d != day {
			continue
		}
		p, err := s.Progress(name, false, now)
		if fault.CodeOf(err) == fault.NotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out.Assignments = append(out.Assignments, p)
	}
	sort.SliceStable(out.Assignments, func(i, j int) bool {
		a, b := out.Assignments[i], out.Assignments[j]
		if a.UpdatedAt != b.UpdatedAt {
			return a.UpdatedAt > b.UpdatedAt
		}
		return a.AssignmentID < b.AssignmentID
	})
	return out, nil
}

// scopeOf is meta.scope when it is public, class or student; else student
// with student_ids, class with a class_name, else public.
func scopeOf(meta map[string]any) string {
	switch sc, _ := meta["scope"].(string); strings.TrimSpace(sc) {
	case "public", "class", "student":
		return strings.TrimSpace(sc)
	}
	if len(ParseList(meta["student_ids"])) > 0 {
		return "student"
	}
	if c, _ := meta["class_name"].(string); strings.TrimSpace(c) != "" {
		return "class"
	}
	return "public"
}

// normalizeDueAt is the predecessor's due_at: YYYY-MM-DD becomes the end
// of that day, a valid ISO timestamp is kept, anything else is "".
func normalizeDueAt(v any) string {
	str, _ := v.(string)
	str = strings.TrimSpace(str)
	if str == "" {
		return ""
	}
	if _, err := time.Parse("2006-01-02", str); err == nil {
		return str + "T23:59:59"
	}
	if _, ok := parseDueTime(str); ok {
		return str
	}
	return ""
}

var dueLayouts = []string{
	"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04",
	"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999",
}

// parseDueTime reads a normalised due_at: without a zone it is local time.
func parseDueTime(str string) (time.Time, bool) {
	if str == "" {
		return time.Time{}, false
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(l, str); err == nil {
			return t, true
		}
	}
	for _, l := range dueLayouts {
		if t, err := time.ParseInLocation(l, str, time.Local); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// discussionMarker is completion_policy.discussion_marker, else the
// default.
func discussionMarker(meta map[string]any) string {
	if p, ok := meta["completion_policy"].(map[string]any); ok {
		if m, _ := p["discussion_marker"].(string); strings.TrimSpace(m) != "" {
			return m
		}
	}
	return DefaultDiscussionMarker
}

// expectedStudents is what the predecessor's snapshot would hold: the
// named students (deduplicated, sorted), the class's profiles, or every
// profile.
func (s *Service) expectedStudents(meta map[string]any, scope string) []string {
	var out []string
	switch scope {
	case "student":
		seen := map[string]bool{}
		for _, id := range ParseList(meta["student_ids"]) {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	case "class":
		class, _ := meta["class_name"].(string)
		class = strings.TrimSpace(class)
		if class == "" {
			return nil
		}
		for _, id := range s.profileIDs() {
			c, _ := s.profile(id)["class_name"].(string)
			if strings.TrimSpace(c) == class {
				out = append(out, id)
			}
		}
	default:
		out = s.profileIDs()
	}
	sort.Strings(out)
	return out
}

// profileIDs are the stems of DATA_DIR/student_profiles/*.json that can
// be student ids.
func (s *Service) profileIDs() []string {
	entries, _ := os.ReadDir(layout.Tenant{DataDir: s.dataDir}.StudentProfiles())
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && e.Type().IsRegular() && validStudentID(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// profile is DATA_DIR/student_profiles/<id>.json (nil when missing,
// invalid or too large); id must be valid.
func (s *Service) profile(id string) map[string]any {
	p := layout.Tenant{DataDir: s.dataDir}.StudentProfile(id)
	if !smallFile(p) {
		return nil
	}
	return s.jsonObject(p)
}

// validStudentID says whether a student id may become a path component.
func validStudentID(id string) bool {
	return id != "" && id == strings.TrimSpace(id) && !strings.HasPrefix(id, ".") && len(id) <= 255 &&
		!strings.ContainsFunc(id, func(r rune) bool { return r == '/' || r == '\\' || unicode.IsControl(r) })
}

// smallFile says whether p is a regular file within the read bound.
func smallFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Size() <= maxProgressFileBytes
}

// discussion is the best of the student's sessions for the assignment:
// the session named after it and those its index tags with it. A session
// passes when an assistant message holds the marker; a pass beats none,
// then more messages win.
func (s *Service) discussion(hist *history.Store, sid, aid, marker string) Discussion {
	ownerDir := filepath.Join(layout.Tenant{DataDir: s.dataDir}.StudentChatSessions(), history.OwnerDir(history.Student, sid))
	candidates := []string{aid}
	if smallFile(filepath.Join(ownerDir, "index.json")) {
		for cursor := 0; ; {
			items, next, _, err := hist.Sessions(history.Student, sid, 100, cursor)
			if err != nil {
				break
			}
			for _, it := range items {
				if a, _ := it["assignment_id"].(string); strings.TrimSpace(a) != aid {
					continue
				}
				if id, _ := it["session_id"].(string); strings.TrimSpace(id) != "" && !contains(candidates, id) {
					candidates = append(candidates, id)
				}
			}
			if next == nil {
				break
			}
			cursor = *next
		}
	}
	best := Discussion{Status: "not_started", SessionID: aid}
	for _, session := range candidates {
		d := Discussion{Status: "not_started", SessionID: session}
		if !smallFile(filepath.Join(ownerDir, fsid.Safe(session, "session")+".jsonl")) {
			continue
		}
		recs, err := hist.ReadAll(history.Student, sid, session)
		if err != nil {
			continue
		}
		for _, r := range recs {
			d.MessageCount++
			if ts, _ := r["ts"].(string); ts != "" {
				d.LastTS = ts
			}
			if role, _ := r["role"].(string); role == "assistant" {
				if c, _ := r["content"].(string); strings.Contains(c, marker) {
					d.Pass = true
				}
			}
		}
		switch {
		case d.Pass:
			d.Status = "pass"
		case d.MessageCount > 0:
			d.Status = "in_progress"
		}
		if d.Pass && !best.Pass || d.Pass == best.Pass && d.MessageCount > best.MessageCount {
			best = d
		}
	}
	return best
}

// submission reads DATA_DIR/student_submissions/<aid>/<sid>/submission_*/
// grading_report.json; best is the valid attempt maximal by
// (score_earned, correct, graded_total, submitted_at).
func (s *Service) submission(aid, sid string) Submission {
	out := Submission{}
	rel := layout.Relative().SubmissionsOfAssignment(aid, sid)
	entries, _ := os.ReadDir(filepath.Join(s.dataDir, rel))
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "submission_") {
			continue
		}
		reportRel := filepath.Join(rel, name, "grading_report.json")
		p := filepath.Join(s.dataDir, reportRel)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxProgressFileBytes {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var rep struct {
			GradedTotal any `json:"graded_total"`
			Correct     any `json:"correct"`
			Ungraded    any `json:"ungraded"`
			Items       []map[string]any
		}
		if json.Unmarshal(data, &rep) != nil {
			continue
		}
		a := &Attempt{
			AttemptID:   name,
			SubmittedAt: submittedAt(name, fi.ModTime()),
			GradedTotal: toInt(rep.GradedTotal),
			Correct:     toInt(rep.Correct),
			Ungraded:    toInt(rep.Ungraded),
			ReportPath:  filepath.ToSlash(reportRel),
		}
		for _, it := range rep.Items {
			if st, _ := it["status"].(string); st == "ungraded" {
				continue
			}
			if conf, ok := toFloat(it["confidence"]); !ok || conf < GradeCountConfThreshold {
				continue
			}
			score, _ := toFloat(it["score"])
			a.ScoreEarned += score
		}
		a.ValidSubmission = a.GradedTotal > 0
		out.Attempts++
		if a.ValidSubmission && (out.Best == nil || better(a, out.Best)) {
			out.Best = a
		}
	}
	return out
}

func better(a, b *Attempt) bool {
	switch {
	case a.ScoreEarned != b.ScoreEarned:
		return a.ScoreEarned > b.ScoreEarned
	case a.Correct != b.Correct:
		return a.Correct > b.Correct
	case a.GradedTotal != b.GradedTotal:
		return a.GradedTotal > b.GradedTotal
	}
	return a.SubmittedAt > b.SubmittedAt
}

// submittedAt is the submission_YYYYmmdd_HHMMSS folder's time, else the
// report's modification time.
func submittedAt(folder string, mtime time.Time) string {
	stamp := strings.TrimPrefix(folder, "submission_")
	if len(stamp) > len("20060102_150405") {
		stamp = stamp[:len("20060102_150405")] // a second submission in the same second: _2, _3…
	}
	if t, err := time.ParseInLocation("20060102_150405", stamp, time.Local); err == nil {
		return t.Format(TimeLayout)
	}
	return mtime.Format(TimeLayout)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func toInt(v any) int {
	f, _ := toFloat(v)
	return int(f)
}

// FinalizeMeta completes a new assignment's meta.json the way the
// predecessor's progress GET did, once, when the assignment is created
// (upload confirm, generate): the scope (explicit, else inferred), due_at
// normalised, the expected-students snapshot with its time, and the default
// completion policy when meta has none. It changes meta in place; the
// caller writes it. Later progress reads never write.
func (s *Service) FinalizeMeta(meta map[string]any, now time.Time) {
	scope := scopeOf(meta)
	meta["scope"] = scope
	if due := normalizeDueAt(meta["due_at"]); due != "" {
		meta["due_at"] = due
	} else {
		delete(meta, "due_at")
	}
	if len(ParseList(meta["expected_students"])) == 0 {
		expected := s.expectedStudents(meta, scope)
		if expected == nil {
			expected = []string{}
		}
		meta["expected_students"] = expected
		meta["expected_students_generated_at"] = now.Format(TimeLayout)
	}
	if _, ok := meta["completion_policy"].(map[string]any); !ok {
		meta["completion_policy"] = map[string]any{
			"requires_discussion": true, "discussion_marker": DefaultDiscussionMarker,
			"requires_submission": true, "min_graded_total": 1,
			"best_attempt": "score_earned_then_correct_then_graded_total", "version": 1,
		}
	}
}
