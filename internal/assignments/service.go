// Package assignments serves one tenant's assignments as the predecessor
// did: the listing, an assignment's detail, its requirements checklist
// (read and saved), its source files and the lessons listing. The domain
// code here never touches net/http; http.go holds the handlers.
//
// Layout (DATA_DIR is the tenant's data directory):
//
//	DATA_DIR/assignments/<aid>/meta.json requirements.json questions.csv source/
//	DATA_DIR/lessons/<id>/lesson.json
package assignments

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/datapath"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/layout"
)

// TimeLayout is the predecessor's timestamp form: local time, no zone.
const TimeLayout = "2006-01-02T15:04:05"

// StemMaxChars bounds stem_text; a longer stem is cut and ends with "…".
const StemMaxChars = 4000

// maxStemBytes bounds how much of a stem file is read.
const maxStemBytes = 1 << 20

// maxCached bounds the file cache; past it the cache starts over.
const maxCached = 1024

// ErrNotFound is the answer for a missing (or invalid) assignment on the
// read endpoints that say 404 for both.
var ErrNotFound = fault.New(fault.NotFound, "assignment not found")

var (
	errSourceNotFound = fault.New(fault.NotFound, "assignment source not found")
	errInvalidFile    = fault.New(fault.Invalid, "invalid file")
	errFileNotFound   = fault.New(fault.NotFound, "file not found")
	dateInText        = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)
	utf8BOM           = []byte{0xEF, 0xBB, 0xBF}
)

// Service is one tenant's assignments and lessons. Small files it reads
// (meta.json, requirements.json, lesson.json, question counts) are cached
// and re-read when their size or modification time changes. Values from
// the cache are shared: callers must not modify them.
type Service struct {
	dataDir string
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]cachedFile
}

type cachedFile struct {
	size  int64
	mtime time.Time
	value any
}

// NewService returns the assignments of dataDir.
func NewService(dataDir string) *Service {
	return &Service{dataDir: dataDir, now: time.Now, cache: map[string]cachedFile{}}
}

// DataDir is the tenant's data directory.
func (s *Service) DataDir() string { return s.dataDir }

func (s *Service) root() string { return layout.Tenant{DataDir: s.dataDir}.Assignments() }

// cached returns parse(path) from the cache when the file's size and
// modification time are unchanged; ok is false when path is not a
// regular file.
func (s *Service) cached(path string, parse func([]byte) any) (any, bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	s.mu.Lock()
	c, hit := s.cache[path]
	s.mu.Unlock()
	if hit && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.value, true
	}
	data, err := atomicfile.ReadFile(path) // profiles are rewritten in place (SwapUnsynced)
	if err != nil {
		return nil, false
	}
	v := parse(data)
	s.mu.Lock()
	if len(s.cache) >= maxCached {
		clear(s.cache)
	}
	s.cache[path] = cachedFile{size: fi.Size(), mtime: fi.ModTime(), value: v}
	s.mu.Unlock()
	return v, true
}

// jsonObject is the JSON object in path, or nil for a missing, unreadable
// or invalid file, or one that holds no object (the predecessor's {}).
func (s *Service) jsonObject(path string) map[string]any {
	v, _ := s.cached(path, func(data []byte) any {
		var m map[string]any
		if json.Unmarshal(bytes.TrimPrefix(data, utf8BOM), &m) != nil {
			return map[string]any(nil)
		}
		return m
	})
	m, _ := v.(map[string]any)
	return m
}

// questionCount is the number of data records in a questions.csv.
func (s *Service) questionCount(path string) int {
	v, _ := s.cached(path, func(data []byte) any {
		r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, utf8BOM)))
		r.FieldsPerRecord = -1
		r.LazyQuotes = true
		n := 0
		for {
			_, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					n++ // a damaged record still counts, as a line count would
					continue
				}
				break
			}
			n++
		}
		return max(n-1, 0)
	})
	n, _ := v.(int)
	return n
}

