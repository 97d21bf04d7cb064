package charts

import (
	"math"
	"strings"
	"unicode/utf8"

	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// sansFont is the font descriptor used for every piece of text. The
// Liberation Sans metrics are what gonum/plot measures Latin text with; in
// the SVG the family is followed by CJK fallbacks (see fontFallbacks).
func sansFont(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// cjkText is a plain-text text.Handler that measures glyphs missing from the
// measuring font (Liberation has no CJK glyphs) the way a browser will render
// them with a fallback font: East Asian wide/fullwidth characters advance by
// one em, other missing characters by an approximate 0.6em. The plain
// handler would measure every missing rune with the advance of the .notdef
// glyph, which makes centred Chinese text drift and crowds labels.
type cjkText struct {
	fonts *font.Cache
}

var _ text.Handler = cjkText{}

// newTextHandler returns a handler with its own font cache, so that no
// package-level (or gonum-global) mutable state is touched.
func newTextHandler() cjkText {
	return cjkText{fonts: font.NewCache(liberation.Collection())}
}

func (h cjkText) Cache() *font.Cache { return h.fonts }

func (h cjkText) Extents(fnt font.Font) font.Extents {
	face := h.fonts.Lookup(fnt, fnt.Size)
	return face.Extents()
}

func (h cjkText) Lines(txt string) []string {
	txt = strings.TrimRight(txt, "\n")
	return strings.Split(txt, "\n")
}

func (h cjkText) Box(txt string, fnt font.Font) (width, height, depth vg.Length) {
	face := h.fonts.Lookup(fnt, fnt.Size)
	ext := face.Extents()
	return textWidth(face, txt), ext.Ascent, ext.Descent
}

// Draw mirrors text.Plain.Draw but aligns lines with textWidth.
func (h cjkText) Draw(c vg.Canvas, txt string, sty text.Style, pt vg.Point) {
	txt = strings.TrimRight(txt, "\n")
	if txt == "" {
		return
	}
	face := h.fonts.Lookup(sty.Font, sty.Font.Size)
	c.SetColor(sty.Color)
	if sty.Rotation != 0 {
		c.Push()
		c.Rotate(sty.Rotation)
	}
	sin64, cos64 := math.Sincos(sty.Rotation)
	cos, sin := vg.Length(cos64), vg.Length(sin64)
	pt.X, pt.Y = pt.Y*sin+pt.X*cos, pt.Y*cos-pt.X*sin

	lines := h.Lines(txt)
	ht := sty.Height(txt)
	pt.Y += ht*vg.Length(sty.YAlign) - face.Extents().Ascent
	for i, line := range lines {
		xoffs := vg.Length(sty.XAlign) * textWidth(face, line)
		n := vg.Length(len(lines) - i)
		c.FillString(face, pt.Add(vg.Point{X: xoffs, Y: n * sty.Font.Size}), line)
	}
	if sty.Rotation != 0 {
		c.Pop()
	}
}

// textWidth measures s: runs of runes the font has are measured by the font
// (with kerning); runes it lacks are estimated as a fallback font draws them.
func textWidth(face font.Face, s string) vg.Length {
	var (
		buf   sfnt.Buffer
		w     vg.Length
		start = -1 // start of the current run of glyphs the font has
	)
	flush := func(end int) {
		if start >= 0 {
			w += face.Width(s[start:end])
			start = -1
		}
	}
	for i, r := range s {
		idx, err := face.Face.GlyphIndex(&buf, r)
		if err == nil && idx != 0 {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
		if isWide(r) {
			w += face.Font.Size
		} else {
			w += face.Font.Size * 0.6
		}
	}
	flush(len(s))
	return w
}

// isWide reports whether r is an East Asian wide or fullwidth character
// (CJK ideographs, kana, hangul, CJK and fullwidth punctuation).
func isWide(r rune) bool {
	switch {
	case r >= 0x1100 && r <= 0x115F, // Hangul Jamo initials
		r >= 0x2E80 && r <= 0x303E, // CJK radicals, Kangxi, CJK symbols and punctuation
		r >= 0x3041 && r <= 0x33FF, // kana, bopomofo, CJK compatibility
		r >= 0x3400 && r <= 0x4DBF, // CJK extension A
		r >= 0x4E00 && r <= 0x9FFF, // CJK unified ideographs
		r >= 0xA000 && r <= 0xA4CF, // Yi
		r >= 0xAC00 && r <= 0xD7A3, // Hangul syllables
		r >= 0xF900 && r <= 0xFAFF, // CJK compatibility ideographs
		r >= 0xFE30 && r <= 0xFE4F, // CJK compatibility forms
		r >= 0xFF00 && r <= 0xFF60, // fullwidth forms
		r >= 0xFFE0 && r <= 0xFFE6,
		r >= 0x20000 && r <= 0x3FFFD: // CJK extensions B and later
		return true
	}
	return false
}

// cleanLabel makes s safe to put in the SVG as text: invalid UTF-8 is
// replaced, characters XML 1.0 forbids are dropped, and line breaks and tabs
// become spaces (labels are single-line). Over-long labels are shortened to
// maxRunes runes with an ellipsis; maxRunes <= 0 means no limit.
func cleanLabel(s string, maxRunes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			// not allowed in XML 1.0 documents
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if maxRunes > 0 && utf8.RuneCountInString(out) > maxRunes {
		rs := []rune(out)
		out = strings.TrimSpace(string(rs[:maxRunes-1])) + "…"
	}
	return out
}
