package scoresheet

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// optionalFixture returns a fixture's bytes, or nil when the fixtures are
// not there (fuzz seeds must not skip the whole target).
func optionalFixture(name string) []byte {
	dir, err := os.Getwd()
	if err != nil {
		return nil
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
	b, _ := os.ReadFile(filepath.Join(dir, "..", "shared", "fixtures", "exams", name))
	return b
}

// checkSheet asserts the invariants every parse result keeps.
func checkSheet(t *testing.T, sh *Sheet, err error, o Options) {
	t.Helper()
	if err != nil {
		if sh != nil {
			t.Fatalf("error %v with a sheet", err)
		}
		return
	}
	if sh == nil {
		t.Fatal("nil sheet without error")
	}
	o = o.withDefaults()
	switch sh.Mode {
	case ModeQuestion:
		if len(sh.Questions) == 0 {
			t.Fatal("question mode without questions")
		}
	case ModeTotal:
		if len(sh.Questions) != 0 {
			t.Fatal("total mode with questions")
		}
	default:
		t.Fatalf("mode %q", sh.Mode)
	}
	if sh.HeaderRow < 1 {
		t.Fatalf("header row %d", sh.HeaderRow)
	}
	qs := map[string]bool{}
	for i, q := range sh.Questions {
		if qs[q.ID] {
			t.Fatalf("duplicate question id %s", q.ID)
		}
		qs[q.ID] = true
		l, ok := ParseLabel(q.Label)
		if !ok || l.QuestionID() != q.ID || l.No != q.No || l.Sub != q.Sub {
			t.Fatalf("question %+v does not round-trip (%+v %v)", q, l, ok)
		}
		if q.Order != i+1 || q.Column < 1 || q.Column > maxColumns {
			t.Fatalf("question %+v order/column", q)
		}
	}
	if len(sh.Students) == 0 || len(sh.Students) > o.MaxRows {
		t.Fatalf("%d students", len(sh.Students))
	}
	ids := map[string]bool{}
	for _, st := range sh.Students {
		if st.ID == "" || st.Name == "" || strings.ContainsFunc(st.ID, isSpace) {
			t.Fatalf("bad student id %q name %q", st.ID, st.Name)
		}
		if ids[st.ID] {
			t.Fatalf("duplicate student id %q", st.ID)
		}
		ids[st.ID] = true
		if st.Row <= sh.HeaderRow {
			t.Fatalf("student row %d not below header %d", st.Row, sh.HeaderRow)
		}
		if sh.Mode == ModeTotal && st.SheetTotal == nil {
			t.Fatalf("total mode student %q without total", st.ID)
		}
		if st.SheetTotal != nil && (math.IsNaN(*st.SheetTotal) || math.IsInf(*st.SheetTotal, 0)) {
			t.Fatalf("total %v", *st.SheetTotal)
		}
		for qid, c := range st.Cells {
			if !qs[qid] {
				t.Fatalf("cell for unknown question %s", qid)
			}
			if (c.Score == nil) == (c.Answer == "") {
				t.Fatalf("cell %+v must have exactly one of score and answer", c)
			}
			if c.Score != nil && (math.IsNaN(*c.Score) || math.IsInf(*c.Score, 0)) {
				t.Fatalf("score %v", *c.Score)
			}
			if c.Answer != "" && !validLetters(c.Answer) {
				t.Fatalf("answer %q", c.Answer)
			}
		}
	}
}

// validLetters reports whether s is non-empty, sorted, distinct A–Z.
func validLetters(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' || (i > 0 && s[i] <= s[i-1]) {
			return false
		}
	}
	return true
}

