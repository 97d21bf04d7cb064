package grading

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/upload"
)

// receivedOutput is the answer's output line: what the predecessor's
// client shows.
const receivedOutput = "作业已提交，正在批改，请稍后查看结果。(Submission received and being graded; poll /student/submit/status?job_id=… for the result.)"

// maxWait bounds how long a synchronous submission (wait=1) waits for
// its grading before answering with the job's status.
const maxWait = 120 * time.Second

// Submit serves POST /student/submit (multipart/form-data: student_id,
// files — files[] too —, assignment_id, auto_assignment, wait), for a
// student (itself) or a teacher or admin (any student of the tenant).
//
// It answers at once, 200 {"ok":true,"job_id","status":"queued",
// "assignment_id","student_id","output"}; the grading runs in the
// tenant's submission job (GET /student/submit/status). With wait=1 (or
// true, form field or query) it waits for the grading, at most 120 s, and
// answers the predecessor's {"ok":true,"output":"[OK] Saved OCR to …\n[OK]
// Saved feedback to …\n[OK] Saved profile suggestion to …"} plus job_id,
// status, assignment_id, student_id and the report (grading_report.json);
// a failed grading is the job's error ({"error","message","hints",
// "job_id","status":"failed"}, 400, 404 or 503); still running after
// 120 s, the queued answer with the job's status and step.
//
// Behaviour changed from the predecessor (for docs/compatibility.md):
//   - asynchronous by default (the predecessor blocked for the whole OCR
//     and grading and answered only {"ok":true,"output"}); wait=1 keeps
//     the synchronous form, whose output names paths relative to DATA_DIR
//     rather than absolute ones;
//   - student_id must match HEAD's ^[\w-]+$ (Unicode letters and digits,
//     '_', '-'; at most 128): 400 "student_id is required" /
//     "invalid_student_id"; assignment_id must be a valid id (400
//     "invalid_assignment_id") of an assignment with a questions.csv (404
//     "assignment not found"). Both are checked before any file is stored
//     when the form sends them before the files (browsers send fields in
//     the order they were appended), else before the job is created,
//     with the stored files removed; nothing is left of a refused
//     submission;
//   - assignment_id is required unless auto_assignment=true (400
//     "assignment_id is required"). The predecessor also ran its
//     detection when no id was given, but that detection never matched,
//     so such calls always failed (500); detection now works, and an
//     explicit id is never replaced by it;
//   - a student's token submits only for itself (403
//     forbidden_student_scope);
//   - bounds: at most 20 files, 20 MiB each, 80 MiB per request (413);
//     files must be images, PDFs, text or .docx (415);
//   - the files go to the job's own folder, never the flat UPLOADS_DIR
//     where one student's 1.jpg replaced another's;
//   - a failure is the job's coded error with hints (ocr_unavailable,
//     ocr_failed, ocr_text_empty, assignment_not_detected,
//     assignment_not_found, questions_missing), not a 500 with a
//     script's stderr.
func (s *Service) Submit(w http.ResponseWriter, r *http.Request) {
	// Take a place in the queue before reading the upload.
	place, err := s.runner.Reserve()
	if err != nil {
		httpjson.Fail(w, s.log, &fault.Error{Code: fault.TooMany, RetryAfter: 30 * time.Second, Err: err,
			Detail: "当前排队批改的作业过多，请稍后重试。(too many submissions are queued; retry later)"})
		return
	}
	defer place.Release()
	who := caller.From(r.Context())
	query := r.URL.Query()
	id := newJobID()
	dir, err := s.store.JobDir(id)
	if err != nil {
		httpjson.Fail(w, s.log, fault.Wrap(fault.Internal, err, "create submission job failed"))
		return
	}
	form, files, err := s.receive(w, r, filepath.Join(dir, "files"), func(form map[string]string) error {
		_, err := s.parseForm(who, form, query, false)
		return err
	})
	var sub submission
	if err == nil {
		sub, err = s.parseForm(who, form, query, true)
	}
	if err == nil && len(files) == 0 {
		err = fault.New(fault.Invalid, "No submission files uploaded")
	}
	if err == nil {
		err = s.store.Create(id, map[string]any{
			"student_id":      sub.studentID,
			"assignment_id":   sub.assignmentID,
			"auto_assignment": sub.auto,
			"files":           upload.Names(files),
			"uploads":         files,
			"submitted_by":    string(who.Role),
			"status":          StatusQueued,
			"step":            "queued",
			"progress":        0,
		})
	}
	if err != nil {
		os.RemoveAll(dir) // a refused submission leaves nothing behind
		httpjson.Fail(w, s.log, fault.OrInternal(err, "create submission job failed"))
		return
	}
	var done <-chan struct{}
	if sub.wait {
		var drop func()
		done, drop = s.waitFor(id)
		defer drop()
	}
	place.Enqueue(id)
	if sub.wait {
		s.answerWhenDone(w, r, id, done)
		return
	}
	httpjson.Write(w, http.StatusOK, queuedAnswer(id, sub.studentID, sub.assignmentID, nil))
}

