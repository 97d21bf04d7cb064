package examupload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/lectern/lectern/internal/fault"
)

// Limits bound one upload.
type Limits struct {
	MaxBytes int64 // whole request body
	MaxFiles int
}

// DefaultLimits are used when a tenant sets none.
var defaultLimits = Limits{MaxBytes: 64 << 20, MaxFiles: 32}

// File kinds, decided from the content (the extension only breaks ties).
const (
	KindXLSX  = "xlsx"
	KindCSV   = "csv"
	KindPDF   = "pdf"
	KindImage = "image"
	KindText  = "text"
)

// fileFields are the multipart file fields and their folders in the job.
var fileFields = map[string]string{"paper_files": "paper", "score_files": "scores", "answer_files": "answers"}

// StoredFile is one uploaded file as kept in the job folder.
type StoredFile struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
}

// receive streams a multipart upload into dir: files go to dir/<folder>/,
// form values are returned. Nothing is held whole in memory. A refused
// upload is a *fault.Error; any other error is the server's.
func receive(w http.ResponseWriter, r *http.Request, dir string, lim Limits) (map[string]string, map[string][]StoredFile, error) {
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, fault.Wrap(fault.Invalid, err, fmt.Sprintf("expected a multipart/form-data upload: %v", err))
	}
	form := map[string]string{}
	files := map[string][]StoredFile{}
	count := 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return form, files, nil
		}
		if err != nil {
			return nil, nil, bodyError(err, lim)
		}
		name := part.FormName()
		if part.FileName() == "" {
			v, err := io.ReadAll(io.LimitReader(part, 64<<10+1))
			if err != nil {
				return nil, nil, bodyError(err, lim)
			}
			if len(v) > 64<<10 {
				return nil, nil, fault.Newf(fault.TooLarge, "form field %s is too long", name)
			}
			form[name] = string(v)
			continue
		}
		folder, ok := fileFields[name]
		if !ok {
			return nil, nil, fault.Newf(fault.Invalid, "unexpected file field %q (use paper_files, score_files or answer_files)", name)
		}
		if count++; count > lim.MaxFiles {
			return nil, nil, fault.Newf(fault.TooLarge, "too many files: at most %d per upload", lim.MaxFiles)
		}
		f, err := storePart(part, filepath.Join(dir, folder), name, lim)
		if err != nil {
			return nil, nil, err
		}
		files[name] = append(files[name], f)
	}
}

func bodyError(err error, lim Limits) error {
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return fault.Wrap(fault.TooLarge, err, fmt.Sprintf("upload is larger than %d MiB", lim.MaxBytes>>20))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fault.Wrap(fault.Timeout, err, "the upload arrived too slowly and was cut off; nothing was stored")
	}
	return fault.Wrap(fault.Invalid, err, fmt.Sprintf("malformed upload: %v", err))
}

// storePart writes one file part, sniffs its kind and refuses kinds the
// field cannot take.
func storePart(part *multipart.Part, dir, field string, lim Limits) (StoredFile, error) {
	name, err := cleanFileName(part.FileName())
	if err != nil {
		return StoredFile{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return StoredFile{}, err
	}
	name = uniqueName(dir, name)
	path := filepath.Join(dir, name)
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return StoredFile{}, err
	}
	head := make([]byte, 8192)
	n, rerr := io.ReadFull(part, head)
	head = head[:n]
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
		out.Close()
		return StoredFile{}, bodyError(rerr, lim)
	}
	size, err := io.Copy(out, io.MultiReader(bytes.NewReader(head), part))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return StoredFile{}, bodyError(err, lim)
	}
	if size == 0 {
		return StoredFile{}, fault.Newf(fault.Invalid, "file %s is empty", name)
	}
	kind, err := sniff(field, name, head)
	if err != nil {
		return StoredFile{}, err
	}
	return StoredFile{Name: name, Kind: kind, Size: size}, nil
}

// sniff decides a file's kind from its first bytes.
func sniff(field, name string, head []byte) (string, error) {
	ext := strings.ToLower(filepath.Ext(name))
	isZip := bytes.HasPrefix(head, []byte("PK\x03\x04"))
	isOLE := bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1})
	ctype := http.DetectContentType(head)
	switch field {
	case "score_files":
		switch {
		case isOLE:
			return "", fault.Newf(fault.Unsupported,
				"%s 是旧版 Excel（.xls）文件，暂不支持，请在 Excel 中另存为 .xlsx 后上传。 (.xls is not supported: save the sheet as .xlsx and upload again)", name)
		case isZip:
			return KindXLSX, nil
		case strings.HasPrefix(ctype, "application/pdf") || strings.HasPrefix(ctype, "image/"):
			return "", fault.Newf(fault.Unsupported,
				"%s: score sheets must be .xlsx or .csv; reading scores from PDFs and images needs OCR, which is not available yet", name)
		case looksLikeText(head):
			return KindCSV, nil
		}
		return "", fault.Newf(fault.Unsupported, "%s: score sheets must be .xlsx or .csv (got %s)", name, ctype)
	default:
		switch {
		case strings.HasPrefix(ctype, "application/pdf"):
			return KindPDF, nil
		case strings.HasPrefix(ctype, "image/"):
			return KindImage, nil
		case !isZip && !isOLE && looksLikeText(head):
			return KindText, nil
		}
		if isZip && ext == ".docx" || isOLE && ext == ".doc" {
			return "", fault.Newf(fault.Unsupported, "%s: Word documents are not supported; upload a PDF, an image, or text/Markdown", name)
		}
		return "", fault.Newf(fault.Unsupported, "%s: papers and answer keys must be PDF, an image, or text/Markdown (got %s)", name, ctype)
	}
}

// looksLikeText: no NUL byte and decodable as UTF-8 or GB18030.
func looksLikeText(head []byte) bool {
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

// cleanFileName keeps the base name of an uploaded file and refuses names
// that could not be a plain file.
func cleanFileName(raw string) (string, error) {
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

// uniqueName adds _2, _3 … before the extension when name is taken in dir.
func uniqueName(dir, name string) string {
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
