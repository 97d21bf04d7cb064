package tools

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/students"
)

// waitProfile bounds how long a profile tool waits for the profile writer
// (as POST /student/profile/update does); past it the answer says queued.
const waitProfile = 15 * time.Second

// StudentTools are the student tools over the tenant's profiles (read
// from profiles, changed only through worker, the tenant's one profile
// writer) and exams (for student.import):
//
//   - teachers: student.search, student.profile.update, student.import;
//   - teachers and a student's tutor: student.profile.get (a student only
//     its own profile).
func StudentTools(profiles *students.Store, worker *students.Worker, ex *exams.Service) []Tool {
	return []Tool{
		{
			Name:        "student.search",
			Description: "按姓名、学号、班级或别名模糊查找学生，返回学生编号、姓名和班级。Search students.",
			Parameters: object(map[string]any{
				"query": str("关键词：姓名、学号或班级的一部分"),
				"limit": integer("最多返回几名学生（1-50），默认 5", 5),
			}, "query"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return searchStudents(profiles, ArgString(args, "query"), min(max(ArgInt(args, "limit", 5), 1), 50))
			},
		},
		{
			Name: "student.profile.get",
			Description: "读取学生画像：姓名、班级、薄弱/一般/掌握的知识点、下一步重点、考试与练习记录、互动记录。" +
				"学生只能读取自己的画像。A student's profile.",
			Parameters: object(map[string]any{"student_id": studentArg}),
			Rule:       policy.Student,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				sid, err := studentFor(c, args)
				if err != nil {
					return nil, err
				}
				prof, err := profiles.Get(sid)
				switch {
				case errors.Is(err, students.ErrNotFound):
					return nil, fault.New(fault.NotFound, map[string]any{"error": "profile_not_found", "student_id": sid})
				case err != nil && fault.CodeOf(err) == fault.Internal:
					return nil, fault.Wrap(fault.Internal, err, "profile could not be read")
				}
				return prof, err
			},
		},
		{
			Name: "student.profile.update",
			Description: "更新学生画像的诊断字段：weak_kp 薄弱知识点、medium_kp 一般、strong_kp 掌握（逗号分隔，给出的会替换原列表）、" +
				"next_focus 下一步重点（不填时取第一个薄弱点）、interaction_note 互动记录。Update a profile's derived fields.",
			Parameters: object(map[string]any{
				"student_id":       str("学生编号"),
				"weak_kp":          str("薄弱知识点，逗号分隔"),
				"medium_kp":        str("一般掌握的知识点，逗号分隔"),
				"strong_kp":        str("已掌握的知识点，逗号分隔"),
				"next_focus":       str("下一步重点"),
				"interaction_note": str("本次互动记录"),
			}, "student_id"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				sid, err := studentFor(c, args)
				if err != nil {
					return nil, err
				}
				u := students.Update{Kind: students.KindForm, StudentID: sid,
					WeakKP: students.SplitKP(ArgString(args, "weak_kp")), MediumKP: students.SplitKP(ArgString(args, "medium_kp")),
					StrongKP: students.SplitKP(ArgString(args, "strong_kp")), NextFocus: ArgString(args, "next_focus"),
					Note: ArgString(args, "interaction_note")}
				jobID, err := worker.Enqueue(u)
				if err != nil {
					return nil, fault.OrInternal(err, "profile update could not be queued")
				}
				wctx, cancel := context.WithTimeout(ctx, waitProfile)
				defer cancel()
				if err := worker.Wait(wctx, jobID); err != nil {
					return map[string]any{"ok": true, "queued": true, "job_id": jobID}, nil
				}
				return map[string]any{"ok": true, "output": "[OK] Updated profile: " + sid, "job_id": jobID}, nil
			},
		},
		{
			Name: "student.import",
			Description: "从考试成绩导入学生：为每名学生建立或更新画像（姓名、班级、本次考试成绩和失分最多的题）。" +
				"给出 exam_id（该考试的成绩），或 file_path（DATA_DIR 内的成绩 CSV）；都不给时用 staging/ 下最新的成绩文件。" +
				"Import students from exam responses.",
			Parameters: object(map[string]any{
				"source":    map[string]any{"type": "string", "enum": []any{"responses_scored", "responses"}, "description": "成绩来源，默认 responses_scored", "default": "responses_scored"},
				"exam_id":   examID,
				"file_path": str("成绩 CSV 路径（DATA_DIR 内）"),
				"mode":      map[string]any{"type": "string", "enum": []any{"merge"}, "description": "合并到已有画像（merge，默认）", "default": "merge"},
			}),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return importStudents(ctx, profiles, worker, ex, ArgString(args, "exam_id"), ArgString(args, "file_path"))
			},
		},
	}
}

