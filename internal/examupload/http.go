package examupload

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
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/upload"
)

// Start serves POST /exam/upload/start (multipart/form-data).
func (p *Pipeline) Start(w http.ResponseWriter, r *http.Request) {
	// Take a place in the queue before reading the upload: a full queue
	// costs the client nothing but this answer.
	place, err := p.runner.Reserve()
	if err != nil {
		httpjson.Fail(w, p.log, &fault.Error{Code: fault.TooMany, RetryAfter: 30 * time.Second, Err: err,
			Detail: "当前排队的考试解析任务过多，请稍后重试。(too many exam uploads are queued; retry later)"})
		return
	}
	defer place.Release()
	id := newJobID()
	dir, err := p.store.JobDir(id)
	if err != nil {
		httpjson.Fail(w, p.log, fault.Wrap(fault.Internal, err, "create exam job failed"))
		return
	}
	form, files, err := upload.Receive(w, r, dir, p.limits, p.fields)
	if err == nil {
		err = p.createJob(id, caller.From(r.Context()), form, files)
	}
	if err != nil {
		os.RemoveAll(dir) // a refused upload leaves nothing behind
		httpjson.Fail(w, p.log, fault.OrInternal(err, "create exam job failed"))
		return
	}
	place.Enqueue(id)
	examID := any(nil)
	if v := strings.TrimSpace(form["exam_id"]); v != "" {
		examID = v
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "job_id": id, "exam_id": examID,
		"status": StatusQueued, "message": "考试解析任务已创建，后台处理中。"})
}

// maxNameRunes bounds a class name given at upload (it becomes part of
// every student id).
const maxNameRunes = 64

// createJob validates the form and writes job.json. A refused form is a
// *fault.Error.
func (p *Pipeline) createJob(id string, owner caller.Principal, form map[string]string, files map[string][]StoredFile) error {
	examID := strings.TrimSpace(form["exam_id"])
	if examID != "" && !exams.ValidID(examID) {
		return fault.Newf(fault.Invalid, "invalid exam_id %q: use letters, digits, '_', '-' or '.'", examID)
	}
	date := strings.TrimSpace(form["date"])
	if date == "" {
		date = p.now().Format("2006-01-02")
	} else if d, err := parseDate(date); err != nil {
		return fault.Newf(fault.Invalid, "invalid date %q: use YYYY-MM-DD", date)
	} else {
		date = d
	}
	if len(files["score_files"]) == 0 {
		return fault.New(fault.Invalid, "No score files uploaded")
	}
	for field, most := range map[string]int{"class_name": maxNameRunes, "language": 16, "ocr_mode": 32} {
		if n := utf8.RuneCountInString(strings.TrimSpace(form[field])); n > most {
			return fault.Newf(fault.Invalid, "%s is too long: %d characters, at most %d", field, n, most)
		}
	}
	var max map[string]any
	if raw := strings.TrimSpace(form["max_scores"]); raw != "" {
		if err := json.Unmarshal([]byte(raw), &max); err != nil || max == nil {
			return fault.New(fault.Invalid, `max_scores must be a JSON object such as {"1": 4, "11(1)": 8}`)
		}
		if _, err := maxScores(max, nil); err != nil {
			return fault.Wrap(fault.Invalid, err, err.Error())
		}
	}
	rec := map[string]any{
		"exam_id":      examID,
		"date":         date,
		"class_name":   strings.TrimSpace(form["class_name"]),
		"language":     orDefault(form["language"], "zh"),
		"ocr_mode":     orDefault(form["ocr_mode"], "FREE_OCR"),
		"max_scores":   max,
		"teacher_id":   owner.TeacherID, // whose job it is (checked with a token)
		"paper_files":  upload.Names(files["paper_files"]),
		"score_files":  upload.Names(files["score_files"]),
		"answer_files": upload.Names(files["answer_files"]),
		"uploads":      files,
		"status":       StatusQueued,
		"step":         "queued",
		"progress":     0,
	}
	if max == nil {
		delete(rec, "max_scores")
	}
	return p.store.Create(id, rec)
}

func parseDate(s string) (string, error) {
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04:05", time.RFC3339, "2006/01/02", "2006.01.02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02"), nil
		}
	}
	return "", errors.New("bad date")
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

// job loads the job named by ?job_id= (or the body).
func (p *Pipeline) job(who caller.Principal, id string) (map[string]any, error) {
	if strings.TrimSpace(id) == "" {
		return nil, fault.New(fault.Invalid, "job_id is required")
	}
	rec, err := p.store.Load(id)
	if errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID) {
		return nil, jobNotFound()
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read exam job failed")
	}
	if !mayUse(who, rec) {
		return nil, errForbiddenJob
	}
	return rec, nil
}

