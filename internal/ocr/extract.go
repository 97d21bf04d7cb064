package ocr

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"golang.org/x/sync/errgroup"
)

// Sources of a page's text.
const (
	SourceTextLayer = "text_layer"
	SourceOCR       = "ocr"
)

// Options configure an Extractor. Zero fields are the defaults.
type Options struct {
	// Engine OCRs images; default a Tesseract with Bins.Tesseract and
	// Timeout.
	Engine Engine
	// Bins names poppler's binaries (and tesseract's for the default
	// Engine and Available).
	Bins Bins
	// Langs is the default engine's languages and what Available checks;
	// default "chi_sim+eng".
	Langs string
	// Acquire is called around each page's rendering and OCR, and the
	// release it returns after; the caller passes a closure over
	// limits.AcquireOCR. Nil means no limit.
	Acquire func(ctx context.Context) (release func(), err error)
	// MaxPages refuses PDFs with more pages; default 50.
	MaxPages int
	// MaxFileSize refuses larger input files; default 50 MiB.
	MaxFileSize int64
	// MaxPixels refuses larger images (and renders PDF pages at a lower
	// resolution to stay under it); default 40 megapixels.
	MaxPixels int64
	// Timeout bounds each subprocess call; default 60 s.
	Timeout time.Duration
	// MaxOutput bounds each subprocess's output; default 1 MiB.
	MaxOutput int64
	// DPI is the resolution PDF pages are rendered at for OCR; default 200.
	DPI int
	// PageWorkers is how many scanned pages of one PDF are OCR'd at once
	// (each within Acquire); default 2.
	PageWorkers int
	// MinTextRunes is how many non-space runes a page's text layer needs
	// to be used without OCR; default 10.
	MinTextRunes int
	// TempDir is where rendered pages go (a fresh directory per call, then
	// removed); default os.TempDir().
	TempDir string
}

// Extractor returns the text of PDFs and images. It is safe for concurrent
// use.
type Extractor struct {
	opts Options

	mu        sync.Mutex
	available bool // a successful Available, cached

	pages, failures atomic.Int64 // engine calls, and those that failed
}

// Stats counts the pages given to the engine since the Extractor was made,
// and those whose OCR failed (the tenant's OCR figures in its status).
func (x *Extractor) Stats() (pages, failures int64) { return x.pages.Load(), x.failures.Load() }

