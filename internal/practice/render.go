package practice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/textcut"
)

// FontPackage is the Debian package whose font render uses.
const FontPackage = "fonts-droid-fallback"

// Bounds of a render.
const (
	MaxRenderQuestions = 200
	maxFontBytes       = 64 << 20
	maxFontCandidates  = 400
)

// Layout, in millimetres (the predecessor's: A4, 2 cm margins, 14 pt lines).
const (
	marginMM   = 20.0
	lineMM     = 14 * 25.4 / 72
	headerSize = 12.0
	textSize   = 11.0
)

const missingStem = "[题干缺失] 请补充题干。"

// cjkProbe are characters a usable font must have.
var cjkProbe = []rune{'题', '中', '的', '力'}

// fontSearchDirs are where FindCJKFont looks.
var fontSearchDirs = []string{"/usr/share/fonts", "/usr/local/share/fonts"}

// FindCJKFont returns the path of a TrueType (glyf-outline) font with
// Chinese glyphs under /usr/share/fonts or /usr/local/share/fonts,
// preferring Droid Sans Fallback (Debian fonts-droid-fallback:
// /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf). fpdf embeds
// only TrueType outlines, so CFF fonts (fonts-noto-cjk's .ttc, any
// "OTTO" .otf) and collections are skipped.
func FindCJKFont() (string, error) { return findCJKFont(fontSearchDirs...) }

func findCJKFont(dirs ...string) (string, error) {
	var cands []string
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || len(cands) >= maxFontCandidates {
				return nil
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".ttf", ".otf":
				cands = append(cands, p)
			}
			return nil
		})
	}
	rank := func(p string) int {
		n := strings.ToLower(filepath.Base(p))
		switch {
		case strings.Contains(n, "droidsansfallback"):
			return 0
		case strings.Contains(n, "droid"), strings.Contains(n, "wqy"), strings.Contains(n, "cjk"),
			strings.Contains(n, "hei"), strings.Contains(n, "song"), strings.Contains(n, "ming"),
			strings.Contains(n, "kai"), strings.Contains(n, "han"), strings.Contains(n, "fallback"):
			return 1
		}
		return 2
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if a, b := rank(cands[i]), rank(cands[j]); a != b {
			return a < b
		}
		return cands[i] < cands[j]
	})
	for _, p := range cands {
		if !trueTypeHeader(p) {
			continue
		}
		if _, err := loadFont(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no TrueType font with Chinese glyphs under %s (apt-get install -y %s)",
		strings.Join(dirs, ", "), FontPackage)
}

// trueTypeHeader reports whether a font file starts like a single font
// with TrueType outlines.
func trueTypeHeader(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return false
	}
	return bytes.Equal(head[:], []byte{0, 1, 0, 0}) || string(head[:]) == "true"
}

// fontFile is a loaded font: its bytes for fpdf, its cmap for the glyph
// check.
type fontFile struct {
	data []byte
	face *sfnt.Font
}

// has reports whether the font maps r.
func (f *fontFile) has(buf *sfnt.Buffer, r rune) bool {
	i, err := f.face.GlyphIndex(buf, r)
	return err == nil && i != 0
}

// loadFont reads and checks a font file.
func loadFont(p string) (*fontFile, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxFontBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFontBytes {
		return nil, errors.New("font file too large")
	}
	if !bytes.HasPrefix(data, []byte{0, 1, 0, 0}) && !bytes.HasPrefix(data, []byte("true")) {
		return nil, errors.New("not a TrueType font (fpdf needs glyf outlines, not CFF or a collection)")
	}
	face, err := sfnt.Parse(data)
	if err != nil {
		return nil, err
	}
	f := &fontFile{data: data, face: face}
	var buf sfnt.Buffer
	for _, r := range cjkProbe {
		if !f.has(&buf, r) {
			return nil, fmt.Errorf("font has no glyph for %q", r)
		}
	}
	return f, nil
}

