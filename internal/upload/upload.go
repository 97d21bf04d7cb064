// Package upload receives multipart uploads into a job's own folder and
// reads the text of what was uploaded.
//
// Receive streams each file part to disk (nothing is held whole in memory),
// under the request's byte bound and a file count, with clean, unique file
// names, and tells each file's kind from its first bytes. Each multipart
// field a route takes is a Field: the folder its files go to and the kinds
// it accepts. Text returns the text of one stored file: text files are
// decoded (UTF-8 or GB18030), Word documents read, and PDFs and images
// passed to an OCR extractor.
package upload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/lectern/lectern/internal/fault"
)

// Limits bound one upload.
type Limits struct {
	MaxBytes int64 // the whole request body
	MaxFiles int   // file parts in one request
	// MaxFileBytes bounds each file; 0: only MaxBytes applies.
	MaxFileBytes int64
}

// The limits used when a tenant sets none.
const (
	DefaultMaxBytes = 64 << 20
	DefaultMaxFiles = 32
)

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}

// File kinds, told from the content (the extension only breaks ties).
const (
	KindXLSX  = "xlsx"
	KindCSV   = "csv"
	KindPDF   = "pdf"
	KindImage = "image"
	KindText  = "text"
	KindDOCX  = "docx"
)

// File is one uploaded file as kept in the job folder.
type File struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
}

// Field is one multipart file field a route takes.
type Field struct {
	// Folder is where its files go, under the upload's directory.
	Folder string
	// Accept decides the kind of a file from its name and first bytes
	// (Sniff helps), or refuses it with a *fault.Error.
	Accept func(name string, head []byte) (kind string, err error)
}

// maxFormValue bounds one non-file form value.
const maxFormValue = 64 << 10

// Receive streams a multipart upload into dir: the files of each field in
// fields go to dir/<Folder>/, form values are returned. A refused upload is
// a *fault.Error (413 for the byte or file bound, 408 for a body cut for
// slowness, 400 otherwise); any other error is the server's. The caller
// removes dir when Receive fails.
func Receive(w http.ResponseWriter, r *http.Request, dir string, lim Limits, fields map[string]Field) (map[string]string, map[string][]File, error) {
	return ReceiveChecked(w, r, dir, lim, fields, nil)
}

// ReceiveChecked is Receive with a check of the form: when the first file
// part arrives, check sees the form values sent before it and may refuse
// the upload before any file is stored (clients send the fields first, as
// browsers do in form order). The caller still checks the whole form
// after, for fields sent after the files.
func ReceiveChecked(w http.ResponseWriter, r *http.Request, dir string, lim Limits, fields map[string]Field, check func(form map[string]string) error) (map[string]string, map[string][]File, error) {
	lim = lim.WithDefaults()
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, fault.Wrap(fault.Invalid, err, fmt.Sprintf("expected a multipart/form-data upload: %v", err))
	}
	form := map[string]string{}
	files := map[string][]File{}
	count := 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return form, files, nil
		}
		if err != nil {
			return nil, nil, BodyError(err, lim)
		}
		name := part.FormName()
		if part.FileName() == "" {
			v, err := io.ReadAll(io.LimitReader(part, maxFormValue+1))
			if err != nil {
				return nil, nil, BodyError(err, lim)
			}
			if len(v) > maxFormValue {
				return nil, nil, fault.Newf(fault.TooLarge, "form field %s is too long", name)
			}
			form[name] = string(v)
			continue
		}
		field, ok := fields[name]
		if !ok {
			return nil, nil, fault.Newf(fault.Invalid, "unexpected file field %q (use %s)", name, fieldNames(fields))
		}
		if check != nil {
			if err := check(form); err != nil {
				return nil, nil, err
			}
			check = nil
		}
		if count++; count > lim.MaxFiles {
			return nil, nil, fault.Newf(fault.TooLarge, "too many files: at most %d per upload", lim.MaxFiles)
		}
		f, err := storePart(part, filepath.Join(dir, field.Folder), field, lim)
		if err != nil {
			return nil, nil, err
		}
		files[name] = append(files[name], f)
	}
}

func fieldNames(fields map[string]Field) string {
	return strings.Join(slices.Sorted(maps.Keys(fields)), ", ")
}

// BodyError is the fault of a request body that could not be read: too
// large (413), too slow (408), else malformed (400).
func BodyError(err error, lim Limits) error {
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return fault.Wrap(fault.TooLarge, err, fmt.Sprintf("upload is larger than %d MiB", lim.MaxBytes>>20))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fault.Wrap(fault.Timeout, err, "the upload arrived too slowly and was cut off; nothing was stored")
	}
	return fault.Wrap(fault.Invalid, err, fmt.Sprintf("malformed upload: %v", err))
}