// resolve checks an assignment id and returns its folder, and whether the
// folder exists. The id is trimmed; it must be one safe path component
// (exams.ValidID: no "", ".", ".." or separators), and an existing folder
// must resolve, after symlinks, inside DATA_DIR/assignments.
func (s *Service) resolve(id string) (aid, dir string, exists bool, err error) {
	aid = strings.TrimSpace(id)
	if aid == "" {
		return "", "", false, fault.New(fault.Invalid, "assignment_id is required")
	}
	if !exams.ValidID(aid) {
		return "", "", false, fault.New(fault.Invalid, "invalid assignment_id")
	}
	dir = filepath.Join(s.root(), aid)
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return aid, dir, false, nil
	}
	if err != nil {
		return "", "", false, fault.Wrap(fault.Internal, err, "read assignment failed")
	}
	root, err := filepath.EvalSymlinks(s.root())
	if err != nil {
		return "", "", false, fault.Wrap(fault.Internal, err, "read assignment failed")
	}
	if !datapath.Within(root, real) || real == root {
		return "", "", false, fault.New(fault.Invalid, "invalid assignment_id")
	}
	fi, err := os.Stat(real)
	return aid, dir, err == nil && fi.IsDir(), nil
}

// Resolve checks an assignment id for the code that creates assignments
// (upload confirm, generate, questions OCR, render): the trimmed id, its
// folder DATA_DIR/assignments/<id>, and whether that folder exists. An
// invalid id is a fault.Invalid ("invalid assignment_id"); an empty one
// "assignment_id is required".
func (s *Service) Resolve(id string) (aid, dir string, exists bool, err error) { return s.resolve(id) }

// existing is the folder of an existing assignment; ErrNotFound for a
// missing or invalid one.
func (s *Service) existing(id string) (aid, dir string, err error) {
	aid, dir, ok, err := s.resolve(id)
	switch {
	case fault.CodeOf(err) == fault.Invalid:
		return "", "", ErrNotFound
	case err != nil:
		return "", "", err
	case !ok:
		return "", "", ErrNotFound
	}
	return aid, dir, nil
}

// CoreVariantsFolder holds the variants generated from core examples
// (DATA_DIR/assignments/generated_from_core/): it sits among the
// assignments, as in the predecessor's layout, but is not one.
const CoreVariantsFolder = layout.CoreVariantsFolder

// isAssignmentFolder says whether a folder of DATA_DIR/assignments can be
// an assignment: a valid id that is not the core-variants folder.
func isAssignmentFolder(name string) bool {
	return exams.ValidID(name) && name != CoreVariantsFolder
}

// Summary is one assignment of the listing.
type Summary struct {
	AssignmentID  string `json:"assignment_id"`
	Date          any    `json:"date"`
	QuestionCount int    `json:"question_count"`
	UpdatedAt     any    `json:"updated_at"`
	Mode          any    `json:"mode"`
	TargetKP      any    `json:"target_kp"`
	ClassName     any    `json:"class_name"`
}