func FuzzParseCSV(f *testing.F) {
	for _, name := range []string{"physics_midterm_utf8.csv", "physics_midterm_gbk.csv"} {
		if b := optionalFixture(name); b != nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"姓名,班级,总分\n张三,1班,90\n",
		"标题\n序号,姓名,班级,1,2,11(1),总分\n1,张三,1班,A,4,#N/A,缺考\n1,张三,1班,B,3,2,5\n",
		"姓名\t1\t1\n\"a\"\"b\t\"c\n",
		"\xef\xbb\xbf姓名,12a,12(a)\n李 四,ａｂ,1e3\n",
		"\xff\xfe\x53\x59\x0d\x54",
		"姓名,班级,1\n平均分,,1\n姓名,班级,1\n",
		"姓名,1\n\"a\"b\"\r\n\"c\"\rd,\"\"\"\n\n\"\n\"\r\n",
		"姓名,1\n" + strings.Repeat("x", 40) + ",\"" + strings.Repeat("y\n", 20) + "\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := Options{MaxRows: 200, MaxCols: 60}
		sh, err := parseCSVBytes(data, o)
		checkSheet(t, sh, err, o)
		// Streaming one byte at a time gives the same result.
		sh2, err2 := ParseCSV(&oneByte{data}, o)
		if (err == nil) != (err2 == nil) || (err == nil && len(sh.Students) != len(sh2.Students)) {
			t.Fatalf("byte by byte: %v / %v", err, err2)
		}
		checkCSVGuard(t, data)
	})
}

// checkCSVGuard checks the line, record and field caps against
// encoding/csv itself: a cap fails the parse if and only if the text
// (decoded as ParseCSV decodes it) has a physical line or a record longer
// than MaxLineBytes or a field longer than MaxCellBytes.
func checkCSVGuard(t *testing.T, data []byte) {
	o := Options{MaxCellBytes: 16, MaxLineBytes: 64, MaxRows: 1 << 20, MaxCols: maxColumns, MaxCells: 1 << 30, MaxTextBytes: 1 << 30}
	_, err := parseCSVBytes(data, o)
	text, rerr := io.ReadAll(decodeText(bufio.NewReaderSize(bytes.NewReader(data), sniffBytes)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	tooLong := false
	for line := range strings.Lines(string(text)) {
		tooLong = tooLong || len(line) > o.MaxLineBytes
	}
	head := text[:min(len(text), sniffBytes)]
	r := csv.NewReader(bytes.NewReader(text))
	r.FieldsPerRecord, r.LazyQuotes, r.Comma = -1, true, sniffDelimiter(string(head))
	var prev int64
	for !tooLong {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return // not a CSV the oracle reads
		}
		raw := text[prev:r.InputOffset()]
		for len(raw) > 0 && (raw[0] == '\n' || bytes.HasPrefix(raw, []byte("\r\n"))) {
			raw = raw[1+bytes.IndexByte(raw, '\n'):] // a blank line skipped
		}
		tooLong = len(raw) > o.MaxLineBytes
		prev = r.InputOffset()
		for _, f := range rec {
			tooLong = tooLong || len(f) > o.MaxCellBytes
		}
	}
	// ParseCSV stops early at a sheet without a header: then only a cap
	// that failed must be right.
	if got := errors.Is(err, ErrTooLarge); got && !tooLong || !got && tooLong && !errors.Is(err, ErrNoHeader) {
		t.Fatalf("ErrTooLarge %v (%v), but a line, record or field past the caps: %v", got, err, tooLong)
	}
}

func FuzzParseXLSX(f *testing.F) {
	for _, name := range []string{"physics_midterm.xlsx", "physics_midterm_scores_only.xlsx"} {
		if b := optionalFixture(name); b != nil {
			f.Add(b)
		}
	}
	f.Add(buildWorkbook(f))
	for _, s := range []string{"", "PK\x03\x04", "PK\x05\x06" + strings.Repeat("\x00", 18), "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "姓名,1\n张三,1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := Options{MaxRows: 200, MaxCols: 60}
		sh, err := parseXLSXBytes(data, o)
		checkSheet(t, sh, err, o)
	})
}

// zipEntries returns a zip archive's files in order.
func zipEntries(t testing.TB, data []byte) (names []string, files map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
		files[f.Name] = b
	}
	return names, files
}

