// Package scoresheet parses the exam score sheets teachers upload: .xlsx
// workbooks and .csv files exported by school systems, with either one
// column per question (points, or the letters each student chose on a
// multiple-choice question) or only a total per student. It also parses
// answer keys and scores letter answers against them.
//
// Both sources are first turned into a grid of strings; one function then
// finds the header row, classifies the columns and reads the students, so
// .xlsx and .csv follow exactly the same rules. The package never
// cross-checks a sheet's 总分 column against its questions: that is the
// pipeline's job once letter answers are scored.
package scoresheet

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sheet modes.
const (
	// ModeQuestion: the sheet has one column per question.
	ModeQuestion = "question"
	// ModeTotal: the sheet has no question columns, only a 总分 column.
	ModeTotal = "total"
)

// Defaults and bounds. Every cap is an Options field; a value of 0 there
// takes the default below. A source past a cap fails with ErrTooLarge.
const (
	DefaultMaxRows              = 20000    // Options.MaxRows when 0
	DefaultMaxCols              = 500      // Options.MaxCols when 0
	DefaultMaxCellBytes         = 4096     // Options.MaxCellBytes when 0
	DefaultMaxCells             = 400000   // Options.MaxCells when 0
	DefaultMaxTextBytes         = 32 << 20 // Options.MaxTextBytes when 0
	DefaultMaxSharedStrings     = 200000   // Options.MaxSharedStrings when 0
	DefaultMaxSharedStringBytes = 16 << 20 // Options.MaxSharedStringBytes when 0
	DefaultMaxPartBytes         = 64 << 20 // Options.MaxPartBytes when 0
	DefaultMaxLineBytes         = 1 << 20  // Options.MaxLineBytes when 0
	DefaultMaxLabelRunes        = 64       // Options.MaxLabelRunes when 0

	headerScanRows = 30 // the header must be within the first 30 rows holding a value
	maxSamples     = 5  // names or rows quoted in one summary warning
	maxQuoteRunes  = 64 // runes of a user string quoted in a warning
)

// Errors returned by ParseXLSX and ParseCSV; test with errors.Is.
var (
	// ErrNoHeader: no sheet has a recognisable header row.
	ErrNoHeader = errors.New("scoresheet: 未找到包含“姓名”的表头行 (no header row with 姓名 found)")
	// ErrNoScoreColumns: a header was found but it has neither question
	// columns nor a 总分 column.
	ErrNoScoreColumns = errors.New("scoresheet: 表头中既没有题号列也没有“总分”列 (header has no question columns and no 总分 column)")
	// ErrNoStudents: a header was found but no row below it names a student
	// (with a numeric total, in total mode).
	ErrNoStudents = errors.New("scoresheet: 表头下没有学生数据 (no student rows below the header)")
	// ErrUnsupportedFormat: the upload is not an .xlsx workbook (for
	// example a legacy .xls, an encrypted workbook, a corrupt zip or not a
	// spreadsheet at all).
	ErrUnsupportedFormat = errors.New("scoresheet: 无法读取该文件，请另存为 .xlsx 或 .csv 后重新上传 (unsupported or unreadable file; save it as .xlsx or .csv)")
	// ErrTooLarge: the source is past one of the caps of Options (rows,
	// columns, cells, cell text, cell length, shared strings, unzipped part
	// size, XML token or CSV line length, length of a class, exam number or
	// label), or a workbook is larger than MaxXLSXBytes or holds more than
	// 10,000 files. The error that wraps it names the cap and its value.
	ErrTooLarge = errors.New("scoresheet: 成绩表超出大小限制 (score sheet too large)")
)

// Question is one question column of a sheet.
type Question struct {
	ID    string // stable id, see Label.QuestionID
	Label string // the header, normalised: full-width folded, trimmed, "12.0" → "12"
	No    int
	Sub   string
	// Order is the question's 1-based position among the sheet's
	// questions, in column order.
	Order int
	// Column is the 1-based sheet column the question was read from.
	Column int
	// Letters is true if any cell of this column held letters (a
	// multiple-choice question whose answers must be scored with a key).
	Letters bool
}

// Cell is one non-empty, recognised question cell. Exactly one of Score and
// Answer is set.
type Cell struct {
	Raw    string   // the cell as written, trimmed
	Score  *float64 // points, for a numeric cell
	Answer string   // upper-case letters A–Z, sorted, without duplicates
}

