package ocr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/limits"
)

// failEngine fails the test when it is called.
type failEngine struct{ t *testing.T }

func (failEngine) Name() string { return "fail" }
func (e failEngine) Image(context.Context, string) (Page, error) {
	e.t.Error("the engine was called")
	return Page{}, errors.New("unexpected")
}

func TestParseTSV(t *testing.T) {
	tsv := "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n" +
		"1\t1\t0\t0\t0\t0\t0\t0\t640\t480\t-1\t\n" +
		"4\t1\t1\t1\t1\t0\t10\t10\t100\t20\t-1\t\n" +
		"5\t1\t1\t1\t1\t1\t10\t10\t20\t20\t90\tHello\n" +
		"5\t1\t1\t1\t1\t2\t40\t10\t20\t20\t80\tworld\n" +
		"5\t1\t1\t1\t2\t1\t10\t40\t20\t20\t95\t物理\n" +
		"5\t1\t1\t1\t2\t2\t40\t40\t20\t20\t95\t力学\n" +
		"5\t1\t1\t1\t2\t3\t40\t40\t20\t20\t95\tF=ma\n" +
		"5\t1\t1\t1\t2\t4\t40\t40\t20\t20\t-1\t \n" +
		"5\t1\t2\t1\t1\t1\t10\t80\t20\t20\t50\t2.\n"
	p, err := parseTSV(tsv)
	if err != nil {
		t.Fatal(err)
	}
	want := "Hello world\n物理力学 F=ma\n\n2."
	if p.Text != want {
		t.Errorf("text = %q, want %q", p.Text, want)
	}
	if p.Width != 640 || p.Height != 480 {
		t.Errorf("size = %dx%d", p.Width, p.Height)
	}
	// (90*5 + 80*5 + 95*2 + 95*2 + 95*4 + 50*2) / 20 / 100
	if wantC := (450.0 + 400 + 190 + 190 + 380 + 100) / 20 / 100; p.Confidence < wantC-1e-9 || p.Confidence > wantC+1e-9 {
		t.Errorf("confidence = %v, want %v", p.Confidence, wantC)
	}
	if _, err := parseTSV("garbage"); fault.CodeOf(err) != fault.Upstream {
		t.Errorf("garbage TSV: %v", err)
	}
}

