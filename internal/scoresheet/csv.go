package scoresheet

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
)

// ParseCSV parses a CSV score sheet. The bytes are decoded as UTF-8 (a BOM
// is stripped), else as UTF-16 when they start with a UTF-16 BOM, else as
// GB18030 (what Excel on a Chinese Windows machine saves). The delimiter is
// a comma unless the header line has more tabs or semicolons. The rules
// are those of ParseXLSX; Row and HeaderRow are line numbers.
func ParseCSV(data []byte, o Options) (*Sheet, error) {
	o = o.withDefaults()
	text := decodeText(data)
	r := csv.NewReader(strings.NewReader(text))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = false
	r.Comma = sniffDelimiter(text)

	var rows []gridRow
	rowsCut, colsCut := false, false
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("scoresheet: CSV 第%d行格式错误 (malformed CSV at line %d): %w", pe.Line, pe.Line, err)
			}
			return nil, fmt.Errorf("scoresheet: reading CSV: %w", err)
		}
		if len(rows) >= o.MaxRows {
			rowsCut = true
			break
		}
		if len(rec) > o.MaxCols {
			rec, colsCut = rec[:o.MaxCols], true
		}
		line, _ := r.FieldPos(0)
		rows = append(rows, gridRow{num: line, cells: rec})
	}
	return parseGrid(rows, o, "", truncationWarnings(rowsCut, colsCut, o))
}

// decodeText turns an uploaded text file into UTF-8.
func decodeText(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return strings.ToValidUTF8(string(data[3:]), "\uFFFD")
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}), bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		dec := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder()
		if out, err := dec.Bytes(data); err == nil {
			return strings.ToValidUTF8(string(out), "\uFFFD")
		}
	case utf8.Valid(data):
		return string(data)
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(data)
	if err != nil {
		return strings.ToValidUTF8(string(data), "\uFFFD")
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
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