// Student is one student row.
type Student struct {
	// ID is "<class>_<name>", or just the name when there is no class, with
	// each run of white space replaced by "_".
	ID     string
	Name   string // trimmed, full-width folded, inner white space runs → one space
	Class  string // from the 班级 column, else Options.ClassHint
	ExamNo string // 准考证号, else 考号, 自定义考号, 学号 or id
	Row    int    // 1-based sheet row (CSV: line) of the student
	// SheetTotal is the sheet's own 总分 for the student, if numeric.
	SheetTotal *float64
	// Cells holds the student's question cells by question id; empty and
	// unrecognised cells are absent.
	Cells map[string]Cell
}

// Sheet is a parsed score sheet.
type Sheet struct {
	Mode      string // ModeQuestion or ModeTotal
	SheetName string // the worksheet used ("" for CSV)
	HeaderRow int    // 1-based row (CSV: line) of the header
	Questions []Question
	Students  []Student
	// Warnings are for the teacher (Chinese, with English in brackets).
	Warnings []string
}

// Options tunes parsing. Every bound is a cap: past it the parse fails
// with an error wrapping ErrTooLarge (nothing is silently cut).
type Options struct {
	// ClassHint is the class of every student when the sheet has no 班级
	// column (or a student's 班级 cell is empty).
	ClassHint string
	// MaxRows bounds the rows that hold a value, title and header rows
	// included; empty rows (styled or not) do not count (0 →
	// DefaultMaxRows).
	MaxRows int
	// MaxCols bounds the columns that hold a value in a sheet (0 →
	// DefaultMaxCols).
	MaxCols int
	// MaxCellBytes bounds the length of any one cell (0 →
	// DefaultMaxCellBytes).
	MaxCellBytes int
	// MaxCells bounds the cells that hold a value in a sheet (0 →
	// DefaultMaxCells). With MaxTextBytes it bounds the memory of a parse.
	MaxCells int
	// MaxTextBytes bounds the bytes of cell text read from a sheet itself:
	// a CSV's fields, a worksheet's numbers and inline strings; shared
	// strings have their own cap (0 → DefaultMaxTextBytes).
	MaxTextBytes int
	// MaxSharedStrings bounds the shared strings of a workbook (0 →
	// DefaultMaxSharedStrings).
	MaxSharedStrings int
	// MaxSharedStringBytes bounds their total length in bytes (0 →
	// DefaultMaxSharedStringBytes).
	MaxSharedStringBytes int
	// MaxPartBytes bounds the unzipped size of any one XML part of a
	// workbook, checked while it streams (0 → DefaultMaxPartBytes).
	MaxPartBytes int64
	// MaxLineBytes bounds a physical line (and a record) of a CSV, and any
	// one token of a workbook's XML (0 → DefaultMaxLineBytes).
	MaxLineBytes int
	// MaxLabelRunes bounds, in runes, every string that becomes an id, a
	// name or a label: student names (a longer one skips its row with a
	// warning), classes, exam numbers, question headers and ClassHint
	// (a longer one fails the parse) (0 → DefaultMaxLabelRunes).
	MaxLabelRunes int
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxRows, DefaultMaxRows)
	def(&o.MaxCols, DefaultMaxCols)
	def(&o.MaxCellBytes, DefaultMaxCellBytes)
	def(&o.MaxCells, DefaultMaxCells)
	def(&o.MaxTextBytes, DefaultMaxTextBytes)
	def(&o.MaxSharedStrings, DefaultMaxSharedStrings)
	def(&o.MaxSharedStringBytes, DefaultMaxSharedStringBytes)
	def(&o.MaxLineBytes, DefaultMaxLineBytes)
	def(&o.MaxLabelRunes, DefaultMaxLabelRunes)
	if o.MaxPartBytes <= 0 {
		o.MaxPartBytes = DefaultMaxPartBytes
	}
	return o
}

// colRole is what a header column holds.
type colRole int

const (
	roleIgnore colRole = iota
	roleName
	roleClass
	roleExamNo
	roleTotal
	roleMeta // 序号, ranks: recognised but unused
)

