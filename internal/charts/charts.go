// Package charts draws exam charts as SVG documents with gonum/plot.
//
// Every chart is 800×450 points (viewBox "0 0 800 450"). Text is measured
// with the Liberation Sans metrics that ship with gonum/plot; characters that
// font lacks (Chinese) are measured as one em, which is how the CJK fallback
// fonts named in the SVG's font-family draw them. The package keeps no
// mutable package-level state and sets no gonum/plot globals, so charts can
// be rendered concurrently.
package charts

import (
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Bar is one labelled value, e.g. a question's score rate.
type Bar struct {
	Label string
	Value float64
}

// ClassStat summarises one class's totals.
type ClassStat struct {
	Class         string
	Avg, Max, Min float64
	Students      int
}

// noData is shown in place of data when a chart has nothing to show.
const noData = "暂无数据"

// Limits on inputs, so that absurd numbers cannot make axis ranges
// infinite: scores beyond ±maxScore are ignored (totals) or clamped (class
// statistics), and percentages are clamped to ±maxPercent.
const (
	maxScore     = 1e9
	maxPercent   = 1000
	maxTickRunes = 12 // tick labels are cut to this many runes
)

// TotalsSVG draws a histogram of students' total scores. Bins have a round
// width chosen so there are at most 15 of them, from 0 up to fullMarks (or to
// the highest total when fullMarks <= 0, or when a total exceeds it; a
// negative total extends the axis below 0). NaN, infinite and absurdly large
// totals are ignored. The key shows the mean and the head count.
func TotalsSVG(title string, totals []float64, fullMarks float64) ([]byte, error) {
	c := newChart(title, "总分", "人数")
	p := c.p

	vals := make([]float64, 0, len(totals))
	lo, hi := 0.0, 0.0
	if fullMarks > 0 && fullMarks <= maxScore {
		hi = fullMarks
	}
	sum := 0.0
	for _, v := range totals {
		if !(math.Abs(v) <= maxScore) { // also NaN
			continue
		}
		vals = append(vals, v)
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		sum += v
	}
	if hi <= lo {
		if len(vals) == 0 {
			hi = lo + 100
		} else {
			hi = lo + 10 // e.g. everyone scored 0 and full marks are unknown
		}
	}
	bw := binWidth(hi - lo)
	lo = math.Floor(lo/bw) * bw
	nb := int(math.Ceil((hi - lo) / bw))
	nb = max(nb, 1)
	if hi > lo+float64(nb)*bw { // guard against rounding
		nb++
	}

	bins := make([]plotter.HistogramBin, nb)
	for i := range bins {
		bins[i].Min = lo + float64(i)*bw
		bins[i].Max = lo + float64(i+1)*bw
	}
	for _, v := range vals {
		i := min(int(math.Floor((v-lo)/bw)), nb-1) // full marks go in the last bin
		bins[max(i, 0)].Weight++
	}
	maxCount := 0.0
	for _, b := range bins {
		maxCount = math.Max(maxCount, b.Weight)
	}

	p.X.Min, p.X.Max = lo, lo+float64(nb)*bw
	p.Y.Min, p.Y.Max = 0, math.Max(5, maxCount*1.12+0.5)
	p.X.Padding, p.Y.Padding = 0, 0
	p.X.Tick.Marker = edgeTicks{lo: lo, width: bw, n: nb}
	p.Y.Tick.Marker = stepTicks{}

	if len(vals) == 0 {
		p.Add(c.centerNote(noData))
		return c.render()
	}

	h := &plotter.Histogram{
		Bins:      bins,
		Width:     bw,
		FillColor: rgb(colorBar),
		LineStyle: draw.LineStyle{Color: color.White, Width: vg.Points(1)},
	}
	p.Add(h)

	counts := make(annotations, 0, nb)
	sty := c.textStyle(noteSize, rgb(colorNote))
	for _, b := range bins {
		if b.Weight > 0 {
			counts = append(counts, annotation{
				x: (b.Min + b.Max) / 2, y: b.Weight, dy: 2,
				text: strconv.Itoa(int(b.Weight)), style: sty,
			})
		}
	}
	p.Add(counts)

	mean := sum / float64(len(vals))
	meanLine := draw.LineStyle{Color: rgb(colorRefLine), Width: vg.Points(1.5), Dashes: []vg.Length{6, 3}}
	p.Add(&plotter.Line{XYs: plotter.XYs{{X: mean, Y: 0}, {X: mean, Y: p.Y.Max}}, LineStyle: meanLine})

	c.keys = []keyEntry{
		{text: "人数（共 " + strconv.Itoa(len(vals)) + " 人）", fill: rgb(colorBar)},
		{text: "平均分 " + formatScore(mean), line: &meanLine},
	}
	return c.render()
}

// QuestionRatesSVG draws one bar per question, in the given order, with the
// score rate (Value, 0..1) shown as a percentage. Bars below 60% are drawn
// in a warning colour, and a dashed reference line marks 60%. NaN values are
// drawn as 0, and values are clamped to ±1000%.
func QuestionRatesSVG(title string, bars []Bar) ([]byte, error) {
	c := newChart(title, "题号", "得分率")
	p := c.p
	n := len(bars)

	labels := make([]string, n)
	pct := make([]float64, n)
	top := 100.0
	for i, b := range bars {
		labels[i] = cleanLabel(b.Label, maxTickRunes)
		v := b.Value * 100
		if math.IsNaN(v) {
			v = 0
		}
		v = math.Max(-maxPercent, math.Min(v, maxPercent))
		pct[i] = v
		top = math.Max(top, v)
	}
	p.Y.Min, p.Y.Max = 0, top*1.08
	for _, v := range pct {
		p.Y.Min = math.Min(p.Y.Min, v)
	}
	p.Y.Tick.Marker = percentTicks{}
	p.X.Padding, p.Y.Padding = 0, 0
	c.categoryAxis(labels)

	if n == 0 {
		p.Add(c.centerNote(noData))
		return c.render()
	}
	refLine := draw.LineStyle{Color: rgb(colorRefLine), Width: vg.Points(1.2), Dashes: []vg.Length{6, 3}}
	c.keys = []keyEntry{
		{text: "得分率 ≥ 60%", fill: rgb(colorBar)},
		{text: "得分率 < 60%", fill: rgb(colorLow)},
		{text: "60% 参考线", line: &refLine},
	}

	slot := c.dataWidth() / vg.Length(n)
	width := min(slot*0.62, 48)
	sty := c.textStyle(noteSize, rgb(colorNote))
	showValues := sty.Width("100%")+2 <= slot
	notes := make(annotations, 0, n)
	for i, v := range pct {
		bc, err := plotter.NewBarChart(plotter.Values{v}, width)
		if err != nil {
			return nil, err
		}
		bc.XMin = float64(i)
		bc.Color = rgb(colorBar)
		if v < 60 {
			bc.Color = rgb(colorLow)
		}
		bc.LineStyle.Width = 0
		p.Add(bc)
		if showValues {
			notes = append(notes, annotation{
				x: float64(i), y: math.Max(v, 0), dy: 2,
				text: strconv.FormatFloat(math.Round(v), 'f', 0, 64) + "%", style: sty,
			})
		}
	}
	p.Add(&plotter.Line{
		XYs:       plotter.XYs{{X: p.X.Min, Y: 60}, {X: p.X.Max, Y: 60}},
		LineStyle: refLine,
	})
	p.Add(notes)
	return c.render()
}

// ClassesSVG compares classes: for each class, in the given order, a group
// of three bars shows the highest, the average and the lowest total, with the
// values written above the bars; the tick label gives the class name and its
// head count.
func ClassesSVG(title string, classes []ClassStat) ([]byte, error) {
	c := newChart(title, "班级", "分数")
	p := c.p
	n := len(classes)

	clean := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return math.Max(-maxScore, math.Min(v, maxScore))
	}
	maxV, minV := plotter.Values(make([]float64, n)), plotter.Values(make([]float64, n))
	avgV := plotter.Values(make([]float64, n))
	names := make([]string, n)
	lo, hi := 0.0, 0.0
	for i, cl := range classes {
		maxV[i], avgV[i], minV[i] = clean(cl.Max), clean(cl.Avg), clean(cl.Min)
		for _, v := range []float64{maxV[i], avgV[i], minV[i]} {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		names[i] = cleanLabel(cl.Class, maxTickRunes)
		if names[i] == "" {
			names[i] = "未分班"
		}
	}
	if hi <= 0 {
		hi = 100
	}
	// Room above the highest bar for its value, rounded up to a tick.
	step := tickStep(hi*1.06 - lo)
	p.Y.Min, p.Y.Max = lo, math.Ceil(hi*1.06/step)*step
	p.Y.Tick.Marker = stepTicks{}
	p.X.Padding, p.Y.Padding = 0, 0

	// Tick labels: the class name and its head count. (A second line would
	// be too tight: gonum/plot spaces lines by one em, and CJK glyphs are a
	// full em tall.)
	ticks := make([]string, n)
	for i, cl := range classes {
		ticks[i] = names[i]
		if cl.Students > 0 {
			ticks[i] += "（" + strconv.Itoa(cl.Students) + "人）"
		}
	}
	c.categoryAxis(ticks)

	if n == 0 {
		p.Add(c.centerNote(noData))
		return c.render()
	}
	c.keys = []keyEntry{
		{text: "最高分", fill: rgb(colorMax)},
		{text: "平均分", fill: rgb(colorBar)},
		{text: "最低分", fill: rgb(colorMin)},
	}

	slot := c.dataWidth() / vg.Length(n)
	width := min(slot*0.8/3, 60)
	sty := c.textStyle(noteSize, rgb(colorNote))
	showValues := sty.Width("100.5")+2 <= width
	notes := make(annotations, 0, 3*n)
	for j, s := range []struct {
		vals  plotter.Values
		color uint32
	}{{maxV, colorMax}, {avgV, colorBar}, {minV, colorMin}} {
		bc, err := plotter.NewBarChart(s.vals, width)
		if err != nil {
			return nil, err
		}
		bc.Color = rgb(s.color)
		bc.LineStyle.Width = 0
		bc.Offset = vg.Length(j-1) * width
		p.Add(bc)
		if showValues {
			for i, v := range s.vals {
				notes = append(notes, annotation{
					x: float64(i), dx: bc.Offset, y: math.Max(v, 0), dy: 2,
					text: formatScore(v), style: sty,
				})
			}
		}
	}
	p.Add(notes)
	return c.render()
}

// categoryAxis sets up the X axis for one category per integer 0..n-1,
// labelled with labels. Labels are rotated when they would not fit side by
// side, and thinned out when even rotated ones would collide.
func (c *chart) categoryAxis(labels []string) {
	p := c.p
	n := len(labels)
	p.X.Min, p.X.Max = -0.5, math.Max(float64(n)-0.5, 0.5)
	p.X.Tick.Length = 0
	p.X.Tick.Label.Rotation = 0
	p.X.Tick.Label.XAlign = draw.XCenter
	p.X.Tick.Label.YAlign = draw.YTop

	slot := (chartWidth - 2*margin - 80) / vg.Length(max(n, 1))
	widest := vg.Length(0)
	for _, l := range labels {
		widest = max(widest, p.X.Tick.Label.Width(l))
	}
	step := 1
	if widest+6 > slot {
		// 45° labels need about their line height / sin 45° each.
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YTop
		need := p.X.Tick.Label.Height("国") * math.Sqrt2
		step = int(math.Ceil(float64(need / slot)))
	}
	ticks := make([]plot.Tick, 0, n)
	for i, l := range labels {
		if i%step == 0 {
			ticks = append(ticks, plot.Tick{Value: float64(i), Label: l})
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
}

// centerNote returns a plotter writing msg in the middle of the data area.
func (c *chart) centerNote(msg string) plot.Plotter {
	sty := c.textStyle(labelSize+3, rgb(colorNote))
	sty.YAlign = draw.YCenter
	return centered{text: msg, style: sty}
}

type centered struct {
	text  string
	style text.Style
}

func (n centered) Plot(c draw.Canvas, _ *plot.Plot) {
	c.FillText(n.style, c.Center(), n.text)
}

// annotation is a text placed at data coordinates (x, y), moved by (dx, dy).
type annotation struct {
	x, y   float64
	dx, dy vg.Length
	text   string
	style  text.Style
}

type annotations []annotation

func (as annotations) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, a := range as {
		c.FillText(a.style, vg.Point{X: trX(a.x) + a.dx, Y: trY(a.y) + a.dy}, a.text)
	}
}

// binWidth returns a round bin width giving at most 15 bins over span; the
// narrowest width is 0.5, the smallest step scores usually have.
func binWidth(span float64) float64 {
	if span/0.5 <= 15 {
		return 0.5
	}
	for p := 1.0; ; p *= 10 {
		for _, m := range []float64{1, 2, 2.5, 5} {
			if m == 2.5 && p < 10 {
				continue // 2.5 only as 25, 250, …
			}
			if w := m * p; span/w <= 15 || p > 1e300 {
				return w
			}
		}
	}
}

// formatScore formats a score with at most one decimal.
func formatScore(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// edgeTicks labels the edges of histogram bins.
type edgeTicks struct {
	lo, width float64
	n         int
}

func (t edgeTicks) Ticks(_, _ float64) []plot.Tick {
	ticks := make([]plot.Tick, t.n+1)
	for i := range ticks {
		v := t.lo + float64(i)*t.width
		ticks[i] = plot.Tick{Value: v, Label: formatScore(v)}
	}
	return ticks
}

// stepTicks places at most 8 ticks at a round integer step (head counts,
// scores).
type stepTicks struct{}

func (stepTicks) Ticks(lo, hi float64) []plot.Tick {
	return evenTicks(lo, hi, tickStep(hi-lo), "")
}

// tickStep returns the smallest of 1, 2, 5, 10, 20, 25, 50, 100, … that
// divides span into at most 8 steps.
func tickStep(span float64) float64 {
	for p := 1.0; ; p *= 10 {
		for _, m := range []float64{1, 2, 2.5, 5} {
			if m == 2.5 && p < 10 {
				continue
			}
			if w := m * p; span/w <= 8 || p > 1e300 {
				return w
			}
		}
	}
}

// percentTicks labels 0, 20, 40, … with a percent sign.
type percentTicks struct{}

func (percentTicks) Ticks(lo, hi float64) []plot.Tick {
	return evenTicks(lo, hi, 20, "%")
}

// evenTicks returns ticks at the multiples of step in [lo, hi], labelled
// with the value and suffix; none if there would be more than 100.
func evenTicks(lo, hi, step float64, suffix string) []plot.Tick {
	first := math.Ceil(lo/step) * step
	n := math.Floor((hi-first)/step) + 1
	if !(n >= 0 && n <= 100) {
		return nil
	}
	ticks := make([]plot.Tick, int(n))
	for i := range ticks {
		v := first + float64(i)*step
		ticks[i] = plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64) + suffix}
	}
	return ticks
}
