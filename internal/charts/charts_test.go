package charts

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Realistic sample data: a physics mid-term, 44 students in two classes.
func sampleTotals() []float64 {
	// 44 totals spread over 11..93 out of 100, deterministic.
	out := make([]float64, 44)
	for i := range out {
		// a bell-ish spread: denser in the middle
		f := float64(i) / 43
		v := 11 + 82*(0.5+0.5*math.Sin((f-0.5)*math.Pi)*math.Abs(math.Sin((f-0.5)*math.Pi)))
		out[i] = math.Round(v*2) / 2
	}
	out[0], out[43] = 11, 93
	return out
}

func sampleQuestions() []Bar {
	labels := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11(1)", "11(2)", "12", "13"}
	out := make([]Bar, len(labels))
	for i, l := range labels {
		// rates between 0.3 and 0.85
		out[i] = Bar{Label: l, Value: 0.3 + 0.55*math.Mod(float64(i)*0.37, 1)}
	}
	return out
}

func sampleClasses() []ClassStat {
	return []ClassStat{
		{Class: "高二(3)班", Avg: 56.7, Max: 93, Min: 27.5, Students: 23},
		{Class: "高二(4)班", Avg: 49.7, Max: 85.5, Min: 11, Students: 21},
	}
}

// svgDoc is what the tests learn from one SVG document.
type svgDoc struct {
	root      xml.StartElement
	texts     []string // character data of <text> elements
	families  []string // font-family values of <text> elements
	fillPaths map[string]int
}