// metaHeader maps a header key (see headerKey) to its role. Read-only.
var metaHeader = map[string]colRole{
	"序号": roleMeta, "校次": roleMeta, "班次": roleMeta, "排名": roleMeta,
	"姓名": roleName, "name": roleName,
	"班级": roleClass, "class": roleClass,
	"准考证号": roleExamNo, "考号": roleExamNo, "自定义考号": roleExamNo, "学号": roleExamNo, "id": roleExamNo,
	"总分": roleTotal, "total": roleTotal,
}

// examNoPriority orders the exam-number columns: the first non-empty one
// in this order is a student's ExamNo. Read-only.
var examNoPriority = map[string]int{"准考证号": 0, "考号": 1, "自定义考号": 2, "学号": 3, "id": 4}

// headerDetectKeys are the keys that, beside 姓名, make a row a header
// (a question label does too). Read-only.
var headerDetectKeys = map[string]bool{
	"班级": true, "准考证号": true, "学号": true, "总分": true,
	"class": true, "id": true, "total": true,
}

// skipNames are values of the name column that mark summary rows or a
// repeated header rather than a student. Read-only.
var skipNames = map[string]bool{
	"姓名": true, "name": true, "平均": true, "平均分": true, "平均值": true,
	"最高分": true, "最低分": true, "合计": true, "总计": true, "统计": true,
	"及格率": true, "优秀率": true, "标准差": true,
}

// headerKey normalises a header cell for matching meta names: full-width
// folded, all white space removed (so "姓  名" matches), lower-cased.
func headerKey(s string) string {
	return strings.ToLower(strings.Join(strings.FieldsFunc(normalize(s), isSpace), ""))
}

// isHeaderRow reports whether a row is the header: it holds 姓名 and at
// least one of 班级, 准考证号, 学号, 总分 or a question label.
func isHeaderRow(r gridRow) bool {
	name, other := false, false
	for _, c := range r.cells {
		k := headerKey(c.v)
		if k == "" {
			continue
		}
		if metaHeader[k] == roleName {
			name = true
		} else if headerDetectKeys[k] {
			other = true
		} else if _, ok := ParseLabel(c.v); ok {
			other = true
		}
		if name && other {
			return true
		}
	}
	return false
}

// findHeader returns the index of the header row, or -1.
func findHeader(rows []gridRow) int {
	for i, r := range rows {
		if i >= headerScanRows {
			break
		}
		if isHeaderRow(r) {
			return i
		}
	}
	return -1
}

// badCells summarises one question column's unrecognised cells.
type badCells struct {
	n       int
	row     int
	example string
}

