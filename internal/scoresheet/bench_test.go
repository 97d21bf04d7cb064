package scoresheet

import (
	"fmt"
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
		sh, err := ParseCSV(data, Options{})
		if err != nil || len(sh.Students) != 2000 || len(sh.Questions) != 50 {
			b.Fatalf("%v", err)
		}
	}
}