// parseSVG checks that b is well-formed UTF-8 XML and collects facts.
func parseSVG(t testing.TB, b []byte) svgDoc {
	t.Helper()
	if !utf8.Valid(b) {
		t.Fatal("svg is not valid UTF-8")
	}
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("svg does not start with an XML declaration: %.60q", b)
	}
	d := svgDoc{fillPaths: map[string]int{}}
	dec := xml.NewDecoder(bytes.NewReader(b))
	inText := false
	var cur strings.Builder
	sawRoot := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if !sawRoot {
				d.root, sawRoot = tok.Copy(), true
			}
			style := attr(tok, "style")
			switch tok.Name.Local {
			case "text":
				inText = true
				cur.Reset()
				d.families = append(d.families, styleProp(style, "font-family"))
			case "path":
				if fill := styleProp(style, "fill"); fill != "" && fill != "none" {
					d.fillPaths[fill]++
				}
			}
		case xml.CharData:
			if inText {
				cur.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" {
				inText = false
				d.texts = append(d.texts, cur.String())
			}
		}
	}
	if !sawRoot || d.root.Name.Local != "svg" {
		t.Fatalf("root element is %q, want svg", d.root.Name.Local)
	}
	return d
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func styleProp(style, prop string) string {
	for _, decl := range strings.Split(style, ";") {
		k, v, ok := strings.Cut(decl, ":")
		if ok && strings.TrimSpace(k) == prop {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (d svgDoc) hasText(s string) bool {
	for _, t := range d.texts {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// checkCommon checks what every chart must have.
func checkCommon(t *testing.T, d svgDoc, want ...string) {
	t.Helper()
	if got := attr(d.root, "viewBox"); got != "0 0 800 450" {
		t.Errorf("viewBox = %q, want 0 0 800 450", got)
	}
	if attr(d.root, "width") == "" || attr(d.root, "height") == "" {
		t.Errorf("svg root lacks width/height: %v", d.root.Attr)
	}
	if len(d.families) == 0 {
		t.Fatal("no <text> elements")
	}
	for _, f := range d.families {
		if !strings.HasPrefix(f, "'Liberation Sans',") || !strings.Contains(f, "'Noto Sans CJK SC'") ||
			!strings.Contains(f, "'Microsoft YaHei'") || !strings.HasSuffix(f, "sans-serif") {
			t.Errorf("font-family %q lacks the CJK fallbacks", f)
		}
	}
	for _, w := range want {
		if !d.hasText(w) {
			t.Errorf("no <text> contains %q; texts: %q", w, d.texts)
		}
	}
}

// checkRaw checks that the texts are in the document bytes as plain UTF-8,
// not as character references.
func checkRaw(t *testing.T, b []byte, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !bytes.Contains(b, []byte(">"+s+"</text>")) {
			t.Errorf("svg lacks <text>%s</text> as raw UTF-8", s)
		}
	}
	if bytes.Contains(b, []byte("&#x")) || bytes.Contains(b, []byte("&#2")) {
		t.Error("svg contains numeric character references")
	}
}

func rgbHex(c uint32) string {
	return "#" + strings.ToUpper(strconv.FormatUint(uint64(c)|1<<24, 16)[1:])
}

func TestTotalsSVG(t *testing.T) {
	b, err := TotalsSVG("物理期中考试 总分分布", sampleTotals(), 100)
	if err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b)
	checkRaw(t, b, "物理期中考试 总分分布", "总分", "人数")
	checkCommon(t, d, "物理期中考试 总分分布", "总分", "人数", "平均分", "共 44 人", "0", "50", "100")
	// 10 bins of width 10 from 0 to 100, plus the key's swatch.
	if got := d.fillPaths[rgbHex(colorBar)]; got != 10+1 {
		t.Errorf("%d paths filled with the bar colour, want 10 bins + 1 key swatch", got)
	}
}

func TestTotalsBinning(t *testing.T) {
	for _, tc := range []struct {
		totals    []float64
		fullMarks float64
		bins      int
	}{
		{[]float64{11, 93}, 100, 10},
		{[]float64{11, 93}, 0, 10},     // up to the highest total, 93 → 100
		{[]float64{100}, 100, 10},      // full marks fall in the last bin
		{[]float64{120, 30}, 150, 15},  // width 10
		{[]float64{700, 300}, 750, 15}, // width 50
		{[]float64{5, 8}, 10, 10},      // width 1
		{[]float64{0, 0}, 0, 10},       // degenerate: 0..10
		{[]float64{1, 3}, 3, 6},        // width 0.5
		{[]float64{105}, 100, 11},      // a total above full marks widens the axis
	} {
		b, err := TotalsSVG("t", tc.totals, tc.fullMarks)
		if err != nil {
			t.Fatal(err)
		}
		d := parseSVG(t, b)
		if got := d.fillPaths[rgbHex(colorBar)] - 1; got != tc.bins {
			t.Errorf("totals %v, full marks %v: %d bins, want %d", tc.totals, tc.fullMarks, got, tc.bins)
		}
	}
}

func TestQuestionRatesSVG(t *testing.T) {
	qs := sampleQuestions()
	b, err := QuestionRatesSVG("物理期中考试 各题得分率", qs)
	if err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b)
	checkRaw(t, b, "物理期中考试 各题得分率", "得分率", "11(1)")
	checkCommon(t, d, "物理期中考试 各题得分率", "得分率", "题号", "11(1)", "11(2)", "60% 参考线", "60%")
	var high, low int
	for _, q := range qs {
		if q.Value*100 < 60 {
			low++
		} else {
			high++
		}
	}
	if high == 0 || low == 0 {
		t.Fatal("sample should have bars on both sides of 60%")
	}
	// one bar per question, plus one key swatch per colour
	if got := d.fillPaths[rgbHex(colorBar)]; got != high+1 {
		t.Errorf("%d paths in the ≥60%% colour, want %d bars + 1 swatch", got, high)
	}
	if got := d.fillPaths[rgbHex(colorLow)]; got != low+1 {
		t.Errorf("%d paths in the <60%% colour, want %d bars + 1 swatch", got, low)
	}
	for _, q := range qs {
		if !d.hasText(q.Label) {
			t.Errorf("no tick label %q", q.Label)
		}
	}
}

func TestClassesSVG(t *testing.T) {
	cs := sampleClasses()
	b, err := ClassesSVG("物理期中考试 班级对比", cs)
	if err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b)
	checkRaw(t, b, "物理期中考试 班级对比", "高二(3)班（23人）", "最高分")
	checkCommon(t, d, "物理期中考试 班级对比", "高二(3)班", "高二(4)班", "高二(3)班（23人）", "高二(4)班（21人）",
		"最高分", "平均分", "最低分", "分数", "56.7", "85.5", "27.5", "93")
	for _, c := range []uint32{colorMax, colorBar, colorMin} {
		if got := d.fillPaths[rgbHex(c)]; got != len(cs)+1 {
			t.Errorf("%d paths filled %s, want %d bars + 1 swatch", got, rgbHex(c), len(cs))
		}
	}
}

func TestManyLongLabels(t *testing.T) {
	// Many questions and classes: labels get rotated / thinned, nothing fails.
	var qs []Bar
	for i := range 60 {
		qs = append(qs, Bar{Label: "第" + strconv.Itoa(i+1) + "题(选做)", Value: float64(i%10) / 10})
	}
	b, err := QuestionRatesSVG("很多题", qs)
	if err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b)
	checkCommon(t, d, "很多题", "第1题(选做)")
	if got := d.fillPaths[rgbHex(colorBar)] + d.fillPaths[rgbHex(colorLow)]; got != 60+2 {
		t.Errorf("%d bar paths, want 60 + 2 swatches", got)
	}

	var cs []ClassStat
	for i := range 16 {
		cs = append(cs, ClassStat{Class: "高一(" + strconv.Itoa(i+1) + ")班实验班", Avg: 60, Max: 98, Min: 12, Students: 40})
	}
	b, err = ClassesSVG("很多班", cs)
	if err != nil {
		t.Fatal(err)
	}
	parseSVG(t, b)
}

