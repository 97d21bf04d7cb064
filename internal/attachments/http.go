package attachments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/textcut"
	"github.com/lectern/lectern/internal/upload"
)

// The reference's refusals (400 with a string detail; the two size bounds
// are 413 here).
var (
	errNoFiles       = fault.New(fault.Invalid, "至少上传一个文件")
	errTooManyFiles  = fault.New(fault.Invalid, fmt.Sprintf("单条消息最多上传 %d 个文件", MaxFiles))
	errFileTooLarge  = fault.New(fault.TooLarge, "单个文件大小不能超过 10MB")
	errTotalTooLarge = fault.New(fault.TooLarge, "单条消息文件总大小不能超过 30MB")
	errNoFileName    = fault.New(fault.Invalid, "文件名不能为空")
	errRole          = fault.New(fault.Invalid, "role must be teacher or student")
	errStudentID     = fault.New(fault.Invalid, "student_id is required")
	errSession       = fault.New(fault.Invalid, "session_id is too long")
	errInvalidID     = fault.New(fault.Invalid, "invalid_attachment_id")
	errForbidden     = fault.New(fault.Forbidden, "forbidden_attachment")
	errRoleForbidden = fault.New(fault.Forbidden, "forbidden")
	errTooManyIDs    = fault.New(fault.Invalid, fmt.Sprintf("at most %d attachment ids", maxStatusIDs))
	errQueueFull     = &fault.Error{Code: fault.TooMany, RetryAfter: 10 * time.Second,
		Detail: "当前待处理的附件过多，请稍后重试。(too many attachments are waiting to be read; retry later)"}
)

// allowed are the suffixes an attachment may have: the predecessor's,
// with .txt and .docx (read by internal/upload) added.
var allowed = map[string]bool{".md": true, ".markdown": true, ".txt": true, ".pdf": true, ".png": true, ".jpg": true,
	".jpeg": true, ".bmp": true, ".webp": true, ".xls": true, ".xlsx": true, ".docx": true}

const (
	// formSlack is what a multipart body may carry besides its files
	// (boundaries, part headers, form values).
	formSlack = 1 << 20
	// maxFormValue bounds one form value, maxFormValues their number.
	maxFormValue  = 4 << 10
	maxFormValues = 32
	maxSessionLen = 200
	maxStatusIDs  = 50
)

// limitsBody is the "limits" object of an upload's answer.
var limitsBody = map[string]any{"max_files_per_message": MaxFiles, "max_file_size_bytes": MaxFileBytes,
	"max_total_size_bytes": MaxTotalBytes}

// HandleUpload serves POST /chat/attachments (multipart/form-data: role,
// session_id, request_id, teacher_id, student_id, language, ocr_mode and
// files). Each file becomes an attachment, answered at once as
// "processing"; its text is extracted in the background (poll
// /chat/attachments/status). A refused upload stores nothing.
func (s *Service) HandleUpload(w http.ResponseWriter, r *http.Request) {
	// A place in the queue first, so a full queue is refused before the
	// body is read.
	place, err := s.runner.Reserve()
	if err != nil {
		httpjson.Fail(w, s.log, errQueueFull)
		return
	}
	defer place.Release()
	if r.ContentLength > MaxTotalBytes+formSlack {
		httpjson.Fail(w, s.log, errTotalTooLarge)
		return
	}
	metas, err := s.receive(w, r, caller.From(r.Context()))
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "attachment upload failed"))
		return
	}
	items := make([]Item, len(metas))
	for i, m := range metas {
		if i == 0 {
			place.Enqueue(m.AttachmentID)
		} else {
			s.runner.Enqueue(m.AttachmentID) // one upload's files share its place: at most MaxFiles-1 over the bound
		}
		items[i] = m.item()
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "attachments": items, "limits": limitsBody})
}

// stored is one file of an upload being received.
type stored struct {
	meta *Meta
	dir  string
}