func TestSniff(t *testing.T) {
	for in, want := range map[string]string{
		"%PDF-1.7\n":                  "pdf",
		"\x89PNG\r\n\x1a\nxxxx":       "png",
		"\xff\xd8\xff\xe0":            "jpeg",
		"RIFF\x00\x00\x00\x00WEBPVP8": "webp",
		"II*\x00":                     "tiff",
		"MM\x00*":                     "tiff",
		"BM\x00\x00":                  "bmp",
		"GIF89a":                      "",
		"hello":                       "",
	} {
		if got := sniff([]byte(in)); got != want {
			t.Errorf("sniff(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTesseractLatin(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 32,
		"The quick brown fox jumps", "over the lazy dog.", "Lectern teaching assistant"), "latin.png")
	start := time.Now()
	p, err := (&Tesseract{}).Image(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tesseract (chi_sim+eng) latin: %s, conf %.2f, %q", time.Since(start), p.Confidence, p.Text)
	if miss := missingWords(p.Text, "quick", "brown", "jumps", "lazy", "Lectern", "teaching"); len(miss) > 1 {
		t.Errorf("missing %v in %q", miss, p.Text)
	}
	if p.Confidence <= 0.5 || p.Confidence > 1 {
		t.Errorf("confidence = %v", p.Confidence)
	}
	if p.Width == 0 || p.Height == 0 {
		t.Errorf("size = %dx%d", p.Width, p.Height)
	}
}

func TestTesseractChinese(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	img := writePNG(t, renderText(t, cjkFont(t), 48, "学生作业答案", "物理力学题目", "老师批改成绩"), "zh.png")
	x := New(Options{})
	res, err := x.Extract(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "png" || len(res.Pages) != 1 || res.Pages[0].Source != SourceOCR || res.Pages[0].Engine != "tesseract" {
		t.Fatalf("result = %+v", res)
	}
	text := res.Text()
	t.Logf("chinese: conf %.2f %q", res.Pages[0].Confidence, text)
	if miss := missingWords(text, "学生", "作业", "答案", "物理", "力学", "题目", "老师", "成绩"); len(miss) > 2 {
		t.Errorf("missing %v in %q", miss, text)
	}
	if strings.Contains(text, "学 生") {
		t.Errorf("spaces between Han characters: %q", text)
	}
}

func TestNumberedQuestions(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 30,
		"1. What is the unit of force?",
		"2. Define acceleration.",
		"3. A ball falls for 2 seconds."), "questions.png")
	res, err := New(Options{}).Extract(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	text := res.Text()
	for _, n := range []string{"1", "2", "3"} {
		if !regexp.MustCompile(`(?m)^\s*` + n + `\.\s+\S`).MatchString(text) {
			t.Errorf("question %s. not at a line start in %q", n, text)
		}
	}
	if miss := missingWords(text, "force", "acceleration", "ball", "seconds"); len(miss) > 1 {
		t.Errorf("missing %v in %q", miss, text)
	}
}

func TestPDFTextLayer(t *testing.T) {
	need(t, "pdfinfo", "pdftotext")
	t.Parallel()
	pdf := writePDF(t, "layer.pdf",
		pdfPageSpec{Lines: []string{"Question 1. Newton's second law (F = ma).", "Question 2. Momentum."}},
		pdfPageSpec{Lines: []string{"Page two: kinetic energy equals one half m v squared."}})
	x := New(Options{Engine: failEngine{t}, Acquire: func(context.Context) (func(), error) {
		t.Error("Acquire called for a text-layer PDF")
		return func() {}, nil
	}})
	res, err := x.Extract(t.Context(), pdf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "pdf" || len(res.Pages) != 2 {
		t.Fatalf("result = %+v", res)
	}
	for i, p := range res.Pages {
		if p.N != i+1 || p.Source != SourceTextLayer || p.Err != nil {
			t.Errorf("page %d = %+v", i+1, p)
		}
	}
	if miss := missingWords(res.Pages[0].Text, "Question 1.", "Newton's second law", "(F = ma)", "Momentum"); len(miss) > 0 {
		t.Errorf("page 1 missing %v in %q", miss, res.Pages[0].Text)
	}
	if miss := missingWords(res.Pages[1].Text, "kinetic energy"); len(miss) > 0 {
		t.Errorf("page 2 missing %v in %q", miss, res.Pages[1].Text)
	}

	dir := t.TempDir()
	if err := res.WritePages(dir); err != nil {
		t.Fatal(err)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "ocr", "page_2.txt"))
	if err != nil || !strings.Contains(string(txt), "kinetic energy") {
		t.Errorf("page_2.txt = %q, %v", txt, err)
	}
	var pj map[string]any
	data, err := os.ReadFile(filepath.Join(dir, "ocr", "page_1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &pj); err != nil {
		t.Fatal(err)
	}
	if pj["page"] != 1.0 || pj["source"] != SourceTextLayer || !strings.Contains(pj["text"].(string), "Momentum") {
		t.Errorf("page_1.json = %s", data)
	}
}

func TestPDFImagePageIsOCRd(t *testing.T) {
	need(t, "pdfinfo", "pdftotext", "pdftoppm", "tesseract")
	t.Parallel()
	scan := renderText(t, goRegular(t), 40, "Scanned homework page", "gravity pulls the apple")
	pdf := writePDF(t, "scan.pdf",
		pdfPageSpec{Lines: []string{"This page has a real text layer with enough words."}},
		pdfPageSpec{Img: scan},
		pdfPageSpec{Lines: []string{"p3"}, Img: scan}) // a layer too short to use
	tenant := limits.NewTenantSet("t1", limits.Config{LLMTotal: 1, LLMStudent: 1, LLMTeacher: 1, OCR: 1})
	global := limits.NewGlobalSet(limits.Config{LLMTotal: 1, LLMStudent: 1, LLMTeacher: 1, OCR: 1})
	var acquired, held atomic.Int32
	x := New(Options{Acquire: func(ctx context.Context) (func(), error) {
		release, err := limits.AcquireOCR(ctx, tenant, global)
		if err != nil {
			return nil, err
		}
		acquired.Add(1)
		held.Add(1)
		return func() { held.Add(-1); release() }, nil
	}})
	res, err := x.Extract(t.Context(), pdf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pages) != 3 {
		t.Fatalf("pages = %+v", res.Pages)
	}
	if p := res.Pages[0]; p.Source != SourceTextLayer {
		t.Errorf("page 1 = %+v", p)
	}
	for _, p := range res.Pages[1:] {
		if p.Source != SourceOCR || p.Err != nil || p.Engine != "tesseract" {
			t.Errorf("page %d = %+v", p.N, p)
		}
		if miss := missingWords(p.Text, "Scanned", "homework", "gravity", "apple"); len(miss) > 1 {
			t.Errorf("page %d missing %v in %q", p.N, miss, p.Text)
		}
		// A4 at 200 dpi.
		if p.Width < 1600 || p.Width > 1700 {
			t.Errorf("page %d rendered %dx%d", p.N, p.Width, p.Height)
		}
	}
	if acquired.Load() != 2 || held.Load() != 0 {
		t.Errorf("acquired %d, still held %d; want 2, 0", acquired.Load(), held.Load())
	}
	if u := global.Usage(); u.OCR != 0 {
		t.Errorf("global OCR slots in use after: %d", u.OCR)
	}
}

func TestPDFHugePageRenderedUnderMaxPixels(t *testing.T) {
	need(t, "pdfinfo", "pdftotext", "pdftoppm")
	t.Parallel()
	pdf := writePDF(t, "blank.pdf", pdfPageSpec{})
	var got Page
	eng := engineFunc(func(ctx context.Context, path string) (Page, error) {
		f, err := os.Open(path)
		if err != nil {
			return Page{}, err
		}
		defer f.Close()
		w, h, err := New(Options{}).checkImage(f, "png", "x")
		got = Page{Width: w, Height: h}
		return got, err
	})
	res, err := New(Options{Engine: eng, MaxPixels: 1_000_000}).Extract(t.Context(), pdf)
	if err != nil {
		t.Fatal(err)
	}
	if px := got.Width * got.Height; px == 0 || px > 1_000_000 || res.Pages[0].Source != SourceOCR {
		t.Errorf("rendered %dx%d, page %+v", got.Width, got.Height, res.Pages[0])
	}
}

type engineFunc func(ctx context.Context, path string) (Page, error)

func (engineFunc) Name() string                                           { return "func" }
func (f engineFunc) Image(ctx context.Context, path string) (Page, error) { return f(ctx, path) }

func TestCancelledContext(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 20, "cancelled"), "c.png")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	_, err := New(Options{}).Extract(ctx, img)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
}

// TestTimeoutKillsProcessGroup runs a "tesseract" that hangs in a child
// (sleep) and checks that the timeout ends the call and kills the child.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	need(t, "sh", "sleep")
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	bin := fakeBin(t, "tesseract", "sleep 30 &\necho $! > "+pidFile+"\nwait\n")
	img := writePNG(t, renderText(t, goRegular(t), 20, "slow"), "s.png")
	for _, tc := range []struct {
		name string
		opts Options
		ctx  func() (context.Context, context.CancelFunc)
		want func(error) bool
	}{
		{"timeout", Options{Bins: Bins{Tesseract: bin}, Timeout: 300 * time.Millisecond},
			func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) },
			func(err error) bool {
				return fault.CodeOf(err) == fault.Upstream && errors.Is(err, context.DeadlineExceeded)
			}},
		{"cancel", Options{Bins: Bins{Tesseract: bin}},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 300*time.Millisecond)
			},
			func(err error) bool {
				return errors.Is(err, context.DeadlineExceeded) && fault.CodeOf(err) == fault.Internal
			}},
	} {
		os.Remove(pidFile)
		ctx, cancel := tc.ctx()
		start := time.Now()
		_, err := New(tc.opts).Extract(ctx, img)
		cancel()
		d := time.Since(start)
		t.Logf("%s: returned after %s", tc.name, d)
		if d > 3*time.Second {
			t.Errorf("%s: took %s", tc.name, d)
		}
		if !tc.want(err) {
			t.Errorf("%s: err = %v (code %s)", tc.name, err, fault.CodeOf(err))
		}
		data, _ := os.ReadFile(pidFile)
		var pid int
		if _, err := fmt.Sscan(strings.TrimSpace(string(data)), &pid); err != nil || pid <= 0 {
			t.Fatalf("%s: pid file %q", tc.name, data)
		}
		deadline := time.Now().Add(2 * time.Second)
		for alive(pid) {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("%s: child sleep %d survived", tc.name, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// alive reports whether pid runs: a zombie (killed, not yet reaped by
// init) does not.
func alive(pid int) bool {
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(f) > 0 && f[0] != "Z" && f[0] != "X"
	} else if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false // Linux, and the process is gone
	}
	return syscall.Kill(pid, 0) == nil
}

// TestRealTesseractTimeout gives real tesseract a large image and a tiny
// timeout.
func TestRealTesseractTimeout(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	lines := make([]string, 60)
	for i := range lines {
		lines[i] = "Line of text to keep tesseract busy for a while, number " + strings.Repeat("x", i%7)
	}
	img := writePNG(t, renderText(t, goRegular(t), 24, lines...), "big.png")
	start := time.Now()
	_, err := (&Tesseract{Timeout: 100 * time.Millisecond}).Image(t.Context(), img)
	if fault.CodeOf(err) != fault.Upstream || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestOutputBounded(t *testing.T) {
	need(t, "sh", "yes")
	t.Parallel()
	bin := fakeBin(t, "tesseract", "yes level\n")
	img := writePNG(t, renderText(t, goRegular(t), 20, "x"), "o.png")
	start := time.Now()
	_, err := (&Tesseract{Bin: bin, MaxOutput: 4096}).Image(t.Context(), img)
	if !errors.Is(err, errOutputLimit) || fault.CodeOf(err) != fault.Upstream {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

func assertUnavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.Unavailable {
		t.Fatalf("err = %#v, want fault.Unavailable", err)
	}
	d, _ := fe.Detail.(map[string]any)
	hints, _ := d["hints"].([]string)
	if d["error"] != "ocr_unavailable" || d["message"] == "" || len(hints) == 0 || !strings.Contains(hints[0], "tesseract-ocr-chi-sim") {
		t.Errorf("detail = %#v", fe.Detail)
	}
}

func TestMissingBinary(t *testing.T) {
	empty := t.TempDir()
	bins := Bins{
		Tesseract: filepath.Join(empty, "tesseract"),
		PdfToText: filepath.Join(empty, "pdftotext"),
		PdfToPPM:  filepath.Join(empty, "pdftoppm"),
		PdfInfo:   filepath.Join(empty, "pdfinfo"),
	}
	img := writePNG(t, renderText(t, goRegular(t), 20, "missing"), "m.png")
	x := New(Options{Bins: bins})
	_, err := x.Extract(t.Context(), img)
	assertUnavailable(t, err)
	assertUnavailable(t, x.Available(t.Context()))

	pdf := writePDF(t, "m.pdf", pdfPageSpec{Lines: []string{"some text layer here"}})
	_, err = x.Extract(t.Context(), pdf)
	assertUnavailable(t, err)

	// And by PATH: an empty directory.
	t.Setenv("PATH", empty)
	_, err = New(Options{}).Extract(t.Context(), img)
	assertUnavailable(t, err)
	assertUnavailable(t, Available(t.Context(), Bins{}, ""))
}

func TestMissingLanguageData(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 20, "language"), "l.png")
	_, err := (&Tesseract{Langs: "zzz_nonexistent"}).Image(t.Context(), img)
	assertUnavailable(t, err)
	assertUnavailable(t, Available(t.Context(), Bins{}, "eng+zzz_nonexistent"))
}

func TestAvailable(t *testing.T) {
	need(t, "tesseract", "pdftotext", "pdftoppm", "pdfinfo")
	t.Parallel()
	x := New(Options{})
	if err := x.Available(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Cached: a cancelled context does not matter any more.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := x.Available(ctx); err != nil {
		t.Errorf("second call: %v", err)
	}
}

func TestBounds(t *testing.T) {
	need(t, "pdfinfo", "pdftotext")
	t.Parallel()
	three := writePDF(t, "three.pdf",
		pdfPageSpec{Lines: []string{"page one has text"}},
		pdfPageSpec{Lines: []string{"page two has text"}},
		pdfPageSpec{Lines: []string{"page three has text"}})
	img := writePNG(t, renderText(t, goRegular(t), 20, "bounds"), "b.png")
	txt := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(txt, []byte("plain text is not OCR input"), 0o644)
	gif := filepath.Join(t.TempDir(), "a.png") // named png, is a GIF
	os.WriteFile(gif, []byte("GIF89a\x01\x00\x01\x00"), 0o644)
	broken := filepath.Join(t.TempDir(), "broken.png")
	os.WriteFile(broken, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	brokenPDF := filepath.Join(t.TempDir(), "broken.pdf")
	os.WriteFile(brokenPDF, []byte("%PDF-1.4\nnothing here\n"), 0o644)

	for _, tc := range []struct {
		name, path, errKey string
		opts               Options
		code               fault.Code
	}{
		{"too many pages", three, "too_many_pages", Options{MaxPages: 2}, fault.TooLarge},
		{"pdf too large", three, "file_too_large", Options{MaxFileSize: 100}, fault.TooLarge},
		{"image too large", img, "file_too_large", Options{MaxFileSize: 100}, fault.TooLarge},
		{"too many pixels", img, "image_too_large", Options{MaxPixels: 1000}, fault.TooLarge},
		{"text file", txt, "unsupported_file_type", Options{}, fault.Unsupported},
		{"gif", gif, "unsupported_file_type", Options{}, fault.Unsupported},
		{"broken png", broken, "invalid_image", Options{}, fault.Invalid},
		{"broken pdf", brokenPDF, "invalid_pdf", Options{}, fault.Invalid},
	} {
		tc.opts.Engine = failEngine{t}
		_, err := New(tc.opts).Extract(t.Context(), tc.path)
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Code != tc.code {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tc.code)
			continue
		}
		if d, _ := fe.Detail.(map[string]any); d["error"] != tc.errKey {
			t.Errorf("%s: detail = %#v, want error %s", tc.name, fe.Detail, tc.errKey)
		}
	}
	// MaxPages equal to the page count is fine.
	res, err := New(Options{MaxPages: 3, Engine: failEngine{t}}).Extract(t.Context(), three)
	if err != nil || len(res.Pages) != 3 {
		t.Errorf("3 pages with MaxPages 3: %v, %+v", err, res)
	}
}

func TestAcquireErrorStops(t *testing.T) {
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 20, "acquire"), "a.png")
	boom := errors.New("no slot")
	_, err := New(Options{Engine: failEngine{t}, Acquire: func(context.Context) (func(), error) {
		return nil, boom
	}}).Extract(t.Context(), img)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}