func fontUnavailable(reason string) error {
	return fault.New(fault.Unavailable, map[string]any{
		"error":   "font_unavailable",
		"message": "服务器没有可用的中文 TrueType 字体，无法生成 PDF。(" + reason + ")",
		"hints": []string{
			"在服务器上安装 Debian 包 " + FontPackage + "（apt-get install -y " + FontPackage + "），重启服务后自动识别。",
			"PDF 需要 TrueType（glyf）字体，例如 /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf；fonts-noto-cjk 的 CFF 字体（.ttc）不能用。",
		},
	})
}

// loadedFont is the configured font, read once.
func (s *Service) loadedFont() (*fontFile, error) {
	if s.fontPath == "" {
		return nil, fontUnavailable("no font configured")
	}
	s.fontMu.Lock()
	defer s.fontMu.Unlock()
	if s.font != nil {
		return s.font, nil
	}
	f, err := loadFont(s.fontPath)
	if err != nil {
		return nil, fontUnavailable(filepath.Base(s.fontPath) + ": " + err.Error())
	}
	s.font = f
	return f, nil
}

// RenderResult is POST /assignment/render's answer.
type RenderResult struct {
	OK     bool   `json:"ok"`
	Output string `json:"output"`
	PDF    string `json:"pdf"` // relative to DATA_DIR
	URL    string `json:"url"` // PDFHandler's route
}

// pdfName is the file name of an assignment's PDF.
func pdfName(id string) string { return "assignment_" + id + ".pdf" }

// Render writes DATA_DIR/assignments/<id>/assignment_<id>.pdf (atomically)
// from the assignment's questions.csv and stems: the predecessor's layout
// (A4, 2 cm margins, 14 pt lines; "Assignment ID: <id>", "Student: ___",
// then each question numbered from 1 as "<n>. <question_id>
// (<kp_id>|<difficulty>)" and its stem, or "[题干缺失] 请补充题干。"), with
// stems wrapped to the page and a CJK font so that Chinese shows. At most
// MaxRenderQuestions questions are drawn (a last line says how many were
// left out) and 4000 characters of each stem; one render runs at a time
// per tenant (local CPU only, well under a second for 200 questions). Errors: Invalid for a bad
// id, NotFound for a missing assignment or questions.csv, Unavailable
// font_unavailable without a usable font.
func (s *Service) Render(ctx context.Context, id string) (*RenderResult, error) {
	aid, dir, exists, err := s.asg.Resolve(id)
	if err != nil {
		return nil, err
	}
	if !exists || aid == coreDir {
		return nil, fault.New(fault.NotFound, "assignment not found")
	}
	font, err := s.loadedFont()
	if err != nil {
		return nil, err
	}
	rel := "assignments/" + aid
	csvPath := filepath.Join(dir, "questions.csv")
	if fi, err := os.Stat(csvPath); err != nil || !fi.Mode().IsRegular() {
		return nil, fault.New(fault.NotFound, "Assignment questions not found: "+rel+"/questions.csv")
	}
	rows, err := readRows(csvPath)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read assignment questions failed")
	}
	select {
	case s.renderSlot <- struct{}{}:
		defer func() { <-s.renderSlot }()
	case <-ctx.Done():
		return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "another PDF is being rendered; retry later")
	}
	doc, err := s.draw(aid, rows, font)
	if err != nil {
		return nil, err
	}
	name := pdfName(aid)
	if err := atomicfile.WriteFile(filepath.Join(dir, name), doc, 0o644); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "write PDF failed")
	}
	return &RenderResult{OK: true, Output: "[OK] Wrote PDF: " + rel + "/" + name, PDF: rel + "/" + name,
		URL: "/assignment/" + pathEscape(aid) + "/pdf"}, nil
}

