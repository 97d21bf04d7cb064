package memory

import (
	"cmp"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/textcut"
)

// Student memory (agent-extras.md §2.7, HEAD): a teacher's proposals
// about one of the tenant's students, kept in the teacher's workspace
// (student_memory/proposals/smem_<12hex>.json, events in
// telemetry/student_memory_events.jsonl). Reviewing only flips the status;
// nothing is written to a memory file.

// Student memory types.
var studentMemoryTypes = []string{"learning_preference", "stable_misconception", "long_term_goal", "effective_intervention"}

const (
	studentMinContent = 8
	studentMaxContent = 1000
	studentMaxID      = 128
	studentMaxRefs    = 20
)

// riskFlags are what a proposal about a student must not hold: scores,
// rankings and personal contact data (plus the secret filter's kinds).
var riskFlags = []struct {
	name string
	re   *regexp.Regexp
}{
	{"score_detail", regexp.MustCompile(`\d+(?:\.\d+)?\s*分(?:[^钟]|$)|(?:得分|成绩)\s*[:：]?\s*\d+`)},
	{"ranking_detail", regexp.MustCompile(`(?i)排名|名次|第\s*\d+\s*名|top\s*\d+|百分位`)},
	{"phone_number", regexp.MustCompile(`(^|\D)1\d{10}(\D|$)`)},
	{"id_number", regexp.MustCompile(`(^|\D)\d{17}[\dXx](\D|$)`)},
	{"contact_info", regexp.MustCompile(`微信|手机号|家庭住址|身份证号|联系方式`)},
}

