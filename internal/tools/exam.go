package tools

import (
	"context"
	"encoding/json"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/policy"
)

// object builds a top-level parameters schema.
func object(props map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

func integer(desc string, def ...int) map[string]any {
	s := map[string]any{"type": "integer", "description": desc}
	if len(def) > 0 {
		s["default"] = def[0]
	}
	return s
}

var examID = str("考试编号 exam ID（如 EX20260101_xxx，可先用 exam_list 查询）")

// teacherOnly: the predecessor offered tools to teachers only.
var teacherOnly = policy.Teacher

// ExamTools are the read-only exam tools over s, for teachers: exam.list,
// exam.get, exam.analysis.get, exam.students.list, exam.student.get,
// exam.question.get, exam.question.batch.get, exam.range.top_students and
// exam.range.summary.batch. Each returns what the matching view of s
// returns (the HTTP body for the ones that have an endpoint).
func ExamTools(s *exams.Service) []Tool {
	return []Tool{
		{
			Name:        "exam.list",
			Description: "列出所有考试（编号、生成时间）。List the exams, newest first.",
			Parameters:  object(map[string]any{}),
			Rule:        teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				body, err := s.Catalog().ListJSON()
				if err != nil {
					return nil, err
				}
				return json.RawMessage(body), nil
			},
		},
		{
			Name:        "exam.get",
			Description: "获取一场考试的概况：学生数、题目数、总分统计（平均、中位数、最高、最低）、计分方式。Exam manifest and score summary.",
			Parameters:  object(map[string]any{"exam_id": examID}, "exam_id"),
			Rule:        teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.DetailView(ArgString(args, "exam_id"))
			},
		},
		{
			Name: "exam.analysis.get",
			Description: "获取考试分析：总分统计、各题得分率/失分率/区分度、高失分题、知识点、班级对比、分数段。" +
				"Stored analysis draft, else computed from the responses.",
			Parameters: object(map[string]any{"exam_id": examID}, "exam_id"),
			Rule:       teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.AnalysisView(ArgString(args, "exam_id"))
			},
		},
		{
			Name:        "exam.students.list",
			Description: "按总分排名列出学生（学号、姓名、班级、总分、名次、百分位）。Students with totals and ranks.",
			Parameters: object(map[string]any{
				"exam_id": examID,
				"limit":   integer("最多返回多少名学生（按名次），默认 50", 50),
			}, "exam_id"),
			Rule: teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.StudentsView(ArgString(args, "exam_id"), ArgInt(args, "limit", 50))
			},
		},
		{
			Name: "exam.student.get",
			Description: "查询一名学生在本次考试中每道题的得分。给出 student_id，或给出 student_name（同名时再给 class_name）。" +
				"One student's per-question scores, by id or by name (+ class).",
			Parameters: object(map[string]any{
				"exam_id":      examID,
				"student_id":   str("学生编号（考试数据中的 student_id）"),
				"student_name": str("学生姓名"),
				"class_name":   str("班级名称，用于区分同名学生"),
			}, "exam_id"),
			Rule: teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.StudentLookup(ArgString(args, "exam_id"), ArgString(args, "student_id"),
					ArgString(args, "student_name"), ArgString(args, "class_name"))
			},
		},
		{
			Name: "exam.question.get",
			Description: "查询一道题的得分分布、得分率、区分度以及得分最高/最低的学生样本。给出 question_id（如 Q11_1）或题号 question_no（如 \"11\"、\"11(2)\"）；" +
				"题号有多个小题时分别返回。One question's distribution and statistics.",
			Parameters: object(map[string]any{
				"exam_id":     examID,
				"question_id": str("题目编号 question_id，如 Q3 或 Q11_1"),
				"question_no": str("题号，如 \"3\"、\"11\" 或 \"11(2)\""),
				"top_n":       integer("最高分/最低分样本各取几人，默认 5", 5),
			}, "exam_id"),
			Rule: teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.QuestionLookup(ArgString(args, "exam_id"), ArgString(args, "question_id"),
					ArgString(args, "question_no"), ArgInt(args, "top_n", 5))
			},
		},
		{
			Name:        "exam.question.batch.get",
			Description: "一次查询多道题（按整数题号，含其全部小题）的得分分布与统计。Distributions for several question numbers.",
			Parameters: object(map[string]any{
				"exam_id":      examID,
				"question_nos": map[string]any{"type": "array", "items": map[string]any{"type": "integer"}, "description": "题号列表，如 [1, 2, 11]"},
				"top_n":        integer("最高分/最低分样本各取几人，默认 5", 5),
			}, "exam_id", "question_nos"),
			Rule: teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.QuestionBatch(ArgString(args, "exam_id"), ArgInts(args, "question_nos"), ArgInt(args, "top_n", 5))
			},
		},
		{
			Name: "exam.range.top_students",
			Description: "统计一段题号范围（含两端）内每名学生的得分之和，返回该范围的前 N 名和后 N 名。" +
				"Top and bottom students over a question-number range.",
			Parameters: object(map[string]any{
				"exam_id":           examID,
				"start_question_no": integer("起始题号（整数，含）"),
				"end_question_no":   integer("结束题号（整数，含）"),
				"top_n":             integer("前/后各取几人，默认 10", 10),
			}, "exam_id", "start_question_no", "end_question_no"),
			Rule: teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.RangeTopStudents(ArgString(args, "exam_id"), ArgInt(args, "start_question_no", 0),
					ArgInt(args, "end_question_no", 0), ArgInt(args, "top_n", 10))
			},
		},
		{
			Name: "exam.range.summary.batch",
			Description: "一次统计多个题号范围（如选择题 1-8、实验题 9-10、计算题 11-13）的平均分、得分率和前/后 N 名。" +
				"Several question-number ranges at once.",
			Parameters: object(map[string]any{
				"exam_id": examID,
				"ranges": map[string]any{
					"type":        "array",
					"description": "题号范围列表",
					"items": map[string]any{
						"type": "object",
						"properties": map[string]any{
							"label": str("范围名称，如 \"选择题\""),
							"start": integer("起始题号（含）"),
							"end":   integer("结束题号（含）"),
						},
						"required":             []string{"start", "end"},
						"additionalProperties": false,
					},
				},
				"top_n": integer("每个范围前/后各取几人，默认 5", 5),
			}, "exam_id", "ranges"),
			Rule: teacherOnly,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				var ranges []exams.Range
				list, _ := args["ranges"].([]any)
				for _, x := range list {
					m, _ := x.(map[string]any)
					ranges = append(ranges, exams.Range{Label: ArgString(m, "label"),
						Start: ArgInt(m, "start", 0), End: ArgInt(m, "end", 0)})
				}
				return s.RangeSummaryBatch(ArgString(args, "exam_id"), ranges, ArgInt(args, "top_n", 5))
			},
		},
	}
}