// draw lays the assignment out and returns the PDF.
func (s *Service) draw(aid string, rows []Row, font *fontFile) ([]byte, error) {
	return s.document("Assignment "+aid, font, func(t *typesetter) error {
		t.setStyle("B", headerSize)
		t.paragraph("Assignment ID: " + aid)
		t.setStyle("", textSize)
		t.paragraph("Student: ____________________")
		t.pdf.Ln(lineMM)
		for i, r := range rows {
			if i == MaxRenderQuestions {
				t.paragraph(fmt.Sprintf("……另有 %d 题未排版（一次最多 %d 题）。", len(rows)-i, MaxRenderQuestions))
				break
			}
			t.setStyle("B", textSize)
			t.paragraph(strconv.Itoa(i+1) + ". " + r.QuestionID + " (" + r.KPID + "|" + r.Difficulty + ")")
			t.setStyle("", textSize)
			stem, ok := s.readRef(r.StemRef, maxStemRunes)
			if !ok || strings.TrimSpace(stem) == "" {
				stem = missingStem
			}
			t.paragraph(strings.TrimRight(stem, "\n"))
			t.pdf.Ln(lineMM)
			if err := t.pdf.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}

// RenderText draws a title and paragraphs as a PDF in the same layout and
// fonts as an assignment (the core-example render tool), within the same
// one-at-a-time render slot. At most MaxRenderQuestions paragraphs of
// 4000 characters each are drawn. Errors: Unavailable font_unavailable
// without a usable font, or while another render holds the slot past ctx.
func (s *Service) RenderText(ctx context.Context, title string, paragraphs []string) ([]byte, error) {
	font, err := s.loadedFont()
	if err != nil {
		return nil, err
	}
	select {
	case s.renderSlot <- struct{}{}:
		defer func() { <-s.renderSlot }()
	case <-ctx.Done():
		return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "another PDF is being rendered; retry later")
	}
	return s.document(title, font, func(t *typesetter) error {
		t.setStyle("B", headerSize)
		t.paragraph(textcut.Short(title, 200))
		t.setStyle("", textSize)
		t.pdf.Ln(lineMM)
		for i, p := range paragraphs {
			if i == MaxRenderQuestions {
				break
			}
			t.paragraph(strings.TrimRight(textcut.Short(p, maxStemRunes), "\n"))
			t.pdf.Ln(lineMM)
			if err := t.pdf.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}

// document sets up an A4 page with the Latin (Go fonts, golang.org/x/image:
// CJK fallback fonts such as Droid Sans Fallback have no Latin letters)
// and CJK fonts, lets body write it, and returns the PDF.
func (s *Service) document(title string, font *fontFile, body func(*typesetter) error) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil { // fpdf panics on some malformed input
			out, err = nil, fault.Wrap(fault.Internal, fmt.Errorf("fpdf: %v", r), "render PDF failed")
		}
	}()
	latin, bold, err := goFonts()
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "render PDF failed")
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(marginMM, marginMM, marginMM)
	pdf.SetAutoPageBreak(true, marginMM)
	pdf.SetCellMargin(0) // runs of the two fonts abut
	pdf.SetTitle(title, true)
	pdf.SetCreator("Lectern", true)
	pdf.SetCreationDate(s.now())
	pdf.AddUTF8FontFromBytes("latin", "", latin.data)
	pdf.AddUTF8FontFromBytes("latin", "B", bold.data)
	pdf.AddUTF8FontFromBytes("cjk", "", font.data)
	pdf.AddUTF8FontFromBytes("cjk", "B", font.data) // no bold CJK face: the regular one
	pdf.AddPage()
	pw, _ := pdf.GetPageSize()
	t := &typesetter{pdf: pdf, latin: latin, cjk: font, width: pw - 2*marginMM}
	if err := body(t); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "render PDF failed")
	}
	var b bytes.Buffer
	if err := pdf.Output(&b); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "render PDF failed")
	}
	return b.Bytes(), nil
}

// goFonts are the Go Regular and Bold fonts.
func goFonts() (regular, bold *fontFile, err error) {
	r, err := sfnt.Parse(goregular.TTF)
	if err != nil {
		return nil, nil, err
	}
	b, err := sfnt.Parse(gobold.TTF)
	if err != nil {
		return nil, nil, err
	}
	return &fontFile{data: goregular.TTF, face: r}, &fontFile{data: gobold.TTF, face: b}, nil
}

