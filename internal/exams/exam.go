package exams

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/datapath"
)

// Errors of the read side.
var (
	ErrNotFound     = errors.New("exam not found")
	ErrNoResponses  = errors.New("responses missing")
	ErrInvalidID    = errors.New("invalid exam_id")
	utf8BOM         = []byte{0xEF, 0xBB, 0xBF}
	responseColumns = []string{"exam_id", "student_id", "student_name", "class_name", "question_id", "question_no",
		"sub_no", "raw_label", "raw_value", "raw_answer", "score", "is_correct"}
	questionColumns = []string{"question_id", "question_no", "sub_no", "order", "max_score", "stem_ref"}
)

// ValidID reports whether id is safe as one path component: 1 to 128
// letters (any script), digits, '_', '-' or '.', not starting with '.'.
func ValidID(id string) bool {
	if id == "" || utf8.RuneCountInString(id) > 128 || id[0] == '.' || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Response is one row of responses_scored.csv: one student's answer to one
// question.
type Response struct {
	ExamID, StudentID, StudentName, ClassName string
	QuestionID, QuestionNo, SubNo, RawLabel   string
	RawValue, RawAnswer, IsCorrect            string
	// HasRawValue and HasRawAnswer are false when the CSV lacks the column
	// (the API then shows null, as the predecessor did).
	HasRawValue, HasRawAnswer bool
	Score                     float64
	Scored                    bool
}

// key is the student key: student_id, else student_name.
func (r *Response) key() string {
	if r.StudentID != "" {
		return r.StudentID
	}
	return r.StudentName
}

// Question is one row of questions.csv.
type Question struct {
	ID, No, SubNo, Order, StemRef string
	MaxScore                      float64
	HasMax                        bool
}

// Manifest is DATA_DIR/exams/<id>/manifest.json.
type Manifest struct {
	ExamID      string         `json:"exam_id"`
	GeneratedAt any            `json:"generated_at"`
	Meta        map[string]any `json:"meta"`
	Files       map[string]any `json:"files"`
	Counts      any            `json:"counts"`
}

// readManifest loads the manifest of exam dir id; ErrNotFound when it is
// missing or unreadable, as in the predecessor.
func readManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrNotFound
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, ErrNotFound
	}
	if m.Meta == nil {
		m.Meta = map[string]any{}
	}
	return &m, nil
}

// resolveIn turns a path from a manifest into an absolute path inside
// dataDir. Relative paths are taken from dataDir; the predecessor's
// APP_ROOT-relative form ("data/exams/...") is accepted too. Anything that
// resolves outside dataDir is refused.
func resolveIn(dataDir, p string) (string, error) { return datapath.Resolve(dataDir, p) }

// readCSV reads a header-keyed CSV, tolerating a UTF-8 BOM (which broke the
// predecessor's header lookup).
func readCSV(path string, visit func(get func(string) (string, bool)) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	index := make(map[string]int, len(header))
	for i, h := range header {
		index[strings.TrimSpace(h)] = i
	}
	var row []string
	get := func(col string) (string, bool) {
		i, ok := index[col]
		if !ok {
			return "", false
		}
		if i >= len(row) {
			return "", true
		}
		return strings.TrimSpace(row[i]), true
	}
	for {
		row, err = r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		if err := visit(get); err != nil {
			return err
		}
	}
}

func readResponses(path string) ([]Response, error) {
	var out []Response
	err := readCSV(path, func(get func(string) (string, bool)) error {
		var r Response
		r.ExamID, _ = get("exam_id")
		r.StudentID, _ = get("student_id")
		r.StudentName, _ = get("student_name")
		r.ClassName, _ = get("class_name")
		r.QuestionID, _ = get("question_id")
		r.QuestionNo, _ = get("question_no")
		r.SubNo, _ = get("sub_no")
		r.RawLabel, _ = get("raw_label")
		r.RawValue, r.HasRawValue = get("raw_value")
		r.RawAnswer, r.HasRawAnswer = get("raw_answer")
		r.IsCorrect, _ = get("is_correct")
		if s, _ := get("score"); s != "" {
			if v, err := strconv.ParseFloat(s, 64); err == nil && !isNaNOrInf(v) {
				r.Score, r.Scored = v, true
			}
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

func readQuestions(path string) ([]Question, error) {
	var out []Question
	err := readCSV(path, func(get func(string) (string, bool)) error {
		var q Question
		q.ID, _ = get("question_id")
		if q.ID == "" {
			return nil
		}
		q.No, _ = get("question_no")
		q.SubNo, _ = get("sub_no")
		q.Order, _ = get("order")
		q.StemRef, _ = get("stem_ref")
		if s, _ := get("max_score"); s != "" {
			if v, err := strconv.ParseFloat(s, 64); err == nil && !isNaNOrInf(v) {
				q.MaxScore, q.HasMax = v, true
			}
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// ResolveInDataDir resolves a path given by a client or a manifest inside
// dataDir (relative paths from dataDir; the predecessor's "data/…" form
// too); anything outside it, symlinks included, is an error.
func ResolveInDataDir(dataDir, p string) (string, error) { return resolveIn(dataDir, p) }