// List returns every assignment folder of DATA_DIR/assignments (folders
// whose names are not valid ids are skipped), newest updated_at first,
// then by id. A missing directory is an empty list.
func (s *Service) List() ([]Summary, error) {
	entries, err := os.ReadDir(s.root())
	if errors.Is(err, fs.ErrNotExist) {
		return []Summary{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, e := range entries {
		name := e.Name()
		if !isAssignmentFolder(name) {
			continue
		}
		dir := filepath.Join(s.root(), name)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		meta := s.jsonObject(filepath.Join(dir, "meta.json"))
		csvPath := filepath.Join(dir, "questions.csv")
		sum := Summary{
			AssignmentID:  name,
			Date:          dateOf(meta, name),
			QuestionCount: s.questionCount(csvPath),
			Mode:          meta["mode"],
			TargetKP:      orValue(meta["target_kp"], []any{}),
			ClassName:     meta["class_name"],
		}
		if v := meta["generated_at"]; truthy(v) {
			sum.UpdatedAt = v
		} else if fi, err := os.Stat(csvPath); err == nil {
			sum.UpdatedAt = fi.ModTime().Format(TimeLayout)
		}
		out = append(out, sum)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := sortKey(out[i].UpdatedAt), sortKey(out[j].UpdatedAt)
		if a != b {
			return a > b
		}
		return out[i].AssignmentID < out[j].AssignmentID
	})
	return out, nil
}

// dateOf is meta.date, else the first YYYY-MM-DD in meta.assignment_id or
// the folder name, else nil.
func dateOf(meta map[string]any, folder string) any {
	if v := meta["date"]; truthy(v) {
		return v
	}
	if id, ok := meta["assignment_id"].(string); ok {
		if d := dateInText.FindString(id); d != "" {
			return d
		}
	}
	if d := dateInText.FindString(folder); d != "" {
		return d
	}
	return nil
}

// Detail is GET /assignment/{id}.
type Detail struct {
	AssignmentID  any            `json:"assignment_id"`
	Date          any            `json:"date"`
	Meta          map[string]any `json:"meta"`
	Requirements  map[string]any `json:"requirements"`
	QuestionCount int            `json:"question_count"`
	Questions     []Question     `json:"questions"`
	Delivery      *Delivery      `json:"delivery"`
}

// Delivery says how an assignment reaches students and links its source
// files.
type Delivery struct {
	Mode  any            `json:"mode"`
	Files []DeliveryFile `json:"files"`
}

// DeliveryFile is one downloadable source file.
type DeliveryFile struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Question is one questions.csv record: every column, in the file's
// order (missing cells are null), then stem_text.
type Question struct {
	Keys   []string
	Values map[string]any
}

// MarshalJSON keeps the column order.
func (q Question) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range q.Keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(q.Values[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns an assignment's detail (read afresh, not cached, apart from
// its JSON files). A missing or invalid id is ErrNotFound.
func (s *Service) Get(id string) (*Detail, error) {
	aid, dir, err := s.existing(id)
	if err != nil {
		return nil, err
	}
	meta := s.jsonObject(filepath.Join(dir, "meta.json"))
	req := s.jsonObject(filepath.Join(dir, "requirements.json"))
	qs, err := s.questions(filepath.Join(dir, "questions.csv"))
	if err != nil {
		return nil, err
	}
	d := &Detail{
		AssignmentID:  orValue(meta["assignment_id"], aid),
		Date:          dateOf(meta, aid),
		Meta:          orMap(meta),
		Requirements:  orMap(req),
		QuestionCount: len(qs),
		Questions:     qs,
	}
	if files, ok := meta["source_files"].([]any); ok && truthy(meta["delivery_mode"]) && len(files) > 0 {
		d.Delivery = &Delivery{Mode: meta["delivery_mode"], Files: []DeliveryFile{}}
		for _, f := range files {
			name, ok := f.(string)
			if !ok || name == "" {
				continue
			}
			d.Delivery.Files = append(d.Delivery.Files, DeliveryFile{
				Name: name,
				URL:  "/assignment/" + pyQuote(aid) + "/download?file=" + pyQuote(name),
			})
		}
	}
	return d, nil
}

// questions reads questions.csv with stem_text; a missing file is none.
func (s *Service) questions(path string) ([]Question, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []Question{}, nil
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read assignment failed")
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, utf8BOM)))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return []Question{}, nil
	}
	var keys []string
	seen := map[string]bool{}
	for _, h := range header {
		if !seen[h] {
			seen[h] = true
			keys = append(keys, h)
		}
	}
	if !seen["stem_text"] {
		keys = append(keys, "stem_text")
	}
	out := []Question{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			continue
		}
		vals := make(map[string]any, len(keys))
		for i, h := range header {
			if i < len(rec) {
				vals[h] = rec[i]
			} else if _, set := vals[h]; !set {
				vals[h] = nil
			}
		}
		ref, _ := vals["stem_ref"].(string)
		vals["stem_text"] = s.stemText(ref)
		out = append(out, Question{Keys: keys, Values: vals})
	}
	return out, nil
}

// stemText is the text of a stem file, cut to StemMaxChars + "…", or ""
// when the file is missing, unreadable or outside DATA_DIR.
func (s *Service) stemText(ref string) string {
	p, err := s.resolveInData(strings.TrimSpace(ref))
	if err != nil {
		return ""
	}
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStemBytes))
	if err != nil {
		return ""
	}
	text := strings.ToValidUTF8(string(data), "")
	n := 0
	for i := range text {
		if n == StemMaxChars {
			return text[:i] + "…"
		}
		n++
	}
	return text
}

