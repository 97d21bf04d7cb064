package assignupload

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/students"
	"github.com/lectern/lectern/internal/textcut"
	"github.com/lectern/lectern/internal/upload"
)

// receive reserves a queue place, streams the upload into a new job folder
// and hands the form to create, which validates it and writes job.json. A
// refused upload (or form) leaves nothing behind. It answers the request
// itself when it fails (ok false).
func (p *Pipeline) receive(w http.ResponseWriter, r *http.Request, fields map[string]string,
	create func(id string, form map[string]string, files map[string][]upload.File) error) (string, map[string][]upload.File, bool) {
	// Take a place in the queue before reading the upload: a full queue
	// costs the client nothing but this answer.
	place, err := p.runner.Reserve()
	if err != nil {
		httpjson.Fail(w, p.log, &fault.Error{Code: fault.TooMany, RetryAfter: 30 * time.Second, Err: err,
			Detail: "当前排队的作业解析任务过多，请稍后重试。(too many assignment uploads are queued; retry later)"})
		return "", nil, false
	}
	defer place.Release()
	id := newJobID()
	dir, err := p.store.JobDir(id)
	if err != nil {
		httpjson.Fail(w, p.log, fault.Wrap(fault.Internal, err, "create upload job failed"))
		return "", nil, false
	}
	form, raw, err := upload.ReceiveChecked(w, r, dir, p.limits, uploadFields(fields), p.precheck)
	files := byFolder(raw, fields)
	if err == nil {
		err = create(id, form, files)
	}
	if err != nil {
		os.RemoveAll(dir) // a refused upload leaves nothing behind
		httpjson.Fail(w, p.log, fault.OrInternal(err, "create upload job failed"))
		return "", nil, false
	}
	place.Enqueue(id)
	return id, files, true
}

// Start serves POST /assignment/upload/start (multipart/form-data;
// teacher): assignment_id, date, due_at, scope, class_name, student_ids,
// files[] (the paper), answer_files[], ocr_mode, language. Every field is
// checked before the job exists (see createUpload).
func (p *Pipeline) Start(w http.ResponseWriter, r *http.Request) {
	owner := caller.From(r.Context())
	var aid string
	id, _, ok := p.receive(w, r, startFields, func(id string, form map[string]string, files map[string][]upload.File) error {
		var err error
		aid, err = p.createUpload(id, owner, form, files)
		return err
	})
	if !ok {
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "job_id": id, "assignment_id": aid,
		"status": StatusQueued, "message": "解析任务已创建，后台处理中。"})
}

// QuestionsOCR serves POST /assignment/questions/ocr (multipart/form-data;
// teacher): assignment_id, files[], kp_id, difficulty, tags, ocr_mode,
// language. It answers at once with the job; GET /assignment/upload/status
// follows it. The assignment id is validated, not slugged.
func (p *Pipeline) QuestionsOCR(w http.ResponseWriter, r *http.Request) {
	owner := caller.From(r.Context())
	var aid string
	id, files, ok := p.receive(w, r, ocrFields, func(id string, form map[string]string, files map[string][]upload.File) error {
		var err error
		aid, err = p.createQuestionsOCR(id, owner, form, files)
		return err
	})
	if !ok {
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "job_id": id, "assignment_id": aid,
		"status": StatusQueued, "files": upload.Names(files[folderSource])})
}

// precheck refuses, before any file is stored, a form whose fields sent
// ahead of the files are already wrong: the assignment id, the text
// bounds, the dates. Fields that may still follow (scope and its ids) are
// checked with the whole form.
func (p *Pipeline) precheck(form map[string]string) error {
	if _, ok := form["assignment_id"]; ok {
		if _, err := p.assignmentID(form); err != nil {
			return err
		}
	}
	if err := checkLengths(form, map[string]int{"class_name": maxClassRunes, "language": 16, "ocr_mode": 32, "scope": 16,
		"kp_id": maxKPRunes, "difficulty": maxShortRunes, "tags": 500}); err != nil {
		return err
	}
	if _, err := parseDate(form["date"], p.now()); err != nil {
		return err
	}
	_, err := normalizeDueAt(form["due_at"])
	return err
}

// Bounds of the form's text fields.
const (
	maxClassRunes = 64
	maxStudentIDs = 1000
)

// assignmentID is the form's assignment id, checked (assignments.Service.Resolve).
func (p *Pipeline) assignmentID(form map[string]string) (string, error) {
	aid, _, _, err := p.svc.Resolve(form["assignment_id"])
	return aid, err
}

