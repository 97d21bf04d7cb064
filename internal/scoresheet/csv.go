package scoresheet

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// sniffBytes is how much of a text file is looked at to choose its
// encoding and its delimiter.
const sniffBytes = 64 << 10

// ParseCSV parses a CSV score sheet read from r. The bytes are decoded as
// UTF-8 (a BOM is stripped), else as UTF-16 when they start with a UTF-16
// BOM, else as GB18030 (what Excel on a Chinese Windows machine saves): the
// first 64 KiB from the first non-ASCII byte decide between UTF-8 and
// GB18030. The delimiter is a comma unless the header line has more tabs or
// semicolons. The rules are those of ParseXLSX; Row and HeaderRow are line
// numbers.
//
// It streams: a line (or record) longer than o.MaxLineBytes, a field
// longer than o.MaxCellBytes and the row, column, cell and text caps of o
// fail with an error wrapping ErrTooLarge before the text is held.
func ParseCSV(r io.Reader, o Options) (*Sheet, error) {
	o = o.withDefaults()
	text := bufio.NewReaderSize(decodeText(bufio.NewReaderSize(r, sniffBytes)), sniffBytes)
	head, err := text.Peek(sniffBytes)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("scoresheet: reading CSV: %w", err)
	}
	comma := sniffDelimiter(string(head))
	guard := &csvGuard{r: text, comma: byte(comma), o: o, line: 1}
	cr := csv.NewReader(guard)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	cr.Comma = comma

	g := newGrid(o)
	var cells []gcell
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if guard.err != nil {
				return nil, guard.err
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("scoresheet: CSV 第%d行格式错误 (malformed CSV at line %d): %w", pe.Line, pe.Line, err)
			}
			return nil, fmt.Errorf("scoresheet: reading CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		cells = cells[:0]
		for i, f := range rec {
			if f == "" {
				continue
			}
			if err := checkCell(len(f), i, line, o); err != nil {
				return nil, err
			}
			if err := g.addCell(i, len(f)); err != nil {
				return nil, err
			}
			cells = append(cells, gcell{col: i, v: f})
		}
		if len(cells) == 0 {
			continue
		}
		err = g.addRow(line, slices.Clone(cells))
		if errors.Is(err, errHeaderNotFound) {
			return nil, ErrNoHeader
		}
		if err != nil {
			return nil, err
		}
	}
	return parseGrid(g.rows, o, "", nil)
}

// decodeText turns an uploaded text file into UTF-8 as it is read: UTF-8
// after a BOM, UTF-16 after its BOM, else UTF-8 or GB18030 as the bytes
// from the first non-ASCII one tell. Invalid bytes become U+FFFD.
func decodeText(br *bufio.Reader) io.Reader {
	switch b, _ := br.Peek(3); {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3)
		return transform.NewReader(br, unicode.UTF8.NewDecoder())
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return transform.NewReader(br, unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder())
	}
	return &sniffReader{br: br}
}

// sniffReader passes ASCII through until the first non-ASCII byte, then
// decodes the rest as UTF-8 if the next sniffBytes bytes are valid UTF-8,
// else as GB18030.
type sniffReader struct {
	br  *bufio.Reader
	dec io.Reader
}