// New returns an Extractor with opts, defaults filled in.
func New(opts Options) *Extractor {
	opts.Bins = opts.Bins.withDefaults()
	if opts.Langs == "" {
		opts.Langs = DefaultLangs
	}
	if opts.MaxPages <= 0 {
		opts.MaxPages = DefaultMaxPages
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = DefaultMaxPixels
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if opts.DPI <= 0 {
		opts.DPI = DefaultDPI
	}
	if opts.MinTextRunes <= 0 {
		opts.MinTextRunes = DefaultMinTextRunes
	}
	if opts.PageWorkers <= 0 {
		opts.PageWorkers = DefaultPageWorkers
	}
	if opts.Engine == nil {
		opts.Engine = &Tesseract{Bin: opts.Bins.Tesseract, Langs: opts.Langs, Timeout: opts.Timeout, MaxOutput: opts.MaxOutput}
	}
	return &Extractor{opts: opts}
}

// Options returns the options in use, defaults filled in.
func (x *Extractor) Options() Options { return x.opts }

// Available checks the binaries and the language data (see the function
// Available). A success is remembered, so only the first successful call
// runs tesseract; a failure is checked again next time.
func (x *Extractor) Available(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.available {
		return nil
	}
	if err := Available(ctx, x.opts.Bins, x.opts.Langs); err != nil {
		return err
	}
	x.available = true
	return nil
}

// PageResult is the text of one page. Err is a failure of this page alone
// (an OCR error the other pages did not share); Text then holds what the
// text layer had, if anything.
type PageResult struct {
	N          int     `json:"page"`
	Text       string  `json:"text"`
	Source     string  `json:"source"` // SourceTextLayer or SourceOCR
	Confidence float64 `json:"confidence,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	Engine     string  `json:"engine,omitempty"`
	// Fallback says why the primary engine's answer was not used, when
	// an Auto engine's fallback read the page.
	Fallback string `json:"fallback,omitempty"`
	Err      error  `json:"-"`
}

// Result is the text of a whole file.
type Result struct {
	// Kind is "pdf" or the image format ("png", "jpeg", "webp", "tiff",
	// "bmp").
	Kind  string       `json:"kind"`
	Pages []PageResult `json:"pages"`
}

// Text is the pages' text, each trimmed, separated by blank lines.
func (r *Result) Text() string {
	var parts []string
	for _, p := range r.Pages {
		if t := strings.TrimSpace(p.Text); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n\n")
}

// pageJSON is what ocr/page_N.json holds.
type pageJSON struct {
	PageResult
	Error string `json:"error,omitempty"`
}

// WritePages writes each page as dir/ocr/page_N.txt (the text) and
// dir/ocr/page_N.json ({page,text,source,confidence,width,height,engine,
// fallback,error}), each atomically. dir is the submission or job
// directory.
func (r *Result) WritePages(dir string) error { return r.WritePagesIn(filepath.Join(dir, "ocr")) }

// WritePagesIn is WritePages into dir itself: dir/page_N.{txt,json}, for a
// job that OCRs several files (one folder each).
func (r *Result) WritePagesIn(dir string) error {
	for _, p := range r.Pages {
		base := filepath.Join(dir, "page_"+strconv.Itoa(p.N))
		if err := atomicfile.WriteFile(base+".txt", []byte(p.Text), 0o644); err != nil {
			return err
		}
		pj := pageJSON{PageResult: p}
		if p.Err != nil {
			pj.Error = p.Err.Error()
		}
		if err := atomicfile.WriteJSON(base+".json", pj); err != nil {
			return err
		}
	}
	return nil
}

// Extract returns the text of the PDF or image at path. The kind is told
// from the content, not the name. Refusals are fault errors: Unsupported
// (not a PDF or a supported image), TooLarge (file size, pages, pixels),
// Invalid (unreadable PDF or image); OCR that cannot run wraps
// ErrUnavailable; the end of ctx is returned as ctx's error.
func (x *Extractor) Extract(ctx context.Context, path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fault.Newf(fault.Invalid, "%s is not a regular file", filepath.Base(path))
	}
	if st.Size() > x.opts.MaxFileSize {
		return nil, fault.New(fault.TooLarge, map[string]any{
			"error":   "file_too_large",
			"message": fmt.Sprintf("%s is %d bytes; at most %d are read", filepath.Base(path), st.Size(), x.opts.MaxFileSize),
			"max":     x.opts.MaxFileSize,
		})
	}
	head := make([]byte, 1024)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	kind := sniff(head[:n])
	switch kind {
	case "":
		return nil, fault.New(fault.Unsupported, map[string]any{
			"error":   "unsupported_file_type",
			"message": fmt.Sprintf("%s is neither a PDF nor a png, jpeg, webp, tiff or bmp image", filepath.Base(path)),
		})
	case "pdf":
		pages, err := x.pdf(ctx, path)
		if err != nil {
			return nil, err
		}
		return &Result{Kind: kind, Pages: pages}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if _, _, err := x.checkImage(f, kind, filepath.Base(path)); err != nil {
		return nil, err
	}
	p, err := x.ocr(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Result{Kind: kind, Pages: []PageResult{p}}, nil
}

// sniff tells the file kind from its first bytes: "pdf", "png", "jpeg",
// "webp", "tiff", "bmp", or "" for anything else.
func sniff(b []byte) string {
	switch {
	case bytes.Contains(b, []byte("%PDF-")):
		return "pdf"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "jpeg"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "tiff"
	case bytes.HasPrefix(b, []byte("BM")):
		return "bmp"
	}
	return ""
}

// checkImage decodes the image header and refuses images over MaxPixels.
func (x *Extractor) checkImage(r io.Reader, kind, name string) (w, h int, err error) {
	cfg, err := decodeConfig(r, kind)
	if err != nil {
		return 0, 0, fault.Wrap(fault.Invalid, err, map[string]any{
			"error":   "invalid_image",
			"message": fmt.Sprintf("%s is not a readable %s image", name, kind),
		})
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > x.opts.MaxPixels || cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, fault.New(fault.TooLarge, map[string]any{
			"error":   "image_too_large",
			"message": fmt.Sprintf("%s is %dx%d pixels; at most %d pixels are read", name, cfg.Width, cfg.Height, x.opts.MaxPixels),
			"max":     x.opts.MaxPixels,
		})
	}
	return cfg.Width, cfg.Height, nil
}

// ocr runs the engine on one image, holding the OCR slot.
func (x *Extractor) ocr(ctx context.Context, path string) (PageResult, error) {
	release, err := x.acquire(ctx)
	if err != nil {
		return PageResult{}, err
	}
	defer release()
	return x.engine(ctx, path)
}

func (x *Extractor) engine(ctx context.Context, path string) (PageResult, error) {
	x.pages.Add(1)
	p, err := x.opts.Engine.Image(ctx, path)
	if err != nil {
		x.failures.Add(1)
		return PageResult{}, err
	}
	engine := p.Engine
	if engine == "" {
		engine = x.opts.Engine.Name()
	}
	return PageResult{N: 1, Text: p.Text, Source: SourceOCR, Confidence: p.Confidence,
		Width: p.Width, Height: p.Height, Engine: engine, Fallback: p.Fallback}, nil
}

func (x *Extractor) acquire(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if x.opts.Acquire == nil {
		return func() {}, nil
	}
	return x.opts.Acquire(ctx)
}

// pdfPage is one page as pdfinfo describes it.
type pdfPage struct {
	wPt, hPt float64 // size in points
}

var pageSizeRE = regexp.MustCompile(`(?m)^Page\s+(\d+)\s+size:\s+([\d.]+)\s+x\s+([\d.]+)\s+pts`)

// pdfInfo returns the page count and the sizes of the first MaxPages pages.
func (x *Extractor) pdfInfo(ctx context.Context, path string) (int, map[int]pdfPage, error) {
	res, err := run(ctx, x.opts.Timeout, x.opts.MaxOutput, nil, x.opts.Bins.PdfInfo,
		"-f", "1", "-l", strconv.Itoa(x.opts.MaxPages), path)
	if err != nil {
		return 0, nil, invalidPDF(err)
	}
	count := -1
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pages:"); ok {
			count, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if count < 0 {
		return 0, nil, fault.New(fault.Invalid, map[string]any{
			"error": "invalid_pdf", "message": "pdfinfo did not report a page count",
		})
	}
	sizes := map[int]pdfPage{}
	for _, m := range pageSizeRE.FindAllStringSubmatch(string(res.stdout), -1) {
		n, _ := strconv.Atoi(m[1])
		w, _ := strconv.ParseFloat(m[2], 64)
		h, _ := strconv.ParseFloat(m[3], 64)
		sizes[n] = pdfPage{w, h}
	}
	return count, sizes, nil
}

// invalidPDF turns a poppler failure into an Invalid fault, unless it is
// already a fault (unavailable, timeout) or the end of the context.
func invalidPDF(err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fault.Wrap(fault.Invalid, err, map[string]any{
		"error": "invalid_pdf", "message": "the PDF cannot be read",
	})
}

// textLayer returns the text layer of pages 1..n: one pdftotext call
// (output bounded by MaxOutput per page), split at the form feed it ends
// each page with; if the split does not give n pages, one call per page.
func (x *Extractor) textLayer(ctx context.Context, path string, n int) ([]string, error) {
	res, err := run(ctx, x.opts.Timeout, x.opts.MaxOutput*int64(n), nil, x.opts.Bins.PdfToText,
		"-layout", "-enc", "UTF-8", "-f", "1", "-l", strconv.Itoa(n), path, "-")
	if err != nil {
		return nil, invalidPDF(err)
	}
	pages := strings.Split(string(res.stdout), "\f")
	if len(pages) == n+1 && strings.TrimSpace(pages[n]) == "" {
		return pages[:n], nil
	}
	pages = make([]string, n)
	for i := range pages {
		res, err := run(ctx, x.opts.Timeout, x.opts.MaxOutput, nil, x.opts.Bins.PdfToText,
			"-layout", "-enc", "UTF-8", "-f", strconv.Itoa(i+1), "-l", strconv.Itoa(i+1), path, "-")
		if err != nil {
			return nil, invalidPDF(err)
		}
		pages[i] = strings.TrimSuffix(string(res.stdout), "\f")
	}
	return pages, nil
}

// pdf extracts each page: the text layer when it has at least MinTextRunes
// non-space runes, else the page rendered and OCR'd.
func (x *Extractor) pdf(ctx context.Context, path string) ([]PageResult, error) {
	count, sizes, err := x.pdfInfo(ctx, path)
	if err != nil {
		return nil, err
	}
	if count > x.opts.MaxPages {
		return nil, fault.New(fault.TooLarge, map[string]any{
			"error":   "too_many_pages",
			"message": fmt.Sprintf("the PDF has %d pages; at most %d are read", count, x.opts.MaxPages),
			"pages":   count,
			"max":     x.opts.MaxPages,
		})
	}
	if count == 0 {
		return []PageResult{}, nil
	}
	layer, err := x.textLayer(ctx, path, count)
	if err != nil {
		return nil, err
	}
	out := make([]PageResult, count)
	var scanned []int // pages without a usable text layer
	for i := range out {
		if text := layer[i]; countRunes(text) >= x.opts.MinTextRunes {
			out[i] = PageResult{N: i + 1, Text: text, Source: SourceTextLayer}
		} else {
			scanned = append(scanned, i)
		}
	}
	if len(scanned) == 0 {
		return out, nil
	}
	tmp, err := os.MkdirTemp(x.opts.TempDir, "lectern-ocr-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// The scanned pages of one document are OCR'd PageWorkers at a time,
	// each still inside the caller's OCR slots (Acquire): a long scan
	// finishes sooner without taking every slot of its tenant.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(x.opts.PageWorkers)
	for _, i := range scanned {
		g.Go(func() error {
			n, text := i+1, layer[i]
			p, err := x.renderOCR(gctx, path, n, sizes[n], tmp)
			switch {
			case err == nil:
				p.N = n
				if strings.TrimSpace(p.Text) == "" && strings.TrimSpace(text) != "" {
					p.Text, p.Source = text, SourceTextLayer // the short layer beats nothing
				}
				out[i] = p
			case gctx.Err() != nil:
				return gctx.Err()
			case errors.Is(err, ErrUnavailable):
				return err
			default:
				out[i] = PageResult{N: n, Text: text, Source: SourceTextLayer, Err: err}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return out, nil
}

// countRunes counts the runes of s that are not white space.
func countRunes(s string) int {
	return utf8.RuneCountInString(strings.Join(strings.Fields(s), ""))
}

// renderOCR renders page n into dir and OCRs it, holding the OCR slot for
// both.
func (x *Extractor) renderOCR(ctx context.Context, path string, n int, size pdfPage, dir string) (PageResult, error) {
	release, err := x.acquire(ctx)
	if err != nil {
		return PageResult{}, err
	}
	defer release()
	dpi := float64(x.opts.DPI)
	if size.wPt > 0 && size.hPt > 0 {
		// Lower the resolution of a huge page to stay under MaxPixels.
		px := size.wPt / 72 * dpi * size.hPt / 72 * dpi
		if px > float64(x.opts.MaxPixels) {
			dpi = math.Floor(dpi * math.Sqrt(float64(x.opts.MaxPixels)/px))
		}
	}
	if dpi < 1 {
		return PageResult{}, fault.New(fault.TooLarge, map[string]any{
			"error": "page_too_large", "message": fmt.Sprintf("page %d is too large to render", n),
		})
	}
	prefix := filepath.Join(dir, "page_"+strconv.Itoa(n))
	ns := strconv.Itoa(n)
	if _, err := run(ctx, x.opts.Timeout, x.opts.MaxOutput, nil, x.opts.Bins.PdfToPPM,
		"-r", strconv.Itoa(int(dpi)), "-png", "-singlefile", "-f", ns, "-l", ns, path, prefix); err != nil {
		return PageResult{}, invalidPDF(err)
	}
	img := prefix + ".png"
	defer os.Remove(img)
	f, err := os.Open(img)
	if err != nil {
		return PageResult{}, fmt.Errorf("pdftoppm wrote no image for page %d: %w", n, err)
	}
	_, _, err = x.checkImage(f, "png", fmt.Sprintf("page %d", n))
	f.Close()
	if err != nil {
		return PageResult{}, err
	}
	return x.engine(ctx, img)
}
