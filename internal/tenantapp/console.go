package tenantapp

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/textcut"
)

// The operator console's reads of a tenant (internal/console). They only
// read, and each is bounded, so a console page costs a tenant little
// however many jobs or exams it holds.

// FailedJob is a failed background job as the console lists it: the code
// and detail its domain recorded (the jobFailure convention of every job
// kind: "error", "error_detail", "hints").
type FailedJob struct {
	Kind      string   `json:"kind"`
	JobID     string   `json:"job_id"`
	Error     string   `json:"error"`
	Detail    string   `json:"error_detail,omitempty"`
	Hints     []string `json:"hints,omitempty"`
	Step      string   `json:"step,omitempty"`
	CreatedAt string   `json:"created_at,omitempty"`
	UpdatedAt string   `json:"updated_at,omitempty"`
}

// jobStoreDirs are the job stores of each worker kind under uploadsDir,
// as the layout names them for every domain (jobs.NewStore in examupload,
// chat, students, grading, assignupload, attachments): read from disk, so
// the failures of a tenant that is not loaded, or is disabled, show too.
func jobStoreDirs(uploadsDir string) []struct{ kind, dir string } {
	l := layout.Tenant{UploadsDir: uploadsDir}
	return []struct{ kind, dir string }{
		{KindChat, l.ChatJobs()},
		{KindChatAttachment, l.ChatAttachments()},
		{KindAssignmentUpload, l.AssignmentJobs()},
		{KindExamUpload, l.ExamJobs()},
		{KindSubmission, l.SubmissionJobs()},
		{KindProfileUpdate, l.ProfileJobs()},
	}
}

const (
	// maxJobEntries bounds the directory entries read per job store: a
	// store with more shows failures among the first read only.
	maxJobEntries = 5000
	// maxJobRecords bounds the records read per job store: the most
	// recently changed job folders.
	maxJobRecords = 200
	// maxJobRecordBytes bounds one job.json read.
	maxJobRecordBytes = 64 << 10
	// maxFailedPerKind bounds the failed jobs answered per kind.
	maxFailedPerKind = 20
)

// FailedJobs lists the most recent failed jobs of every worker kind of the
// tenant whose UPLOADS_DIR is uploadsDir, at most perKind of each (1 to
// 20), newest first. Only the most recently changed folders of each store
// are read (a folder changes when its job.json is rewritten), so a store of
// thousands of jobs costs a directory read and a few hundred small files.
func FailedJobs(uploadsDir string, perKind int) ([]FailedJob, error) {
	perKind = min(max(perKind, 1), maxFailedPerKind)
	var out []FailedJob
	var errs []error
	for _, s := range jobStoreDirs(uploadsDir) {
		got, err := failedJobsIn(s.kind, s.dir, perKind)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s jobs: %w", s.kind, err))
		}
		out = append(out, got...)
	}
	slices.SortStableFunc(out, func(a, b FailedJob) int { return cmp.Compare(b.UpdatedAt, a.UpdatedAt) })
	return out, errors.Join(errs...)
}

func failedJobsIn(kind, dir string, limit int) ([]FailedJob, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	entries, err := f.ReadDir(maxJobEntries)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	type cand struct {
		id     string
		mod    time.Time
		sealed bool // <id>.job: a finished job's one file (jobs.Store.Seal)
	}
	cands := make([]cand, 0, len(entries))
	for _, e := range entries {
		id, sealed := strings.CutSuffix(e.Name(), jobs.SealedSuffix)
		if sealed == e.IsDir() || !jobs.ValidID(id) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		cands = append(cands, cand{id, info.ModTime(), sealed})
	}
	slices.SortFunc(cands, func(a, b cand) int { return b.mod.Compare(a.mod) })
	var out []FailedJob
	for _, c := range cands[:min(len(cands), maxJobRecords)] {
		var rec map[string]any
		var ok bool
		if c.sealed {
			rec, ok = jobs.ReadSealedRecord(filepath.Join(dir, c.id+jobs.SealedSuffix), maxJobRecordBytes)
		} else {
			rec, ok = readJobRecord(filepath.Join(dir, c.id, jobs.RecordFile))
		}
		if !ok || rec["status"] != "failed" {
			continue
		}
		j := FailedJob{Kind: kind, JobID: c.id, Error: textOf(rec["error"], 200), Detail: textOf(rec["error_detail"], 500),
			Step: textOf(rec["step"], 64), CreatedAt: textOf(rec["created_at"], 32), UpdatedAt: textOf(rec["updated_at"], 32)}
		if hints, ok := rec["hints"].([]any); ok {
			for _, h := range hints[:min(len(hints), 5)] {
				if s := textOf(h, 300); s != "" {
					j.Hints = append(j.Hints, s)
				}
			}
		}
		out = append(out, j)
	}
	slices.SortStableFunc(out, func(a, b FailedJob) int { return cmp.Compare(b.UpdatedAt, a.UpdatedAt) })
	return out[:min(len(out), limit)], nil
}

// readJobRecord reads one job.json of at most maxJobRecordBytes.
func readJobRecord(path string) (map[string]any, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJobRecordBytes+1))
	if err != nil || len(data) > maxJobRecordBytes {
		return nil, false
	}
	var rec map[string]any
	if json.Unmarshal(data, &rec) != nil || rec == nil {
		return nil, false
	}
	return rec, true
}

// textOf is v as text of at most n runes: a string as it is, anything
// else (a structured error) as JSON; nil is "".
func textOf(v any, n int) string {
	var s string
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		s = t
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return ""
		}
		s = string(b)
	}
	return textcut.Short(s, n)
}

// maxConsoleExams bounds the exams the console lists (newest first).
const maxConsoleExams = 100

// ExamSummaries are the tenant's exams as GET /exams lists them, newest
// first, at most 100.
func (a *App) ExamSummaries() ([]exams.Summary, error) {
	body, err := a.exams.Catalog().ListJSON()
	if err != nil {
		return nil, err
	}
	var list struct {
		Exams []exams.Summary `json:"exams"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	return list.Exams[:min(len(list.Exams), maxConsoleExams)], nil
}

// ExamChart is the SVG of chart name ("totals", "questions", "classes")
// of exam examID, as GET /exam/{exam_id}/charts/{name}.svg draws it; a
// fault (NotFound, Invalid for an exam without responses) when there is
// none.
func (a *App) ExamChart(examID, name string) ([]byte, error) {
	if !exams.ValidID(examID) {
		return nil, fault.New(fault.NotFound, "exam not found")
	}
	e, err := a.exams.Exam(examID)
	if errors.Is(err, exams.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "exam not found")
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read exam failed")
	}
	if !e.HasResponses {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "responses_missing", "exam_id": e.ID})
	}
	svg, found, err := e.Chart(name)
	if !found {
		return nil, fault.New(fault.NotFound, "chart not found")
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "draw chart failed")
	}
	return svg, nil
}