// resolveInData turns a stem_ref into a real path inside DATA_DIR.
// Relative paths are taken from DATA_DIR; the predecessor's
// APP_ROOT-relative form ("data/assignments/...") is accepted too.
// Anything that resolves (after symlinks) outside DATA_DIR is refused.
func (s *Service) resolveInData(p string) (string, error) { return datapath.Resolve(s.dataDir, p) }

// RequirementsView is GET /assignment/{id}/requirements.
type RequirementsView struct {
	AssignmentID string         `json:"assignment_id"`
	Requirements map[string]any `json:"requirements"` // null when missing, empty or invalid
}

// Requirements returns the stored requirements of an assignment: Invalid
// for a bad id, NotFound for a missing folder.
func (s *Service) Requirements(id string) (*RequirementsView, error) {
	aid, _, ok, err := s.resolve(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	req := s.jsonObject(filepath.Join(s.root(), aid, "requirements.json"))
	if len(req) == 0 {
		req = nil
	}
	return &RequirementsView{AssignmentID: aid, Requirements: req}, nil
}

// SourceFile opens DATA_DIR/assignments/<id>/source/<basename(file)>. The
// caller closes the file. Errors: Invalid "invalid assignment_id",
// NotFound "assignment source not found", Invalid "invalid file",
// NotFound "file not found". Symlinks may not lead out of source/.
func (s *Service) SourceFile(id, file string) (*os.File, fs.FileInfo, error) {
	_, dir, ok, err := s.resolve(id)
	if fault.CodeOf(err) == fault.Invalid {
		return nil, nil, fault.New(fault.Invalid, "invalid assignment_id")
	}
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errSourceNotFound
	}
	src, err := filepath.EvalSymlinks(filepath.Join(dir, "source"))
	if err != nil {
		return nil, nil, errSourceNotFound
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil || !datapath.Within(realDir, src) {
		return nil, nil, errSourceNotFound
	}
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return nil, nil, errSourceNotFound
	}
	name := filepath.Base(strings.TrimSpace(file))
	if file == "" || name == "." || name == ".." || name == string(filepath.Separator) || strings.ContainsRune(name, 0) {
		return nil, nil, errInvalidFile
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		return nil, nil, errSourceNotFound
	}
	defer root.Close()
	f, err := root.Open(name) // refuses symlinks that leave source/
	if err != nil {
		return nil, nil, errFileNotFound
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, errFileNotFound
	}
	return f, fi, nil
}

// Lesson is one entry of GET /lessons.
type Lesson struct {
	LessonID any `json:"lesson_id"`
	Summary  any `json:"summary"`
}

// Lessons lists DATA_DIR/lessons/*/ (lesson.json's lesson_id, else the
// folder name; its summary, else ""), sorted by lesson_id. A missing
// directory is an empty list.
func (s *Service) Lessons() ([]Lesson, error) {
	root := layout.Tenant{DataDir: s.dataDir}.Lessons()
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return []Lesson{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []Lesson{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		dir := filepath.Join(root, name)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		l := s.jsonObject(filepath.Join(dir, "lesson.json"))
		out = append(out, Lesson{LessonID: orValue(l["lesson_id"], name), Summary: orValue(l["summary"], "")})
	}
	sort.SliceStable(out, func(i, j int) bool { return sortKey(out[i].LessonID) < sortKey(out[j].LessonID) })
	return out, nil
}

// truthy is Python's truth of a JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// orValue is Python's `v or def`.
func orValue(v, def any) any {
	if truthy(v) {
		return v
	}
	return def
}

func orMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func sortKey(v any) string {
	if !truthy(v) {
		return ""
	}
	return pyStr(v)
}

// pyQuote is Python's urllib.parse.quote(s) (safe "/"): every byte but
// letters, digits, "_.-~" and "/" is percent-encoded.
func pyQuote(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