// parseGrid parses one source's rows. It returns ErrNoHeader when the rows
// have no header, else the sheet or another error. pre holds warnings of
// the reader (merged cells left unfilled and the like), copied to the
// sheet.
func parseGrid(rows []gridRow, o Options, sheetName string, pre []string) (*Sheet, error) {
	h := findHeader(rows)
	if h < 0 {
		return nil, ErrNoHeader
	}
	sh := &Sheet{Mode: ModeQuestion, SheetName: sheetName, HeaderRow: rows[h].num}
	sh.Warnings = append(sh.Warnings, pre...)

	nameCol, classCol, totalCol := -1, -1, -1
	var examCols []int // by priority
	examPrio := map[int]int{}
	type qcol struct{ col, qi int }
	var qCols []qcol // question columns in column order
	qIndex := map[string]int{}
	hdr := rows[h]
	for _, gc := range hdr.cells {
		c, raw := gc.col, gc.v
		k := headerKey(raw)
		if k == "" {
			continue
		}
		if role, ok := metaHeader[k]; ok {
			switch role {
			case roleName:
				if nameCol < 0 {
					nameCol = c
				}
			case roleClass:
				if classCol < 0 {
					classCol = c
				}
			case roleTotal:
				if totalCol < 0 {
					totalCol = c
				}
			case roleExamNo:
				examCols = append(examCols, c)
				examPrio[c] = examNoPriority[k]
			}
			continue
		}
		l, ok := ParseLabel(raw)
		if !ok {
			continue // not a question: ignored silently
		}
		if err := checkLabel(normalize(raw), hdr.num, c, "表头", "header", o); err != nil {
			return nil, err
		}
		id := l.QuestionID()
		if first, dup := qIndex[id]; dup {
			sh.Warnings = append(sh.Warnings, fmt.Sprintf(
				"第%d列“%s”与第%d列“%s”是同一题 %s，已忽略第%d列 (column %d %q repeats question %s of column %d; ignored)",
				c+1, clip(normalize(raw)), sh.Questions[first].Column, clip(sh.Questions[first].Label), id, c+1,
				c+1, clip(normalize(raw)), id, sh.Questions[first].Column))
			continue
		}
		qIndex[id] = len(sh.Questions)
		qCols = append(qCols, qcol{c, len(sh.Questions)})
		sh.Questions = append(sh.Questions, Question{
			ID: id, Label: normalize(raw), No: l.No, Sub: l.Sub,
			Order: len(sh.Questions) + 1, Column: c + 1,
		})
	}
	// Stable order of exam-number columns by priority, then column.
	for i := 1; i < len(examCols); i++ {
		for j := i; j > 0 && examPrio[examCols[j]] < examPrio[examCols[j-1]]; j-- {
			examCols[j], examCols[j-1] = examCols[j-1], examCols[j]
		}
	}
	if len(sh.Questions) == 0 {
		if totalCol < 0 {
			return nil, ErrNoScoreColumns
		}
		sh.Mode = ModeTotal
		sh.Questions = []Question{}
	}

	classHint := collapseSpace(foldWidth(o.ClassHint), " ")
	if utf8.RuneCountInString(classHint) > o.MaxLabelRunes {
		return nil, fmt.Errorf("%w: 班级名称超过 %d 个字符 (the class name is longer than %d characters)",
			ErrTooLarge, o.MaxLabelRunes, o.MaxLabelRunes)
	}
	bad := make([]badCells, len(sh.Questions))
	seen := map[string]int{} // student id → row
	var dups, skipped, noTotal, longNames samples
	for _, r := range rows[h+1:] {
		name := collapseSpace(foldWidth(r.cell(nameCol)), " ")
		if name == "" {
			continue
		}
		if utf8.RuneCountInString(name) > o.MaxLabelRunes {
			// A note below the table, not a student: skip the row.
			longNames.add(r.num, name, 0)
			continue
		}
		if skipNames[headerKey(name)] {
			skipped.add(r.num, name, 0)
			continue
		}
		class := collapseSpace(foldWidth(r.cell(classCol)), " ")
		if err := checkLabel(class, r.num, classCol, "班级", "class", o); err != nil {
			return nil, err
		}
		if class == "" {
			class = classHint
		}
		id := name
		if class != "" {
			id = class + "_" + name
		}
		id = collapseSpace(id, "_")
		if first, dup := seen[id]; dup {
			dups.add(r.num, id, first)
			continue
		}
		st := Student{ID: id, Name: name, Class: class, Row: r.num}
		for _, c := range examCols {
			if v := normalize(r.cell(c)); v != "" {
				if err := checkLabel(v, r.num, c, "考号", "exam number", o); err != nil {
					return nil, err
				}
				st.ExamNo = v
				break
			}
		}
		if v, ok := parseNumber(normalize(r.cell(totalCol))); ok {
			st.SheetTotal = &v
		}
		if sh.Mode == ModeTotal && st.SheetTotal == nil {
			noTotal.add(r.num, name, 0)
			continue
		}
		seen[id] = r.num
		st.Cells = make(map[string]Cell, len(sh.Questions))
		scores := make([]float64, len(qCols)) // one allocation for the row's points
		for _, qc := range qCols {
			qi := qc.qi
			raw := trimSpace(r.cell(qc.col))
			v := normalize(raw)
			if v == "" {
				continue
			}
			if f, ok := parseNumber(v); ok {
				scores[qi] = f
				st.Cells[sh.Questions[qi].ID] = Cell{Raw: raw, Score: &scores[qi]}
				continue
			}
			if v[0] != '#' { // "#N/A", "#VALUE!": spreadsheet errors, not answers
				if m := letterSet(v); m != 0 {
					st.Cells[sh.Questions[qi].ID] = Cell{Raw: raw, Answer: setString(m)}
					sh.Questions[qi].Letters = true
					continue
				}
			}
			b := &bad[qi]
			if b.n == 0 {
				b.row, b.example = r.num, raw
			}
			b.n++
		}
		sh.Students = append(sh.Students, st)
	}

	for qi, b := range bad {
		if b.n == 0 {
			continue
		}
		q := sh.Questions[qi]
		sh.Warnings = append(sh.Warnings, fmt.Sprintf(
			"第%s题有 %d 个无法识别的单元格（如第%d行“%s”），已按空白处理 (question %s: %d unrecognised cells, e.g. row %d %q, treated as empty)",
			q.Label, b.n, b.row, clip(b.example), q.Label, b.n, b.row, clip(b.example)))
	}
	if dups.n > 0 {
		sh.Warnings = append(sh.Warnings, fmt.Sprintf(
			"%d 行学生与前面的行重复（班级和姓名都相同），只保留第一次出现的行：%s (%d duplicate student rows ignored, the first one kept: %s)",
			dups.n, dups.zh(), dups.n, dups.en()))
	}
	if skipped.n > 0 {
		sh.Warnings = append(sh.Warnings, fmt.Sprintf(
			"已跳过 %d 行汇总行或重复的表头：%s (skipped %d summary or repeated header rows: %s)",
			skipped.n, skipped.zh(), skipped.n, skipped.en()))
	}
	if longNames.n > 0 {
		sh.Warnings = append(sh.Warnings, fmt.Sprintf(
			"已跳过 %d 行姓名超过 %d 个字符的行（可能是表格下方的说明）：%s (skipped %d rows whose name is longer than %d characters: %s)",
			longNames.n, o.MaxLabelRunes, longNames.zh(), longNames.n, o.MaxLabelRunes, longNames.en()))
	}
	if noTotal.n > 0 {
		sh.Warnings = append(sh.Warnings, fmt.Sprintf(
			"%d 名学生没有有效的总分，已忽略：%s (%d students without a numeric 总分 dropped: %s)",
			noTotal.n, noTotal.zh(), noTotal.n, noTotal.en()))
	}
	if len(sh.Students) == 0 {
		return nil, ErrNoStudents
	}
	return sh, nil
}