// storePart writes one file part under a clean, unique name and asks the
// field for its kind.
func storePart(part *multipart.Part, dir string, field Field, lim Limits) (File, error) {
	name, err := CleanFileName(part.FileName())
	if err != nil {
		return File{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return File{}, err
	}
	name = UniqueName(dir, name)
	out, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return File{}, err
	}
	head := make([]byte, 8192)
	n, rerr := io.ReadFull(part, head)
	head = head[:n]
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
		out.Close()
		return File{}, BodyError(rerr, lim)
	}
	var src io.Reader = io.MultiReader(bytes.NewReader(head), part)
	if lim.MaxFileBytes > 0 {
		src = io.LimitReader(src, lim.MaxFileBytes+1)
	}
	size, err := io.Copy(out, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, BodyError(err, lim)
	}
	if lim.MaxFileBytes > 0 && size > lim.MaxFileBytes {
		return File{}, fault.Newf(fault.TooLarge, "file %s is larger than %d MiB", name, lim.MaxFileBytes>>20)
	}
	if size == 0 {
		return File{}, fault.Newf(fault.Invalid, "file %s is empty", name)
	}
	kind, err := field.Accept(name, head)
	if err != nil {
		return File{}, err
	}
	return File{Name: name, Kind: kind, Size: size}, nil
}

// Content is what Sniff tells of a file's first bytes.
type Content struct {
	PDF, Image, Text bool
	Zip, OLE         bool   // a zip archive (xlsx, docx…); an OLE2 file (xls, doc…)
	Ext              string // the lowercased extension, with its dot
	Type             string // http.DetectContentType
}

// Sniff looks at a file's name and first bytes.
func Sniff(name string, head []byte) Content {
	c := Content{Ext: strings.ToLower(filepath.Ext(name)), Type: http.DetectContentType(head)}
	c.Zip = bytes.HasPrefix(head, []byte("PK\x03\x04"))
	c.OLE = bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1})
	c.PDF = strings.HasPrefix(c.Type, "application/pdf")
	c.Image = strings.HasPrefix(c.Type, "image/")
	c.Text = !c.Zip && !c.OLE && !c.PDF && !c.Image && LooksLikeText(head)
	return c
}

// DocumentKind accepts what papers, sources and answer keys may be: PDF,
// an image, text (Markdown, TeX, plain) or, when docx is true, a Word
// .docx document.
func DocumentKind(name string, head []byte, docx bool) (string, error) {
	c := Sniff(name, head)
	switch {
	case c.PDF:
		return KindPDF, nil
	case c.Image:
		return KindImage, nil
	case c.Text:
		return KindText, nil
	case docx && c.Zip && c.Ext == ".docx":
		return KindDOCX, nil
	}
	if c.Zip && c.Ext == ".docx" || c.OLE && c.Ext == ".doc" {
		if c.OLE {
			return "", fault.Newf(fault.Unsupported, "%s: old Word .doc files are not supported; save it as .docx or PDF", name)
		}
		return "", fault.Newf(fault.Unsupported, "%s: Word documents are not supported here; upload a PDF, an image, or text/Markdown", name)
	}
	want := "PDF, an image, or text/Markdown"
	if docx {
		want = "PDF, an image, text/Markdown or .docx"
	}
	return "", fault.Newf(fault.Unsupported, "%s: must be %s (got %s)", name, want, c.Type)
}

// LooksLikeText: no NUL byte and decodable as UTF-8 or GB18030.
func LooksLikeText(head []byte) bool {
	if len(head) == 0 || bytes.IndexByte(head, 0) >= 0 {
		return false
	}
	h := bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF})
	// A multi-byte character may be cut at the end of the sniffed head.
	for i := 0; i < 4 && len(h) > 0 && !utf8.Valid(h); i++ {
		h = h[:len(h)-1]
	}
	if utf8.Valid(h) {
		return true
	}
	_, err := simplifiedchinese.GB18030.NewDecoder().Bytes(head)
	return err == nil
}

// DecodeText reads UTF-8 (BOM or not), else GB18030.
func DecodeText(data []byte) string {
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	if utf8.Valid(data) {
		return string(data)
	}
	if out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(data); err == nil {
		return string(out)
	}
	return strings.ToValidUTF8(string(data), "\uFFFD")
}

// CleanFileName keeps the base name of an uploaded file and refuses names
// that could not be a plain file.
func CleanFileName(raw string) (string, error) {
	name := raw
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") || !utf8.ValidString(name) || len(name) > 200 {
		return "", fault.Newf(fault.Invalid, "invalid file name %q", raw)
	}
	return name, nil
}

// UniqueName adds _2, _3 … before the extension when name is taken in dir.
func UniqueName(dir, name string) string {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	candidate := name
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, candidate)); errors.Is(err, os.ErrNotExist) {
			return candidate
		}
		candidate = fmt.Sprintf("%s_%d%s", stem, i, ext)
	}
}

// Names are the stored names of files, in order (never nil).
func Names(files []File) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

// RecordFiles reads back the files a job record keeps under
// "uploads"[key] (as Receive returned them, once through JSON).
func RecordFiles(rec map[string]any, key string) []File {
	uploads, _ := rec["uploads"].(map[string]any)
	list, _ := uploads[key].([]any)
	var out []File
	for _, item := range list {
		m, _ := item.(map[string]any)
		name, _ := m["name"].(string)
		kind, _ := m["kind"].(string)
		if name == "" {
			continue
		}
		size, _ := m["size"].(float64)
		out = append(out, File{Name: name, Kind: kind, Size: int64(size)})
	}
	return out
}
