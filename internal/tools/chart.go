package tools

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/policy"
)

// examCharts are the charts every exam serves (GET
// /exam/{exam_id}/charts/{name}.svg), in listing order.
var examCharts = []struct{ name, title string }{
	{"totals", "总分分布"},
	{"questions", "各题得分率"},
	{"classes", "班级对比"},
}

// chartAliases map the predecessor's chart_types to the exam's charts;
// knowledge_radar has none.
var chartAliases = map[string]string{
	"totals": "totals", "questions": "questions", "classes": "classes",
	"score_distribution": "totals", "question_discrimination": "questions", "class_compare": "classes",
	"knowledge_radar": "",
}

// altText keeps an exam id from breaking the Markdown image syntax.
var altText = strings.NewReplacer("[", "", "]", "", "\n", " ")

// ChartTools is exam.analysis.charts.generate, for teachers: instead of
// running chart code (the predecessor's chart.exec), it links the exam's
// own SVG charts, served by GET /exam/{exam_id}/charts/{name}.svg under
// the tenant's external prefix ("" for the default tenant, "/t/<id>"
// otherwise), and gives the Markdown that shows them.
func ChartTools(s *exams.Service, prefix string) []Tool {
	prefix = strings.TrimSuffix(prefix, "/")
	types := make([]any, 0, len(chartAliases))
	for _, k := range []string{"totals", "questions", "classes", "score_distribution", "question_discrimination",
		"class_compare", "knowledge_radar"} {
		types = append(types, k)
	}
	return []Tool{{
		Name: "exam.analysis.charts.generate",
		Description: "获取一场考试的分析图表（SVG）：totals 总分分布、questions 各题得分率、classes 班级对比。" +
			"返回每张图的链接和可直接放进回答的 Markdown 图片。Links to the exam's charts.",
		Parameters: object(map[string]any{
			"exam_id": examID,
			"chart_types": map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": types},
				"description": "要哪些图，默认全部：totals（= score_distribution）、questions（= question_discrimination）、classes（= class_compare）"},
		}, "exam_id"),
		Rule: policy.Teacher,
		Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
			id := ArgString(args, "exam_id")
			e, err := s.Exam(id)
			switch {
			case errors.Is(err, exams.ErrNotFound):
				return nil, fault.New(fault.NotFound, map[string]any{"error": "exam_not_found", "exam_id": id})
			case err != nil:
				return nil, fault.OrInternal(err, "read exam failed")
			case !e.HasResponses:
				return nil, fault.New(fault.Invalid, map[string]any{"error": "responses_missing", "exam_id": e.ID})
			}
			want := map[string]bool{}
			var warnings []string
			list, _ := args["chart_types"].([]any)
			for _, x := range list {
				name, _ := x.(string)
				if chartAliases[name] == "" {
					warnings = append(warnings, name+": 没有这种图表（可用 totals、questions、classes）")
					continue
				}
				want[chartAliases[name]] = true
			}
			base := prefix + "/exam/" + url.PathEscape(e.PathID) + "/charts/"
			charts := []map[string]string{}
			var md []string
			for _, k := range examCharts {
				if len(list) > 0 && !want[k.name] {
					continue
				}
				u := base + k.name + ".svg"
				charts = append(charts, map[string]string{"name": k.name, "title": k.title, "url": u, "format": "svg"})
				md = append(md, "!["+altText.Replace(e.ID)+" "+k.title+"]("+u+")")
			}
			out := map[string]any{"ok": true, "exam_id": e.ID, "charts": charts, "markdown": strings.Join(md, "\n\n")}
			if len(warnings) > 0 {
				out["warnings"] = warnings
			}
			return out, nil
		},
	}}
}
