package scoresheet

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/transform"
)

// Bounds on .xlsx input.
const (
	// MaxXLSXBytes bounds the size of an uploaded workbook file.
	MaxXLSXBytes = 64 << 20
	// maxSheets bounds the worksheets looked at for a header.
	maxSheets = 100
	// maxMerges bounds the merged ranges kept for a worksheet; beyond it
	// none is filled (with a warning).
	maxMerges = 20000
	// maxMergeFill bounds the cells written while filling merged ranges.
	maxMergeFill = 1 << 18
)

// oleSignature starts legacy .xls files and encrypted workbooks.
var oleSignature = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// ParseXLSX parses an .xlsx workbook of size bytes read from r. It looks at
// every worksheet in order and uses the first whose header row (see the
// package rules) leads to a sheet with students; cells hidden under a
// merged range take the range's top-left value. Formulas give their cached
// values. A workbook that is no .xlsx gives ErrUnsupportedFormat; one
// without a header anywhere gives ErrNoHeader; one past a cap of o gives
// an error wrapping ErrTooLarge.
//
// It streams: the zip is read in place, and the XML of the workbook, the
// shared strings and each worksheet token by token, so memory follows what
// is kept (the shared strings and the rows holding values), not the size
// of the file. It never panics: a panic in the reader becomes an error.
func ParseXLSX(r io.ReaderAt, size int64, o Options) (sh *Sheet, err error) {
	o = o.withDefaults()
	defer func() {
		if p := recover(); p != nil {
			sh, err = nil, fmt.Errorf("%w: 工作簿已损坏 (corrupt workbook: %v)", ErrUnsupportedFormat, p)
		}
	}()
	if size > MaxXLSXBytes {
		return nil, fmt.Errorf("%w: 文件超过 %d MiB (the file is larger than %d MiB)", ErrTooLarge, MaxXLSXBytes>>20, MaxXLSXBytes>>20)
	}
	var head [8]byte
	n, _ := r.ReadAt(head[:], 0)
	if bytes.HasPrefix(head[:n], oleSignature) {
		return nil, fmt.Errorf("%w: 旧版 .xls 或加密的工作簿 (legacy .xls or encrypted workbook)", ErrUnsupportedFormat)
	}
	if err := checkZipEntries(r, size); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedFormat, err)
	}
	wb := newWorkbook(zr, o)
	sheets, sstPart, err := wb.sheetList()
	if err != nil {
		return nil, err
	}
	if err := wb.loadSharedStrings(sstPart); err != nil {
		return nil, err
	}

	var firstErr error // the first error of a sheet that had a header
	var skipped []string
	for _, s := range sheets {
		rows, warn, err := wb.readSheet(s.part)
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("工作表“%s” (sheet %q): %w", s.name, s.name, err)
		}
		if err != nil {
			continue // no header, or an unreadable sheet: try the next
		}
		sh, err := parseGrid(rows, o, s.name, warn)
		if err == nil {
			if len(skipped) > 0 {
				list := samples{}
				for _, name := range skipped {
					list.add(0, name, 0)
				}
				sh.Warnings = append(sh.Warnings, fmt.Sprintf(
					"已跳过有表头但不可用的工作表：%s (skipped sheets with a header but no usable data: %s)",
					list.names("、", "……"), list.names(", ", "...")))
			}
			return sh, nil
		}
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("工作表“%s” (sheet %q): %w", s.name, s.name, err)
		}
		if !errors.Is(err, ErrNoHeader) {
			skipped = append(skipped, s.name)
			if firstErr == nil {
				firstErr = fmt.Errorf("工作表“%s” (sheet %q): %w", s.name, s.name, err)
			}
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, ErrNoHeader
}

// workbook is an open .xlsx package.
type workbook struct {
	o     Options
	files map[string]*zip.File // by name
	lower map[string]*zip.File // by lower-cased name: part names ignore case
	sst   sharedStrings
}