func queuedAnswer(id, sid, aid string, rec map[string]any) map[string]any {
	out := map[string]any{"ok": true, "job_id": id, "status": StatusQueued, "assignment_id": nilIfEmpty(aid),
		"student_id": sid, "output": receivedOutput}
	if rec != nil {
		out["status"], out["step"], out["progress"] = rec["status"], rec["step"], rec["progress"]
		if v, _ := rec["assignment_id"].(string); v != "" {
			out["assignment_id"] = v
		}
	}
	return out
}

// answerWhenDone answers a synchronous submission once its job ends (or
// after maxWait, or when the client goes).
func (s *Service) answerWhenDone(w http.ResponseWriter, r *http.Request, id string, done <-chan struct{}) {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	rec, err := s.store.Load(id)
	if err != nil {
		httpjson.Fail(w, s.log, fault.Wrap(fault.Internal, err, "read submission job failed"))
		return
	}
	sid, _ := rec["student_id"].(string)
	aid, _ := rec["assignment_id"].(string)
	switch rec["status"] {
	case StatusDone:
		out := map[string]any{"ok": true, "output": rec["output"], "job_id": id, "status": StatusDone,
			"assignment_id": aid, "student_id": sid, "summary": rec["summary"]}
		if rep, ok := s.gradingReport(rec); ok {
			out["report"] = rep
		}
		httpjson.Write(w, http.StatusOK, out)
	case StatusFailed:
		code, _ := rec["error"].(string)
		httpjson.Fail(w, s.log, fault.New(failureCode(code), map[string]any{"error": code, "message": rec["error_detail"],
			"hints": rec["hints"], "job_id": id, "status": StatusFailed}))
	default: // still queued or grading: the client polls
		httpjson.Write(w, http.StatusOK, queuedAnswer(id, sid, aid, rec))
	}
}

// failureCode is the kind of a job failure, for the synchronous answer.
func failureCode(code string) fault.Code {
	switch code {
	case "ocr_unavailable":
		return fault.Unavailable
	case "assignment_not_found":
		return fault.NotFound
	case "internal_error", "":
		return fault.Internal
	}
	return fault.Invalid
}

// Status serves GET /student/submit/status?job_id=: the job record (status
// queued/processing/done/failed, step, progress; error, error_detail and
// hints when failed; when done the summary, the submission's folders,
// output, and report: its grading_report.json). A student's token sees
// only its own jobs (403 forbidden_student_scope). It writes nothing.
func (s *Service) Status(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("job_id"))
	if id == "" {
		httpjson.Fail(w, s.log, fault.New(fault.Invalid, "job_id is required"))
		return
	}
	rec, err := s.store.Load(id)
	if errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID) {
		httpjson.Fail(w, s.log, fault.New(fault.NotFound, "job not found"))
		return
	}
	if err != nil {
		httpjson.Fail(w, s.log, fault.Wrap(fault.Internal, err, "read submission job failed"))
		return
	}
	sid, _ := rec["student_id"].(string)
	if err := caller.From(r.Context()).MayActOnStudent(sid); err != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	if rec["status"] == StatusDone {
		if rep, ok := s.gradingReport(rec); ok {
			rec["report"] = rep
		}
	}
	httpjson.Write(w, http.StatusOK, rec)
}