// typesetter writes wrapped lines, each character in the Latin font when
// it has the glyph, else in the CJK font, else as "?".
type typesetter struct {
	pdf        *fpdf.Fpdf
	latin, cjk *fontFile
	width      float64 // of a line, mm
	buf        sfnt.Buffer
	style      string
	size       float64
	widths     map[rune]float64 // in the current style and size
	families   map[rune]string
}

func (t *typesetter) setStyle(style string, size float64) {
	t.style, t.size = style, size
	t.widths = map[rune]float64{}
}

// family is the font a character is set in ("" when neither has it).
func (t *typesetter) family(r rune) string {
	if t.families == nil {
		t.families = map[rune]string{}
	}
	if f, ok := t.families[r]; ok {
		return f
	}
	f := ""
	switch {
	case r > 0xFFFF: // beyond fpdf's width table
	case r == ' ' || t.latin.has(&t.buf, r):
		f = "latin"
	case t.cjk.has(&t.buf, r):
		f = "cjk"
	}
	t.families[r] = f
	return f
}

// clean replaces what cannot be drawn: tabs become spaces, other control
// characters go, characters no font has become "?".
func (t *typesetter) clean(text string) string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == '\n':
			b.WriteRune(r)
		case r == '\t':
			b.WriteString("    ")
		case r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0):
		case t.family(r) == "":
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (t *typesetter) runeWidth(r rune) float64 {
	if w, ok := t.widths[r]; ok {
		return w
	}
	t.pdf.SetFont(t.family(r), t.style, t.size)
	w := t.pdf.GetStringWidth(string(r))
	t.widths[r] = w
	return w
}

// paragraph writes text, wrapped, one line after another.
func (t *typesetter) paragraph(text string) {
	for _, line := range wrap(t.clean(text), t.width, t.runeWidth) {
		t.line(line)
	}
}

// line writes one line as runs of one font each.
func (t *typesetter) line(s string) {
	runs := []rune(s)
	for i := 0; i < len(runs); {
		fam := t.family(runs[i])
		j := i + 1
		for j < len(runs) && t.family(runs[j]) == fam {
			j++
		}
		seg := string(runs[i:j])
		t.pdf.SetFont(fam, t.style, t.size)
		t.pdf.CellFormat(t.pdf.GetStringWidth(seg), lineMM, seg, "", 0, "L", false, 0, "")
		i = j
	}
	t.pdf.Ln(lineMM)
}

// noLineStart are characters that should not begin a line: a break before
// one moves the previous character down with it.
const noLineStart = "，。、；：！？）》」』】,.;:!?)"

// wrap breaks text into lines no wider than width (mm) in the current
// font: at explicit newlines, after the last space when a Latin word would
// overflow, else between any two characters (Chinese has no spaces).
// fpdf's own MultiCell is not used for this: it treats each Chinese
// character as a break point and drops the character it breaks at.
func wrap(text string, width float64, w func(rune) float64) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		line := []rune{}
		cur := 0.0
		lastSpace := -1
		for _, r := range para {
			rw := w(r)
			if cur+rw > width && len(line) > 0 {
				var next []rune
				switch {
				case r == ' ':
					// the space ends the line
				case lastSpace > 0 && isLatin(r) && allLatin(line[lastSpace+1:]):
					next = append(next, line[lastSpace+1:]...)
					line = line[:lastSpace]
				case strings.ContainsRune(noLineStart, r) && len(line) > 1:
					next = append(next, line[len(line)-1])
					line = line[:len(line)-1]
				}
				lines = append(lines, string(line))
				line, cur, lastSpace = next, 0, -1
				for _, c := range line {
					cur += w(c)
				}
				if r == ' ' {
					continue
				}
			}
			if r == ' ' {
				lastSpace = len(line)
			}
			line = append(line, r)
			cur += rw
		}
		lines = append(lines, string(line))
	}
	return lines
}

func isLatin(r rune) bool { return r < 0x2E80 && r != ' ' }

func allLatin(rs []rune) bool {
	for _, r := range rs {
		if !isLatin(r) {
			return false
		}
	}
	return true
}