func newWorkbook(zr *zip.Reader, o Options) *workbook {
	wb := &workbook{o: o, files: make(map[string]*zip.File, len(zr.File)), lower: make(map[string]*zip.File, len(zr.File))}
	for _, f := range zr.File {
		wb.files[f.Name] = f
		if l := strings.ToLower(f.Name); wb.lower[l] == nil {
			wb.lower[l] = f
		}
	}
	return wb
}

// find returns the zip entry of a part, nil when there is none.
func (wb *workbook) find(name string) *zip.File {
	if f := wb.files[name]; f != nil {
		return f
	}
	return wb.lower[strings.ToLower(name)]
}

// open starts streaming a part through its caps. It returns nil, nil when
// the part does not exist.
func (wb *workbook) open(name string) (*partReader, error) {
	f := wb.find(name)
	if f == nil {
		return nil, nil
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedFormat, clip(name), err)
	}
	return &partReader{rc: rc, name: f.Name, max: wb.o.MaxPartBytes, maxToken: wb.o.MaxLineBytes}, nil
}

// sheetRef is a worksheet in workbook order.
type sheetRef struct{ name, part string }

// sheetList reads the workbook part and its relationships: the worksheets
// in order with their part names, and the shared-strings part ("" when the
// workbook has none).
func (wb *workbook) sheetList() ([]sheetRef, string, error) {
	wbPart := "xl/workbook.xml"
	if wb.find(wbPart) == nil {
		// The package relationships name the workbook part.
		rels, err := wb.readRels("_rels/.rels", "", nil)
		if err != nil {
			return nil, "", err
		}
		for _, r := range rels {
			if strings.HasSuffix(r.typ, "/officeDocument") {
				wbPart = r.target
				break
			}
		}
		if wb.find(wbPart) == nil {
			return nil, "", fmt.Errorf("%w: 不是 .xlsx 工作簿 (no workbook part)", ErrUnsupportedFormat)
		}
	}
	type entry struct{ name, id string }
	var entries []entry
	want := map[string]bool{}
	err := wb.scan(wbPart, func(d *xml.Decoder, t xml.StartElement) (bool, error) {
		if t.Name.Local != "sheet" {
			return true, nil
		}
		var e entry
		for _, a := range t.Attr {
			switch {
			case a.Name.Local == "name" && a.Name.Space == "":
				e.name = clip(a.Value)
			case a.Name.Local == "id" && a.Name.Space != "":
				e.id = a.Value
			}
		}
		entries = append(entries, e)
		want[e.id] = true
		return len(entries) < maxSheets, nil
	})
	if err != nil {
		return nil, "", err
	}
	base := path.Dir(wbPart)
	rels, err := wb.readRels(path.Join(base, "_rels", path.Base(wbPart)+".rels"), base, want)
	if err != nil {
		return nil, "", err
	}
	byID := map[string]rel{}
	sstPart := ""
	for _, r := range rels {
		if strings.HasSuffix(r.typ, "/sharedStrings") {
			if sstPart == "" {
				sstPart = r.target
			}
			continue
		}
		byID[r.id] = r
	}
	if sstPart == "" && wb.find(path.Join(base, "sharedStrings.xml")) != nil {
		sstPart = path.Join(base, "sharedStrings.xml")
	}
	var sheets []sheetRef
	for _, e := range entries {
		r, ok := byID[e.id]
		if !ok || !strings.HasSuffix(r.typ, "/worksheet") {
			continue // a chart sheet, a dialog sheet or a dangling one
		}
		sheets = append(sheets, sheetRef{name: e.name, part: r.target})
	}
	return sheets, sstPart, nil
}

// rel is one relationship of a .rels part.
type rel struct{ id, typ, target string }

