package charts

import (
	"bytes"
	"fmt"
	"image/color"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Canvas size of every chart, in points (the SVG viewBox is 0 0 800 450).
const (
	chartWidth  vg.Length = 800
	chartHeight vg.Length = 450
)

// fontFallbacks follows the measuring font in every font-family of the SVG.
// Arial and Helvetica are metric-compatible with Liberation Sans, so Latin
// text keeps the widths gonum/plot computed on machines without Liberation;
// the CJK families cover Linux, Windows and macOS.
const fontFallbacks = `Arial,Helvetica,'Noto Sans CJK SC','Source Han Sans SC',` +
	`'WenQuanYi Micro Hei','Microsoft YaHei','PingFang SC','Hiragino Sans GB',SimHei,sans-serif`

// Text sizes, in points.
const (
	titleSize = 16
	labelSize = 13
	tickSize  = 11
	noteSize  = 10
)

// Colours, as 0xRRGGBB (kept as constants: the package has no mutable
// package-level state).
const (
	colorBar     = 0x4e79a7 // bars; question bars at or above 60%
	colorLow     = 0xe15759 // question bars below 60%
	colorMax     = 0x59a14f // class maximum
	colorMin     = 0xf28e2b // class minimum
	colorRefLine = 0xb03030 // 60% reference line, mean line
	colorGrid    = 0xdddddd
	colorNote    = 0x444444
)

// rgb converts a 0xRRGGBB constant to an opaque colour.
func rgb(c uint32) color.Color {
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

// chart bundles a plot with the text handler all its text styles use. The
// title and the key (a one-row legend) are drawn by render above the plot,
// so they never overlap the data.
type chart struct {
	p     *plot.Plot
	text  cjkText
	title string
	keys  []keyEntry
}

// keyEntry is one item of the key row: a filled square or a line sample,
// followed by a text.
type keyEntry struct {
	text string
	fill color.Color     // filled square, if non-nil
	line *draw.LineStyle // line sample, if non-nil
}

// newChart returns a plot whose every text style uses a sans font and the
// CJK-aware handler. Nothing global (plot.DefaultFont, font.DefaultCache,
// plot.DefaultTextHandler) is read for drawing or modified.
func newChart(title, xLabel, yLabel string) *chart {
	h := newTextHandler()
	p := plot.New()
	p.TextHandler = h

	style := func(sty *text.Style, size vg.Length) {
		sty.Handler = h
		sty.Font = sansFont(size)
		sty.Color = color.Black
	}
	style(&p.Title.TextStyle, titleSize)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	style(&p.X.Label.TextStyle, labelSize)
	style(&p.Y.Label.TextStyle, labelSize)
	style(&p.X.Tick.Label, tickSize)
	style(&p.Y.Tick.Label, tickSize)
	style(&p.Legend.TextStyle, tickSize)
	p.X.Label.Padding = 4
	p.Y.Label.Padding = 6

	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal.Color = rgb(colorGrid)
	grid.Horizontal.Width = vg.Points(0.5)
	p.Add(grid)
	return &chart{p: p, text: h, title: cleanLabel(title, 0)}
}

// textStyle returns a style for text drawn by the package itself.
func (c *chart) textStyle(size vg.Length, clr color.Color) text.Style {
	return text.Style{
		Color:   clr,
		Font:    sansFont(size),
		XAlign:  draw.XCenter,
		YAlign:  draw.YBottom,
		Handler: c.text,
	}
}

func (c *chart) titleStyle() text.Style {
	sty := c.textStyle(titleSize, color.Black)
	sty.Font.Weight = xfont.WeightBold
	sty.YAlign = draw.YTop
	return sty
}

// Layout constants, in points.
const (
	margin       = 10
	titleGap     = 8
	keyGap       = 10
	keySwatch    = 10
	keyLineLen   = 22
	keyItemSpace = 18
)

// plotArea returns the part of the canvas left for the plot (axes and data)
// once the margins, the title and the key row are taken.
func (c *chart) plotArea(dc draw.Canvas) draw.Canvas {
	area := draw.Crop(dc, margin, -margin-4, margin, -margin)
	if c.title != "" {
		area.Max.Y -= c.titleStyle().Height(c.title) + titleGap
	}
	if len(c.keys) > 0 {
		area.Max.Y -= c.textStyle(tickSize, nil).Height("国") + keyGap
	}
	return area
}

// dataWidth is the width of the data area the plot will get, given the
// axes as configured so far; used to size bars before they are added.
func (c *chart) dataWidth() vg.Length {
	// Layout needs only the rectangle, not a real canvas.
	dc := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: chartWidth, Y: chartHeight}}}
	return c.p.DataCanvas(c.plotArea(dc)).Size().X
}

