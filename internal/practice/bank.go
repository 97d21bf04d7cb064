package practice

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/datapath"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/textcut"
)

// Columns are the question bank's columns, and the header of every
// questions.csv a generation writes.
var Columns = []string{"question_id", "kp_id", "difficulty", "type", "stem_ref", "answer_ref", "source", "tags"}

// Bounds of what is read.
const (
	maxCSVBytes  = 32 << 20 // a bank or questions.csv
	maxCSVRows   = 100_000
	maxMetaBytes = 1 << 20
	maxRefBytes  = 1 << 20 // a stem file
	// AvoidDays is how far back questions of other assignments are avoided.
	AvoidDays = 14
	// maxScanned bounds the assignment folders read for recency.
	maxScanned = 20_000
)

// Row is one question: a bank row, or a row of questions.csv.
type Row struct {
	QuestionID, KPID, Difficulty, Type, StemRef, AnswerRef, Source, Tags string
}

func (r Row) record() []string {
	return []string{r.QuestionID, r.KPID, r.Difficulty, r.Type, r.StemRef, r.AnswerRef, r.Source, r.Tags}
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// readRows reads a CSV of questions by its header (a UTF-8 BOM is
// skipped). A missing file is no rows; so is one without a question_id
// column. Records without a question_id are skipped.
func readRows(path string) ([]Row, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCSVBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCSVBytes {
		return nil, errors.New(filepath.Base(path) + " is larger than 32 MiB")
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, utf8BOM)))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return nil, nil
	}
	col := map[string]int{}
	for i, h := range header {
		if _, dup := col[strings.TrimSpace(h)]; !dup {
			col[strings.TrimSpace(h)] = i
		}
	}
	if _, ok := col["question_id"]; !ok {
		return nil, nil
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var out []Row
	for len(out) < maxCSVRows {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			continue // a damaged record
		}
		row := Row{
			QuestionID: get(rec, "question_id"), KPID: get(rec, "kp_id"), Difficulty: get(rec, "difficulty"),
			Type: get(rec, "type"), StemRef: get(rec, "stem_ref"), AnswerRef: get(rec, "answer_ref"),
			Source: get(rec, "source"), Tags: get(rec, "tags"),
		}
		if row.QuestionID != "" {
			out = append(out, row)
		}
	}
	return out, nil
}

// encodeRows is a questions.csv: the bank's header, then the rows.
func encodeRows(rows []Row) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(Columns)
	for _, r := range rows {
		w.Write(r.record())
	}
	w.Flush()
	return b.Bytes()
}

// Difficulty levels of the mix.
const (
	Basic    = "basic"
	Medium   = "medium"
	Advanced = "advanced"
)

// level is a bank difficulty's place in the mix: basic, medium or
// advanced ("challenge", "hard" and 压轴 count as advanced), or "" for a
// value the mix does not know (such rows are only taken by the fill step).
func level(difficulty string) string {
	switch strings.ToLower(strings.TrimSpace(difficulty)) {
	case "basic", "easy", "基础", "简单", "容易":
		return Basic
	case "medium", "intermediate", "中等", "提升", "中档":
		return Medium
	case "advanced", "challenge", "hard", "较难", "困难", "拔高", "压轴", "压轴题":
		return Advanced
	}
	return ""
}

// Mix is how many questions of each level one knowledge point gets.
type Mix struct{ Basic, Medium, Advanced int }

// ComputeMix splits total questions 60/30/10: basic = round(0.6·total),
// medium = round(0.3·total) (halves round up), advanced = the rest; from
// total 3 on, advanced is at least 1, taken from medium when medium has 2
// or more, else from basic. So 1→1/0/0, 2→1/1/0, 3→1/1/1, 4→2/1/1,
// 5→3/1/1, 6→4/1/1, 7→4/2/1, 8→5/2/1, 10→6/3/1, 20→12/6/2. (The
// predecessor rounded up and had no advanced question below 10.)
func ComputeMix(total int) Mix {
	if total <= 0 {
		return Mix{}
	}
	b := int(math.Round(0.6 * float64(total)))
	m := int(math.Round(0.3 * float64(total)))
	if b+m > total {
		m = total - b
	}
	a := total - b - m
	if total >= 3 && a < 1 {
		a = 1
		if m >= 2 {
			m--
		} else {
			b--
		}
	}
	return Mix{Basic: b, Medium: m, Advanced: a}
}

// recentIDs is the set of question ids used by the other assignments
// dated within AvoidDays before now (or later): an assignment's date is
// meta.json's date, else the date of its generated_at. Folders without
// such a date, the assignment being (re)built and generated_from_core are
// not counted. The ids are those of its questions.csv and of
// meta.question_ids.
func (s *Service) recentIDs(exclude string, now time.Time) map[string]bool {
	recent := map[string]bool{}
	root := layout.Tenant{DataDir: s.dataDir}.Assignments()
	entries, err := os.ReadDir(root)
	if err != nil {
		return recent
	}
	y, m, d := now.Date()
	cutoff := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -AvoidDays)
	for i, e := range entries {
		name := e.Name()
		if i >= maxScanned || !e.IsDir() || name == exclude || name == coreDir || !exams.ValidID(name) {
			continue
		}
		dir := filepath.Join(root, name)
		meta := readSmallJSON(filepath.Join(dir, "meta.json"))
		day, ok := metaDay(meta)
		if !ok || day.Before(cutoff) {
			continue
		}
		for _, id := range assignments.ParseList(meta["question_ids"]) {
			recent[id] = true
		}
		rows, _ := readRows(filepath.Join(dir, "questions.csv"))
		for _, r := range rows {
			recent[r.QuestionID] = true
		}
	}
	return recent
}

// metaDay is an assignment's date (UTC midnight): meta.date, else the
// date part of meta.generated_at.
func metaDay(meta map[string]any) (time.Time, bool) {
	for _, k := range []string{"date", "generated_at"} {
		v, _ := meta[k].(string)
		v = strings.TrimSpace(v)
		if len(v) >= 10 {
			if t, err := time.Parse("2006-01-02", v[:10]); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// readSmallJSON is the JSON object of a small file, or nil.
func readSmallJSON(path string) map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxMetaBytes {
		return nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(bytes.TrimPrefix(data, utf8BOM), &m) != nil {
		return nil
	}
	return m
}

// resolveRef checks a stem_ref or answer_ref of a bank or explicit row and
// returns it relative to DATA_DIR (slash-separated). Relative refs are
// taken from DATA_DIR (the predecessor's "data/…" form too); absolute ones
// must lie inside it. An existing file is judged after symlinks; anything
// that resolves outside DATA_DIR is datapath.ErrOutside.
func (s *Service) resolveRef(ref string) (string, error) { return datapath.Rel(s.dataDir, ref) }

// readRef is the text of the file a ref names, inside DATA_DIR, cut to
// maxRunes (+ "…"); ok is false for a missing, unreadable or refused file.
func (s *Service) readRef(ref string, maxRunes int) (string, bool) {
	rel, err := s.resolveRef(ref)
	if err != nil || rel == "" {
		return "", false
	}
	root, err := os.OpenRoot(s.dataDir)
	if err != nil {
		return "", false
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(rel)) // refuses a symlink leaving DATA_DIR
	if err != nil {
		return "", false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRefBytes))
	if err != nil {
		return "", false
	}
	text := strings.ToValidUTF8(string(bytes.TrimPrefix(data, utf8BOM)), "")
	return textcut.Short(text, maxRunes), true
}