// readRels reads a relationships part, resolving targets against base.
// With want, it keeps only the relationships whose id is in want and those
// of shared strings. A missing part has no relationships.
func (wb *workbook) readRels(part, base string, want map[string]bool) ([]rel, error) {
	var rels []rel
	err := wb.scan(part, func(d *xml.Decoder, t xml.StartElement) (bool, error) {
		if t.Name.Local != "Relationship" {
			return true, nil
		}
		var r rel
		external := false
		for _, a := range t.Attr {
			switch a.Name.Local {
			case "Id":
				r.id = a.Value
			case "Type":
				r.typ = a.Value
			case "Target":
				r.target = a.Value
			case "TargetMode":
				external = strings.EqualFold(a.Value, "External")
			}
		}
		if external || r.target == "" {
			return true, nil
		}
		if want != nil && !want[r.id] && !strings.HasSuffix(r.typ, "/sharedStrings") {
			return true, nil
		}
		if strings.HasPrefix(r.target, "/") {
			r.target = strings.TrimPrefix(path.Clean(r.target), "/")
		} else {
			r.target = path.Join(base, r.target)
		}
		rels = append(rels, r)
		return len(rels) <= 2*maxSheets, nil
	})
	return rels, err
}

// scan streams a small part (the workbook, relationships), calling fn for
// each start element until fn returns false. A missing part is no error.
func (wb *workbook) scan(part string, fn func(*xml.Decoder, xml.StartElement) (bool, error)) error {
	pr, err := wb.open(part)
	if err != nil || pr == nil {
		return err
	}
	defer pr.Close()
	d := newDecoder(pr)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return pr.fail(err)
		}
		if t, ok := tok.(xml.StartElement); ok {
			more, err := fn(d, t)
			if err != nil || !more {
				return err
			}
		}
	}
}

// sharedStrings are a workbook's shared strings: all their text in one
// string, and the offset of each (with the end as a last offset).
type sharedStrings struct {
	text string
	off  []uint32
}

// get returns shared string i, "" when there is none.
func (s *sharedStrings) get(i int) string {
	if i < 0 || i+1 >= len(s.off) {
		return ""
	}
	return s.text[s.off[i]:s.off[i+1]]
}

// loadSharedStrings streams the shared-strings part into wb.sst: rich text
// runs are concatenated, phonetic runs (<rPh>) skipped.
func (wb *workbook) loadSharedStrings(part string) error {
	if part == "" {
		return nil
	}
	pr, err := wb.open(part)
	if err != nil || pr == nil {
		return err
	}
	defer pr.Close()
	maxBytes := min(int64(wb.o.MaxSharedStringBytes), 1<<32-1)
	var text strings.Builder
	off := []uint32{0}
	var cur []byte
	inSI, inT, phonetic := false, false, 0
	d := newDecoder(pr)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: 共享字符串已损坏 (corrupt shared strings: %v)", ErrUnsupportedFormat, pr.fail(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "si":
				if len(off) > wb.o.MaxSharedStrings {
					return fmt.Errorf("%w: 共享字符串超过 %d 个 (more than %d shared strings)",
						ErrTooLarge, wb.o.MaxSharedStrings, wb.o.MaxSharedStrings)
				}
				inSI, inT, phonetic, cur = true, false, 0, cur[:0]
			case "rPh":
				if inSI {
					phonetic++
				}
			case "t":
				inT = inSI && phonetic == 0
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				inT = false
			case "rPh":
				if phonetic > 0 {
					phonetic--
				}
			case "si":
				if inSI {
					text.Write(unescapeBstr(cur))
					off = append(off, uint32(text.Len()))
					inSI, inT = false, false
				}
			}
		case xml.CharData:
			if inT {
				cur = append(cur, t...)
				if int64(text.Len()+len(cur)) > maxBytes {
					zh, en := sizeText(maxBytes)
					return fmt.Errorf("%w: 共享字符串合计超过 %s (shared strings larger than %s)", ErrTooLarge, zh, en)
				}
			}
		}
	}
	wb.sst = sharedStrings{text: text.String(), off: off}
	return nil
}

// pendingCell is a cell of the row being read: its text is rowText[a:b],
// or s when it needs no copy (a shared string).
type pendingCell struct {
	col  int
	a, b int
	s    string
	copy bool
}

