package students

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/layout"
)

// API holds the student endpoints; the tenant's routes.go maps them.
type API struct {
	profiles   *Store
	worker     *Worker
	exams      *exams.Service
	dataDir    string
	uploadsDir string
	maxUpload  int64
	maxFiles   int
	log        *slog.Logger
}

// APIConfig configures the student endpoints.
type APIConfig struct {
	Profiles            *Store
	Worker              *Worker
	Exams               *exams.Service
	DataDir, UploadsDir string
	MaxUploadBytes      int64
	MaxUploadFiles      int
	Logger              *slog.Logger
}

// NewAPI returns the handlers.
func NewAPI(c APIConfig) *API {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 64 << 20
	}
	if c.MaxUploadFiles <= 0 {
		c.MaxUploadFiles = 32
	}
	return &API{profiles: c.Profiles, worker: c.Worker, exams: c.Exams, dataDir: c.DataDir, uploadsDir: c.UploadsDir,
		maxUpload: c.MaxUploadBytes, maxFiles: c.MaxUploadFiles, log: log}
}

// waitApplied bounds how long an endpoint waits for the worker.
const waitApplied = 15 * time.Second

// Profile serves GET /student/profile/{student_id}.
func (a *API) Profile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("student_id")
	if err := caller.From(r.Context()).MayActOnStudent(id); err != nil {
		httpjson.Fail(w, a.log, err)
		return
	}
	prof, err := a.profiles.Get(id)
	switch {
	case fault.CodeOf(err) == fault.Internal:
		httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, fmt.Errorf("read profile %s: %w", id, err), "profile could not be read"))
	case err != nil: // an invalid id, or no profile
		httpjson.Fail(w, a.log, err)
	default:
		httpjson.Write(w, http.StatusOK, prof)
	}
}

// ProfileUpdate serves POST /student/profile/update (form fields). The
// update goes through the worker like every other; the answer waits until
// it is applied (202 if that takes unusually long).
func (a *API) ProfileUpdate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Invalid, err, "invalid form: "+err.Error()))
		return
	}
	id := strings.TrimSpace(r.PostFormValue("student_id"))
	if id == "" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "student_id is required"))
		return
	}
	if err := caller.From(r.Context()).MayActOnStudent(id); err != nil {
		httpjson.Fail(w, a.log, err)
		return
	}
	u := Update{Kind: KindForm, StudentID: id,
		WeakKP: SplitKP(r.PostFormValue("weak_kp")), StrongKP: SplitKP(r.PostFormValue("strong_kp")),
		MediumKP: SplitKP(r.PostFormValue("medium_kp")), NextFocus: strings.TrimSpace(r.PostFormValue("next_focus")),
		Note: strings.TrimSpace(r.PostFormValue("interaction_note"))}
	a.enqueueAndWait(w, r, u, "[OK] Updated profile: "+id)
}

func (a *API) enqueueAndWait(w http.ResponseWriter, r *http.Request, u Update, output string) {
	jobID, err := a.worker.Enqueue(u)
	if err != nil { // an invalid id, ErrQueueFull, or an internal failure
		httpjson.Fail(w, a.log, fault.OrInternal(err, "profile update could not be queued"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), waitApplied)
	defer cancel()
	if err := a.worker.Wait(ctx, jobID); err != nil {
		httpjson.Write(w, http.StatusAccepted, map[string]any{"ok": true, "queued": true, "job_id": jobID})
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "output": output, "job_id": jobID})
}

// importBody is POST /student/import.
type importBody struct {
	Source   string `json:"source"`
	ExamID   string `json:"exam_id"`
	FilePath string `json:"file_path"`
	Mode     string `json:"mode"`
}

