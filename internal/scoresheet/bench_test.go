package scoresheet

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchCSV makes a sheet of students × questions points with a title row.
func benchCSV(students, questions int) []byte {
	var b strings.Builder
	b.WriteString("期中考试成绩\n准考证号,姓名,班级")
	for q := 1; q <= questions; q++ {
		fmt.Fprintf(&b, ",%d", q)
	}
	b.WriteString(",总分\n")
	for s := 0; s < students; s++ {
		fmt.Fprintf(&b, "%08d,学生%d,高二(%d)班", 24030000+s, s, s%12+1)
		total := 0
		for q := 0; q < questions; q++ {
			v := (s*7 + q*3) % 5
			total += v
			fmt.Fprintf(&b, ",%d", v)
		}
		fmt.Fprintf(&b, ",%d\n", total)
	}
	return []byte(b.String())
}

func BenchmarkParseCSV(b *testing.B) {
	data := benchCSV(2000, 50)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sh, err := parseCSVBytes(data, Options{})
		if err != nil || len(sh.Students) != 2000 || len(sh.Questions) != 50 {
			b.Fatalf("%v", err)
		}
	}
}

// BenchmarkParseXLSX parses a 2,000 students × 50 questions workbook
// (numbers and inline strings, as bench/workbook/gen writes them).
func BenchmarkParseXLSX(b *testing.B) {
	hdr := `<row r="1">` + is("A1", "姓名") + is("B1", "班级")
	for q := 1; q <= 50; q++ {
		hdr += num(colName(q+1)+"1", q)
	}
	hdr += `</row>`
	data := rawXLSX(b, nil, sheetXML(hdr, func(w io.Writer) error {
		for r := 2; r < 2002; r++ {
			fmt.Fprintf(w, `<row r="%d">%s%s`, r, is(fmt.Sprintf("A%d", r), fmt.Sprintf("学生%d", r)), is(fmt.Sprintf("B%d", r), "1班"))
			for q := 1; q <= 50; q++ {
				fmt.Fprintf(w, `<c><v>%d</v></c>`, (r*7+q*3)%5)
			}
			io.WriteString(w, `</row>`)
		}
		return nil
	}, ""))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sh, err := parseXLSXBytes(data, Options{})
		if err != nil || len(sh.Students) != 2000 || len(sh.Questions) != 50 {
			b.Fatalf("%v", err)
		}
	}
}