// readSheet streams one worksheet: its rows holding values, then its
// merged ranges, which it fills. It returns errHeaderNotFound, without
// reading on, when the first rows hold no header; an error wrapping
// ErrTooLarge past a cap; another error for an unreadable sheet.
func (wb *workbook) readSheet(part string) (rows []gridRow, warn []string, err error) {
	pr, err := wb.open(part)
	if err != nil {
		return nil, nil, err
	}
	if pr == nil {
		return nil, nil, fmt.Errorf("scoresheet: missing worksheet part %s", clip(part))
	}
	defer pr.Close()
	o := wb.o
	g := newGrid(o)
	var (
		inData, inRow, inCell, inV, inIS, inT bool
		phonetic                              int
		rowNum, col, width                    int
		cellType                              string
		hasIS                                 bool
		val, isText, rowText                  []byte
		pending                               []pendingCell
		merges                                []mergeRange
		tooManyMerges                         bool
	)
	d := newDecoder(pr)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("scoresheet: worksheet %s: "+format, append([]any{clip(part)}, args...)...)
	}
loop:
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, pr.fail(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "sheetData":
				inData = true
			case "row":
				if !inData {
					continue
				}
				n := rowNum + 1
				if v := attr(t, "r"); v != "" {
					if n, err = strconv.Atoi(v); err != nil || n <= rowNum {
						return nil, nil, bad("bad row number %q", clip(v))
					}
				}
				if n > maxRowNumber {
					return nil, nil, bad("row %d beyond row %d", n, maxRowNumber)
				}
				rowNum, col, inRow = n, -1, true
				pending, rowText = pending[:0], rowText[:0]
			case "c":
				if !inRow {
					continue
				}
				c := col + 1
				if v := attr(t, "r"); v != "" {
					var ok bool
					if c, _, ok = parseRef(v); !ok || c <= col {
						return nil, nil, bad("bad cell reference %q", clip(v))
					}
				}
				if c >= maxColumns {
					return nil, nil, bad("cell beyond column %d", maxColumns)
				}
				col, width, inCell = c, max(width, c+1), true
				cellType, hasIS, val, isText = attr(t, "t"), false, val[:0], isText[:0]
			case "v":
				inV = inCell
			case "is":
				inIS, hasIS = inCell, hasIS || inCell
				phonetic = 0
			case "rPh":
				if inIS {
					phonetic++
				}
			case "t":
				inT = inIS && phonetic == 0
			case "mergeCell":
				if inData || !g.header {
					continue
				}
				if len(merges) >= maxMerges {
					tooManyMerges = true
					continue
				}
				if m, ok := parseMerge(attr(t, "ref")); ok {
					merges = append(merges, m)
				}
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "v":
				inV = false
			case "t":
				inT = false
			case "rPh":
				if phonetic > 0 {
					phonetic--
				}
			case "is":
				inIS, inT = false, false
			case "c":
				if !inCell {
					continue
				}
				inCell, inV, inIS, inT = false, false, false, false
				p, ok := wb.cellValue(cellType, hasIS, val, isText, &rowText)
				if !ok {
					continue
				}
				n := len(p.s)
				if p.copy {
					n = p.b - p.a
				}
				if err := checkCell(n, col, rowNum, o); err != nil {
					return nil, nil, err
				}
				copied := 0
				if p.copy {
					copied = n
				}
				if err := g.addCell(col, copied); err != nil {
					return nil, nil, err
				}
				p.col = col
				pending = append(pending, p)
			case "row":
				if !inRow {
					continue
				}
				inRow = false
				if len(pending) == 0 {
					continue // an empty (perhaps styled) row
				}
				s := string(rowText)
				cells := make([]gcell, len(pending))
				for i, p := range pending {
					cells[i] = gcell{col: p.col, v: p.s}
					if p.copy {
						cells[i].v = s[p.a:p.b]
					}
				}
				if err := g.addRow(rowNum, cells); err != nil {
					return nil, nil, err
				}
			case "sheetData":
				inData = false
				if !g.header {
					return nil, nil, errHeaderNotFound
				}
			case "mergeCells":
				break loop // nothing after the merged ranges matters
			}
		case xml.CharData:
			switch {
			case inV:
				val = append(val, t...)
				if len(val) > o.MaxCellBytes {
					return nil, nil, checkCell(len(val), col, rowNum, o)
				}
			case inT:
				isText = append(isText, t...)
				// _xHHHH_ escapes shrink 7 bytes to 1: the exact check
				// comes once the text is unescaped.
				if len(isText) > 7*o.MaxCellBytes {
					return nil, nil, checkCell(len(isText), col, rowNum, o)
				}
			}
		}
	}
	if !g.header {
		return nil, nil, errHeaderNotFound
	}
	rows = g.rows
	switch {
	case tooManyMerges:
		warn = append(warn, "合并单元格过多，未展开合并单元格 (too many merged cells; merged ranges were not filled)")
	case len(merges) > 0:
		var complete bool
		if rows, complete = fillMerged(rows, merges, width, o.MaxRows); !complete {
			warn = append(warn, "合并单元格过大，部分未展开 (merged ranges too large; some were not filled)")
		}
	}
	return rows, warn, nil
}