// Import serves POST /student/import: profiles from an exam's responses
// (or a responses CSV inside DATA_DIR), with each student's result.
func (a *API) Import(w http.ResponseWriter, r *http.Request) {
	var body importBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	source := orDefault(body.Source, "responses_scored")
	if source != "responses_scored" && source != "responses" {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "unsupported source: "+source))
		return
	}
	e, rel, date, err := a.importExam(body)
	if err != nil {
		httpjson.Fail(w, a.log, err)
		return
	}
	updates := ExamUpdates(e, KindImport, "exam_responses", rel, date, a.exams.KnowledgeMap())
	res := map[string]any{"ok": true, "source_file": rel, "total_students": len(updates)}
	created, updated, skipped := 0, 0, 0
	var sample []string
	var queued []string
	for _, u := range updates {
		if !ValidID(u.StudentID) {
			skipped++
			continue
		}
		if a.profiles.Exists(u.StudentID) {
			updated++
		} else {
			created++
		}
		ctx, cancel := context.WithTimeout(r.Context(), waitApplied)
		id, err := a.worker.EnqueueWait(ctx, u)
		cancel()
		if err != nil {
			a.log.Error("student import: update not queued", "student_id", u.StudentID, "err", err)
			skipped++
			continue
		}
		queued = append(queued, id)
		if len(sample) < 10 {
			sample = append(sample, u.StudentID)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), waitApplied)
	defer cancel()
	for _, id := range queued {
		if err := a.worker.Wait(ctx, id); err != nil {
			res["pending"] = true
			break
		}
	}
	res["created"], res["updated"], res["skipped"], res["sample"] = created, updated, skipped, nonNil(sample)
	httpjson.Write(w, http.StatusOK, res)
}

// importExam finds the responses to import: file_path inside DATA_DIR,
// else the exam's responses, else the newest staging/*responses*.csv. Its
// one failure is the Invalid fault "responses file not found".
func (a *API) importExam(b importBody) (*exams.Exam, string, string, error) {
	notFound := fault.New(fault.Invalid, "responses file not found")
	var path string
	switch {
	case b.FilePath != "":
		p, err := exams.ResolveInDataDir(a.dataDir, b.FilePath)
		if err != nil {
			return nil, "", "", notFound
		}
		path = p
	case b.ExamID != "":
		e, err := a.exams.Exam(b.ExamID)
		if err != nil || !e.HasResponses {
			return nil, "", "", notFound
		}
		date, _ := e.Manifest.Meta["date"].(string)
		return e, e.ResponsesFile, date, nil
	default:
		path = newestStaging(layout.Tenant{DataDir: a.dataDir}.Staging())
		if path == "" {
			return nil, "", "", notFound
		}
	}
	rows, err := exams.ReadResponses(path)
	if err != nil || len(rows) == 0 {
		return nil, "", "", notFound
	}
	examID := b.ExamID
	if examID == "" && rows[0].ExamID != "" {
		examID = rows[0].ExamID
	}
	rel, _ := filepath.Rel(a.dataDir, path)
	return exams.NewExam(examID, nil, rows, nil, nil, time.Now()), filepath.ToSlash(rel), "", nil
}

// newestStaging: staging/*responses*scored*.csv, else *responses*.csv.
func newestStaging(dir string) string {
	for _, pattern := range []string{"*responses*scored*.csv", "*responses*.csv"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		sort.Slice(matches, func(i, j int) bool { return modTime(matches[i]).After(modTime(matches[j])) })
		if len(matches) > 0 {
			return matches[0]
		}
	}
	return ""
}

func modTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// verifyBody is POST /student/verify. name is required (a missing or null
// name is bad input); a blank one is answered like any other miss.
type verifyBody struct {
	Name      *string `json:"name"`
	ClassName string  `json:"class_name"`
}

