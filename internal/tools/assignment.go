package tools

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/practice"
)

var assignmentID = str("作业编号 assignment_id（如 A2403_2026-02-04，可先用 assignment_list 查询）")

func boolean(desc string, def bool) map[string]any {
	return map[string]any{"type": "boolean", "description": desc, "default": def}
}

func freeObject(desc string) map[string]any {
	return map[string]any{"type": "object", "description": desc}
}

// AssignmentTools are the assignment tools over svc (reading, the
// requirements checklist, progress) and pr (generation from the question
// bank, the PDF render):
//
//   - teachers: assignment.list, assignment.generate,
//     assignment.requirements.save, assignment.render, assignment.progress;
//   - teachers and a student's tutor: assignment.get (a student only an
//     assignment meant for them) and assignment.today (a student its own
//     day; a teacher names the student).
//
// Each returns the body of the matching endpoint. A generation with
// generate=true and a configured LLM runs in the background
// (practice.Service.Start) and answers at once with its status_url; any
// other generation runs in the call (it reads and writes small local
// files only).
func AssignmentTools(svc *assignments.Service, pr *practice.Service) []Tool {
	return []Tool{
		{
			Name:        "assignment.list",
			Description: "列出所有作业（编号、日期、题量、更新时间、模式、目标知识点、班级），最新的在前。List the assignments.",
			Parameters:  object(map[string]any{}),
			Rule:        policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				list, err := svc.List()
				if err != nil {
					return nil, fault.Wrap(fault.Internal, err, "list assignments failed")
				}
				return map[string]any{"assignments": list}, nil
			},
		},
		{
			Name: "assignment.get",
			Description: "获取一份作业的详情：元数据、作业要求、题目（含题干文本）和下发文件。学生只能查看布置给自己的作业。" +
				"One assignment's detail.",
			Parameters: object(map[string]any{"assignment_id": assignmentID}, "assignment_id"),
			Rule:       policy.Student,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				id := ArgString(args, "assignment_id")
				if err := svc.MayRead(scoped(c), id); err != nil {
					return nil, err
				}
				return svc.Get(id)
			},
		},
		{
			Name: "assignment.today",
			Description: "查询学生某天（默认今天）的作业：布置给该学生的作业中，老师布置的优先、针对性最强的优先。只读，不会生成作业。" +
				"A student's assignment of the day (null when there is none).",
			Parameters: object(map[string]any{
				"student_id": studentArg,
				"date":       str("日期 YYYY-MM-DD，默认今天"),
			}),
			Rule: policy.Student,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				sid, err := studentFor(c, args)
				if err != nil {
					return nil, err
				}
				return svc.Today(sid, ArgString(args, "date"), time.Now(), assignments.TodayOptions{})
			},
		},
		{
			Name: "assignment.requirements.save",
			Description: "保存作业要求（8 项清单）：subject 学科、topic 本节课主题、grade_level 学段/年级、" +
				"class_level 班级整体水平（偏弱/中等/较强/混合）、core_concepts 核心概念 3-8 个、typical_problem 典型题型、" +
				"misconceptions 易错点至少 4 条、duration_minutes 作业时间 20/40/60、preferences 作业偏好（A基础/B提升/C生活应用/D探究/E小测验/F错题反思）、" +
				"extra_constraints 其他要求。不合格时返回缺少的项目。Save the 8-item requirements checklist.",
			Parameters: object(map[string]any{
				"assignment_id": assignmentID,
				"date":          str("作业日期 YYYY-MM-DD，默认今天"),
				"requirements":  freeObject("作业要求对象（字段见工具说明）"),
			}, "assignment_id", "requirements"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				req, _ := args["requirements"].(map[string]any)
				return svc.SaveRequirements(assignments.SaveRequest{AssignmentID: ArgString(args, "assignment_id"),
					Date: ArgString(args, "date"), Requirements: plainJSON(req), CreatedBy: "teacher"})
			},
		},
		{
			Name: "assignment.generate",
			Description: "从题库生成作业：按知识点 kp（每个知识点 per_kp 题，基础/中等/提高按 6:3:1）、指定题号 question_ids、" +
				"或核心例题 core_examples 的变式题。需先保存作业要求（或同时给出 requirements）。generate=true 时由模型补齐题库缺的题（后台进行，" +
				"用 status_url 查看进度）；否则缺题用占位题。Build an assignment from the question bank.",
			Parameters: object(map[string]any{
				"assignment_id": assignmentID,
				"kp":            str("知识点，多个用逗号分隔"),
				"question_ids":  str("题库题号，多个用逗号分隔"),
				"per_kp":        integer("每个知识点的题数（0-20），默认 5", 5),
				"core_examples": str("核心例题编号，多个用逗号分隔（每个生成 per_kp 道变式题）"),
				"generate":      boolean("题库不够时是否让模型生成题目补齐（后台进行）", false),
				"mode":          str("kp / explicit / hybrid / auto；不填则自动判断"),
				"date":          str("作业日期 YYYY-MM-DD，默认今天"),
				"due_at":        str("截止时间，如 2026-02-05T22:00:00"),
				"class_name":    str("布置给哪个班级"),
				"student_ids":   str("布置给哪些学生（学生编号，逗号分隔）"),
				"source":        str("来源，默认 teacher"),
				"requirements":  freeObject("作业要求（8 项，见 assignment_requirements_save）；给出时先保存"),
			}, "assignment_id"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				req := practice.GenerateRequest{
					AssignmentID: ArgString(args, "assignment_id"),
					KPs:          practice.ParseList(ArgString(args, "kp")),
					QuestionIDs:  practice.ParseList(ArgString(args, "question_ids")),
					CoreExamples: practice.ParseList(ArgString(args, "core_examples")),
					PerKP:        ArgInt(args, "per_kp", 5),
					UseLLM:       ArgBool(args, "generate", false),
					Mode:         ArgString(args, "mode"),
					Date:         ArgString(args, "date"),
					DueAt:        ArgString(args, "due_at"),
					ClassName:    ArgString(args, "class_name"),
					StudentIDs:   practice.ParseList(ArgString(args, "student_ids")),
					Source:       ArgString(args, "source"),
					TeacherID:    c.TeacherID,
				}
				if r, ok := args["requirements"].(map[string]any); ok {
					data, err := json.Marshal(plainJSON(r))
					if err != nil {
						return nil, fault.Wrap(fault.Invalid, err, "requirements is not a JSON object")
					}
					req.RequirementsJSON = string(data)
				}
				if req.UseLLM && pr.LLMConfigured() {
					return pr.Start(req)
				}
				return pr.Generate(ctx, req)
			},
		},
		{
			Name: "assignment.render",
			Description: "把作业排版成 PDF（A4，题号、知识点、难度和题干），返回文件位置和下载链接。" +
				"Render the assignment PDF.",
			Parameters: object(map[string]any{"assignment_id": assignmentID}, "assignment_id"),
			Rule:       policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return pr.Render(ctx, ArgString(args, "assignment_id"))
			},
		},
		{
			Name: "assignment.progress",
			Description: "查看作业完成情况：应完成人数、讨论通过、已提交、已完成、逾期人数；include_students=true（默认）时列出每名学生的讨论和提交状态。" +
				"An assignment's progress.",
			Parameters: object(map[string]any{
				"assignment_id":    assignmentID,
				"include_students": boolean("是否列出每名学生，默认 true", true),
			}, "assignment_id"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return svc.Progress(ArgString(args, "assignment_id"), ArgBool(args, "include_students", true), time.Now())
			},
		},
	}
}

// plainJSON turns the json.Number values of decoded arguments into
// float64, as the domain code reading free-form objects expects
// (encoding/json's own decoding).
func plainJSON(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(data, &out) != nil {
		return m
	}
	return out
}