func TestPageErrorKeepsOtherPages(t *testing.T) {
	need(t, "pdfinfo", "pdftotext", "pdftoppm")
	t.Parallel()
	pdf := writePDF(t, "mixed.pdf",
		pdfPageSpec{Lines: []string{"a page with a proper text layer"}},
		pdfPageSpec{Lines: []string{"tiny"}})
	boom := errors.New("engine broke")
	res, err := New(Options{Engine: engineFunc(func(context.Context, string) (Page, error) {
		return Page{}, boom
	})}).Extract(t.Context(), pdf)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Pages[1]; !errors.Is(p.Err, boom) || p.Source != SourceTextLayer || !strings.Contains(p.Text, "tiny") {
		t.Errorf("page 2 = %+v", p)
	}
	dir := t.TempDir()
	if err := res.WritePages(dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "ocr", "page_2.json"))
	if !strings.Contains(string(data), `"error": "engine broke"`) {
		t.Errorf("page_2.json = %s", data)
	}
}

func TestImageFormats(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	img := renderText(t, goRegular(t), 32, "Physics homework answers")
	for _, tc := range []struct {
		kind string
		enc  func(io.Writer, image.Image) error
	}{
		{"jpeg", func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, &jpeg.Options{Quality: 90}) }},
		{"tiff", func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) }},
		{"bmp", bmp.Encode},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := tc.enc(&buf, img); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "scan."+tc.kind)
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := New(Options{}).Extract(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Kind != tc.kind {
				t.Errorf("kind = %q", res.Kind)
			}
			if miss := missingWords(res.Text(), "Physics", "homework", "answers"); len(miss) > 1 {
				t.Errorf("missing %v in %q", miss, res.Text())
			}
		})
	}
}

// Stats counts the pages given to the engine and the failed ones.
func TestStatsCountPages(t *testing.T) {
	img := writePNG(t, renderText(t, goRegular(t), 30, "1. A"), "p.png")
	fail := false
	x := New(Options{Engine: engineFunc(func(ctx context.Context, path string) (Page, error) {
		if fail {
			return Page{}, errors.New("engine broke")
		}
		return Page{Text: "1. A"}, nil
	})})
	if _, err := x.Extract(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	fail = true
	if _, err := x.Extract(context.Background(), img); err == nil {
		t.Fatal("a failing engine succeeded")
	}
	if pages, failures := x.Stats(); pages != 2 || failures != 1 {
		t.Fatalf("Stats = %d pages, %d failures; want 2, 1", pages, failures)
	}
}