// Verify serves POST /student/verify. Like the predecessor it answers 200
// whether or not a student is found, because its student client reads
// "ok" before anything else: {"ok":true,"student":{…}} when exactly one
// profile matches, else {"ok":false,"error":"missing_name"|"not_found"|
// "multiple","message":…}, with up to 10 "candidates" when several match.
// Only a body that is not the JSON object asked for is a 400.
func (a *API) Verify(w http.ResponseWriter, r *http.Request) {
	var body verifyBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	if body.Name == nil {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, `name is required: {"name": "…", "class_name": "…"}`))
		return
	}
	name := normalize(*body.Name)
	if name == "" {
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": false, "error": "missing_name", "message": "请先输入姓名。"})
		return
	}
	class := normalize(body.ClassName)
	var found []map[string]any
	for _, p := range a.profiles.List() {
		sn, sc := str(p["student_name"]), str(p["class_name"])
		keys := []string{normalize(sn), normalize(str(p["student_id"])), normalize(sc + sn)}
		for _, al := range strs(p["aliases"]) {
			keys = append(keys, normalize(al))
		}
		match := false
		for _, k := range keys {
			if k != "" && k == name {
				match = true
			}
		}
		if match && (class == "" || normalize(sc) == class) {
			found = append(found, map[string]any{"student_id": p["student_id"], "student_name": sn, "class_name": sc})
		}
	}
	switch len(found) {
	case 0:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": false, "error": "not_found", "message": "未找到该学生，请检查姓名或班级。"})
	case 1:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "student": found[0]})
	default:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": false, "error": "multiple", "message": "同名学生，请补充班级。",
			"candidates": found[:min(10, len(found))]})
	}
}

func normalize(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s))
}

// Upload serves POST /upload (files[]): each upload gets its own folder
// under UPLOADS_DIR/uploads/<upload_id>/, so nobody's file is overwritten;
// "saved" lists, in upload order, the path each file was stored at,
// relative to UPLOADS_DIR (a name repeated in one upload is stored and
// listed as name_2.ext, name_3.ext…).
func (a *API) Upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, a.maxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Invalid, err, "expected a multipart/form-data upload"))
		return
	}
	uploadID := "up_" + randomHex(8)
	dir := filepath.Join(layout.Tenant{UploadsDir: a.uploadsDir}.Uploads(), uploadID)
	saved, err := a.receive(mr, dir)
	if err != nil {
		os.RemoveAll(dir) // a refused upload leaves nothing behind
		httpjson.Fail(w, a.log, err)
		return
	}
	for i, name := range saved {
		saved[i] = filepath.ToSlash(filepath.Join(layout.Relative().Uploads(), uploadID, name))
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"saved": saved, "upload_id": uploadID})
}

// receive stores the files of an upload in dir and returns the names they
// were stored under, in upload order. Every failure is a *fault.Error.
func (a *API) receive(mr *multipart.Reader, dir string) ([]string, error) {
	var saved []string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bodyError(err, fault.Wrap(fault.Invalid, err, "malformed upload"))
		}
		if part.FileName() == "" {
			continue
		}
		if len(saved) >= a.maxFiles {
			return nil, fault.New(fault.TooLarge, "too many files")
		}
		name, ok := cleanName(part.FileName())
		if !ok {
			return nil, fault.New(fault.Invalid, "invalid file name")
		}
		stored, err := savePart(part, dir, name)
		if err != nil {
			return nil, bodyError(err, fault.Wrap(fault.Internal, err, "upload could not be stored"))
		}
		saved = append(saved, stored)
	}
	if len(saved) == 0 {
		return nil, fault.New(fault.Invalid, "no files uploaded")
	}
	return saved, nil
}

// bodyError is the fault of a request body that was cut (too large, or
// too slow), else otherwise.
func bodyError(err, otherwise error) error {
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &big):
		return fault.Wrap(fault.TooLarge, err, "upload is too large")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fault.Wrap(fault.Timeout, err, "the upload arrived too slowly and was cut off; nothing was stored")
	}
	return otherwise
}

// savePart stores part in dir as name, or as name_2.ext, name_3.ext… when
// the upload already holds that name, and returns the name it stored.
func savePart(part *multipart.Part, dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	stored := name
	for i := 2; ; i++ { // the same name twice in one upload
		if _, err := os.Lstat(filepath.Join(dir, stored)); errors.Is(err, os.ErrNotExist) {
			break
		}
		ext := filepath.Ext(name)
		stored = strings.TrimSuffix(name, ext) + "_" + strconv.Itoa(i) + ext
	}
	f, err := os.OpenFile(filepath.Join(dir, stored), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, part)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return stored, err
}

func cleanName(raw string) (string, bool) {
	name := raw
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if name == "" || strings.HasPrefix(name, ".") || len(name) > 200 || strings.ContainsFunc(name, unicode.IsControl) {
		return "", false
	}
	return name, true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
