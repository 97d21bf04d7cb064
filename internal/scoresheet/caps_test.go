package scoresheet

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// The tests below build hostile workbooks with archive/zip directly: a
// minimal package (content types, relationships, workbook) around parts
// written by the test, streamed into the zip so a 70 MB part never sits in
// the test's memory either.

const sheetNS = `xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"`

// rawPart writes one part of a raw workbook.
type rawPart func(w io.Writer) error

// rawXLSX builds a workbook of the given worksheets (named Sheet1…) and,
// when sst is not nil, a shared-strings part.
func rawXLSX(t testing.TB, sst rawPart, sheets ...rawPart) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed)
	})
	put := func(name string, p rawPart) {
		t.Helper()
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p(w); err != nil {
			t.Fatal(err)
		}
	}
	text := func(s string) rawPart { return func(w io.Writer) error { _, err := io.WriteString(w, s); return err } }
	var types, wbSheets, rels strings.Builder
	for i := range sheets {
		fmt.Fprintf(&types, `<Override PartName="/xl/worksheets/sheet%d.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`, i+1)
		fmt.Fprintf(&wbSheets, `<sheet name="Sheet%d" sheetId="%d" r:id="rId%d"/>`, i+1, i+1, i+1)
		fmt.Fprintf(&rels, `<Relationship Id="rId%d" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet%d.xml"/>`, i+1, i+1)
	}
	if sst != nil {
		types.WriteString(`<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>`)
		rels.WriteString(`<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>`)
	}
	put("[Content_Types].xml", text(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">`+
		`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>`+
		`<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>`+types.String()+`</Types>`))
	put("_rels/.rels", text(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">`+
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`))
	put("xl/workbook.xml", text(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook `+sheetNS+`><sheets>`+wbSheets.String()+`</sheets></workbook>`))
	put("xl/_rels/workbook.xml.rels", text(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">`+rels.String()+`</Relationships>`))
	if sst != nil {
		put("xl/sharedStrings.xml", sst)
	}
	for i, s := range sheets {
		put(fmt.Sprintf("xl/worksheets/sheet%d.xml", i+1), s)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sheetXML is a worksheet part: header rows, then body (rows written by
// the test), then extra (after sheetData: merged cells).
func sheetXML(rows string, body func(w io.Writer) error, extra string) rawPart {
	return sheetXMLAfter(rows, body, func(w io.Writer) error { _, err := io.WriteString(w, extra); return err })
}

// sheetXMLAfter is sheetXML with what follows sheetData written by after.
func sheetXMLAfter(rows string, body, after func(w io.Writer) error) rawPart {
	return func(w io.Writer) error {
		if _, err := io.WriteString(w, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet `+sheetNS+`><sheetData>`+rows); err != nil {
			return err
		}
		if body != nil {
			if err := body(w); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(w, `</sheetData>`); err != nil {
			return err
		}
		if err := after(w); err != nil {
			return err
		}
		_, err := io.WriteString(w, `</worksheet>`)
		return err
	}
}

// is writes an inline-string cell.
func is(ref, s string) string {
	return `<c r="` + ref + `" t="inlineStr"><is><t>` + s + `</t></is></c>`
}

// num writes a number cell.
func num(ref string, v any) string { return fmt.Sprintf(`<c r="%s"><v>%v</v></c>`, ref, v) }

// headerRow is row 1: 姓名, 班级, questions 1 and 2.
const headerRow = `<row r="1">` + `<c r="A1" t="inlineStr"><is><t>姓名</t></is></c><c r="B1" t="inlineStr"><is><t>班级</t></is></c>` +
	`<c r="C1"><v>1</v></c><c r="D1"><v>2</v></c></row>`

// studentRows writes n student rows from row first on.
func studentRows(first, n int) func(w io.Writer) error {
	return func(w io.Writer) error {
		for r := first; r < first+n; r++ {
			if _, err := fmt.Fprintf(w, `<row r="%d">%s%s%s%s</row>`, r,
				is(fmt.Sprintf("A%d", r), fmt.Sprintf("学生%d", r)), is(fmt.Sprintf("B%d", r), "1班"),
				num(fmt.Sprintf("C%d", r), r%5), num(fmt.Sprintf("D%d", r), 3)); err != nil {
				return err
			}
		}
		return nil
	}
}

// wantTooLarge checks err wraps ErrTooLarge and names the cap.
func wantTooLarge(t *testing.T, err error, parts ...string) {
	t.Helper()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
	if msg := err.Error(); !strings.Contains(msg, "超") || !strings.Contains(msg, "(") {
		t.Errorf("error %q: want Chinese, then English in parentheses", msg)
	}
}

// peakHeap runs f and reports the most heap it grew by, live objects and
// garbage not yet collected alike (what the process must map), sampled
// every millisecond.
func peakHeap(f func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	peak := base
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, read())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	peak = max(peak, read())
	return peak - base
}

func TestCapSharedStringCount(t *testing.T) {
	sst := func(w io.Writer) error {
		io.WriteString(w, `<sst `+sheetNS+` count="250000" uniqueCount="250000">`)
		for i := 0; i < 250000; i++ {
			fmt.Fprintf(w, `<si><t>%d</t></si>`, i)
		}
		_, err := io.WriteString(w, `</sst>`)
		return err
	}
	data := rawXLSX(t, sst, sheetXML(headerRow, studentRows(2, 3), ""))
	var err error
	alloc := peakHeap(func() { _, err = parseXLSXBytes(data, Options{}) })
	wantTooLarge(t, err, "more than 200000 shared strings", "共享字符串超过 200000 个")
	if alloc > 16<<20 {
		t.Errorf("heap grew by %d MiB to refuse 250k shared strings", alloc>>20)
	}
	t.Logf("heap grew by %.1f MiB to refuse 250k shared strings", float64(alloc)/(1<<20))
	if _, err := parseXLSXBytes(data, Options{MaxSharedStrings: 250000}); err != nil {
		t.Errorf("with MaxSharedStrings 250000: %v", err)
	}
}

func TestCapSharedStringBytes(t *testing.T) {
	sst := func(n int, s string) rawPart {
		return func(w io.Writer) error {
			io.WriteString(w, `<sst `+sheetNS+`><si><t>姓名</t></si><si><t>1</t></si>`)
			for i := 0; i < n; i++ {
				fmt.Fprintf(w, `<si><t>%s</t></si>`, s)
			}
			_, err := io.WriteString(w, `</sst>`)
			return err
		}
	}
	hdr := `<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>`
	long := strings.Repeat("长", 1000) // 3,000 bytes: 16.8 MB in all
	data := rawXLSX(t, sst(5600, long), sheetXML(hdr, studentRows(2, 3), ""))
	_, err := parseXLSXBytes(data, Options{})
	wantTooLarge(t, err, "shared strings larger than 16 MiB", "共享字符串合计超过 16 MiB")
	// 7 + 3×3,000 bytes.
	data = rawXLSX(t, sst(3, long), sheetXML(hdr, studentRows(2, 3), ""))
	_, err = parseXLSXBytes(data, Options{MaxSharedStringBytes: 9006})
	wantTooLarge(t, err, "shared strings larger than 9006 bytes")
	sh, err := parseXLSXBytes(data, Options{MaxSharedStringBytes: 9007})
	if err != nil || len(sh.Students) != 3 || sh.Questions[0].ID != "Q1" {
		t.Fatalf("within the cap: %v %+v", err, sh)
	}
}

// Every cap has its default.
func TestDefaultCaps(t *testing.T) {
	got := Options{}.withDefaults()
	want := Options{MaxRows: 20000, MaxCols: 500, MaxCellBytes: 4096, MaxCells: 400000, MaxTextBytes: 32 << 20,
		MaxSharedStrings: 200000, MaxSharedStringBytes: 16 << 20, MaxPartBytes: 64 << 20, MaxLineBytes: 1 << 20, MaxLabelRunes: 64}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
}

func TestCapRows(t *testing.T) {
	data := rawXLSX(t, nil, sheetXML(headerRow, studentRows(2, 25000), ""))
	_, err := parseXLSXBytes(data, Options{})
	wantTooLarge(t, err, "more than 20000 rows hold data", `sheet "Sheet1"`)
	sh, err := parseXLSXBytes(data, Options{MaxRows: 25001})
	if err != nil || len(sh.Students) != 25000 {
		t.Fatalf("MaxRows 25001: %v", err)
	}
}

// Rows with no value (styled empty rows, as Excel writes down to the last
// formatted row) cost nothing and count against no cap.
func TestStyledEmptyRows(t *testing.T) {
	empty := func(w io.Writer) error {
		for r := 5; r < 100005; r++ {
			if _, err := fmt.Fprintf(w, `<row r="%d" ht="20" customHeight="1"/>`, r); err != nil {
				return err
			}
		}
		// Styled cells without a value.
		for r := 100005; r < 101005; r++ {
			if _, err := fmt.Fprintf(w, `<row r="%d"><c r="A%d" s="1"/><c r="XFD%d" s="1"/></row>`, r, r, r); err != nil {
				return err
			}
		}
		return nil
	}
	body := func(w io.Writer) error {
		if err := studentRows(2, 3)(w); err != nil {
			return err
		}
		return empty(w)
	}
	data := rawXLSX(t, nil, sheetXML(headerRow, body, ""))
	sh, err := parseXLSXBytes(data, Options{MaxRows: 10, MaxCols: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Students) != 3 || len(sh.Warnings) != 0 {
		t.Errorf("%d students, warnings %q", len(sh.Students), sh.Warnings)
	}
}

func TestCapCellLength(t *testing.T) {
	big := strings.Repeat("x", 5000)
	data := rawXLSX(t, nil, sheetXML(headerRow, func(w io.Writer) error {
		_, err := io.WriteString(w, `<row r="2">`+is("A2", "张三")+num("C2", 1)+`</row><row r="3">`+is("A3", "李四")+is("D3", big)+`</row>`)
		return err
	}, ""))
	_, err := parseXLSXBytes(data, Options{})
	wantTooLarge(t, err, "cell D3 is longer than 4096 bytes", "单元格 D3 超过 4096 字节")

	// A long number text, and a long shared string once a cell uses it.
	data = rawXLSX(t, nil, sheetXML(headerRow, func(w io.Writer) error {
		_, err := io.WriteString(w, `<row r="2">`+is("A2", "张三")+`<c r="C2"><v>`+strings.Repeat("1", 5000)+`</v></c></row>`)
		return err
	}, ""))
	_, err = parseXLSXBytes(data, Options{})
	wantTooLarge(t, err, "cell C2 is longer than 4096 bytes")
	sst := func(w io.Writer) error {
		_, err := io.WriteString(w, `<sst `+sheetNS+`><si><t>张三</t></si><si><t>`+big+`</t></si></sst>`)
		return err
	}
	used := rawXLSX(t, sst, sheetXML(headerRow, func(w io.Writer) error {
		_, err := io.WriteString(w, `<row r="2"><c r="A2" t="s"><v>0</v></c><c r="E2" t="s"><v>1</v></c></row>`)
		return err
	}, ""))
	_, err = parseXLSXBytes(used, Options{})
	wantTooLarge(t, err, "cell E2 is longer than 4096 bytes")
	unused := rawXLSX(t, sst, sheetXML(headerRow, studentRows(2, 1), ""))
	if _, err := parseXLSXBytes(unused, Options{}); err != nil {
		t.Errorf("an unused long shared string: %v", err)
	}
}

// repeatWriter writes s n times.
func repeatWriter(s string, n int) func(w io.Writer) error {
	return func(w io.Writer) error {
		chunk := strings.Repeat(s, max(1, 64<<10/len(s)))
		per := len(chunk) / len(s)
		for n > 0 {
			k := min(n, per)
			if _, err := io.WriteString(w, chunk[:k*len(s)]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
}

// A worksheet that unzips to 70 MB from a few hundred KB stops at the part
// cap, having held little.
func TestCapPartSize(t *testing.T) {
	const unit = `<extLst/>`
	bomb := rawXLSX(t, nil, sheetXMLAfter(headerRow, studentRows(2, 3), repeatWriter(unit, 70<<20/len(unit))))
	if len(bomb) > 2<<20 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	var err error
	alloc := peakHeap(func() { _, err = parseXLSXBytes(bomb, Options{MaxPartBytes: 8 << 20}) })
	wantTooLarge(t, err, "xl/worksheets/sheet1.xml is larger than 8 MiB once unzipped")
	if alloc > 16<<20 {
		t.Errorf("heap grew by %d MiB", alloc>>20)
	}
	// White space is one XML token as long as the part: the token cap stops
	// it first, so the decoder never buffers more than a MiB.
	spaces := rawXLSX(t, nil, sheetXML(headerRow, repeatWriter(" ", 70<<20), ""))
	alloc = peakHeap(func() { _, err = parseXLSXBytes(spaces, Options{}) })
	wantTooLarge(t, err, "an XML token of xl/worksheets/sheet1.xml is longer than 1 MiB")
	if alloc > 16<<20 {
		t.Errorf("heap grew by %d MiB", alloc>>20)
	}
}

func TestCapXMLToken(t *testing.T) {
	for name, junk := range map[string]string{
		"comment":   `<!--` + strings.Repeat("-<>", 1<<19) + `-->`,
		"attribute": `<row r="2" x="` + strings.Repeat(">", 1<<21) + `"/>`,
		"cdata":     `<![CDATA[` + strings.Repeat("<>", 1<<20) + `]]>`,
		"directive": `<!DOCTYPE a <!-- > --> ` + strings.Repeat("<a>", 1<<19) + `>`,
	} {
		data := rawXLSX(t, nil, sheetXML(headerRow, func(w io.Writer) error {
			_, err := io.WriteString(w, junk)
			return err
		}, ""))
		_, err := parseXLSXBytes(data, Options{})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "an XML token of xl/worksheets/sheet1.xml is longer than 1 MiB") {
			t.Errorf("%s: err = %v, want the XML token cap", name, err)
		}
	}
}

func TestCapColumns(t *testing.T) {
	wide := func(n int) rawPart {
		var b strings.Builder
		b.WriteString(`<row r="2">` + is("A2", "张三"))
		for c := 4; c < n+4; c++ {
			b.WriteString(num(colName(c)+"2", 1))
		}
		b.WriteString(`</row>`)
		return sheetXML(headerRow, func(w io.Writer) error { _, err := io.WriteString(w, b.String()); return err }, "")
	}
	_, err := parseXLSXBytes(rawXLSX(t, nil, wide(497)), Options{}) // A–D of the header, then 497
	wantTooLarge(t, err, "more than 500 columns hold data")
	if _, err := parseXLSXBytes(rawXLSX(t, nil, wide(496)), Options{}); err != nil {
		t.Errorf("500 columns: %v", err)
	}
	// Few columns far to the right are fine: the cap counts columns that
	// hold a value.
	far := sheetXML(`<row r="1">`+is("A1", "姓名")+is("XFD1", "1")+`</row>`, func(w io.Writer) error {
		_, err := io.WriteString(w, `<row r="2">`+is("A2", "张三")+num("XFD2", 3)+`</row>`)
		return err
	}, "")
	sh, err := parseXLSXBytes(rawXLSX(t, nil, far), Options{})
	if err != nil || sh.Questions[0].Column != 16384 {
		t.Fatalf("column XFD: %v %+v", err, sh)
	}
}

func TestCapCellsAndText(t *testing.T) {
	data := rawXLSX(t, nil, sheetXML(headerRow, studentRows(2, 100), ""))
	_, err := parseXLSXBytes(data, Options{MaxCells: 300})
	wantTooLarge(t, err, "more than 300 cells hold data")
	_, err = parseXLSXBytes(data, Options{MaxTextBytes: 500})
	wantTooLarge(t, err, "more than 500 bytes of cell text")
	if _, err := parseXLSXBytes(data, Options{MaxCells: 404}); err != nil {
		t.Errorf("404 cells: %v", err)
	}
}

func TestCapZipEntries(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i <= maxZipEntries; i++ {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprint(i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	_, err := parseXLSXBytes(buf.Bytes(), Options{})
	wantTooLarge(t, err, "more than 10000 files")
}

// Names, classes, exam numbers and labels are bounded; warnings quote at
// most 64 runes of what the teacher wrote.
func TestLabelBounds(t *testing.T) {
	long := strings.Repeat("长", 65)
	csv := "姓名,班级,学号,1\n张三,1班,1,4\n" + long + ",1班,2,3\n李四,1班,3," + strings.Repeat("坏", 500) + "\n"
	sh, err := parseCSVBytes([]byte(csv), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Students) != 2 {
		t.Errorf("students %+v", sh.Students)
	}
	all := strings.Join(sh.Warnings, "\n")
	if len(sh.Warnings) != 2 || !strings.Contains(all, "name is longer than 64 characters") || !strings.Contains(all, "第3行") {
		t.Errorf("warnings %q", sh.Warnings)
	}
	for _, w := range sh.Warnings {
		if n := strings.Count(w, "长"); n > 2*maxQuoteRunes {
			t.Errorf("warning quotes %d runes of the name: %q", n, w)
		}
		if n := strings.Count(w, "坏"); n > 2*maxQuoteRunes {
			t.Errorf("warning quotes %d runes of a cell: %q", n, w)
		}
	}
	for _, tc := range []struct {
		csv  string
		o    Options
		want string
	}{
		{"姓名,班级,1\n张三," + long + ",4\n", Options{}, "cell B2: class longer than 64 characters"},
		{"姓名,学号,1\n张三," + strings.Repeat("9", 65) + ",4\n", Options{}, "cell B2: exam number longer than 64 characters"},
		{"姓名,1\n张三,4\n", Options{ClassHint: long}, "the class name is longer than 64 characters"},
		{"姓名,班级,1\n张三,12345,4\n", Options{MaxLabelRunes: 4}, "cell B2: class longer than 4 characters"},
	} {
		_, err := parseCSVBytes([]byte(tc.csv), tc.o)
		wantTooLarge(t, err, tc.want)
	}
	if _, err := parseCSVBytes([]byte("姓名,班级,1\n张三,"+strings.Repeat("长", 64)+",4\n"), Options{}); err != nil {
		t.Errorf("64 runes: %v", err)
	}
	// A header label is at most 13 runes (ParseLabel); a long sheet name is
	// clipped where it is quoted.
	hostile := strings.Repeat("表", 200)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, body := range map[string]string{
		"xl/workbook.xml":            `<workbook ` + sheetNS + `><sheets><sheet name="` + hostile + `" sheetId="1" r:id="rId1"/></sheets></workbook>`,
		"xl/_rels/workbook.xml.rels": `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`,
		"xl/worksheets/sheet1.xml":   `<worksheet ` + sheetNS + `><sheetData>` + headerRow + `</sheetData></worksheet>`,
	} {
		w, _ := zw.Create(name)
		io.WriteString(w, body)
	}
	zw.Close()
	_, err = parseXLSXBytes(b.Bytes(), Options{})
	if !errors.Is(err, ErrNoStudents) || utf8.RuneCountInString(err.Error()) > 2*maxQuoteRunes+100 {
		t.Errorf("long sheet name: %v", err)
	}
}

func TestCSVCaps(t *testing.T) {
	head := "姓名,班级,1\n张三,1班,4\n"
	for _, tc := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"60 MB name on one line", io.MultiReader(strings.NewReader(head), repeatReader("x", 60<<20)), "cell A3 is longer than 4096 bytes"},
		{"a line of 300 fields of 4000 bytes", io.MultiReader(strings.NewReader(head), repeatReader(strings.Repeat("x", 4000)+",", 300)), "line 3 is longer than 1 MiB"},
		{"60 MB quoted field over many lines", io.MultiReader(strings.NewReader(head+`"`), repeatReader("xxxxxxx\n", 60<<20/8)), "cell A3 is longer than 4096 bytes"},
		{"5000-byte field", strings.NewReader(head + "李四,1班," + strings.Repeat("7", 5000) + "\n"), "cell C3 is longer than 4096 bytes"},
		{"many records in a row of empty quoted fields", io.MultiReader(strings.NewReader(head), repeatReader("\"\n\",", 1<<20)), "line"},
		{"too many fields", strings.NewReader(head + strings.Repeat(",", 20000) + "\n"), "line 3 has more than 16384 fields"},
	} {
		var err error
		alloc := peakHeap(func() { _, err = ParseCSV(tc.r, Options{}) })
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrTooLarge with %q", tc.name, err, tc.want)
		}
		if alloc > 16<<20 {
			t.Errorf("%s: heap grew by %d MiB", tc.name, alloc>>20)
		}
	}
	var b strings.Builder
	b.WriteString("姓名,1\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "学生%d,1\n", i)
	}
	_, err := ParseCSV(strings.NewReader(b.String()), Options{})
	wantTooLarge(t, err, "more than 20000 rows hold data")
	// Blank lines and lines of empty fields do not count.
	b.Reset()
	b.WriteString("姓名,1\n")
	for i := 0; i < 30000; i++ {
		b.WriteString(",,,\n\n")
	}
	b.WriteString("张三,1\n")
	if sh, err := ParseCSV(strings.NewReader(b.String()), Options{MaxRows: 2}); err != nil || len(sh.Students) != 1 {
		t.Errorf("empty lines: %v", err)
	}
}

// repeatReader reads s n times without holding it.
func repeatReader(s string, n int) io.Reader { return &repeater{s: s, left: len(s) * n} }

type repeater struct {
	s         string
	off, left int
}

func (r *repeater) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 0 {
		k := copy(p[n:min(len(p), n+r.left)], r.s[r.off:])
		n, r.left, r.off = n+k, r.left-k, (r.off+k)%len(r.s)
	}
	return n, nil
}

// The encoding is chosen from the first non-ASCII bytes, wherever they are.
func TestCSVEncodingSniff(t *testing.T) {
	var b strings.Builder
	b.WriteString("name,class,1\n")
	for b.Len() < 100<<10 {
		b.WriteString("zhang,c1,1\n")
	}
	b.WriteString("王五,二班,3\n")
	gbk, err := simplifiedchinese.GB18030.NewEncoder().String(b.String())
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"utf-8": b.String(), "gb18030": gbk} {
		sh, err := ParseCSV(strings.NewReader(text), Options{MaxRows: 1 << 20})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if last := sh.Students[len(sh.Students)-1]; last.Name != "王五" || last.Class != "二班" {
			t.Errorf("%s: last student %+v", name, last)
		}
	}
	// Invalid UTF-8 after a BOM becomes U+FFFD.
	sh, err := ParseCSV(strings.NewReader("\ufeff姓名,1\n张\xff三,1\n"), Options{})
	if err != nil || !utf8.ValidString(sh.Students[0].Name) || !strings.Contains(sh.Students[0].Name, "\uFFFD") {
		t.Errorf("invalid UTF-8: %v %+v", err, sh)
	}
	// One byte at a time gives the same sheet.
	fx := []byte("标题\n序号,姓名,班级,1,2\n1,张三,1班,A,\"4\"\n2,李四,\"1\n班\",B,3\n")
	want, err := parseCSVBytes(fx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCSV(&oneByte{fx}, Options{})
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if err != nil || string(g) != string(w) || len(want.Students) != 2 {
		t.Errorf("byte by byte:\n%v %s\nwant %s", err, g, w)
	}
}

// oneByte reads one byte per call.
type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], o.b = o.b[0], o.b[1:]
	return 1, nil
}

func TestXLSXStreamingDetails(t *testing.T) {
	// Rows and cells without r take the next position; rich text runs are
	// concatenated and phonetic runs skipped; a vertical merge fills rows
	// that hold nothing else; booleans and errors are raw text.
	sst := func(w io.Writer) error {
		_, err := io.WriteString(w, `<sst `+sheetNS+`><si><t>姓名</t></si>`+
			`<si><r><rPr><b/></rPr><t>王</t></r><r><t xml:space="preserve">五</t></r><rPh sb="0" eb="1"><t>オウ</t></rPh></si>`+
			`<si><t>班级</t><rPh><t>x</t></rPh></si></sst>`)
		return err
	}
	rows := `<row r="2"><c t="s"><v>0</v></c><c t="s"><v>2</v></c><c><v>1</v></c><c t="inlineStr"><is><t>2</t></is></c></row>` +
		`<row><c t="s"><v>1</v></c><c t="inlineStr"><is><t>3班</t></is></c><c t="b"><v>1</v></c><c t="e"><v>#N/A</v></c></row>` +
		`<row r="6"><c r="A6" t="inlineStr"><is><r><t>赵</t></r><r><t>六</t></r></is></c><c r="C6" t="str"><f>X</f><v>2</v></c></row>` +
		`<row r="8"><c r="A8" t="inlineStr"><is><t>孙七</t></is></c><c r="D8"><v>4</v></c></row>` +
		`<row r="9" spans="1:4"/>`
	merge := `<mergeCells count="1"><mergeCell ref="B6:B9"/></mergeCells>`
	data := rawXLSX(t, sst, sheetXML(`<row r="1"><c r="A1" t="inlineStr"><is><t>成绩</t></is></c></row>`+rows, nil, merge))
	sh, err := parseXLSXBytes(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range sh.Students {
		got = append(got, fmt.Sprintf("%s@%d:%s", st.ID, st.Row, cellsOf(st)))
	}
	if sh.HeaderRow != 2 || len(sh.Students) != 3 || got[0] != "3班_王五@3:Q1=1" || got[1] != "赵六@6:Q1=2" || got[2] != "孙七@8:Q2=4" {
		t.Errorf("header %d students %v warnings %q", sh.HeaderRow, got, sh.Warnings)
	}
	// B6:B9 holds nothing at B6, so nothing is filled; a merge from a value
	// fills rows 7 (absent) and 8.
	data = rawXLSX(t, nil, sheetXML(headerRow+`<row r="6">`+is("A6", "赵六")+is("B6", "2班")+`</row><row r="8">`+is("A8", "孙七")+`</row>`+
		`<row r="9"><c r="A9" s="3"/></row>`, nil, `<mergeCells count="1"><mergeCell ref="B6:B9"/></mergeCells>`))
	sh, err = parseXLSXBytes(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Students) != 2 || sh.Students[1].ID != "2班_孙七" {
		t.Errorf("merged class: %+v", sh.Students)
	}
}

func cellsOf(st Student) string {
	var parts []string
	for _, q := range []string{"Q1", "Q2"} {
		if c, ok := st.Cells[q]; ok {
			parts = append(parts, q+"="+c.Raw)
		}
	}
	return strings.Join(parts, ",")
}

func TestTooManyMerges(t *testing.T) {
	var m strings.Builder
	m.WriteString(`<mergeCells>`)
	for r := 2; r < maxMerges+3; r++ {
		fmt.Fprintf(&m, `<mergeCell ref="E%d:F%d"/>`, r, r)
	}
	m.WriteString(`</mergeCells>`)
	data := rawXLSX(t, nil, sheetXML(headerRow, studentRows(2, 5), m.String()))
	sh, err := parseXLSXBytes(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Warnings) != 1 || !strings.Contains(sh.Warnings[0], "merged ranges were not filled") || len(sh.Students) != 5 {
		t.Errorf("warnings %q", sh.Warnings)
	}
}

// The server passes the upload as a file: ParseXLSX reads it in place.
func TestParseXLSXFile(t *testing.T) {
	f, err := os.Open(filepath.Join(fixturesDir(t), "physics_midterm.xlsx"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := ParseXLSX(f, fi.Size(), Options{})
	if err != nil || len(sh.Students) != 44 {
		t.Fatalf("%v", err)
	}
	if _, err := ParseXLSX(f, MaxXLSXBytes+1, Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size past MaxXLSXBytes: %v", err)
	}
}

func TestLegacyXLSAdvice(t *testing.T) {
	data := append(append([]byte{}, oleSignature...), make([]byte, 600)...)
	_, err := parseXLSXBytes(data, Options{})
	if !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), ".xlsx") || !strings.Contains(err.Error(), "legacy .xls") {
		t.Errorf("err = %v", err)
	}
}