// newCanvas returns a fresh full-size SVG canvas.
func newCanvas() (*vgsvg.Canvas, draw.Canvas) {
	svg := vgsvg.New(chartWidth, chartHeight)
	return svg, draw.New(svg)
}

// render draws the chart onto a fresh SVG canvas and returns the document.
func (c *chart) render() (out []byte, err error) {
	defer func() {
		// gonum/plot panics on some inputs it considers invalid; report
		// that as an error rather than crash the server.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("charts: drawing failed: %v", r)
		}
	}()
	svg, dc := newCanvas()
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	c.p.BackgroundColor = nil

	top := dc.Max.Y - margin
	if c.title != "" {
		sty := c.titleStyle()
		title := fitText(sty, c.title, dc.Size().X-2*margin)
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: top}, title)
		top -= sty.Height(title) + titleGap
	}
	if len(c.keys) > 0 {
		c.drawKeys(dc, top)
	}
	c.p.Draw(c.plotArea(dc))

	var buf bytes.Buffer
	if _, err := svg.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("charts: writing svg: %w", err)
	}
	return postProcess(buf.Bytes()), nil
}

// drawKeys draws the key entries in one centred row whose top is at top.
func (c *chart) drawKeys(dc draw.Canvas, top vg.Length) {
	sty := c.textStyle(tickSize, color.Black)
	sty.XAlign = draw.XLeft
	sty.YAlign = draw.YCenter
	h := sty.Height("国")
	mid := top - h/2

	sampleW := func(k keyEntry) vg.Length {
		if k.line != nil {
			return keyLineLen
		}
		return keySwatch
	}
	var total vg.Length
	for i, k := range c.keys {
		if i > 0 {
			total += keyItemSpace
		}
		total += sampleW(k) + 4 + sty.Width(k.text)
	}
	x := dc.Center().X - total/2
	for _, k := range c.keys {
		switch {
		case k.line != nil:
			dc.StrokeLine2(*k.line, x, mid, x+keyLineLen, mid)
		case k.fill != nil:
			dc.FillPolygon(k.fill, []vg.Point{
				{X: x, Y: mid - keySwatch/2}, {X: x + keySwatch, Y: mid - keySwatch/2},
				{X: x + keySwatch, Y: mid + keySwatch/2}, {X: x, Y: mid + keySwatch/2},
			})
		}
		x += sampleW(k) + 4
		dc.FillText(sty, vg.Point{X: x, Y: mid}, k.text)
		x += sty.Width(k.text) + keyItemSpace
	}
}

// fitText shortens s with an ellipsis until it is at most maxW wide.
func fitText(sty text.Style, s string, maxW vg.Length) string {
	if sty.Width(s) <= maxW {
		return s
	}
	rs := []rune(s)
	for n := len(rs) - 1; n > 0; n-- {
		t := string(rs[:n]) + "…"
		if sty.Width(t) <= maxW {
			return t
		}
	}
	return "…"
}

// postProcess declares the document encoding and adds the CJK fallback
// fonts to every font-family.
//
// vgsvg writes each <text> element with an attribute starting
// style="font-family:NAME; where NAME is the family name from the measuring
// font's name table (gonum/plot offers no option to change it). Text content
// cannot contain that pattern because vgsvg escapes '"' in text, so only
// attributes are rewritten.
func postProcess(svg []byte) []byte {
	const (
		decl    = `<?xml version="1.0"?>`
		utfDecl = `<?xml version="1.0" encoding="UTF-8"?>`
		attr    = `style="font-family:`
	)
	out := make([]byte, 0, len(svg)+len(svg)/4)
	if bytes.HasPrefix(svg, []byte(decl)) {
		out = append(out, utfDecl...)
		svg = svg[len(decl):]
	}
	for {
		i := bytes.Index(svg, []byte(attr))
		if i < 0 {
			break
		}
		i += len(attr)
		out = append(out, svg[:i]...)
		svg = svg[i:]
		end := bytes.IndexAny(svg, `;"`)
		if end < 0 || svg[end] != ';' || bytes.ContainsAny(svg[:end], `'<>&`) {
			continue // not the shape vgsvg writes; leave it alone
		}
		out = append(out, '\'')
		out = append(out, svg[:end]...)
		out = append(out, "',"+fontFallbacks...)
		svg = svg[end:]
	}
	return append(out, svg...)
}