func checkLengths(form map[string]string, most map[string]int) error {
	for field, n := range most {
		if got := utf8.RuneCountInString(strings.TrimSpace(form[field])); got > n {
			return fault.Newf(fault.Invalid, "%s is too long: %d characters, at most %d", field, got, n)
		}
	}
	return nil
}

// createUpload validates the start form and writes job.json; it returns
// the assignment id. A refused form is a *fault.Error.
func (p *Pipeline) createUpload(id string, owner caller.Principal, form map[string]string, files map[string][]upload.File) (string, error) {
	aid, err := p.assignmentID(form)
	if err != nil {
		return "", err
	}
	if err := checkLengths(form, map[string]int{"class_name": maxClassRunes, "language": 16, "ocr_mode": 32, "scope": 16}); err != nil {
		return "", err
	}
	date, err := parseDate(form["date"], p.now())
	if err != nil {
		return "", err
	}
	dueAt, err := normalizeDueAt(form["due_at"])
	if err != nil {
		return "", err
	}
	sources := files[folderSource]
	if len(sources) == 0 {
		return "", fault.New(fault.Invalid, "No source files uploaded")
	}
	class := strings.TrimSpace(form["class_name"])
	ids, err := studentIDs(form["student_ids"])
	if err != nil {
		return "", err
	}
	scope, err := resolveScope(form["scope"], ids, class)
	if err != nil {
		return "", err
	}
	var due any
	if dueAt != "" {
		due = dueAt
	}
	rec := map[string]any{
		"type":          TypeUpload,
		"assignment_id": aid,
		"date":          date,
		"due_at":        due,
		"scope":         scope,
		"class_name":    class,
		"student_ids":   ids,
		"source_files":  upload.Names(sources),
		"answer_files":  upload.Names(files[folderAnswer]),
		"delivery_mode": deliveryMode(sources),
		"language":      orDefault(form["language"], "zh"),
		"ocr_mode":      orDefault(form["ocr_mode"], "FREE_OCR"),
		"teacher_id":    owner.TeacherID, // whose job it is (checked with a token)
		"uploads":       files,
		"status":        StatusQueued,
		"progress":      0,
		"step":          "queued",
	}
	return aid, p.store.Create(id, rec)
}

// createQuestionsOCR validates the questions-OCR form and writes job.json.
func (p *Pipeline) createQuestionsOCR(id string, owner caller.Principal, form map[string]string, files map[string][]upload.File) (string, error) {
	aid, err := p.assignmentID(form)
	if err != nil {
		return "", err
	}
	if err := checkLengths(form, map[string]int{"kp_id": maxKPRunes, "difficulty": maxShortRunes, "tags": 500,
		"language": 16, "ocr_mode": 32}); err != nil {
		return "", err
	}
	if len(files[folderSource]) == 0 {
		return "", fault.New(fault.Invalid, "No files uploaded")
	}
	rec := map[string]any{
		"type":          TypeQuestionsOCR,
		"assignment_id": aid,
		"kp_id":         oneLine(orDefault(form["kp_id"], "uncategorized")),
		"difficulty":    normalizeDifficulty(orDefault(form["difficulty"], "basic")),
		"tags":          oneLine(orDefault(form["tags"], "ocr")),
		"language":      orDefault(form["language"], "zh"),
		"ocr_mode":      orDefault(form["ocr_mode"], "FREE_OCR"),
		"files":         upload.Names(files[folderSource]),
		"teacher_id":    owner.TeacherID,
		"uploads":       files,
		"status":        StatusQueued,
		"progress":      0,
		"step":          "queued",
	}
	return aid, p.store.Create(id, rec)
}

// oneLine keeps a CSV cell on one line.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ")
}

// studentIDs splits student_ids on , ， ; and checks each id could name a
// profile file; duplicates are dropped.
func studentIDs(raw string) ([]string, error) {
	out := []string{}
	for _, id := range listOf(raw) {
		if !students.ValidID(id) { // the profile writer's rule
			return nil, fault.Newf(fault.Invalid, "invalid student id %q", textcut.Head(id, 40))
		}
		if !contains(out, id) {
			out = append(out, id)
		}
	}
	if len(out) > maxStudentIDs {
		return nil, fault.Newf(fault.Invalid, "too many student_ids: %d, at most %d", len(out), maxStudentIDs)
	}
	return out, nil
}