// FuzzParseXLSXSheet fuzzes the worksheet XML inside a valid workbook (the
// synthetic one: a cover sheet, then the scores in sheet2.xml), which
// reaches the XML, merge and grid code that mutated zip bytes rarely do.
func FuzzParseXLSXSheet(f *testing.F) {
	const part = "xl/worksheets/sheet2.xml"
	names, files := zipEntries(f, buildWorkbook(f))
	f.Add(string(files[part]))
	if b := optionalFixture("physics_midterm.xlsx"); b != nil {
		_, fx := zipEntries(f, b)
		f.Add(string(fx["xl/worksheets/sheet1.xml"]))
	}
	const ns = `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`
	for _, s := range []string{
		ns + `<row r="2"><c r="A2" t="inlineStr"><is><t>姓名</t></is></c><c r="B2" t="inlineStr"><is><t>1</t></is></c></row>` +
			`<row r="3"><c r="A3" t="inlineStr"><is><t>张三</t></is></c><c r="B3"><v>4</v></c></row></sheetData>` +
			`<mergeCells count="2"><mergeCell ref="B3:XFD1048576"/><mergeCell ref="A1:A0"/></mergeCells></worksheet>`,
		ns + `<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>姓名</t></is></c></row></sheetData></worksheet>`,
		ns + `<row><c t="s"><v>99</v></c><c t="e"><v>#N/A</v></c><c t="b"><v>1</v></c></row></sheetData></worksheet>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sheetXML string) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, name := range names {
			w, err := zw.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			data := files[name]
			if name == part {
				data = []byte(sheetXML)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		o := Options{MaxRows: 200, MaxCols: 60}
		sh, err := parseXLSXBytes(buf.Bytes(), o)
		checkSheet(t, sh, err, o)
	})
}

func FuzzParseAnswerKey(f *testing.F) {
	if b := optionalFixture("physics_midterm_answers.txt"); b != nil {
		f.Add(string(b))
	}
	for _, s := range []string{"", "1. A\n2) C\n11(1) B\n", "1.A 2.C 3、B 9:AC", "x21.A (1)B 5.ABCDEFGHI", "１．Ａ\n１２ａ：ｂ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		key, warn := ParseAnswerKey(text)
		if key == nil {
			t.Fatal("nil key")
		}
		if len(key) == 0 && len(warn) == 0 {
			t.Fatal("empty key without a warning")
		}
		for id, letters := range key {
			if !validLetters(letters) {
				t.Fatalf("key %s = %q", id, letters)
			}
			rest, ok := strings.CutPrefix(id, "Q")
			if !ok {
				t.Fatalf("key id %q", id)
			}
			no, sub, _ := strings.Cut(rest, "_")
			label := no
			if sub != "" {
				label += "(" + sub + ")"
			}
			if l, ok := ParseLabel(label); !ok || l.QuestionID() != id {
				t.Fatalf("key id %q does not round-trip", id)
			}
			if s, full := ScoreAnswer(letters, letters, 3); s != 3 || !full {
				t.Fatalf("key %q does not score itself", letters)
			}
		}
	})
}

func FuzzParseLabel(f *testing.F) {
	for _, s := range []string{"3", "12.0", "11(1)", "11（1）", "12-1", "12_1", "12a", "12(a)", "0", "1000", "12(", "总分"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, ok := ParseLabel(s)
		if !ok {
			if l != (Label{}) {
				t.Fatalf("rejected %q but returned %+v", s, l)
			}
			return
		}
		if l.No < 1 || l.No > 999 || len(l.Sub) > maxSubLen || !isASCIIAlnum(l.Sub) || strings.ToLower(l.Sub) != l.Sub {
			t.Fatalf("ParseLabel(%q) = %+v", s, l)
		}
		id := l.QuestionID()
		for _, again := range []string{l.String(), l.Raw} {
			m, ok := ParseLabel(again)
			if !ok || m.QuestionID() != id {
				t.Fatalf("ParseLabel(%q) = %+v; %q gives %+v %v", s, l, again, m, ok)
			}
		}
	})
}