func studentRiskFlags(text string) []string {
	var out []string
	for _, f := range riskFlags {
		if f.re.MatchString(text) {
			out = append(out, f.name)
		}
	}
	for _, k := range SensitiveKinds(text) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// StudentProposal is one student memory proposal.
type StudentProposal struct {
	ID           string         `json:"proposal_id"`
	TeacherID    string         `json:"teacher_id"`
	StudentID    string         `json:"student_id"`
	MemoryType   string         `json:"memory_type"`
	Content      string         `json:"content"`
	Source       string         `json:"source"`
	EvidenceRefs []string       `json:"evidence_refs"`
	Status       string         `json:"status"`
	CreatedAt    string         `json:"created_at"`
	RiskFlags    []string       `json:"risk_flags"`
	Provenance   map[string]any `json:"provenance,omitempty"`
	ReviewedAt   string         `json:"reviewed_at,omitempty"`
	ReviewedBy   string         `json:"reviewed_by,omitempty"`
	DeletedAt    string         `json:"deleted_at,omitempty"`
	// DeletedFromStatus is the status before a soft delete.
	DeletedFromStatus string `json:"deleted_from_status,omitempty"`
}

// StudentInput is a new student memory proposal.
type StudentInput struct {
	StudentID    string
	MemoryType   string
	Content      string
	EvidenceRefs []string
	Source       string
}

func studentDir(dir string) string { return filepath.Join(dir, "student_memory", "proposals") }

func (s *Service) studentEvent(dir, event string, payload map[string]any) {
	s.telemetry(dir, "student_memory_events.jsonl", event, payload)
}

// RiskError names what a refused student proposal held (errors.As it
// from ProposeStudent's error).
type RiskError struct{ Flags []string }

func (e *RiskError) Error() string { return "risk flags: " + strings.Join(e.Flags, ", ") }

// ProposeStudent records a proposal about a student. Errors (400, with
// the predecessor's codes): student_id_required, invalid_memory_type,
// content_too_short, content_too_long, and content_blocked (with
// a *RiskError) for scores, rankings, contact data or secrets.
func (s *Service) ProposeStudent(teacherID string, in StudentInput) (StudentProposal, error) {
	p, _, err := s.proposeStudent(teacherID, in, nil)
	return p, err
}

// proposeStudent is ProposeStudent with admit, when set, deciding under
// the teacher's lock from the existing proposals whether to store it (""
// stores it; else the reason it is not stored).
func (s *Service) proposeStudent(teacherID string, in StudentInput, admit func([]StudentProposal) string) (StudentProposal, string, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return StudentProposal{}, "", err
	}
	in.StudentID = strings.TrimSpace(in.StudentID)
	in.MemoryType = strings.ToLower(strings.TrimSpace(in.MemoryType))
	in.Content = strings.TrimSpace(in.Content)
	switch n := utf8.RuneCountInString(in.Content); {
	case in.StudentID == "":
		return StudentProposal{}, "", fault.New(fault.Invalid, "student_id_required")
	case len(in.StudentID) > studentMaxID:
		return StudentProposal{}, "", fault.New(fault.Invalid, "invalid_student_id")
	case !slices.Contains(studentMemoryTypes, in.MemoryType):
		return StudentProposal{}, "", fault.New(fault.Invalid, "invalid_memory_type")
	case n < studentMinContent:
		return StudentProposal{}, "", fault.New(fault.Invalid, "content_too_short")
	case n > studentMaxContent:
		return StudentProposal{}, "", fault.New(fault.Invalid, "content_too_long")
	}
	if flags := studentRiskFlags(in.Content); flags != nil {
		_ = s.withTeacher(dir, func() error {
			s.studentEvent(dir, "proposal_blocked", map[string]any{"student_id": in.StudentID,
				"memory_type": in.MemoryType, "risk_flags": flags})
			return nil
		})
		return StudentProposal{}, "", &fault.Error{Code: fault.Invalid, Detail: "content_blocked", Err: &RiskError{Flags: flags}}
	}
	refs := []string{}
	for _, r := range in.EvidenceRefs {
		if r = strings.TrimSpace(r); r != "" && len(refs) < studentMaxRefs {
			refs = append(refs, textcut.Head(r, 200))
		}
	}
	src := cmp.Or(normSource(in.Source), SourceManual)
	origin := "manual_input"
	if strings.HasPrefix(src, "auto_") {
		origin = "workflow_auto_proposal"
	}
	p := StudentProposal{TeacherID: WorkspaceName(teacherID), StudentID: in.StudentID, MemoryType: in.MemoryType,
		Content: in.Content, Source: src, EvidenceRefs: refs, Status: StatusProposed, CreatedAt: s.stamp(),
		RiskFlags: []string{}, Provenance: map[string]any{"layer": "student_memory_proposal", "source": src, "origin": origin}}
	reason := ""
	err = s.withTeacher(dir, func() error {
		if admit != nil {
			if reason = admit(studentRecords(dir)); reason != "" {
				return nil
			}
		}
		for {
			p.ID = "smem_" + newProposalID()[len("tmem_"):]
			if _, err := os.Lstat(s.studentPath(dir, p.ID)); errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err := atomicfile.WriteJSON(s.studentPath(dir, p.ID), p); err != nil {
			return err
		}
		s.studentEvent(dir, "proposal_created", map[string]any{"proposal_id": p.ID, "student_id": p.StudentID,
			"memory_type": p.MemoryType, "source": p.Source})
		return nil
	})
	return p, reason, err
}

func (s *Service) studentPath(dir, id string) string {
	return filepath.Join(studentDir(dir), fsid.Safe(id, "proposal")+".json")
}

// studentRecords reads the teacher's student proposals, newest file
// first.
func studentRecords(dir string) []StudentProposal {
	pdir := studentDir(dir)
	ents, err := os.ReadDir(pdir)
	if err != nil {
		return nil
	}
	type file struct {
		name string
		mod  int64
	}
	var files []file
	for _, e := range ents {
		if info, err := e.Info(); err == nil && e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") &&
			!strings.HasPrefix(e.Name(), ".") && info.Size() <= maxRecordBytes {
			files = append(files, file{e.Name(), info.ModTime().UnixNano()})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Or(cmp.Compare(b.mod, a.mod), strings.Compare(b.name, a.name)) })
	var out []StudentProposal
	for _, f := range files[:min(len(files), maxScan)] {
		var p StudentProposal
		if data, err := os.ReadFile(filepath.Join(pdir, f.name)); err == nil && json.Unmarshal(data, &p) == nil {
			p.ID = cmp.Or(p.ID, strings.TrimSuffix(f.name, ".json"))
			p.Status = cmp.Or(strings.ToLower(p.Status), StatusProposed)
			out = append(out, p)
		}
	}
	return out
}

// ListStudent lists the teacher's student proposals (of studentID when
// given), newest first; deleted ones only with status "deleted"; limit
// 1..200 (0: 20).
func (s *Service) ListStudent(teacherID, studentID, status string, limit int) ([]StudentProposal, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return nil, err
	}
	status = strings.ToLower(strings.TrimSpace(status))
	switch status {
	case "", StatusProposed, StatusApplied, StatusRejected, StatusDeleted:
	default:
		return nil, ErrInvalidStatus
	}
	if limit == 0 {
		limit = 20
	}
	limit = min(max(limit, 1), 200)
	studentID = strings.TrimSpace(studentID)
	out := []StudentProposal{}
	for _, p := range studentRecords(dir) {
		if len(out) == limit {
			break
		}
		if (studentID == "" || p.StudentID == studentID) &&
			(status == p.Status || status == "" && p.Status != StatusDeleted) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ReviewStudent approves (status applied) or rejects a student proposal;
// one decided before answers its status unchanged.
func (s *Service) ReviewStudent(teacherID, proposalID string, approve bool) (StudentProposal, error) {
	return s.changeStudent(teacherID, proposalID, func(p *StudentProposal) (string, bool) {
		if p.Status != StatusProposed {
			return "", false
		}
		p.Status = StatusRejected
		if approve {
			p.Status = StatusApplied
		}
		p.ReviewedAt, p.ReviewedBy = s.stamp(), p.TeacherID
		return "proposal_reviewed", true
	})
}

// DeleteStudent soft-deletes a student proposal.
func (s *Service) DeleteStudent(teacherID, proposalID string) (StudentProposal, error) {
	return s.changeStudent(teacherID, proposalID, func(p *StudentProposal) (string, bool) {
		if p.Status == StatusDeleted {
			return "", false
		}
		p.DeletedFromStatus, p.Status, p.DeletedAt = p.Status, StatusDeleted, s.stamp()
		return "proposal_deleted", true
	})
}

// changeStudent loads a proposal under the lock, lets change edit it
// (false: nothing to do) and saves it.
func (s *Service) changeStudent(teacherID, proposalID string, change func(*StudentProposal) (string, bool)) (StudentProposal, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return StudentProposal{}, err
	}
	if proposalID = strings.TrimSpace(proposalID); proposalID == "" {
		return StudentProposal{}, ErrProposalRequired
	}
	var p StudentProposal
	err = s.withTeacher(dir, func() error {
		path := s.studentPath(dir, proposalID)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return ErrNotFound
		}
		if err != nil || len(data) > maxRecordBytes || json.Unmarshal(data, &p) != nil {
			return fault.Wrap(fault.Internal, err, "student memory record is unreadable")
		}
		p.ID = cmp.Or(p.ID, proposalID)
		p.Status = cmp.Or(strings.ToLower(p.Status), StatusProposed)
		event, changed := change(&p)
		if !changed {
			return nil
		}
		if err := atomicfile.WriteJSON(path, p); err != nil {
			return err
		}
		s.studentEvent(dir, event, map[string]any{"proposal_id": p.ID, "student_id": p.StudentID, "status": p.Status})
		return nil
	})
	return p, err
}

