// Package attachments is chat attachments: the files a teacher or a
// student sends with a chat message (POST /chat/attachments), their status
// (GET /chat/attachments/status), their removal (DELETE
// /chat/attachments/{attachment_id}), and the text of the ready ones given
// to the chat turn that references them.
//
// Each file is one attachment, stored as the predecessor stored it:
// UPLOADS_DIR/chat_attachments/<attachment_id>/ holds the source file
// (its cleaned name), extracted.txt and meta.json ({attachment_id, role,
// teacher_id, student_id, session_id, request_id, file_name, size_bytes,
// content_type, status, error_code, error_detail, created_at,
// updated_at}). Unlike the predecessor, the text is not extracted inside
// the upload request (OCR takes seconds): each attachment is a job of the
// chat_attachment runner (its job.json beside meta.json), "processing"
// until the text is read — text and Markdown decoded, .docx read, PDFs and
// images through OCR, .xlsx as a table preview — and then "ready" or
// "failed" with an error code (extract_failed, extract_empty,
// ocr_unavailable).
//
// An attachment belongs to the role, teacher or student and session that
// uploaded it (the predecessor's exact match); only its owner sees it,
// deletes it or puts it in a chat.
package attachments

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/upload"
)

// The reference's limits, and the bound of one attachment's text.
const (
	MaxFiles        = 5        // files in one upload (one message)
	MaxFileBytes    = 10 << 20 // one file
	MaxTotalBytes   = 30 << 20 // all files of one upload
	MaxContextChars = 12000    // the attachment text one chat turn gets
	// MaxTextChars bounds the text kept of one attachment (extracted.txt).
	MaxTextChars = 100000
)

// Attachment statuses (meta.json).
const (
	StatusProcessing = "processing" // uploaded, its text being extracted
	StatusReady      = "ready"
	StatusFailed     = "failed"
)

// Files of an attachment's directory.
const (
	metaFile      = "meta.json"
	extractedFile = "extracted.txt"
)

// reservedNames cannot be a source file's name: they are the attachment's
// own files.
var reservedNames = map[string]bool{metaFile: true, extractedFile: true, jobs.RecordFile: true}

// idRE is the predecessor's attachment id check (ids are made as
// att_<16 hex>).
var idRE = regexp.MustCompile(`^att_[a-f0-9]{8,32}$`)

// ValidID reports whether id is an attachment id.
func ValidID(id string) bool { return idRE.MatchString(id) }

// Config configures one tenant's attachments.
type Config struct {
	UploadsDir string
	// Extractor reads PDFs and images (OCR); nil: they fail with
	// ocr_unavailable.
	Extractor upload.Extractor
	// Resolver resolves a claimed teacher id in open mode.
	Resolver caller.Resolver
	// Workers extract at once (0 → 1); MaxQueued bounds the attachments
	// waiting (0: no bound): past it an upload is refused with 429.
	Workers   int
	MaxQueued int
	Logger    *slog.Logger
}

// Service is one tenant's chat attachments.
type Service struct {
	cfg    Config
	log    *slog.Logger
	root   string
	store  *jobs.Store
	runner *jobs.Runner
	now    func() time.Time

	// locks serialise an attachment's file writes with its removal (by a
	// hash of its id).
	locks   [64]sync.Mutex
	mu      sync.Mutex
	running map[string]context.CancelFunc // extractions under way, cancelled by a delete
	changed chan struct{}                 // closed (and replaced) when an attachment is done
}

// New builds the service; Runner is its extraction worker pool.
func New(cfg Config) *Service {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := layout.Tenant{UploadsDir: cfg.UploadsDir}.ChatAttachments()
	s := &Service{cfg: cfg, log: log, root: root, store: jobs.NewStore(root), now: time.Now,
		running: map[string]context.CancelFunc{}, changed: make(chan struct{})}
	s.runner = jobs.NewRunner(jobs.Options{Kind: "chat_attachment", Store: s.store, Workers: max(cfg.Workers, 1),
		Process: s.process, Logger: log, MaxQueued: cfg.MaxQueued})
	return s
}

// Runner is the extraction worker pool.
func (s *Service) Runner() *jobs.Runner { return s.runner }