// searchStudents matches query (case and spaces ignored) against each
// profile's id, name, class, class+name and aliases. The predecessor
// matched the id only, so a teacher's "张三" found nobody.
func searchStudents(profiles *students.Store, query string, limit int) (any, error) {
	q := squash(query)
	if q == "" {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "missing_query"})
	}
	found := []map[string]any{}
	list := profiles.List()
	slices.SortFunc(list, func(a, b students.Profile) int {
		return strings.Compare(strField(a["student_id"]), strField(b["student_id"]))
	})
	for _, p := range list {
		name, class, id := strField(p["student_name"]), strField(p["class_name"]), strField(p["student_id"])
		keys := []string{id, name, class, class + name}
		if aliases, ok := p["aliases"].([]any); ok {
			for _, a := range aliases {
				keys = append(keys, strField(a))
			}
		}
		if !slices.ContainsFunc(keys, func(k string) bool { return k != "" && strings.Contains(squash(k), q) }) {
			continue
		}
		found = append(found, map[string]any{"student_id": id, "student_name": name, "class_name": class})
		if len(found) == limit {
			break
		}
	}
	return map[string]any{"ok": true, "query": query, "students": found}, nil
}

func strField(v any) string {
	s, _ := v.(string)
	return strings.TrimSpace(s)
}

func squash(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s))
}

// importStudents is POST /student/import for the tool: the responses of
// exam examID, else of the CSV filePath inside DATA_DIR, else of the
// newest DATA_DIR/staging/*responses*.csv; one profile update per student
// through the worker, waited for up to waitProfile.
func importStudents(ctx context.Context, profiles *students.Store, worker *students.Worker, ex *exams.Service, examID, filePath string) (any, error) {
	notFound := fault.New(fault.Invalid, "responses file not found")
	var e *exams.Exam
	var rel, date string
	switch {
	case filePath == "" && examID != "":
		got, err := ex.Exam(examID)
		if err != nil || !got.HasResponses {
			return nil, notFound
		}
		e, rel = got, got.ResponsesFile
		date, _ = got.Manifest.Meta["date"].(string)
	default:
		ref := filePath
		if ref == "" {
			ref = newestStaging(layout.Tenant{DataDir: ex.DataDir()}.Staging())
		}
		path, err := exams.ResolveInDataDir(ex.DataDir(), ref)
		if ref == "" || err != nil {
			return nil, notFound
		}
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			return nil, notFound
		}
		rows, err := exams.ReadResponses(path)
		if err != nil || len(rows) == 0 {
			return nil, notFound
		}
		id := examID
		if id == "" {
			id = rows[0].ExamID
		}
		root, _ := filepath.EvalSymlinks(ex.DataDir())
		r, _ := filepath.Rel(root, path)
		e, rel = exams.NewExam(id, nil, rows, nil, nil, time.Now()), filepath.ToSlash(r)
	}
	updates := students.ExamUpdates(e, students.KindImport, "exam_responses", rel, date, ex.KnowledgeMap())
	created, updated, skipped := 0, 0, 0
	sample := []string{}
	var queued []string
	for _, u := range updates {
		if !students.ValidID(u.StudentID) {
			skipped++
			continue
		}
		if profiles.Exists(u.StudentID) {
			updated++
		} else {
			created++
		}
		wctx, cancel := context.WithTimeout(ctx, waitProfile)
		id, err := worker.EnqueueWait(wctx, u)
		cancel()
		if err != nil {
			skipped++
			continue
		}
		queued = append(queued, id)
		if len(sample) < 10 {
			sample = append(sample, u.StudentID)
		}
	}
	res := map[string]any{"ok": true, "source_file": rel, "total_students": len(updates),
		"created": created, "updated": updated, "skipped": skipped, "sample": sample}
	wctx, cancel := context.WithTimeout(ctx, waitProfile)
	defer cancel()
	for _, id := range queued {
		if err := worker.Wait(wctx, id); err != nil {
			res["pending"] = true
			break
		}
	}
	return res, nil
}

// newestStaging: staging/*responses*scored*.csv, else *responses*.csv,
// newest first.
func newestStaging(dir string) string {
	for _, pattern := range []string{"*responses*scored*.csv", "*responses*.csv"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		best, bestTime := "", time.Time{}
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && (best == "" || fi.ModTime().After(bestTime)) {
				best, bestTime = m, fi.ModTime()
			}
		}
		if best != "" {
			return best
		}
	}
	return ""
}