// resolveScope is the explicit scope (public, class or student), else
// student with student ids, class with a class name, else public; a
// student scope needs ids and a class scope a class name.
func resolveScope(raw string, ids []string, class string) (string, error) {
	scope := strings.TrimSpace(raw)
	switch scope {
	case "public", "class", "student":
	case "":
		switch {
		case len(ids) > 0:
			scope = "student"
		case class != "":
			scope = "class"
		default:
			scope = "public"
		}
	default:
		return "", fault.Newf(fault.Invalid, "invalid scope %q: use public, class or student", textcut.Head(scope, 16))
	}
	if scope == "student" && len(ids) == 0 {
		return "", fault.New(fault.Invalid, "student scope requires student_ids")
	}
	if scope == "class" && class == "" {
		return "", fault.New(fault.Invalid, "class scope requires class_name")
	}
	return scope, nil
}

// parseDate is the date given (YYYY-MM-DD, or the date of an ISO
// timestamp), today when empty.
func parseDate(s string, now time.Time) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return now.Format("2006-01-02"), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04",
		time.RFC3339Nano, "2006/01/02", "2006.01.02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02"), nil
		}
	}
	return "", fault.Newf(fault.Invalid, "invalid date %q: use YYYY-MM-DD", textcut.Head(s, 40))
}

// normalizeDueAt: YYYY-MM-DD becomes the end of that day, an ISO timestamp
// is kept, empty stays empty.
func normalizeDueAt(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if _, err := time.Parse("2006-01-02", s); err == nil {
		return s + "T23:59:59", nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04",
		time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if _, err := time.Parse(layout, s); err == nil {
			return s, nil
		}
	}
	return "", fault.Newf(fault.Invalid, "invalid due_at %q: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", textcut.Head(s, 40))
}

func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s == "" {
		return def
	}
	return s
}

func newJobID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "job_" + hex.EncodeToString(b)
}

// errJobNotFound answers a job id that names no job of this pipeline.
var errJobNotFound error = fault.New(fault.NotFound, "job not found")

// errForbiddenJob: another teacher's upload job (the predecessor's 403).
var errForbiddenJob error = fault.New(fault.Forbidden, "forbidden_upload_job")

// job loads job id for who; kind, when set, is the job type the route
// serves (a questions-OCR job has no draft).
func (p *Pipeline) job(who caller.Principal, id, kind string) (map[string]any, error) {
	if strings.TrimSpace(id) == "" {
		return nil, fault.New(fault.Invalid, "job_id is required")
	}
	rec, err := p.store.Load(id)
	if errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID) {
		return nil, errJobNotFound
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read upload job failed")
	}
	if !mayUse(who, rec) {
		return nil, errForbiddenJob
	}
	if kind != "" && jobType(rec) != kind {
		return nil, errJobNotFound
	}
	return rec, nil
}

func jobType(rec map[string]any) string {
	if t, _ := rec["type"].(string); t != "" {
		return t
	}
	return TypeUpload
}

// mayUse reports whether who may see or act on job rec: the teacher that
// started it owns it (policy.Owns: with a token; anyone in open mode); the
// admin may act on every job; a job recorded without a teacher is the
// admin's only.
func mayUse(who caller.Principal, rec map[string]any) bool {
	owner, _ := rec["teacher_id"].(string)
	return policy.Owns(who, caller.Principal{Role: caller.RoleTeacher, TeacherID: owner})
}

// Status serves GET /assignment/upload/status?job_id= (teacher): the job
// record as is, for uploads and questions-OCR jobs alike.
func (p *Pipeline) Status(w http.ResponseWriter, r *http.Request) {
	rec, err := p.job(caller.From(r.Context()), r.URL.Query().Get("job_id"), "")
	if err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	httpjson.Write(w, http.StatusOK, rec)
}