// Meta is an attachment's meta.json.
type Meta struct {
	AttachmentID string `json:"attachment_id"`
	Role         string `json:"role"`
	TeacherID    string `json:"teacher_id"`
	StudentID    string `json:"student_id"`
	SessionID    string `json:"session_id"`
	RequestID    string `json:"request_id"`
	FileName     string `json:"file_name"`
	SizeBytes    int64  `json:"size_bytes"`
	ContentType  string `json:"content_type"`
	Status       string `json:"status"`
	ErrorCode    string `json:"error_code"`
	ErrorDetail  string `json:"error_detail"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	// Lectern's own: the source file's name in the directory, its kind
	// (upload.Kind*, "xlsx", "xls"), and what the upload asked for.
	StoredName string `json:"stored_name,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Language   string `json:"language,omitempty"`
	OCRMode    string `json:"ocr_mode,omitempty"`
}

// Item is an attachment as the API shows it.
type Item struct {
	AttachmentID string `json:"attachment_id"`
	FileName     string `json:"file_name,omitempty"`
	SizeBytes    int64  `json:"size_bytes,omitempty"`
	ContentType  string `json:"content_type,omitempty"`
	Status       string `json:"status"`
	ErrorCode    string `json:"error_code"`
	ErrorDetail  string `json:"error_detail,omitempty"`
}

func (m *Meta) item() Item {
	return Item{AttachmentID: m.AttachmentID, FileName: m.FileName, SizeBytes: m.SizeBytes, ContentType: m.ContentType,
		Status: m.Status, ErrorCode: m.ErrorCode, ErrorDetail: m.ErrorDetail}
}

// Owner is who an attachment belongs to: role, the teacher (teachers) or
// the student (students), and the session.
type Owner struct {
	Role      caller.Role
	TeacherID string
	StudentID string
	SessionID string
}

// OwnerOf is the owner whose attachments a chat turn of p in session may
// use ("" session: "main", as uploads default to).
func OwnerOf(p caller.Principal, session string) Owner {
	o := Owner{Role: p.Role, SessionID: orMain(session)}
	switch p.Role {
	case caller.RoleTeacher:
		o.TeacherID = p.TeacherID
	case caller.RoleStudent:
		o.StudentID = p.StudentID
	}
	return o
}

// owns reports whether o owns m.
func (o Owner) owns(m *Meta) bool {
	if string(o.Role) != m.Role || o.SessionID != orMain(m.SessionID) {
		return false
	}
	switch o.Role {
	case caller.RoleTeacher:
		return o.TeacherID != "" && o.TeacherID == m.TeacherID
	case caller.RoleStudent:
		return o.StudentID != "" && o.StudentID == m.StudentID
	}
	return false
}

func orMain(session string) string {
	if s := strings.TrimSpace(session); s != "" {
		return s
	}
	return "main"
}

// dir is attachment id's directory (id must be valid).
func (s *Service) dir(id string) string { return filepath.Join(s.root, id) }

// errGone: the attachment is not there (never was, or was deleted).
var errGone = errors.New("attachment not found")

// load reads id's meta.json; errGone when there is none. The directory
// must be a real directory inside the root (no symlink).
func (s *Service) load(id string) (*Meta, error) {
	if !ValidID(id) {
		return nil, errGone
	}
	fi, err := os.Lstat(s.dir(id))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, errGone
	}
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.dir(id), metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errGone
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.AttachmentID == "" {
		m.AttachmentID = id
	}
	if m.Status == "" {
		m.Status = StatusProcessing
	}
	return &m, nil
}

// save writes m's meta.json (atomically), stamping updated_at.
func (s *Service) save(m *Meta) error {
	m.UpdatedAt = jobs.Timestamp(s.now())
	return atomicfile.WriteJSON(filepath.Join(s.dir(m.AttachmentID), metaFile), m)
}

// text reads a ready attachment's extracted text.
func (s *Service) text(m *Meta) (string, error) {
	data, err := os.ReadFile(filepath.Join(s.dir(m.AttachmentID), extractedFile))
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// lock takes attachment id's lock.
func (s *Service) lock(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	l := &s.locks[h.Sum32()%uint32(len(s.locks))]
	l.Lock()
	return l.Unlock
}

// done tells waiters an attachment's extraction ended.
func (s *Service) done() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Service) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "att_" + hex.EncodeToString(b)
}
