package scoresheet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xuri/excelize/v2"
)

// Bounds on .xlsx input.
const (
	// MaxXLSXBytes bounds the size of an uploaded workbook and of its
	// unzipped parts (a zip bomb stops at this size).
	MaxXLSXBytes = 64 << 20
	// maxSheets bounds the worksheets looked at for a header.
	maxSheets = 100
	// maxMergeTags bounds the merge-cell tags in any worksheet before merged
	// cells are filled: excelize normalises overlapping merges in quadratic
	// time, so beyond this merges are not filled (with a warning).
	maxMergeTags = 2000
	// maxMergeFill bounds the cells written while filling merged ranges.
	maxMergeFill = 1 << 20
)

// oleSignature starts legacy .xls files and encrypted workbooks.
var oleSignature = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// ParseXLSX parses an .xlsx workbook. It looks at every worksheet in order
// and uses the first whose header row (see the package rules) leads to a
// sheet with students; cells hidden under a merged range take the range's
// top-left value. Formulas give their cached values. A workbook that is no
// .xlsx, or larger than MaxXLSXBytes, gives ErrUnsupportedFormat; one
// without a header anywhere gives ErrNoHeader. It never panics: a panic in
// the workbook reader becomes an error.
func ParseXLSX(r io.Reader, o Options) (sh *Sheet, err error) {
	o = o.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, MaxXLSXBytes+1))
	if err != nil {
		return nil, fmt.Errorf("scoresheet: reading upload: %w", err)
	}
	if len(data) > MaxXLSXBytes {
		return nil, fmt.Errorf("%w: 文件超过 %d MiB (larger than %d MiB)", ErrUnsupportedFormat, MaxXLSXBytes>>20, MaxXLSXBytes>>20)
	}
	if bytes.HasPrefix(data, oleSignature) {
		return nil, fmt.Errorf("%w: 旧版 .xls 或加密的工作簿 (legacy .xls or encrypted workbook)", ErrUnsupportedFormat)
	}
	defer func() {
		if p := recover(); p != nil {
			sh, err = nil, fmt.Errorf("%w: 工作簿已损坏 (corrupt workbook: %v)", ErrUnsupportedFormat, p)
		}
	}()
	f, err := excelize.OpenReader(bytes.NewReader(data), excelize.Options{
		UnzipSizeLimit:    MaxXLSXBytes,
		UnzipXMLSizeLimit: MaxXLSXBytes, // keep every part in memory: no temp files
	})
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedFormat, err)
	}
	defer func() { _ = f.Close() }()

	fillMerges := mergeTagsWithinBound(f)
	var pre []string
	if !fillMerges {
		pre = append(pre, "合并单元格过多，未展开合并单元格 (too many merged cells; merged ranges were not filled)")
	}
	var firstErr error // the first error of a sheet that had a header
	sheets := f.GetSheetList()
	if len(sheets) > maxSheets {
		sheets = sheets[:maxSheets]
	}
	var skipped []string
	for _, name := range sheets {
		rows, warn, err := readSheet(f, name, o, fillMerges)
		if err != nil {
			continue // a chart sheet or an unreadable sheet: try the next
		}
		warn = append(append([]string(nil), pre...), warn...)
		sh, err := parseGrid(rows, o, name, warn)
		if err == nil {
			if len(skipped) > 0 {
				sh.Warnings = append(sh.Warnings, fmt.Sprintf(
					"已跳过有表头但不可用的工作表：%s (skipped sheets with a header but no usable data: %s)",
					strings.Join(skipped, "、"), strings.Join(skipped, ", ")))
			}
			return sh, nil
		}
		if !errors.Is(err, ErrNoHeader) {
			skipped = append(skipped, name)
			if firstErr == nil {
				firstErr = fmt.Errorf("工作表“%s” (sheet %q): %w", name, name, err)
			}
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, ErrNoHeader
}

// readSheet reads one worksheet as raw cell values, at most o.MaxRows rows
// of o.MaxCols columns, and fills merged ranges.
func readSheet(f *excelize.File, name string, o Options, fillMerges bool) (rows []gridRow, warn []string, err error) {
	it, err := f.Rows(name)
	if err != nil {
		return nil, nil, err
	}
	rowsCut, colsCut := false, false
	for num := 1; it.Next(); num++ {
		if num > o.MaxRows {
			rowsCut = true
			break
		}
		cells, err := it.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			_ = it.Close()
			return nil, nil, err
		}
		if len(cells) > o.MaxCols {
			cells, colsCut = cells[:o.MaxCols], true
		}
		rows = append(rows, gridRow{num: num, cells: cells})
	}
	if err := it.Close(); err != nil {
		return nil, nil, err
	}
	warn = truncationWarnings(rowsCut, colsCut, o)
	if fillMerges && findHeader(rows) >= 0 {
		merges, err := f.GetMergeCells(name, true)
		if err == nil && !fillMerged(rows, merges) {
			warn = append(warn, "合并单元格过大，部分未展开 (merged ranges too large; some were not filled)")
		}
	}
	return rows, warn, nil
}

// fillMerged writes each merged range's top-left value into every cell of
// the range that lies within the rows read. It reports false if it stopped
// at maxMergeFill cells.
func fillMerged(rows []gridRow, merges []excelize.MergeCell) bool {
	type fill struct {
		c0, r0, c1, r1 int // 0-based grid indices, inclusive
		v              string
	}
	// Read every top-left value before writing any, so overlapping
	// ranges cannot feed each other.
	var fills []fill
	width := 0
	for _, r := range rows {
		width = max(width, len(r.cells))
	}
	for i := range merges {
		ref := merges[i]
		if len(ref) == 0 {
			continue
		}
		a, b, ok := strings.Cut(ref[0], ":")
		if !ok {
			continue
		}
		c0, r0, err0 := excelize.CellNameToCoordinates(a)
		c1, r1, err1 := excelize.CellNameToCoordinates(b)
		if err0 != nil || err1 != nil {
			continue
		}
		if c1 < c0 {
			c0, c1 = c1, c0
		}
		if r1 < r0 {
			r0, r1 = r1, r0
		}
		c0, r0, c1, r1 = c0-1, r0-1, min(c1, width)-1, min(r1, len(rows))-1
		if r0 >= len(rows) || c0 >= width || c0 > c1 || r0 > r1 {
			continue
		}
		v := rows[r0].cell(c0)
		if v == "" {
			continue
		}
		fills = append(fills, fill{c0, r0, c1, r1, v})
	}
	budget := maxMergeFill
	for _, fl := range fills {
		for r := fl.r0; r <= fl.r1; r++ {
			row := &rows[r]
			if n := fl.c1 + 1; len(row.cells) < n {
				row.cells = append(row.cells, make([]string, n-len(row.cells))...)
			}
			for c := fl.c0; c <= fl.c1; c++ {
				if budget--; budget < 0 {
					return false
				}
				row.cells[c] = fl.v
			}
		}
	}
	return true
}

// mergeTagsWithinBound reports whether every worksheet part has at most
// maxMergeTags merge-cell tags, so excelize's merge handling stays cheap.
func mergeTagsWithinBound(f *excelize.File) bool {
	ok := true
	f.Pkg.Range(func(k, v any) bool {
		name, _ := k.(string)
		data, _ := v.([]byte)
		if strings.HasPrefix(strings.ToLower(name), "xl/worksheets/") &&
			bytes.Count(data, []byte("mergeCell")) > maxMergeTags {
			ok = false
		}
		return ok
	})
	return ok
}