// Draft serves GET /assignment/upload/draft?job_id= (teacher).
func (p *Pipeline) Draft(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("job_id")
	rec, err := p.job(caller.From(r.Context()), id, TypeUpload)
	if err == nil && rec["status"] != StatusDone && rec["status"] != StatusConfirmed {
		err = notReady(rec, "解析尚未完成，暂无法查看草稿。")
	}
	var st *state
	if err == nil {
		st, err = p.load(id)
	}
	if err != nil {
		httpjson.Fail(w, p.log, fault.OrInternal(err, "read draft failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "draft": view(id, rec, st)})
}

// saveBody is POST /assignment/upload/draft/save.
type saveBody struct {
	JobID        string          `json:"job_id"`
	Requirements json.RawMessage `json:"requirements"`
	Questions    json.RawMessage `json:"questions"`
}

// DraftSave serves POST /assignment/upload/draft/save (JSON; teacher):
// the edits merge into the stored ones (requirements key by key, questions
// replaced when given) and the draft version goes up.
func (p *Pipeline) DraftSave(w http.ResponseWriter, r *http.Request) {
	var body saveBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	rec, err := p.job(caller.From(r.Context()), body.JobID, TypeUpload)
	if err == nil && rec["status"] != StatusDone {
		err = notReady(rec, "解析尚未完成，暂无法保存草稿。")
	}
	var edit override
	if err == nil {
		edit, err = decodeEdit(body)
	}
	if err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	var missing []string
	var version int
	_, err = p.store.Update(body.JobID, func(r map[string]any) error {
		if r["status"] != StatusDone { // a confirm began meanwhile
			return notReady(r, "解析尚未完成，暂无法保存草稿。")
		}
		st, err := p.load(body.JobID)
		if err != nil {
			return err
		}
		ov := st.ov
		if edit.Requirements != nil {
			ov.Requirements = mergeRequirements(ov.Requirements, edit.Requirements, true)
		}
		if edit.Questions != nil {
			ov.Questions = edit.Questions
		}
		st.ov, st.saved = ov, true
		st.questions = st.parsed.Questions
		if len(ov.Questions) > 0 {
			st.questions = ov.Questions
		}
		st.requirements = mergeRequirements(st.parsed.Requirements, ov.Requirements, true)
		missing = st.draftMissing()
		ov.RequirementsMissing, ov.SavedAt = missing, jobs.Timestamp(p.now())
		if err := atomicfile.WriteJSON(filepath.Join(p.jobDir(body.JobID), "draft_override.json"), ov); err != nil {
			return err
		}
		n, _ := r["draft_version"].(float64)
		version = int(max(n, 1)) + 1
		r["draft_version"] = version
		r["requirements"], r["requirements_missing"] = st.requirements, missing
		r["question_count"], r["draft_saved"] = len(st.questions), true
		return nil
	})
	if err != nil {
		httpjson.Fail(w, p.log, fault.OrInternal(err, "save draft failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "job_id": body.JobID, "requirements_missing": missing,
		"message": "草稿已保存，将用于创建作业。", "draft_version": version})
}

// decodeEdit reads a save's requirements (an object) and questions (an
// array of objects; other items are dropped, stems trimmed).
func decodeEdit(body saveBody) (override, error) {
	var ov override
	if raw := body.Requirements; len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &ov.Requirements); err != nil || ov.Requirements == nil {
			return ov, fault.New(fault.Invalid, "requirements must be an object")
		}
	}
	if raw := body.Questions; len(raw) > 0 && string(raw) != "null" {
		var items []any
		if err := json.Unmarshal(raw, &items); err != nil {
			return ov, fault.New(fault.Invalid, "questions must be an array")
		}
		if len(items) > maxQuestions {
			return ov, fault.Newf(fault.Invalid, "too many questions: %d, at most %d", len(items), maxQuestions)
		}
		ov.Questions = []Question{}
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				ov.Questions = append(ov.Questions, questionFrom(m))
			}
		}
	}
	return ov, nil
}

// confirmBody is POST /assignment/upload/confirm.
type confirmBody struct {
	JobID                string          `json:"job_id"`
	RequirementsOverride json.RawMessage `json:"requirements_override"`
	Confirm              any             `json:"confirm"`
	StrictRequirements   *bool           `json:"strict_requirements"`
}

// Confirm serves POST /assignment/upload/confirm (JSON; teacher): the
// draft becomes DATA_DIR/assignments/<id>/.
func (p *Pipeline) Confirm(w http.ResponseWriter, r *http.Request) {
	var body confirmBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	if _, err := p.job(caller.From(r.Context()), body.JobID, TypeUpload); err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	var reqOverride map[string]any
	if raw := body.RequirementsOverride; len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &reqOverride); err != nil {
			httpjson.Fail(w, p.log, fault.New(fault.Invalid, "requirements_override must be an object"))
			return
		}
	}
	strict := body.StrictRequirements == nil || *body.StrictRequirements
	out, err := p.confirm(body.JobID, reqOverride, strict)
	if err != nil {
		httpjson.Fail(w, p.log, fault.OrInternal(err, "confirm assignment failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}
