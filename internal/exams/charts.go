package exams

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/lectern/lectern/internal/charts"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// chartKinds are the charts every exam has, in listing order.
var chartKinds = []struct{ name, title string }{
	{"totals", "总分分布"},
	{"questions", "各题得分率"},
	{"classes", "班级对比"},
}

// Chart renders chart name of e as SVG, once per parse of the exam.
func (e *Exam) Chart(name string) ([]byte, bool, error) {
	title := ""
	for _, k := range chartKinds {
		if k.name == name {
			title = e.ID + " " + k.title
		}
	}
	if title == "" {
		return nil, false, nil
	}
	e.chartMu.Lock()
	defer e.chartMu.Unlock()
	if svg, ok := e.charts[name]; ok {
		return svg, true, nil
	}
	a := e.Analysis()
	var svg []byte
	var err error
	switch name {
	case "totals":
		totals := make([]float64, len(e.Students))
		for i, s := range e.Students {
			totals[i] = s.Total
		}
		full := 0.0
		if a.Totals.MaxTotal != nil {
			full = *a.Totals.MaxTotal
		}
		svg, err = charts.TotalsSVG(title, totals, full)
	case "questions":
		var bars []charts.Bar
		for _, m := range a.QuestionMetrics {
			if m.ScoreRate != nil {
				bars = append(bars, charts.Bar{Label: questionLabel(m), Value: *m.ScoreRate})
			}
		}
		svg, err = charts.QuestionRatesSVG(title, bars)
	case "classes":
		var cs []charts.ClassStat
		for _, c := range a.Classes {
			name := c.ClassName
			if name == "" {
				name = "未分班"
			}
			cs = append(cs, charts.ClassStat{Class: name, Avg: c.AvgTotal, Max: c.MaxTotal, Min: c.MinTotal, Students: c.StudentCount})
		}
		svg, err = charts.ClassesSVG(title, cs)
	}
	if err != nil {
		return nil, true, err
	}
	if e.charts == nil {
		e.charts = map[string][]byte{}
	}
	e.charts[name] = svg
	return svg, true, nil
}

// questionLabel shows "11(1)" for Q11_1 and the number for Q3.
func questionLabel(m QuestionMetrics) string {
	if m.QuestionNo == "" {
		return m.QuestionID
	}
	if m.SubNo != "" {
		return m.QuestionNo + "(" + m.SubNo + ")"
	}
	return m.QuestionNo
}

// Charts serves GET /exam/{exam_id}/charts: the charts and their links
// under the tenant's external prefix.
func (a *API) Charts(w http.ResponseWriter, r *http.Request) {
	e, ok := a.examWithResponses(w, r)
	if !ok {
		return
	}
	base := a.prefix + "/exam/" + url.PathEscape(e.PathID) + "/charts/"
	list := make([]map[string]string, 0, len(chartKinds))
	for _, k := range chartKinds {
		list = append(list, map[string]string{"name": k.name, "title": k.title, "url": base + k.name + ".svg", "format": "svg"})
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "exam_id": e.ID, "charts": list})
}

// Chart serves GET /exam/{exam_id}/charts/{name}.svg.
func (a *API) Chart(w http.ResponseWriter, r *http.Request) {
	name, isSVG := strings.CutSuffix(r.PathValue("name"), ".svg")
	e, ok := a.examWithResponses(w, r)
	if !ok {
		return
	}
	svg, found, err := e.Chart(name)
	if !isSVG || !found {
		httpjson.Fail(w, a.log, fault.New(fault.NotFound, "chart not found"))
		return
	}
	if err != nil {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, err, "draw chart failed"))
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Write(svg)
}