func TestEmptyInput(t *testing.T) {
	for name, render := range map[string]func() ([]byte, error){
		"totals":           func() ([]byte, error) { return TotalsSVG("总分分布", nil, 100) },
		"totals-no-full":   func() ([]byte, error) { return TotalsSVG("总分分布", []float64{}, 0) },
		"totals-all-nan":   func() ([]byte, error) { return TotalsSVG("总分分布", []float64{math.NaN()}, 0) },
		"questions":        func() ([]byte, error) { return QuestionRatesSVG("得分率", nil) },
		"classes":          func() ([]byte, error) { return ClassesSVG("班级对比", nil) },
		"classes-untitled": func() ([]byte, error) { return ClassesSVG("", []ClassStat{}) },
	} {
		t.Run(name, func(t *testing.T) {
			b, err := render()
			if err != nil {
				t.Fatal(err)
			}
			d := parseSVG(t, b)
			checkCommon(t, d, noData)
		})
	}
}

func TestHostileLabels(t *testing.T) {
	// Markup, control characters and invalid UTF-8 must not break the XML,
	// and the font-family rewriting must not touch text content.
	evil := "<b>&\"'\x00\x07\x1b\ufffe\xff\xfe" + `style="font-family:X;` + "\n高三"
	cases := map[string]func() ([]byte, error){
		"totals": func() ([]byte, error) { return TotalsSVG(evil, []float64{math.Inf(1), -5, 50}, math.NaN()) },
		"questions": func() ([]byte, error) {
			return QuestionRatesSVG(evil, []Bar{{evil, math.NaN()}, {"", 1.5}, {"x", -0.2}})
		},
		"classes": func() ([]byte, error) {
			return ClassesSVG(evil, []ClassStat{{Class: evil, Avg: math.NaN(), Max: math.Inf(1), Min: -3}, {}})
		},
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := render()
			if err != nil {
				t.Fatal(err)
			}
			d := parseSVG(t, b)
			checkCommon(t, d, `<b>&"'`, `style="font-family:X;`)
		})
	}
}

func TestPostProcess(t *testing.T) {
	in := `<?xml version="1.0"?>
<svg><text style="font-family:Liberation Sans;font-size:12px">a</text><text style="font-family:Liberation Sans">b</text></svg>`
	got := string(postProcess([]byte(in)))
	want := `<?xml version="1.0" encoding="UTF-8"?>
<svg><text style="font-family:'Liberation Sans',` + fontFallbacks + `;font-size:12px">a</text><text style="font-family:Liberation Sans">b</text></svg>`
	if got != want {
		t.Errorf("postProcess:\n got %s\nwant %s", got, want)
	}
}

func TestTextWidth(t *testing.T) {
	h := newTextHandler()
	f := sansFont(10)
	w := func(s string) float64 { x, _, _ := h.Box(s, f); return float64(x) }
	if got := w("高二班"); math.Abs(got-30) > 1e-6 {
		t.Errorf("width of 3 CJK characters at 10pt = %v, want 30", got)
	}
	if got, want := w("高二(3)班"), 30+w("(3)"); math.Abs(got-want) > 1e-6 {
		t.Errorf("mixed width = %v, want %v", got, want)
	}
	if got := w("Ab"); got <= 0 || got >= 20 {
		t.Errorf("latin width = %v", got)
	}
}