// maxReportBytes bounds the grading report read back for an answer.
const maxReportBytes = 4 << 20

// gradingReport reads a done job's grading_report.json.
func (s *Service) gradingReport(rec map[string]any) (map[string]any, bool) {
	rel, _ := rec["report_path"].(string)
	if rel == "" {
		return nil, false
	}
	p := filepath.Join(s.dataDir, filepath.FromSlash(rel))
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxReportBytes {
		return nil, false
	}
	var rep map[string]any
	if readJSON(p, &rep) != nil {
		return nil, false
	}
	return rep, true
}

// submission is a submit form, checked.
type submission struct {
	studentID, assignmentID string
	auto, wait              bool
}

// parseForm checks the submit form (values of the form, else of the
// query). Before the files (final false) it checks what is there; at the
// end the required fields too.
func (s *Service) parseForm(who caller.Principal, form map[string]string, query url.Values, final bool) (submission, error) {
	get := func(k string) string {
		if v := strings.TrimSpace(form[k]); v != "" {
			return v
		}
		return strings.TrimSpace(query.Get(k))
	}
	sub := submission{studentID: get("student_id"), assignmentID: get("assignment_id"),
		auto: truthy(get("auto_assignment")), wait: truthy(get("wait"))}
	switch {
	case sub.studentID == "":
		if final {
			return sub, fault.New(fault.Invalid, "student_id is required")
		}
	case !ValidStudentID(sub.studentID):
		return sub, fault.New(fault.Invalid, "invalid_student_id")
	default:
		if err := who.MayActOnStudent(sub.studentID); err != nil {
			return sub, err
		}
	}
	if sub.assignmentID != "" {
		aid, dir, ok, err := s.assignments.Resolve(sub.assignmentID)
		switch {
		case fault.CodeOf(err) == fault.Invalid:
			return sub, fault.New(fault.Invalid, "invalid_assignment_id")
		case err != nil:
			return sub, err
		case !ok || !hasQuestions(dir):
			return sub, fault.New(fault.NotFound, "assignment not found")
		}
		sub.assignmentID = aid
	} else if final && !sub.auto {
		return sub, fault.New(fault.Invalid, "assignment_id is required (or auto_assignment=true to read it from the sheet)")
	}
	return sub, nil
}

// ValidStudentID is HEAD's submit rule ^[\w-]+$ with Python's Unicode \w:
// letters, digits, '_' and '-', 1 to 128 characters.
func ValidStudentID(id string) bool {
	if id == "" || utf8.RuneCountInString(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// submitFields: the files of a submission ("files", or "files[]" as the
// predecessor's client names them), each an image, a PDF, text or .docx.
var submitFields = map[string]upload.Field{
	"files":   {Accept: documentKind},
	"files[]": {Accept: documentKind},
}

func documentKind(name string, head []byte) (string, error) {
	return upload.DocumentKind(name, head, true)
}

// receive streams the submission into dir (the job's files/). check sees
// the form values sent before the first file and may refuse the
// submission before anything is stored. Errors are *fault.Error (413 for
// the bounds) or the server's; the caller removes the job folder on any
// error.
func (s *Service) receive(w http.ResponseWriter, r *http.Request, dir string, check func(map[string]string) error) (map[string]string, []upload.File, error) {
	form, files, err := upload.ReceiveChecked(w, r, dir, s.limits, submitFields, check)
	if err != nil {
		return nil, nil, err
	}
	return form, append(files["files"], files["files[]"]...), nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func newJobID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "job_" + hex.EncodeToString(b)
}
