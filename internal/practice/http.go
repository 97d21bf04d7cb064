package practice

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// The handlers; the tenant's routes map them (roles as the predecessor at
// HEAD):
//
//	POST /assignment/generate                       GenerateHandler        teacher
//	GET  /assignment/{assignment_id}/generate/status GenerateStatusHandler teacher
//	POST /assignment/render                         RenderHandler          teacher
//	GET  /assignment/{assignment_id}/pdf            PDFHandler             student (own scope)

// Form bounds.
const (
	maxFormBytes = 1 << 20
	maxFormValue = 128 << 10
	maxFormParts = 64
)

// readForm reads a small form, multipart or urlencoded, without files. An
// empty content type is an empty form.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Header.Get("Content-Type") == "" {
		return url.Values{}, nil
	}
	if err != nil {
		return nil, fault.New(fault.Unsupported, "expected a form (multipart/form-data or application/x-www-form-urlencoded)")
	}
	switch ct {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, bodyError(err)
		}
		return r.PostForm, nil
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, fault.Wrap(fault.Invalid, err, "malformed form: "+err.Error())
		}
		form := url.Values{}
		for n := 0; ; n++ {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return form, nil
			}
			if err != nil {
				return nil, bodyError(err)
			}
			if n == maxFormParts {
				return nil, fault.New(fault.TooLarge, "too many form fields")
			}
			if part.FileName() != "" {
				return nil, fault.Newf(fault.Invalid, "unexpected file field %q: this form takes no files", part.FormName())
			}
			v, err := io.ReadAll(io.LimitReader(part, maxFormValue+1))
			if err != nil {
				return nil, bodyError(err)
			}
			if len(v) > maxFormValue {
				return nil, fault.Newf(fault.TooLarge, "form field %s is too long", part.FormName())
			}
			form.Add(part.FormName(), string(v))
		}
	}
	return nil, fault.New(fault.Unsupported, "expected a form (multipart/form-data or application/x-www-form-urlencoded)")
}

func bodyError(err error) error {
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return fault.Wrap(fault.TooLarge, err, fmt.Sprintf("form is larger than %d KiB", maxFormBytes>>10))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fault.Wrap(fault.Timeout, err, "the form arrived too slowly")
	}
	return fault.Wrap(fault.Invalid, err, "malformed form: "+err.Error())
}

// formBool reads a boolean form value as the predecessor's framework did.
func formBool(name, v string, def bool) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return def, nil
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return false, fault.Newf(fault.Invalid, "%s must be a boolean", name)
}

// GenerateRequestFromForm reads POST /assignment/generate's fields:
// assignment_id, kp, question_ids, core_examples, mode, date, due_at,
// class_name, student_ids, source, requirements_json (text, ""), per_kp
// (int, 5), generate (bool, false). Lists are split on ",", "，" and ";".
func GenerateRequestFromForm(form url.Values) (GenerateRequest, error) {
	req := GenerateRequest{
		AssignmentID:     form.Get("assignment_id"),
		KPs:              ParseList(form.Get("kp")),
		QuestionIDs:      ParseList(form.Get("question_ids")),
		CoreExamples:     ParseList(form.Get("core_examples")),
		Mode:             form.Get("mode"),
		Date:             form.Get("date"),
		DueAt:            form.Get("due_at"),
		ClassName:        form.Get("class_name"),
		StudentIDs:       ParseList(form.Get("student_ids")),
		Source:           form.Get("source"),
		RequirementsJSON: form.Get("requirements_json"),
		PerKP:            5,
	}
	if v := strings.TrimSpace(form.Get("per_kp")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, fault.New(fault.Invalid, "per_kp must be an integer")
		}
		req.PerKP = n
	}
	var err error
	req.UseLLM, err = formBool("generate", form.Get("generate"), false)
	return req, err
}

// GenerateHandler serves POST /assignment/generate. Without the LLM (or
// with generate false) the selection runs in the request and the answer is
// {"ok":true,"output":"[OK] Wrote …","assignment_id","question_count"}.
// With it, the generation runs in the background and the answer is
// {"ok":true,"status":"queued","assignment_id","message","status_url"};
// generate_status.json (GenerateStatusHandler) tells the outcome.
func (s *Service) GenerateHandler(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	req, err := GenerateRequestFromForm(form)
	if err != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	req.TeacherID = caller.From(r.Context()).TeacherID
	var res *GenerateResult
	if req.UseLLM && s.LLMConfigured() {
		res, err = s.Start(req)
	} else {
		res, err = s.Generate(r.Context(), req)
	}
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "generate assignment failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// GenerateStatusHandler serves GET /assignment/{assignment_id}/generate/status:
// generate_status.json as is (an interrupted run reads as failed).
func (s *Service) GenerateStatusHandler(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status(r.PathValue("assignment_id"))
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "read generate status failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, st)
}

// RenderHandler serves POST /assignment/render (form assignment_id):
// {"ok":true,"output":"[OK] Wrote PDF: assignments/<id>/assignment_<id>.pdf","pdf","url"}.
func (s *Service) RenderHandler(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	res, err := s.Render(r.Context(), form.Get("assignment_id"))
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "render assignment failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// PDFHandler serves GET /assignment/{assignment_id}/pdf: the rendered PDF.
// A verified student gets only an assignment meant for them
// (assignments.Service.MayRead). Errors: 400 invalid id, 404 assignment
// not found, 404 "pdf not found" before a render.
func (s *Service) PDFHandler(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("assignment_id")
	aid, dir, exists, err := s.asg.Resolve(id)
	if err == nil && (!exists || aid == coreDir) {
		err = fault.New(fault.NotFound, "assignment not found")
	}
	if err == nil {
		err = s.asg.MayRead(caller.From(r.Context()), aid)
	}
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "read assignment PDF failed"))
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		httpjson.Fail(w, s.log, fault.New(fault.NotFound, "assignment not found"))
		return
	}
	defer root.Close()
	name := pdfName(aid)
	f, err := root.Open(name) // refuses a symlink leaving the folder
	if err != nil {
		httpjson.Fail(w, s.log, fault.New(fault.NotFound, "pdf not found: POST /assignment/render first"))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		httpjson.Fail(w, s.log, fault.New(fault.NotFound, "pdf not found: POST /assignment/render first"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/pdf")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": filepath.Base(name)}))
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

func pathEscape(s string) string { return url.PathEscape(s) }