// cellValue turns a finished <c> into a pending cell, ok=false when it
// holds no value. Copied text goes to the end of *rowText.
func (wb *workbook) cellValue(typ string, hasIS bool, val, isText []byte, rowText *[]byte) (pendingCell, bool) {
	own := func(b []byte) (pendingCell, bool) {
		if len(b) == 0 {
			return pendingCell{}, false
		}
		a := len(*rowText)
		*rowText = append(*rowText, b...)
		return pendingCell{a: a, b: len(*rowText), copy: true}, true
	}
	switch {
	case hasIS:
		return own(unescapeBstr(isText))
	case typ == "s":
		i, err := strconv.Atoi(string(bytes.TrimSpace(val)))
		if err != nil {
			return pendingCell{}, false
		}
		s := wb.sst.get(i)
		return pendingCell{s: s}, s != ""
	}
	// Numbers, booleans ("1", "0"), errors (t="e"), formula strings
	// (t="str"), dates (t="d"): the raw text, as written.
	return own(val)
}

// mergeRange is a merged range: 0-based columns, 1-based rows, inclusive.
type mergeRange struct{ c0, r0, c1, r1 int }

// parseMerge parses a merged range "A1:B2", normalising its corners.
func parseMerge(ref string) (mergeRange, bool) {
	a, b, ok := strings.Cut(ref, ":")
	if !ok {
		return mergeRange{}, false
	}
	c0, r0, ok0 := parseRef(a)
	c1, r1, ok1 := parseRef(b)
	if !ok0 || !ok1 || r0 < 1 || r1 < 1 {
		return mergeRange{}, false
	}
	if c1 < c0 {
		c0, c1 = c1, c0
	}
	if r1 < r0 {
		r0, r1 = r1, r0
	}
	return mergeRange{c0, r0, c1, r1}, true
}

// parseRef parses a cell reference "B12" (or just "B", or "$B$12"): the
// 0-based column and the row (0 when absent).
func parseRef(ref string) (col, row int, ok bool) {
	ref = strings.TrimPrefix(ref, "$")
	i, n := 0, 0
	for ; i < len(ref); i++ {
		c := ref[i] | 0x20 // lower-case a letter
		if c < 'a' || c > 'z' {
			break
		}
		if n = n*26 + int(c-'a') + 1; n > maxColumns {
			return 0, 0, false
		}
	}
	if n == 0 {
		return 0, 0, false
	}
	if rest := strings.TrimPrefix(ref[i:], "$"); rest != "" {
		r, err := strconv.Atoi(rest)
		if err != nil || r < 1 || r > maxRowNumber || rest[0] == '+' || rest[0] == '-' {
			return 0, 0, false
		}
		row = r
	}
	return n - 1, row, true
}