// errForbiddenJob: another teacher's upload job (the predecessor's 403).
var errForbiddenJob error = fault.New(fault.Forbidden, "forbidden_upload_job")

// mayUse reports whether who may see or act on job rec: the teacher that
// started it owns it (policy.Owns); a job recorded without one is the
// admin's only.
func mayUse(who caller.Principal, rec map[string]any) bool {
	owner, _ := rec["teacher_id"].(string)
	return policy.Owns(who, caller.Principal{Role: caller.RoleTeacher, TeacherID: owner})
}

// Status serves GET /exam/upload/status?job_id=: the job record as is.
func (p *Pipeline) Status(w http.ResponseWriter, r *http.Request) {
	rec, err := p.job(caller.From(r.Context()), r.URL.Query().Get("job_id"))
	if err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	httpjson.Write(w, http.StatusOK, rec)
}

func ready(rec map[string]any) bool {
	return rec["status"] == StatusDone || rec["status"] == StatusConfirmed
}

// Draft serves GET /exam/upload/draft?job_id=.
func (p *Pipeline) Draft(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("job_id")
	rec, err := p.job(caller.From(r.Context()), id)
	if err == nil && !ready(rec) {
		err = notReady(rec, "解析尚未完成，暂无法打开草稿。")
	}
	if err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	st, err := p.load(id)
	if err != nil {
		httpjson.Fail(w, p.log, fault.Wrap(fault.Invalid, err, err.Error()))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "draft": p.view(id, rec, st)})
}

// saveBody is POST /exam/upload/draft/save.
type saveBody struct {
	JobID string `json:"job_id"`
	Override
}

// DraftSave serves POST /exam/upload/draft/save: the edits merge into the
// stored ones and the draft version goes up.
func (p *Pipeline) DraftSave(w http.ResponseWriter, r *http.Request) {
	var body saveBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	rec, err := p.job(caller.From(r.Context()), body.JobID)
	if err == nil && rec["status"] != StatusDone {
		err = notReady(rec, "解析尚未完成，暂无法保存草稿。")
	}
	if err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	path := filepath.Join(p.jobDir(body.JobID), "draft_override.json")
	var version any
	_, err = p.store.Update(body.JobID, func(r map[string]any) error {
		var ov Override
		if err := readJSON(path, &ov); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		ov.merge(body.Override)
		// Checked against the sheet's questions: an unknown label saved
		// here would break every later draft and confirm.
		qs, _ := exams.ReadQuestions(filepath.Join(p.jobDir(body.JobID), "derived", "questions.csv"))
		if _, err := maxScores(ov.MaxScores, qs); err != nil {
			return fault.Wrap(fault.Invalid, err, err.Error())
		}
		if err := atomicfile.WriteJSON(path, ov); err != nil {
			return err
		}
		n, _ := r["draft_version"].(float64)
		version = int(max(n, 1)) + 1
		r["draft_version"] = version
		// The status then shows the scoring the saved draft gives.
		if st, err := p.load(body.JobID); err == nil {
			r["scoring"] = st.scoring
			r["counts_scored"], r["totals_summary"] = p.summary(st)
		}
		return nil
	})
	if err != nil {
		httpjson.Fail(w, p.log, fault.OrInternal(err, "save exam draft failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "job_id": body.JobID, "message": "考试草稿已保存。", "draft_version": version})
}

// confirmBody is POST /exam/upload/confirm.
type confirmBody struct {
	JobID   string `json:"job_id"`
	ExamID  string `json:"exam_id"`
	Confirm any    `json:"confirm"`
}

// ConfirmHandler serves POST /exam/upload/confirm.
func (p *Pipeline) ConfirmHandler(w http.ResponseWriter, r *http.Request) {
	var body confirmBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	if _, err := p.job(caller.From(r.Context()), body.JobID); err != nil {
		httpjson.Fail(w, p.log, err)
		return
	}
	examID, already, err := p.Confirm(body.JobID, strings.TrimSpace(body.ExamID))
	switch {
	case err != nil:
		httpjson.Fail(w, p.log, fault.OrInternal(err, "confirm exam failed"))
	case already:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": examID, "status": StatusConfirmed, "message": "考试已创建（已确认）。"})
	default:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": examID, "status": StatusConfirmed, "message": "考试已创建。"})
	}
}