// StudentInsights counts the student proposals created in the last days
// (1..90; 0: 14; undated ones count), of studentID when given.
func (s *Service) StudentInsights(teacherID, studentID string, days int) (map[string]any, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return nil, err
	}
	if days == 0 {
		days = 14
	}
	days = min(max(days, 1), 90)
	now := s.now()
	start := now.AddDate(0, 0, -days)
	studentID = strings.TrimSpace(studentID)
	status := map[string]int{StatusApplied: 0, StatusDeleted: 0, StatusProposed: 0, StatusRejected: 0}
	types := map[string]int{}
	total := 0
	for _, p := range studentRecords(dir) {
		if studentID != "" && p.StudentID != studentID {
			continue
		}
		if t, ok := parseTime(p.CreatedAt, now.Location()); ok && t.Before(start) {
			continue
		}
		total++
		status[p.Status]++
		types[p.MemoryType]++
	}
	return map[string]any{"ok": true, "teacher_id": WorkspaceName(teacherID), "student_id": studentID, "days": days,
		"total": total, "status_counts": status, "type_counts": types}, nil
}

// The /teacher/student-memory/* handlers (rule policy.Teacher). The
// student named is data the teacher acts on (a teacher may act on every
// student of the tenant), read from the query or the body.

// ServeStudentProposals serves GET /teacher/student-memory/proposals?teacher_id&student_id&status&limit=20.
func (s *Service) ServeStudentProposals(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	limit, ok := httpjson.IntQuery(w, r, "limit", 20)
	if !ok {
		return
	}
	sid := r.URL.Query().Get("student_id")
	list, err := s.ListStudent(tid, sid, r.URL.Query().Get("status"), limit)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "list student memory failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "teacher_id": WorkspaceName(tid),
		"student_id": strings.TrimSpace(sid), "proposals": list})
}