func TestConcurrentRendering(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, f := range []func() ([]byte, error){
				func() ([]byte, error) { return TotalsSVG("总分", sampleTotals(), 100) },
				func() ([]byte, error) { return QuestionRatesSVG("得分率", sampleQuestions()) },
				func() ([]byte, error) { return ClassesSVG("班级", sampleClasses()) },
			} {
				if _, err := f(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// TestWriteSamples writes the sample charts to $CHARTS_SAMPLE_DIR, for
// looking at them (e.g. converting to PNG). Skipped unless the variable is set.
func TestWriteSamples(t *testing.T) {
	dir := os.Getenv("CHARTS_SAMPLE_DIR")
	if dir == "" {
		t.Skip("set CHARTS_SAMPLE_DIR to write sample SVGs")
	}
	var many []Bar
	for i := range 40 {
		many = append(many, Bar{Label: "Q" + strconv.Itoa(i+1) + "_a", Value: float64(i%10)/10 + 0.05})
	}
	var long []Bar
	for i := range 60 {
		long = append(long, Bar{Label: "第" + strconv.Itoa(i+1) + "题(选做)", Value: float64(i%10) / 10})
	}
	var manyClasses []ClassStat
	for i := range 12 {
		manyClasses = append(manyClasses, ClassStat{Class: "高二(" + strconv.Itoa(i+1) + ")班", Avg: 50 + float64(i), Max: 90, Min: 20, Students: 40 + i})
	}
	for name, render := range map[string]func() ([]byte, error){
		"totals": func() ([]byte, error) { return TotalsSVG("物理期中考试 总分分布", sampleTotals(), 100) },
		"questions": func() ([]byte, error) {
			return QuestionRatesSVG("物理期中考试 各题得分率", sampleQuestions())
		},
		"classes":       func() ([]byte, error) { return ClassesSVG("物理期中考试 班级对比", sampleClasses()) },
		"totals-empty":  func() ([]byte, error) { return TotalsSVG("物理期中考试 总分分布", nil, 0) },
		"questions-40":  func() ([]byte, error) { return QuestionRatesSVG("四十道题 得分率", many) },
		"questions-60":  func() ([]byte, error) { return QuestionRatesSVG("六十道题 得分率（标签很长）", long) },
		"classes-12":    func() ([]byte, error) { return ClassesSVG("十二个班 对比", manyClasses) },
		"classes-empty": func() ([]byte, error) { return ClassesSVG("班级对比", nil) },
	} {
		b, err := render()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".svg"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func benchmark(b *testing.B, render func() ([]byte, error)) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := render(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTotalsSVG(b *testing.B) {
	totals := sampleTotals()
	benchmark(b, func() ([]byte, error) { return TotalsSVG("物理期中考试 总分分布", totals, 100) })
}

func BenchmarkQuestionRatesSVG(b *testing.B) {
	qs := sampleQuestions()
	benchmark(b, func() ([]byte, error) { return QuestionRatesSVG("物理期中考试 各题得分率", qs) })
}

func BenchmarkClassesSVG(b *testing.B) {
	cs := sampleClasses()
	benchmark(b, func() ([]byte, error) { return ClassesSVG("物理期中考试 班级对比", cs) })
}

func TestExtremeValues(t *testing.T) {
	// Absurd but finite numbers must neither hang nor panic; a valid SVG or
	// an error are both acceptable.
	for name, render := range map[string]func() ([]byte, error){
		"totals":    func() ([]byte, error) { return TotalsSVG("x", []float64{1e308, -1e308, 0}, 1e308) },
		"totals-fm": func() ([]byte, error) { return TotalsSVG("x", []float64{1}, 1e300) },
		"questions": func() ([]byte, error) { return QuestionRatesSVG("x", []Bar{{"1", 1e306}, {"2", -1e306}}) },
		"classes":   func() ([]byte, error) { return ClassesSVG("x", []ClassStat{{Class: "a", Max: 1e308, Min: -1e308}}) },
	} {
		t.Run(name, func(t *testing.T) {
			b, err := render()
			if err != nil {
				t.Logf("error (acceptable): %v", err)
				return
			}
			parseSVG(t, b)
		})
	}
}