// receive reads the upload: each file into its own attachment directory,
// checked as it streams; the attachments' records are written once the
// whole body was read and the owner known. On any error every directory
// it made is removed.
func (s *Service) receive(w http.ResponseWriter, r *http.Request, p caller.Principal) (metas []*Meta, err error) {
	var files []stored
	defer func() {
		if err != nil {
			for _, f := range files {
				os.RemoveAll(f.dir)
			}
		}
	}()
	r.Body = http.MaxBytesReader(w, r.Body, MaxTotalBytes+formSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, fmt.Sprintf("expected a multipart/form-data upload: %v", err))
	}
	form := map[string]string{}
	q := r.URL.Query()
	get := func(k string) string {
		if v := strings.TrimSpace(form[k]); v != "" {
			return v
		}
		return strings.TrimSpace(q.Get(k))
	}
	ownerOf := func() (Owner, error) {
		return s.requestOwner(p, get("role"), get("teacher_id"), get("student_id"), get("session_id"))
	}
	var total int64
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bodyError(err)
		}
		name := part.FormName()
		if part.FileName() == "" && name != "files" && name != "files[]" && name != "file" {
			if len(form) >= maxFormValues {
				return nil, fault.New(fault.Invalid, "too many form fields")
			}
			v, err := io.ReadAll(io.LimitReader(part, maxFormValue+1))
			if err != nil {
				return nil, bodyError(err)
			}
			if len(v) > maxFormValue {
				return nil, fault.Newf(fault.TooLarge, "form field %s is too long", name)
			}
			form[name] = string(v)
			continue
		}
		switch name {
		case "files", "files[]", "file":
		default:
			return nil, fault.Newf(fault.Invalid, "unexpected file field %q (use files)", name)
		}
		if len(files) == 0 {
			// The fields come before the files (as browsers send them):
			// refuse a wrong owner before anything is stored.
			if _, err := ownerOf(); err != nil {
				return nil, err
			}
		}
		if len(files) >= MaxFiles {
			return nil, errTooManyFiles
		}
		f, err := s.storeFile(part, &total)
		if f.dir != "" {
			files = append(files, f)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, errNoFiles
	}
	o, err := ownerOf()
	if err != nil {
		return nil, err
	}
	now := jobs.Timestamp(s.now())
	for _, f := range files {
		m := f.meta
		m.Role, m.TeacherID, m.StudentID, m.SessionID = string(o.Role), o.TeacherID, o.StudentID, o.SessionID
		m.RequestID, m.Language, m.OCRMode = textcut.Head(get("request_id"), 200), textcut.Head(get("language"), 20), textcut.Head(get("ocr_mode"), 40)
		m.Status, m.CreatedAt = StatusProcessing, now
		if err := s.save(m); err != nil {
			return nil, err
		}
		if err := s.store.Create(m.AttachmentID, map[string]any{"status": "queued", "step": "queued", "kind": m.Kind}); err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// storeFile writes one file part into a new attachment directory (f.dir
// is set as soon as the directory exists, for the caller to remove).
func (s *Service) storeFile(part *multipart.Part, total *int64) (f stored, err error) {
	raw := part.FileName()
	if strings.TrimSpace(strings.Trim(raw, `/\`)) == "" {
		return f, errNoFileName
	}
	name, err := upload.CleanFileName(raw)
	if err != nil {
		return f, err
	}
	ext := strings.ToLower(filepath.Ext(name))
	if !allowed[ext] {
		return f, fault.New(fault.Invalid, "不支持的文件类型: "+orNone(ext))
	}
	id := newID()
	f.dir = s.dir(id)
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		f.dir = ""
		return f, err
	}
	storedName := name
	if reservedNames[strings.ToLower(storedName)] {
		storedName = "source_" + storedName
	}
	out, err := os.OpenFile(filepath.Join(f.dir, storedName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return f, err
	}
	head := make([]byte, 8192)
	n, rerr := io.ReadFull(part, head)
	head = head[:n]
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
		out.Close()
		return f, bodyError(rerr)
	}
	src := io.LimitReader(io.MultiReader(bytes.NewReader(head), part), MaxFileBytes+1)
	size, err := io.Copy(out, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return f, bodyError(err)
	}
	if size > MaxFileBytes {
		return f, errFileTooLarge
	}
	if *total += size; *total > MaxTotalBytes {
		return f, errTotalTooLarge
	}
	ct := strings.TrimSpace(part.Header.Get("Content-Type"))
	c := upload.Sniff(name, head)
	if ct == "" || ct == "application/octet-stream" || len(ct) > 100 {
		ct = c.Type
	}
	f.meta = &Meta{AttachmentID: id, FileName: name, SizeBytes: size, ContentType: ct, StoredName: storedName,
		Kind: kindOf(ext, c)}
	return f, nil
}

// kindOf is what the file is, judged from its suffix and its first bytes
// ("" when they disagree: the extraction then fails with a reason).
func kindOf(ext string, c upload.Content) string {
	switch ext {
	case ".pdf":
		if c.PDF {
			return upload.KindPDF
		}
	case ".png", ".jpg", ".jpeg", ".bmp", ".webp":
		if c.Image {
			return upload.KindImage
		}
	case ".md", ".markdown", ".txt":
		if c.Text || c.Type == "text/plain; charset=utf-8" {
			return upload.KindText
		}
	case ".docx":
		if c.Zip {
			return upload.KindDOCX
		}
	case ".xlsx":
		if c.Zip {
			return upload.KindXLSX
		}
	case ".xls":
		if c.OLE {
			return kindXLS
		}
	}
	return ""
}

// kindXLS is a legacy Excel workbook (no reader: it fails with a hint).
const kindXLS = "xls"

// bodyError is the fault of a body that could not be read.
func bodyError(err error) error {
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return fault.Wrap(fault.TooLarge, err, errTotalTooLarge.Detail)
	}
	return upload.BodyError(err, upload.Limits{MaxBytes: MaxTotalBytes + formSlack})
}

// requestOwner is the owner an upload, a status read or a delete acts as:
// the principal's own identity, for the role the request names (a
// verified teacher or student may only name its own role and ids; a
// tenant admin names whom it acts for; in open mode the request's claims
// are taken, the teacher id resolved as every teacher endpoint does).
func (s *Service) requestOwner(p caller.Principal, role, teacherID, studentID, session string) (Owner, error) {
	if role == "" && p.Verified() {
		role = string(p.Role)
	}
	if utf8.RuneCountInString(session) > maxSessionLen {
		return Owner{}, errSession
	}
	o := Owner{Role: caller.Role(role), SessionID: orMain(session)}
	switch o.Role {
	case caller.RoleTeacher:
		switch {
		case !p.Verified():
			if teacherID == "" {
				o.TeacherID = p.TeacherID
			} else {
				o.TeacherID = s.cfg.Resolver.Resolve(caller.Claims{TeacherID: teacherID}).TeacherID
			}
		case p.Role == caller.RoleTeacher:
			if teacherID != "" && teacherID != p.TeacherID {
				return Owner{}, caller.ErrTeacherScope
			}
			o.TeacherID = p.TeacherID
		case p.Role == caller.RoleAdmin:
			o.TeacherID = p.TeacherID
			if teacherID != "" {
				o.TeacherID = fsid.Safe(teacherID, "teacher")
			}
		default:
			return Owner{}, errRoleForbidden
		}
		if o.TeacherID == "" {
			o.TeacherID = s.cfg.Resolver.Resolve(caller.Claims{}).TeacherID
		}
	case caller.RoleStudent:
		switch {
		case !p.Verified() || p.Role == caller.RoleAdmin:
			o.StudentID = studentID
			if o.StudentID == "" {
				o.StudentID = p.StudentID
			}
		case p.Role == caller.RoleStudent:
			if studentID != "" && studentID != p.StudentID {
				return Owner{}, caller.ErrStudentScope
			}
			o.StudentID = p.StudentID
		default:
			return Owner{}, errRoleForbidden
		}
		if o.StudentID == "" {
			return Owner{}, errStudentID
		}
	default:
		return Owner{}, errRole
	}
	return o, nil
}

// HandleStatus serves GET /chat/attachments/status?role&session_id&
// attachment_ids=…(repeatable, or comma-separated; attachment_id too)&
// teacher_id&student_id: the items in request order (deduplicated,
// lowercased), each the attachment's own or {status:"invalid"|
// "not_found"|"forbidden", error_code}.
func (s *Service) HandleStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o, err := s.requestOwner(caller.From(r.Context()), strings.TrimSpace(q.Get("role")), strings.TrimSpace(q.Get("teacher_id")),
		strings.TrimSpace(q.Get("student_id")), q.Get("session_id"))
	if err != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	var ids []string
	for _, v := range append(q["attachment_ids"], q["attachment_id"]...) {
		for _, id := range strings.Split(v, ",") {
			if id = strings.ToLower(strings.TrimSpace(id)); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) > maxStatusIDs {
		httpjson.Fail(w, s.log, errTooManyIDs)
		return
	}
	items := make([]Item, 0, len(ids))
	for _, id := range ids {
		m, code := s.lookup(o, id)
		if code != "" {
			items = append(items, Item{AttachmentID: id, Status: statusOfCode[code], ErrorCode: code})
			continue
		}
		items = append(items, m.item())
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "attachments": items})
}

// Refusal codes of one referenced attachment, and the status they show.
const (
	codeInvalid   = "invalid_attachment_id"
	codeNotFound  = "not_found"
	codeForbidden = "forbidden_attachment"
)

var statusOfCode = map[string]string{codeInvalid: "invalid", codeNotFound: "not_found", codeForbidden: "forbidden"}

// lookup finds attachment id for o, or says why not.
func (s *Service) lookup(o Owner, id string) (*Meta, string) {
	if !ValidID(id) {
		return nil, codeInvalid
	}
	m, err := s.load(id)
	switch {
	case errors.Is(err, errGone):
		return nil, codeNotFound
	case err != nil:
		s.log.Warn("attachment unreadable", "attachment_id", id, "err", err)
		return nil, codeNotFound
	case !o.owns(m):
		return nil, codeForbidden
	}
	return m, ""
}

// HandleDelete serves DELETE /chat/attachments/{attachment_id}?role&
// session_id&teacher_id&student_id: {ok:true, deleted:true}, or deleted
// false when there is no such attachment; 403 forbidden_attachment for
// another owner's. An extraction under way is cancelled.
func (s *Service) HandleDelete(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := strings.ToLower(strings.TrimSpace(r.PathValue("attachment_id")))
	if !ValidID(id) {
		httpjson.Fail(w, s.log, errInvalidID)
		return
	}
	o, err := s.requestOwner(caller.From(r.Context()), strings.TrimSpace(q.Get("role")), strings.TrimSpace(q.Get("teacher_id")),
		strings.TrimSpace(q.Get("student_id")), q.Get("session_id"))
	if err != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	deleted, err := s.Delete(o, id)
	if err != nil {
		httpjson.Fail(w, s.log, fault.OrInternal(err, "attachment delete failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "deleted": deleted})
}

// Delete removes o's attachment id: false when there is none, 403
// forbidden_attachment when it is another owner's.
func (s *Service) Delete(o Owner, id string) (bool, error) {
	m, code := s.lookup(o, id)
	switch code {
	case codeInvalid:
		return false, errInvalidID
	case codeNotFound:
		return false, nil
	case codeForbidden:
		return false, errForbidden
	}
	s.mu.Lock()
	cancel := s.running[m.AttachmentID]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	unlock := s.lock(id)
	defer unlock()
	if err := os.RemoveAll(s.dir(id)); err != nil {
		return false, err
	}
	s.done()
	return true, nil
}

func orNone(ext string) string {
	if ext == "" {
		return "(无后缀)"
	}
	return ext
}
