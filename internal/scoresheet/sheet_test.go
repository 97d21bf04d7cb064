package scoresheet

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// parseXLSXBytes parses a workbook held in memory.
func parseXLSXBytes(b []byte, o Options) (*Sheet, error) {
	return ParseXLSX(bytes.NewReader(b), int64(len(b)), o)
}

// parseCSVBytes parses a CSV held in memory.
func parseCSVBytes(b []byte, o Options) (*Sheet, error) { return ParseCSV(bytes.NewReader(b), o) }

func TestPhysicsMidtermXLSX(t *testing.T) {
	sh, err := parseXLSXBytes(readFixture(t, "physics_midterm.xlsx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sh.Mode != ModeQuestion || sh.HeaderRow != 3 || sh.SheetName != "成绩" {
		t.Errorf("mode %q header row %d sheet %q, want question, 3, 成绩", sh.Mode, sh.HeaderRow, sh.SheetName)
	}
	if len(sh.Warnings) > 0 {
		t.Errorf("warnings: %q", sh.Warnings)
	}
	var ids []string
	for i, q := range sh.Questions {
		ids = append(ids, q.ID)
		if q.Order != i+1 {
			t.Errorf("%s order %d, want %d", q.ID, q.Order, i+1)
		}
		if q.Column != i+5 { // questions start in column E
			t.Errorf("%s column %d, want %d", q.ID, q.Column, i+5)
		}
		if wantLetters := q.No <= 10; q.Letters != wantLetters {
			t.Errorf("%s Letters = %v, want %v", q.ID, q.Letters, wantLetters)
		}
	}
	if !slices.Equal(ids, wantIDs()) {
		t.Errorf("question ids %v, want %v", ids, wantIDs())
	}
	if q := sh.Questions[10]; q.Label != "11(1)" || q.No != 11 || q.Sub != "1" {
		t.Errorf("question 11(1) = %+v", q)
	}
	if len(sh.Students) != 44 {
		t.Fatalf("%d students, want 44", len(sh.Students))
	}
	classes := map[string]int{}
	var liang []Student
	for _, st := range sh.Students {
		classes[st.Class]++
		if st.SheetTotal == nil {
			t.Errorf("%s: no SheetTotal", st.ID)
		}
		if st.Name == "梁志强" {
			liang = append(liang, st)
		}
		if len(st.Cells) != 14 {
			t.Errorf("%s: %d cells, want 14", st.ID, len(st.Cells))
		}
	}
	if classes["高二(3)班"] != 23 || classes["高二(4)班"] != 21 || len(classes) != 2 {
		t.Errorf("classes %v", classes)
	}
	if len(liang) != 2 || liang[0].ID == liang[1].ID ||
		liang[0].ID != "高二(3)班_梁志强" || liang[1].ID != "高二(4)班_梁志强" {
		t.Errorf("梁志强 students: %+v", liang)
	}
	first := sh.Students[0]
	if first.Name != "徐志强" || first.ExamNo != "24030001" || first.Row != 4 || *first.SheetTotal != 46 {
		t.Errorf("first student %+v", first)
	}
	if c := first.Cells["Q1"]; c.Answer != "D" || c.Score != nil || c.Raw != "D" {
		t.Errorf("first student Q1 = %+v", c)
	}
	if c := sh.Students[1].Cells["Q9"]; c.Answer != "AC" {
		t.Errorf("second student Q9 = %+v", c)
	}
	if c := first.Cells["Q13"]; c.Score == nil || *c.Score != 14 || c.Answer != "" {
		t.Errorf("first student Q13 = %+v", c)
	}
	checkAgainstExpected(t, sh, fixtureKey(t))
}

func TestPhysicsMidtermPointsOnly(t *testing.T) {
	for _, tc := range []struct {
		file  string
		parse func([]byte) (*Sheet, error)
	}{
		{"physics_midterm_scores_only.xlsx", func(b []byte) (*Sheet, error) { return parseXLSXBytes(b, Options{}) }},
		{"physics_midterm_utf8.csv", func(b []byte) (*Sheet, error) { return parseCSVBytes(b, Options{}) }},
		{"physics_midterm_gbk.csv", func(b []byte) (*Sheet, error) { return parseCSVBytes(b, Options{}) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			sh, err := tc.parse(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if sh.Mode != ModeQuestion || sh.HeaderRow != 1 || len(sh.Warnings) > 0 {
				t.Errorf("mode %q header %d warnings %q", sh.Mode, sh.HeaderRow, sh.Warnings)
			}
			var ids []string
			for _, q := range sh.Questions {
				ids = append(ids, q.ID)
				if q.Letters {
					t.Errorf("%s: Letters in a points-only sheet", q.ID)
				}
			}
			if !slices.Equal(ids, wantIDs()) {
				t.Errorf("ids %v", ids)
			}
			if st := sh.Students[0]; st.ExamNo != "24030001" || st.Row != 2 || st.ID != "高二(3)班_徐志强" {
				t.Errorf("first student %+v", st)
			}
			checkAgainstExpected(t, sh, nil)
		})
	}
}

func TestFixtureKey(t *testing.T) {
	key := fixtureKey(t)
	want := AnswerKey{"Q1": "A", "Q2": "C", "Q3": "B", "Q4": "D", "Q5": "B", "Q6": "A", "Q7": "C", "Q8": "D", "Q9": "AC", "Q10": "BD"}
	if !mapsEqual(key, want) {
		t.Errorf("key %v, want %v", key, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestTotalMode(t *testing.T) {
	csv := "姓名,班级,总分\n张三,1班,90\n李四,1班,缺考\n王五,2班,88.5\n"
	sh, err := parseCSVBytes([]byte(csv), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sh.Mode != ModeTotal || len(sh.Questions) != 0 || len(sh.Students) != 2 {
		t.Fatalf("sheet %+v", sh)
	}
	if *sh.Students[0].SheetTotal != 90 || *sh.Students[1].SheetTotal != 88.5 || sh.Students[1].ID != "2班_王五" {
		t.Errorf("students %+v", sh.Students)
	}
	if len(sh.Warnings) != 1 || !strings.Contains(sh.Warnings[0], "李四") {
		t.Errorf("warnings %q", sh.Warnings)
	}
}

func TestNoScoreColumns(t *testing.T) {
	_, err := parseCSVBytes([]byte("姓名,班级,学号\n张三,1班,1\n"), Options{})
	if !errors.Is(err, ErrNoScoreColumns) {
		t.Errorf("err = %v, want ErrNoScoreColumns", err)
	}
	_, err = parseCSVBytes([]byte("a,b\n1,2\n"), Options{})
	if !errors.Is(err, ErrNoHeader) {
		t.Errorf("err = %v, want ErrNoHeader", err)
	}
	_, err = parseCSVBytes([]byte("姓名,1,2\n"), Options{})
	if !errors.Is(err, ErrNoStudents) {
		t.Errorf("err = %v, want ErrNoStudents", err)
	}
	_, err = parseCSVBytes(nil, Options{})
	if !errors.Is(err, ErrNoHeader) {
		t.Errorf("empty: err = %v, want ErrNoHeader", err)
	}
}

func TestSubQuestionIDsDoNotCollide(t *testing.T) {
	csv := "姓名,2(1),21,12a,12(b),12-1,1\n张三,1,2,3,4,5,6\n"
	sh, err := parseCSVBytes([]byte(csv), Options{ClassHint: "高一 1 班"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, q := range sh.Questions {
		ids = append(ids, q.ID)
	}
	if want := []string{"Q2_1", "Q21", "Q12_a", "Q12_b", "Q12_1", "Q1"}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	st := sh.Students[0]
	if st.Class != "高一 1 班" || st.ID != "高一_1_班_张三" {
		t.Errorf("class hint: %+v", st)
	}
	if *st.Cells["Q2_1"].Score != 1 || *st.Cells["Q21"].Score != 2 {
		t.Errorf("cells %+v", st.Cells)
	}
}

func TestCellsAndWarnings(t *testing.T) {
	csv := strings.Join([]string{
		"考试成绩",
		"序号, 姓  名 ,班级,１,2,3（1）,12a,12(a),备注,总分",
		"1,张三,1班,ａ c,4.0,缺考,2,9,好,8",
		"2,李四,1班,ca,-, ,#N/A,,,x",
		"3,张三,1班,b,1,1,1,,,3",
		"4, 王  五 ,,B,2.5,,,,,",
		"5,平均分,,,,,,,,",
		"6,,1班,A,1,,,,,",
	}, "\r\n")
	sh, err := parseCSVBytes([]byte(csv), Options{ClassHint: "2班"})
	if err != nil {
		t.Fatal(err)
	}
	if sh.HeaderRow != 2 {
		t.Errorf("header row %d", sh.HeaderRow)
	}
	var ids []string
	for _, q := range sh.Questions {
		ids = append(ids, q.ID+":"+q.Label)
	}
	if want := []string{"Q1:1", "Q2:2", "Q3_1:3(1)", "Q12_a:12a"}; !slices.Equal(ids, want) {
		t.Errorf("questions %v, want %v", ids, want)
	}
	if len(sh.Students) != 3 {
		t.Fatalf("students %+v", sh.Students)
	}
	zs, ls, ww := sh.Students[0], sh.Students[1], sh.Students[2]
	if c := zs.Cells["Q1"]; c.Answer != "AC" || c.Raw != "ａ c" {
		t.Errorf("Q1 %+v", c)
	}
	if c := zs.Cells["Q2"]; c.Score == nil || *c.Score != 4 {
		t.Errorf("Q2 %+v", c)
	}
	if _, ok := zs.Cells["Q3_1"]; ok {
		t.Errorf("缺考 kept: %+v", zs.Cells)
	}
	if c := ls.Cells["Q1"]; c.Answer != "AC" {
		t.Errorf("li Q1 %+v", c)
	}
	if len(ls.Cells) != 1 || ls.SheetTotal != nil {
		t.Errorf("li %+v", ls)
	}
	if ww.Name != "王 五" || ww.ID != "2班_王_五" || ww.Class != "2班" || ww.Row != 6 {
		t.Errorf("wang %+v", ww)
	}
	if !sh.Questions[0].Letters || sh.Questions[1].Letters {
		t.Errorf("letters flags %+v", sh.Questions)
	}
	all := strings.Join(sh.Warnings, "\n")
	for _, want := range []string{"Q12_a", "第3(1)题有 1 个", "第2题有 1 个", "第12a题有 1 个", "第5行", "平均分", "(same as row 3)"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	if len(sh.Warnings) != 6 {
		t.Errorf("%d warnings:\n%s", len(sh.Warnings), all)
	}
}

func TestCSVEncodingsAndDelimiters(t *testing.T) {
	tsv := "\ufeff姓名\t班级\t1\n张三\t1班\t3\n"
	sh, err := parseCSVBytes([]byte(tsv), Options{})
	if err != nil || len(sh.Students) != 1 || *sh.Students[0].Cells["Q1"].Score != 3 {
		t.Fatalf("tsv: %v %+v", err, sh)
	}
	// UTF-16LE with BOM, as Excel's "Unicode text".
	u16 := []byte{0xFF, 0xFE}
	for _, r := range "姓名\t1\n张三\t2\n" {
		u16 = append(u16, byte(r), byte(r>>8))
	}
	sh, err = parseCSVBytes(u16, Options{})
	if err != nil || sh.Students[0].Name != "张三" {
		t.Fatalf("utf16: %v %+v", err, sh)
	}
}

func TestLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("姓名,1,2,3\n")
	for i := 0; i < 50; i++ {
		b.WriteString("s" + strings.Repeat("x", i) + ",1,2,3\n")
	}
	// Past a cap the sheet fails: nothing is cut silently.
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{MaxRows: 11}, "more than 11 rows hold data"},
		{Options{MaxCols: 3}, "more than 3 columns hold data"},
		{Options{MaxCells: 150}, "more than 150 cells hold data"},
		{Options{MaxTextBytes: 1000}, "more than 1000 bytes of cell text"},
	} {
		_, err := parseCSVBytes([]byte(b.String()), tc.o)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want ErrTooLarge with %q", tc.o, err, tc.want)
		}
	}
	sh, err := parseCSVBytes([]byte(b.String()), Options{MaxRows: 51, MaxCols: 4, MaxCells: 204})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Students) != 50 || len(sh.Questions) != 3 || len(sh.Warnings) != 0 {
		t.Errorf("students %d questions %d warnings %q", len(sh.Students), len(sh.Questions), sh.Warnings)
	}
}

// buildWorkbook makes a two-sheet workbook: a cover sheet, then the scores
// under a merged title row, with 班级 merged vertically per class and a
// numeric header 12.0.
func buildWorkbook(t testing.TB) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.SetSheetName("Sheet1", "封面"))
	must(f.SetCellValue("封面", "A1", "高二物理期中考试"))
	must(f.SetCellValue("封面", "A2", "姓名：教师签字"))
	_, err := f.NewSheet("成绩")
	must(err)
	set := func(cell string, v any) { t.Helper(); must(f.SetCellValue("成绩", cell, v)) }
	set("A1", "高二物理期中考试成绩")
	must(f.MergeCell("成绩", "A1", "F1"))
	for i, h := range []any{"姓名", "班级", 1, "11（1）", 12.0, "总分"} {
		c, _ := excelize.CoordinatesToCellName(i+1, 2)
		set(c, h)
	}
	rows := [][]any{
		{"张三", "高二(3)班", "A", 4, 7.5, 15.5},
		{"李四", nil, "BD", 3.25, 0, 3.25},
		{"王五", "高二(4)班", "c", 8, 10, 22},
		{"赵六", nil, nil, 1, 2, 3},
	}
	for r, row := range rows {
		for c, v := range row {
			if v == nil {
				continue
			}
			cell, _ := excelize.CoordinatesToCellName(c+1, r+3)
			set(cell, v)
		}
	}
	must(f.MergeCell("成绩", "B3", "B4"))
	must(f.MergeCell("成绩", "B5", "B6"))
	must(f.SetCellFormula("成绩", "F6", "SUM(C6:E6)"))
	buf, err := f.WriteToBuffer()
	must(err)
	return buf.Bytes()
}

func TestSyntheticWorkbook(t *testing.T) {
	sh, err := parseXLSXBytes(buildWorkbook(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sh.SheetName != "成绩" || sh.HeaderRow != 2 || sh.Mode != ModeQuestion {
		t.Errorf("sheet %q header %d mode %q", sh.SheetName, sh.HeaderRow, sh.Mode)
	}
	var ids []string
	for _, q := range sh.Questions {
		ids = append(ids, q.ID+":"+q.Label)
	}
	if want := []string{"Q1:1", "Q11_1:11(1)", "Q12:12"}; !slices.Equal(ids, want) {
		t.Errorf("questions %v, want %v", ids, want)
	}
	var got []string
	for _, st := range sh.Students {
		got = append(got, st.ID)
	}
	if want := []string{"高二(3)班_张三", "高二(3)班_李四", "高二(4)班_王五", "高二(4)班_赵六"}; !slices.Equal(got, want) {
		t.Errorf("students %v, want %v", got, want)
	}
	li := sh.Students[1]
	if li.Cells["Q1"].Answer != "BD" || *li.Cells["Q11_1"].Score != 3.25 || *li.Cells["Q12"].Score != 0 || *li.SheetTotal != 3.25 {
		t.Errorf("李四 %+v", li)
	}
	// 赵六's Q1 is empty; 总分 is a formula whose cached value is read.
	if zl := sh.Students[3]; len(zl.Cells) != 2 || zl.SheetTotal == nil || *zl.SheetTotal != 3 {
		t.Errorf("赵六 %+v", sh.Students[3])
	}
	if len(sh.Warnings) != 0 {
		t.Errorf("warnings %q", sh.Warnings)
	}
}

func TestXLSXErrors(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("not a workbook at all"),
		"xls":     append(append([]byte{}, oleSignature...), make([]byte, 600)...),
		"csv":     []byte("姓名,1\n张三,1\n"),
	} {
		if _, err := parseXLSXBytes(data, Options{}); !errors.Is(err, ErrUnsupportedFormat) {
			t.Errorf("%s: err = %v, want ErrUnsupportedFormat", name, err)
		}
	}
	f := excelize.NewFile()
	defer f.Close()
	_ = f.SetCellValue("Sheet1", "A1", "hello")
	buf, _ := f.WriteToBuffer()
	if _, err := parseXLSXBytes(buf.Bytes(), Options{}); !errors.Is(err, ErrNoHeader) {
		t.Errorf("no header: err = %v", err)
	}
	_ = f.SetCellValue("Sheet1", "A2", "姓名")
	_ = f.SetCellValue("Sheet1", "B2", "班级")
	_ = f.SetCellValue("Sheet1", "A3", "张三")
	buf, _ = f.WriteToBuffer()
	if _, err := parseXLSXBytes(buf.Bytes(), Options{}); !errors.Is(err, ErrNoScoreColumns) {
		t.Errorf("no score columns: err = %v", err)
	}
}

func TestXLSXBounds(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range []string{"姓名", "班级", "1", "备注", "备注2"} {
		c, _ := excelize.CoordinatesToCellName(i+1, 1)
		must(f.SetCellValue("Sheet1", c, h))
	}
	const n = 2100 // 2,100 merges: cheap now (excelize made them quadratic)
	for r := 2; r < n+2; r++ {
		must(f.SetCellValue("Sheet1", "A"+itoa(r), "学生"+itoa(r)))
		must(f.SetCellValue("Sheet1", "C"+itoa(r), r%5))
		must(f.MergeCell("Sheet1", "D"+itoa(r), "E"+itoa(r)))
	}
	buf, err := f.WriteToBuffer()
	must(err)
	_, err = parseXLSXBytes(buf.Bytes(), Options{ClassHint: "1班", MaxRows: 1001})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 1001 rows hold data") ||
		!strings.Contains(err.Error(), `sheet "Sheet1"`) {
		t.Errorf("1001 rows: err = %v", err)
	}
	sh, err := parseXLSXBytes(buf.Bytes(), Options{ClassHint: "1班", MaxRows: n + 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Students) != n || sh.Students[0].ID != "1班_学生2" || len(sh.Warnings) != 0 {
		t.Errorf("%d students, first %+v, warnings %q", len(sh.Students), sh.Students[0], sh.Warnings)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