// samples counts rows of one kind and keeps the first few for a warning.
type samples struct {
	n    int
	rows []sample
}

type sample struct {
	row   int
	text  string
	first int // the earlier row it repeats, or 0
}

func (s *samples) add(row int, text string, first int) {
	s.n++
	if len(s.rows) < maxSamples {
		s.rows = append(s.rows, sample{row, text, first})
	}
}

func (s *samples) zh() string {
	return s.join(func(x sample) string { return fmt.Sprintf("第%d行“%s”", x.row, clip(x.text)) },
		"（与第%d行重复）", "……", "、")
}

func (s *samples) en() string {
	return s.join(func(x sample) string { return fmt.Sprintf("row %d %q", x.row, clip(x.text)) },
		" (same as row %d)", "...", ", ")
}

// names lists the samples' texts, clipped, joined by sep, with more when
// some were left out.
func (s *samples) names(sep, more string) string {
	parts := make([]string, 0, len(s.rows)+1)
	for _, x := range s.rows {
		parts = append(parts, clip(x.text))
	}
	if s.n > len(s.rows) {
		parts = append(parts, more)
	}
	return strings.Join(parts, sep)
}

// join lists the samples in one language: each as item(x), plus dup with
// the first row it repeats, more when some were left out.
func (s *samples) join(item func(sample) string, dup, more, sep string) string {
	parts := make([]string, 0, len(s.rows)+1)
	for _, x := range s.rows {
		p := item(x)
		if x.first > 0 {
			p += fmt.Sprintf(dup, x.first)
		}
		parts = append(parts, p)
	}
	if s.n > len(s.rows) {
		parts = append(parts, more)
	}
	return strings.Join(parts, sep)
}

// checkLabel fails when v, a class, an exam number or a question header of
// the cell at row (1-based) and col (0-based), is longer than
// o.MaxLabelRunes.
func checkLabel(v string, row, col int, zh, en string, o Options) error {
	if utf8.RuneCountInString(v) <= o.MaxLabelRunes {
		return nil
	}
	ref := cellRef(col, row)
	return fmt.Errorf("%w: 单元格 %s 的%s超过 %d 个字符 (cell %s: %s longer than %d characters)",
		ErrTooLarge, ref, zh, o.MaxLabelRunes, ref, en, o.MaxLabelRunes)
}

// clip shortens a user string quoted in a warning or an error to
// maxQuoteRunes runes, marking the cut with "…".
func clip(s string) string {
	n := 0
	for i := range s {
		if n == maxQuoteRunes {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