type studentCreateBody struct {
	TeacherID    *string  `json:"teacher_id"`
	StudentID    string   `json:"student_id"`
	MemoryType   string   `json:"memory_type"`
	Content      string   `json:"content"`
	EvidenceRefs []string `json:"evidence_refs"`
	Source       string   `json:"source"`
}

// ServeStudentCreate serves POST /teacher/student-memory/proposals with
// body {teacher_id?, student_id, memory_type, content, evidence_refs?,
// source?}: {ok, proposal_id, status:"proposed", teacher_id}.
func (s *Service) ServeStudentCreate(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	var body studentCreateBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	p, err := s.ProposeStudent(tid, StudentInput{StudentID: body.StudentID, MemoryType: body.MemoryType,
		Content: body.Content, EvidenceRefs: body.EvidenceRefs, Source: body.Source})
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "create student memory failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "proposal_id": p.ID, "status": p.Status, "teacher_id": p.TeacherID})
}

// ServeStudentReview serves POST /teacher/student-memory/proposals/{proposal_id}/review
// with body {teacher_id?, approve=true}: {ok, proposal_id, status}.
func (s *Service) ServeStudentReview(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	var body reviewBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if err := httpjson.Decode(w, r, &body); err != nil {
			httpjson.DecodeFailed(w, err)
			return
		}
	}
	p, err := s.ReviewStudent(tid, r.PathValue("proposal_id"), body.Approve == nil || *body.Approve)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "review student memory failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "proposal_id": p.ID, "status": p.Status})
}

// ServeStudentDelete serves DELETE /teacher/student-memory/proposals/{proposal_id}:
// {ok, proposal_id, status:"deleted"}.
func (s *Service) ServeStudentDelete(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	p, err := s.DeleteStudent(tid, r.PathValue("proposal_id"))
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "delete student memory failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "proposal_id": p.ID, "status": StatusDeleted})
}

// ServeStudentInsights serves GET /teacher/student-memory/insights?teacher_id&student_id&days=14.
func (s *Service) ServeStudentInsights(w http.ResponseWriter, r *http.Request) {
	tid := teacherOf(caller.From(r.Context()))
	days, ok := httpjson.IntQuery(w, r, "days", 14)
	if !ok {
		return
	}
	out, err := s.StudentInsights(tid, r.URL.Query().Get("student_id"), days)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "student memory insights failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}