func (s *sniffReader) Read(p []byte) (int, error) {
	if s.dec != nil {
		return s.dec.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	head, err := s.br.Peek(sniffBytes)
	if len(head) == 0 {
		return 0, err
	}
	i := 0
	for i < len(head) && i < len(p) && head[i] < utf8.RuneSelf {
		i++
	}
	if i > 0 {
		copy(p, head[:i])
		_, _ = s.br.Discard(i)
		return i, nil
	}
	if validUTF8Prefix(head, err != nil) {
		s.dec = transform.NewReader(s.br, unicode.UTF8.NewDecoder())
	} else {
		s.dec = transform.NewReader(s.br, simplifiedchinese.GB18030.NewDecoder())
	}
	return s.dec.Read(p)
}

// validUTF8Prefix reports whether b is valid UTF-8, allowing a rune cut at
// its end unless atEOF.
func validUTF8Prefix(b []byte, atEOF bool) bool {
	if !atEOF {
		// Drop a last rune that may continue past b.
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	return utf8.Valid(b)
}

// csvGuard sits between the decoded text and encoding/csv, following the
// CSV structure as csv.Reader (with LazyQuotes) parses it, and fails with
// ErrTooLarge before csv.Reader would hold a physical line or a record
// longer than o.MaxLineBytes, a field much longer than o.MaxCellBytes, or
// a record of more than maxColumns fields.
type csvGuard struct {
	r     io.Reader
	comma byte
	o     Options
	err   error

	state   uint8
	line    int // 1-based physical line
	recLine int // the line the current record starts on
	lineN   int // bytes of the current physical line
	recN    int // bytes of the current record
	fieldN  int // bytes of the current field, \r not counted
	fields  int // fields of the current record so far
}

const (
	csvFieldStart uint8 = iota
	csvUnquoted
	csvQuoted
	csvQuote   // a quote inside a quoted field
	csvQuoteCR // a quote then \r inside a quoted field
)

func (g *csvGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	for i := 0; i < n; i++ {
		if g.err = g.step(p[i]); g.err != nil {
			return i, g.err
		}
	}
	return n, err
}

// step follows one byte.
func (g *csvGuard) step(c byte) error {
	o := g.o
	g.lineN++
	if g.recN++; g.recN == 1 {
		g.recLine = g.line
	}
	if g.lineN > o.MaxLineBytes || g.recN > o.MaxLineBytes {
		zh, en := sizeText(int64(o.MaxLineBytes))
		return fmt.Errorf("%w: 第%d行超过 %s (line %d is longer than %s)", ErrTooLarge, g.line, zh, g.line, en)
	}
	if c == '\n' {
		g.line++
		g.lineN = 0
	}
	endRecord := func() { g.state, g.recN, g.fieldN, g.fields = csvFieldStart, 0, 0, 0 }
	nextField := func() error {
		g.state, g.fieldN = csvFieldStart, 0
		if g.fields++; g.fields >= maxColumns {
			return fmt.Errorf("%w: 第%d行超过 %d 个字段 (line %d has more than %d fields)", ErrTooLarge, g.line, maxColumns, g.line, maxColumns)
		}
		return nil
	}
	count := func() error {
		if c != '\r' {
			g.fieldN++
		}
		return checkCell(g.fieldN, g.fields, g.recLine, o)
	}
	switch g.state {
	case csvFieldStart:
		switch c {
		case '"':
			g.state = csvQuoted
			return nil
		case g.comma:
			return nextField()
		case '\n':
			endRecord()
			return nil
		}
		g.state = csvUnquoted
		return count()
	case csvUnquoted:
		switch c {
		case g.comma:
			return nextField()
		case '\n':
			endRecord()
			return nil
		}
		return count()
	case csvQuoted:
		if c == '"' {
			g.state = csvQuote
			return nil
		}
		return count()
	case csvQuote:
		switch c {
		case '"': // an escaped quote
			g.state = csvQuoted
			return count()
		case g.comma:
			return nextField()
		case '\n':
			endRecord()
			return nil
		case '\r':
			g.state = csvQuoteCR
			return nil
		}
		g.state = csvQuoted // a bare quote: kept, with this byte
		g.fieldN++
		return count()
	case csvQuoteCR:
		if c == '\n' {
			endRecord()
			return nil
		}
		g.state = csvQuoted // the quote and the \r were data
		g.fieldN++
		if c == '"' {
			g.state = csvQuote
			return nil
		}
		return count()
	}
	return nil
}

// sniffDelimiter picks ',' unless the first line holding 姓名 (or, failing
// that, the first non-empty line) has more tabs or semicolons than commas.
func sniffDelimiter(text string) rune {
	var first string
	for i, line := range strings.SplitN(text, "\n", headerScanRows+1) {
		if i >= headerScanRows {
			break
		}
		if first == "" && strings.TrimSpace(line) != "" {
			first = line
		}
		if strings.Contains(line, "姓名") || strings.Contains(strings.ToLower(line), "name") {
			first = line
			break
		}
	}
	best, n := ',', strings.Count(first, ",")
	for _, d := range []rune{'\t', ';'} {
		if c := strings.Count(first, string(d)); c > n {
			best, n = d, c
		}
	}
	return best
}