// fillMerged writes each merged range's top-left value into every cell of
// the range, within the columns of the sheet (width) and the rows up to
// the last one holding a value; rows that only a range covers are added,
// up to maxRows rows in all. It reports false if it stopped there or at
// maxMergeFill cells.
func fillMerged(rows []gridRow, merges []mergeRange, width, maxRows int) ([]gridRow, bool) {
	if len(rows) == 0 {
		return rows, true
	}
	last := rows[len(rows)-1].num
	find := func(num int) int {
		i, ok := slices.BinarySearchFunc(rows, num, func(r gridRow, n int) int { return r.num - n })
		if !ok {
			return -1
		}
		return i
	}
	// Read every top-left value before writing any, so overlapping ranges
	// cannot feed each other.
	type fill struct {
		m mergeRange
		v string
	}
	var fills []fill
	for _, m := range merges {
		m.c1, m.r1 = min(m.c1, width-1), min(m.r1, last)
		if m.c0 > m.c1 || m.r0 > m.r1 {
			continue
		}
		i := find(m.r0)
		if i < 0 {
			continue
		}
		if v := rows[i].cell(m.c0); v != "" {
			fills = append(fills, fill{m, v})
		}
	}
	if len(fills) == 0 {
		return rows, true
	}
	type write struct {
		row, col int32
		v        string
	}
	var writes []write
	added := map[int]bool{} // rows that only merged ranges cover
	complete := true
fill:
	for _, f := range fills {
		for r := f.m.r0; r <= f.m.r1; r++ {
			if !added[r] && find(r) < 0 {
				if len(rows)+len(added) >= maxRows {
					complete = false
					break fill
				}
				added[r] = true
			}
			for c := f.m.c0; c <= f.m.c1; c++ {
				if len(writes) >= maxMergeFill {
					complete = false
					break fill
				}
				writes = append(writes, write{int32(r), int32(c), f.v})
			}
		}
	}
	// Later writes win, as when they are applied in order.
	slices.SortStableFunc(writes, func(a, b write) int {
		if a.row != b.row {
			return int(a.row - b.row)
		}
		return int(a.col - b.col)
	})
	out := make([]gridRow, 0, len(rows))
	i := 0
	for j := 0; j < len(writes); {
		num := int(writes[j].row)
		for i < len(rows) && rows[i].num < num {
			out = append(out, rows[i])
			i++
		}
		var base []gcell
		if i < len(rows) && rows[i].num == num {
			base = rows[i].cells
			i++
		}
		k := j
		for k < len(writes) && int(writes[k].row) == num {
			k++
		}
		cells := make([]gcell, 0, len(base)+k-j)
		b := 0
		for w := j; w < k; w++ {
			c := int(writes[w].col)
			if w+1 < k && int(writes[w+1].col) == c {
				continue // a later write to the same cell wins
			}
			for b < len(base) && base[b].col < c {
				cells = append(cells, base[b])
				b++
			}
			if b < len(base) && base[b].col == c {
				b++
			}
			cells = append(cells, gcell{col: c, v: writes[w].v})
		}
		cells = append(cells, base[b:]...)
		out = append(out, gridRow{num: num, cells: cells})
		j = k
	}
	out = append(out, rows[i:]...)
	return out, complete
}

// attr returns the value of the unprefixed attribute name, "" if absent.
func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// newDecoder returns a decoder for a workbook part; parts declared in
// another encoding than UTF-8 are decoded.
func newDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(r)
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		e, err := htmlindex.Get(label)
		if err != nil {
			return nil, err
		}
		return transform.NewReader(in, e.NewDecoder()), nil
	}
	return d
}

// unescapeBstr decodes the _xHHHH_ escapes of OOXML strings ("_x000D_" is
// a carriage return, "_x005F_" a literal underscore).
func unescapeBstr(b []byte) []byte {
	if !bytes.Contains(b, []byte("_x")) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] == '_' && i+6 < len(b) && b[i+1] == 'x' && b[i+6] == '_' {
			if v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32); err == nil {
				out = utf8.AppendRune(out, rune(v))
				i += 7
				continue
			}
		}
		out = append(out, b[i])
		i++
	}
	return out
}
