// Command gen writes the hostile score sheets of issue 8 for
// bench/workbook.sh (see docs/benchmarks.md):
//
//   - shared.xlsx: 7.5 MB holding 2.5 M shared strings (52.5 MB of
//     sharedStrings.xml), a small score sheet using the first of them;
//   - bigsheet.xlsx: 4.2 MB compressed, one worksheet of 59.7 MB of
//     XML: a header and 19,999 students × 168 numeric cells (20,000 rows
//     and 170 columns, within those caps; 3.4 M cells, past the cell cap);
//   - okbig.xlsx: a large shape within every cap, 2,300 students × 168
//     numeric cells (391,170 cells);
//   - bigname.csv: a CSV whose one name cell is 60 MB.
//
// Both hostile workbooks unzip to less than 64 MiB, so the reader before
// issue 8 (excelize, with a 64 MiB unzip limit) parsed them in full.
//
// Usage: gen [-out DIR]. The files are deterministic.
package main

import (
	"archive/zip"
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

const ns = `xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"`

func main() {
	out := flag.String("out", ".", "directory to write the files to")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, write := range map[string]func(io.Writer) error{
		"shared.xlsx":   shared,
		"bigsheet.xlsx": func(w io.Writer) error { return numeric(w, 19999, 168) },
		"okbig.xlsx":    func(w io.Writer) error { return numeric(w, 2300, 168) },
		"bigname.csv":   bigName,
	} {
		path := filepath.Join(*out, name)
		if err := writeFile(path, write); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		fi, _ := os.Stat(path)
		fmt.Printf("%s\t%.1f MB\n", path, float64(fi.Size())/1e6)
	}
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// workbook writes a one-sheet .xlsx: the package parts, then sheet (and,
// when sst is not nil, the shared strings) streamed into the zip.
func workbook(w io.Writer, sst, sheet func(io.Writer) error) error {
	zw := zip.NewWriter(w)
	put := func(name string, write func(io.Writer) error) error {
		pw, err := zw.Create(name)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(pw, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	text := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	const head = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`
	types := head + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
		`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>` +
		`<Default Extension="xml" ContentType="application/xml"/>` +
		`<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>` +
		`<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`
	rels := head + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>`
	if sst != nil {
		types += `<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>`
		rels += `<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>`
	}
	parts := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"[Content_Types].xml", text(types + `</Types>`)},
		{"_rels/.rels", text(head + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
			`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`)},
		{"xl/workbook.xml", text(head + `<workbook ` + ns + `><sheets><sheet name="成绩" sheetId="1" r:id="rId1"/></sheets></workbook>`)},
		{"xl/_rels/workbook.xml.rels", text(rels + `</Relationships>`)},
		{"xl/worksheets/sheet1.xml", sheet},
	}
	if sst != nil {
		parts = append(parts, struct {
			name  string
			write func(io.Writer) error
		}{"xl/sharedStrings.xml", sst})
	}
	for _, p := range parts {
		if err := put(p.name, p.write); err != nil {
			return err
		}
	}
	return zw.Close()
}

// colName spells a 0-based column: 0 → A.
func colName(c int) string {
	s := ""
	for n := c + 1; n > 0; n = (n - 1) / 26 {
		s = string(rune('A'+(n-1)%26)) + s
	}
	return s
}

// shared: 2.5 M shared strings of 5 random letters; the sheet's
// header and 200 students use the first ones.
func shared(w io.Writer) error {
	const n = 2500000
	rng := rand.New(rand.NewPCG(8, 1))
	sst := func(w io.Writer) error {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst %s count="%d" uniqueCount="%d">`, ns, n, n)
		io.WriteString(w, `<si><t>姓名</t></si><si><t>班级</t></si>`)
		const alnum = "abcdefgh"
		var t [5]byte
		for i := 2; i < n; i++ {
			for k := range t {
				t[k] = alnum[rng.IntN(len(alnum))]
			}
			if _, err := fmt.Fprintf(w, `<si><t>%s</t></si>`, t[:]); err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, `</sst>`)
		return err
	}
	sheet := func(w io.Writer) error {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet `+ns+`><sheetData>`)
		io.WriteString(w, `<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1"><v>1</v></c><c r="D1"><v>2</v></c></row>`)
		for r := 2; r < 202; r++ {
			fmt.Fprintf(w, `<row r="%d"><c r="A%d" t="s"><v>%d</v></c><c r="C%d"><v>%d</v></c><c r="D%d"><v>%d</v></c></row>`,
				r, r, r, r, r%5, r, r%3)
		}
		_, err := io.WriteString(w, `</sheetData></worksheet>`)
		return err
	}
	return workbook(w, sst, sheet)
}

// numeric: a header (姓名, 班级, 1…q), then rows students with a name, a
// class and q scores in half points.
func numeric(w io.Writer, rows, q int) error {
	rng := rand.New(rand.NewPCG(8, 2))
	sheet := func(w io.Writer) error {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet `+ns+`><sheetData>`)
		io.WriteString(w, `<row r="1"><c r="A1" t="inlineStr"><is><t>姓名</t></is></c><c r="B1" t="inlineStr"><is><t>班级</t></is></c>`)
		for c := 0; c < q; c++ {
			fmt.Fprintf(w, `<c r="%s1"><v>%d</v></c>`, colName(c+2), c+1)
		}
		io.WriteString(w, `</row>`)
		var b strings.Builder
		for r := 2; r < rows+2; r++ {
			b.Reset()
			fmt.Fprintf(&b, `<row r="%d"><c r="A%d" t="inlineStr"><is><t>学生%d</t></is></c><c r="B%d" t="inlineStr"><is><t>%d班</t></is></c>`,
				r, r, r, r, r%20+1)
			for c := 0; c < q; c++ {
				fmt.Fprintf(&b, `<c><v>%d.%d</v></c>`, rng.IntN(10), 5*rng.IntN(2))
			}
			b.WriteString(`</row>`)
			if _, err := io.WriteString(w, b.String()); err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, `</sheetData></worksheet>`)
		return err
	}
	return workbook(w, nil, sheet)
}

// bigName: a CSV score sheet whose second student's name is 60 MB.
func bigName(w io.Writer) error {
	io.WriteString(w, "姓名,班级,1,2\n张三,1班,3,4\n")
	chunk := strings.Repeat("名", 1<<16)
	for n := 0; n < 60<<20; n += len(chunk) {
		if _, err := io.WriteString(w, chunk); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, ",1班,2,3\n")
	return err
}
