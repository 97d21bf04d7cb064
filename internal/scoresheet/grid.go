package scoresheet

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// maxColumns is the number of columns of a worksheet (A..XFD); a CSV
// record with more fields than this is refused before it is split.
const maxColumns = 16384

// maxRowNumber is the number of rows of a worksheet.
const maxRowNumber = 1 << 20

// gcell is one cell that holds a value: its 0-based column and its text.
type gcell struct {
	col int
	v   string
}

// gridRow is one row of a source that holds a value (or was filled by a
// merged range), with its 1-based row (or line) number. Only the cells
// holding a value are kept, in column order, so an empty or styled cell
// costs nothing.
type gridRow struct {
	num   int
	cells []gcell
}

// cell returns the text of the 0-based column i, "" when it holds none.
func (r gridRow) cell(i int) string {
	if i < 0 {
		return ""
	}
	k, ok := slices.BinarySearchFunc(r.cells, i, func(c gcell, i int) int { return c.col - i })
	if !ok {
		return ""
	}
	return r.cells[k].v
}

// errHeaderNotFound stops a reader early: the first headerScanRows rows
// holding a value hold no header, so the rest cannot matter.
var errHeaderNotFound = errors.New("scoresheet: no header in the first rows")

// grid collects one source's rows and applies the caps that do not depend
// on the format: rows, columns and cells holding a value, and cell text.
type grid struct {
	o      Options
	rows   []gridRow
	cols   [maxColumns / 64]uint64 // columns holding a value
	ncols  int
	ncells int
	text   int
	header bool // a header row is among the rows read
}

func newGrid(o Options) *grid { return &grid{o: o} }

// addCell accounts for one cell holding a value in the 0-based column col;
// copied is the bytes of text it adds to memory (0 for a shared string).
func (g *grid) addCell(col, copied int) error {
	if col < 0 || col >= maxColumns {
		return fmt.Errorf("%w: 有数据的列超过 %d 列 (a value lies beyond column %d)", ErrTooLarge, maxColumns, maxColumns)
	}
	if g.cols[col/64]&(1<<(col%64)) == 0 {
		g.cols[col/64] |= 1 << (col % 64)
		if g.ncols++; g.ncols > g.o.MaxCols {
			return fmt.Errorf("%w: 有数据的列超过 %d 列 (more than %d columns hold data)", ErrTooLarge, g.o.MaxCols, g.o.MaxCols)
		}
	}
	if g.ncells++; g.ncells > g.o.MaxCells {
		return fmt.Errorf("%w: 有数据的单元格超过 %d 个 (more than %d cells hold data)", ErrTooLarge, g.o.MaxCells, g.o.MaxCells)
	}
	if g.text += copied; g.text > g.o.MaxTextBytes {
		zh, en := sizeText(int64(g.o.MaxTextBytes))
		return fmt.Errorf("%w: 单元格文字合计超过 %s (more than %s of cell text)", ErrTooLarge, zh, en)
	}
	return nil
}

// addRow appends a row holding at least one value, its cells accounted for
// by addCell. It returns errHeaderNotFound once headerScanRows rows are in
// without a header.
func (g *grid) addRow(num int, cells []gcell) error {
	if len(g.rows) >= g.o.MaxRows {
		return fmt.Errorf("%w: 有数据的行超过 %d 行 (more than %d rows hold data)", ErrTooLarge, g.o.MaxRows, g.o.MaxRows)
	}
	g.rows = append(g.rows, gridRow{num: num, cells: cells})
	if !g.header {
		if isHeaderRow(g.rows[len(g.rows)-1]) {
			g.header = true
		} else if len(g.rows) >= headerScanRows {
			return errHeaderNotFound
		}
	}
	return nil
}

// checkCell fails when a cell's text is longer than o.MaxCellBytes.
func checkCell(n, col, row int, o Options) error {
	if n <= o.MaxCellBytes {
		return nil
	}
	ref := cellRef(col, row)
	zh, en := sizeText(int64(o.MaxCellBytes))
	return fmt.Errorf("%w: 单元格 %s 超过 %s (cell %s is longer than %s)", ErrTooLarge, ref, zh, ref, en)
}

// colName spells a 0-based column as letters: 0 → A, 26 → AA.
func colName(col int) string {
	var b [8]byte
	i := len(b)
	for n := col + 1; n > 0 && i > 0; n = (n - 1) / 26 {
		i--
		b[i] = byte('A' + (n-1)%26)
	}
	return string(b[i:])
}

// cellRef names a cell as a spreadsheet does: column letters, row number.
func cellRef(col, row int) string { return colName(col) + strconv.Itoa(row) }

// sizeText spells a byte count in Chinese and in English: "16 MiB", else
// "4096 字节" / "4096 bytes".
func sizeText(n int64) (zh, en string) {
	if n >= 1<<20 && n%(1<<20) == 0 {
		s := strconv.FormatInt(n>>20, 10) + " MiB"
		return s, s
	}
	s := strconv.FormatInt(n, 10)
	return s + " 字节", s + " bytes"
}
