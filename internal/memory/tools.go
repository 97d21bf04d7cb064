package memory

import (
	"context"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/tools"
)

func object(props map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

// Tools are the teacher workspace and memory tools of the predecessor's
// registry (chat-agent-tenancy.md §5): teacher.workspace.init,
// teacher.memory.get, teacher.memory.search, teacher.memory.propose and
// teacher.memory.apply, for teachers. Each acts on the conversation's
// teacher (the principal's TeacherID): unlike the predecessor's, they
// take no teacher_id argument, so the model cannot reach another
// teacher's workspace.
func (s *Service) Tools() []tools.Tool {
	return []tools.Tool{
		{
			Name:        "teacher.workspace.init",
			Description: "初始化老师的工作区文件（AGENTS/SOUL/USER/MEMORY/HEARTBEAT.md，已有的不改）。Create the teacher's workspace files.",
			Parameters:  object(map[string]any{}),
			Rule:        policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				tid := teacherOf(c)
				if _, err := s.InitWorkspace(tid); err != nil {
					return nil, err
				}
				files := make([]string, 0, len(workspaceFiles)+1)
				for _, f := range workspaceFiles {
					files = append(files, f.name)
				}
				files = append(files, "memory/")
				return map[string]any{"ok": true, "teacher_id": WorkspaceName(tid),
					"workspace": "teacher_workspaces/" + WorkspaceName(tid), "files": files}, nil
			},
		},
		{
			Name: "teacher.memory.get",
			Description: "读取老师工作区的一个文件：MEMORY（长期记忆，默认）、USER（老师档案）、AGENTS、SOUL、HEARTBEAT，" +
				"或 DAILY（某天的日记，配合 date）。Read a workspace file.",
			Parameters: object(map[string]any{
				"file":      str("MEMORY、USER、AGENTS、SOUL、HEARTBEAT（可带 .md）或 DAILY；默认 MEMORY"),
				"date":      str("file=DAILY 时的日期 YYYY-MM-DD，默认今天"),
				"max_chars": map[string]any{"type": "integer", "description": "最多返回多少字符，默认 8000", "default": 8000},
			}),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				tid := teacherOf(c)
				file, content, err := s.ReadFile(tid, tools.ArgString(args, "file"), tools.ArgString(args, "date"),
					tools.ArgInt(args, "max_chars", 8000))
				if err != nil {
					return nil, err
				}
				return map[string]any{"ok": true, "teacher_id": WorkspaceName(tid), "file": file, "content": content}, nil
			},
		},
		{
			Name: "teacher.memory.search",
			Description: "在老师的长期记忆、档案和最近 14 天的日记里按关键词搜索（过期或已被取代的记忆不返回）。" +
				"Keyword search of the teacher's memory files.",
			Parameters: object(map[string]any{
				"query": str("关键词"),
				"limit": map[string]any{"type": "integer", "description": "最多返回几条，默认 5", "default": 5},
			}, "query"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				tid := teacherOf(c)
				q := tools.ArgString(args, "query")
				matches, err := s.Search(tid, q, tools.ArgInt(args, "limit", 5))
				if err != nil {
					return nil, err
				}
				return map[string]any{"ok": true, "teacher_id": WorkspaceName(tid), "query": q,
					"matches": matches, "mode": "keyword"}, nil
			},
		},
		{
			Name: "teacher.memory.propose",
			Description: "提出一条记忆更新（待老师审核，审核通过后才写入）：target 为 MEMORY（长期偏好，默认）、DAILY（今天的记录）、" +
				"USER（老师档案）、AGENTS、SOUL 或 HEARTBEAT。不要写入密钥、密码、令牌、身份证号或手机号（会被拒绝）。" +
				"Propose a memory update; returns proposal_id for review.",
			Parameters: object(map[string]any{
				"target":  map[string]any{"type": "string", "description": "MEMORY|DAILY|USER|AGENTS|SOUL|HEARTBEAT", "default": "MEMORY"},
				"title":   str("标题（一行）"),
				"content": str("要记住的内容"),
			}, "content"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				tid := teacherOf(c)
				res, err := s.Propose(tid, Input{Target: tools.ArgString(args, "target"), Title: tools.ArgString(args, "title"),
					Content: tools.ArgString(args, "content"), Source: SourceManual})
				if err != nil {
					return nil, err
				}
				body := res.Body()
				body["teacher_id"] = WorkspaceName(tid)
				return body, nil
			},
		},
		{
			Name: "teacher.memory.apply",
			Description: "审核一条记忆提议：approve=true 写入（默认），false 拒绝。只在老师明确确认后调用。" +
				"Apply or reject a memory proposal, once the teacher has confirmed.",
			Parameters: object(map[string]any{
				"proposal_id": str("提议编号（teacher.memory.propose 返回的 proposal_id）"),
				"approve":     map[string]any{"type": "boolean", "description": "true 写入，false 拒绝；默认 true", "default": true},
			}, "proposal_id"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				res, err := s.Review(teacherOf(c), tools.ArgString(args, "proposal_id"), tools.ArgBool(args, "approve", true))
				if err != nil {
					return nil, err
				}
				return res.Body(), nil
			},
		},
	}
}
