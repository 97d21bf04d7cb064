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
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
)

// Start serves POST /exam/upload/start (multipart/form-data).
func (p *Pipeline) Start(w http.ResponseWriter, r *http.Request) {
	// Take a place in the queue before reading the upload: a full queue
	// costs the client nothing but this answer.
	place, err := p.runner.Reserve()
	if err != nil {
		w.Header().Set("Retry-After", "30")
		httpjson.Error(w, http.StatusTooManyRequests, "当前排队的考试解析任务过多，请稍后重试。(too many exam uploads are queued; retry later)")
		return
	}
	defer place.Release()
	id := newJobID()
	dir, err := p.store.JobDir(id)
	if err != nil {
		p.internal(w, "create exam job", err)
		return
	}
	form, files, err := receive(w, r, dir, p.limits)
	if err == nil {
		err = p.createJob(id, form, files)
	}
	if err != nil {
		os.RemoveAll(dir) // a refused upload leaves nothing behind
		var ue *uploadError
		if errors.As(err, &ue) {
			httpjson.Error(w, ue.status, ue.detail)
			return
		}
		p.internal(w, "create exam job", err)
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

// createJob validates the form and writes job.json.
func (p *Pipeline) createJob(id string, form map[string]string, files map[string][]StoredFile) error {
	examID := strings.TrimSpace(form["exam_id"])
	if examID != "" && !exams.ValidID(examID) {
		return refuse(http.StatusBadRequest, "invalid exam_id %q: use letters, digits, '_', '-' or '.'", examID)
	}
	date := strings.TrimSpace(form["date"])
	if date == "" {
		date = p.now().Format("2006-01-02")
	} else if d, err := parseDate(date); err != nil {
		return refuse(http.StatusBadRequest, "invalid date %q: use YYYY-MM-DD", date)
	} else {
		date = d
	}
	if len(files["score_files"]) == 0 {
		return refuse(http.StatusBadRequest, "No score files uploaded")
	}
	for field, most := range map[string]int{"class_name": maxNameRunes, "language": 16, "ocr_mode": 32} {
		if n := utf8.RuneCountInString(strings.TrimSpace(form[field])); n > most {
			return refuse(http.StatusBadRequest, "%s is too long: %d characters, at most %d", field, n, most)
		}
	}
	var max map[string]any
	if raw := strings.TrimSpace(form["max_scores"]); raw != "" {
		if err := json.Unmarshal([]byte(raw), &max); err != nil || max == nil {
			return refuse(http.StatusBadRequest, `max_scores must be a JSON object such as {"1": 4, "11(1)": 8}`)
		}
		if _, err := maxScores(max, nil); err != nil {
			return refuse(http.StatusBadRequest, "%v", err)
		}
	}
	rec := map[string]any{
		"exam_id":      examID,
		"date":         date,
		"class_name":   strings.TrimSpace(form["class_name"]),
		"language":     orDefault(form["language"], "zh"),
		"ocr_mode":     orDefault(form["ocr_mode"], "FREE_OCR"),
		"max_scores":   max,
		"paper_files":  names(files["paper_files"]),
		"score_files":  names(files["score_files"]),
		"answer_files": names(files["answer_files"]),
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

// job loads the job named by ?job_id= (or the body) and answers 404 itself.
func (p *Pipeline) job(w http.ResponseWriter, id string) (map[string]any, bool) {
	if strings.TrimSpace(id) == "" {
		httpjson.Error(w, http.StatusBadRequest, "job_id is required")
		return nil, false
	}
	rec, err := p.store.Load(id)
	if errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID) {
		httpjson.Error(w, http.StatusNotFound, "job not found")
		return nil, false
	}
	if err != nil {
		p.internal(w, "read exam job", err)
		return nil, false
	}
	return rec, true
}

// Status serves GET /exam/upload/status?job_id=: the job record as is.
func (p *Pipeline) Status(w http.ResponseWriter, r *http.Request) {
	rec, ok := p.job(w, r.URL.Query().Get("job_id"))
	if !ok {
		return
	}
	httpjson.Write(w, http.StatusOK, rec)
}

func notReady(w http.ResponseWriter, rec map[string]any, message string) {
	httpjson.Error(w, http.StatusBadRequest, map[string]any{"error": "job_not_ready", "message": message,
		"status": rec["status"], "step": rec["step"], "progress": rec["progress"]})
}

func ready(rec map[string]any) bool {
	return rec["status"] == StatusDone || rec["status"] == StatusConfirmed
}

// Draft serves GET /exam/upload/draft?job_id=.
func (p *Pipeline) Draft(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("job_id")
	rec, ok := p.job(w, id)
	if !ok {
		return
	}
	if !ready(rec) {
		notReady(w, rec, "解析尚未完成，暂无法打开草稿。")
		return
	}
	st, err := p.load(id)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
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
	rec, ok := p.job(w, body.JobID)
	if !ok {
		return
	}
	if rec["status"] != StatusDone {
		notReady(w, rec, "解析尚未完成，暂无法保存草稿。")
		return
	}
	path := filepath.Join(p.jobDir(body.JobID), "draft_override.json")
	var version any
	_, err := p.store.Update(body.JobID, func(r map[string]any) error {
		var ov Override
		if err := readJSON(path, &ov); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		ov.merge(body.Override)
		// Checked against the sheet's questions: an unknown label saved
		// here would break every later draft and confirm.
		qs, _ := exams.ReadQuestions(filepath.Join(p.jobDir(body.JobID), "derived", "questions.csv"))
		if _, err := maxScores(ov.MaxScores, qs); err != nil {
			return &invalidError{err.Error()}
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
	var inv *invalidError
	if errors.As(err, &inv) {
		httpjson.Error(w, http.StatusBadRequest, inv.msg)
		return
	}
	if err != nil {
		p.internal(w, "save exam draft", err)
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
	rec, ok := p.job(w, body.JobID)
	if !ok {
		return
	}
	examID, already, err := p.Confirm(body.JobID, strings.TrimSpace(body.ExamID))
	var nr *notReadyError
	var inv *invalidError
	var mm *missingMaxError
	switch {
	case err == nil && already:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": examID, "status": StatusConfirmed, "message": "考试已创建（已确认）。"})
	case err == nil:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": examID, "status": StatusConfirmed, "message": "考试已创建。"})
	case errors.Is(err, ErrJobNotFound):
		httpjson.Error(w, http.StatusNotFound, "job not found")
	case errors.Is(err, ErrExamExists):
		httpjson.Error(w, http.StatusConflict, map[string]any{"error": "exam_exists", "exam_id": examID,
			"message": "考试编号已存在，请换一个编号后再确认。(exam already exists: confirm again with another exam_id)"})
	case errors.As(err, &nr):
		notReady(w, rec, "解析尚未完成，请稍后再确认创建考试。")
	case errors.As(err, &mm):
		// An object detail, as for exam_exists: the teacher app shows
		// detail.message and detail.hints.
		httpjson.Error(w, http.StatusBadRequest, map[string]any{"error": "max_score_missing", "message": mm.detail(),
			"hints": mm.hints(), "missing_max_score_qids": mm.qids})
	case errors.As(err, &inv):
		httpjson.Error(w, http.StatusBadRequest, inv.msg)
	default:
		p.internal(w, "confirm exam", err)
	}
}

func (p *Pipeline) internal(w http.ResponseWriter, what string, err error) {
	p.log.Error(what, "err", err)
	httpjson.Error(w, http.StatusInternalServerError, what+" failed")
}
