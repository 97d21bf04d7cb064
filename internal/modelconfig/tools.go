package modelconfig

import (
	"context"
	"encoding/json"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/tools"
)

// Tools are the predecessor's routing tools (chat-agent-tenancy.md §5):
// teacher.llm_routing.get, .simulate, .propose, .apply and .rollback, for
// teachers. Each answers what its /teacher/llm-routing* route answers (it
// calls the same method: Routing or Proposal, Simulate, Propose, Review,
// Rollback), so the agent and the teacher's settings page say the same.
//
// They act on the conversation's teacher (the principal's TeacherID): the
// predecessor's tools took a model-supplied teacher_id (defaulting to the
// tenant's default teacher), which let the model read and change another
// teacher's routing; these take none. As the routes, they show and change
// the teacher's conversation model through the routing DSL: what one model
// per teacher cannot mean is refused with the reason.
func (s *Service) Tools() []tools.Tool {
	return []tools.Tool{
		{
			Name: "teacher.llm_routing.get",
			Description: "查看老师的模型路由：当前配置（由老师的对话模型表示：一个通道 conversation、一条规则 teacher_conversation；" +
				"用默认模型时为未启用的空配置）、校验结果、历史版本、路由提议和可选的 provider/模型目录。" +
				"给出 proposal_id 时只返回这一条提议的详情（候选配置、校验结果、状态）。" +
				"Show the teacher's routing config, history, proposals and catalog, or one proposal.",
			Parameters: toolObject(map[string]any{
				"history_limit":   toolInt("最多返回几个历史版本（1–200），默认 20", 20),
				"proposal_limit":  toolInt("最多返回几条提议（1–200），默认 20", 20),
				"proposal_status": toolString("只列出这种状态的提议：pending、applied、rejected 或 failed；不填列出全部"),
				"proposal_id":     toolString("提议编号（proposal_xxxxxxxxxxxx）：给出时返回这条提议的详情"),
			}),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				if id := tools.ArgString(args, "proposal_id"); id != "" {
					return s.Proposal(c.TeacherID, id)
				}
				return s.Routing(c.TeacherID, RoutingQuery{HistoryLimit: tools.ArgInt(args, "history_limit", 0),
					ProposalLimit: tools.ArgInt(args, "proposal_limit", 0), ProposalStatus: tools.ArgString(args, "proposal_status")})
			},
		},
		{
			Name: "teacher.llm_routing.simulate",
			Description: "模拟一次模型调用会用哪个通道和模型：按老师当前的设置，或按给出的 config（先模拟再提议）。" +
				"只有老师自己的对话调用（kind 为 chat.agent、chat.agent_no_tools、chat.skill）会用老师选的模型，" +
				"学生和上传、批改等调用总是用学校的默认模型。Which channel and model a call would use.",
			Parameters: toolObject(map[string]any{
				"role":        toolString("调用者角色，默认 teacher"),
				"skill_id":    toolString("技能编号（可选）"),
				"kind":        toolString("调用类型，如 chat.agent、chat.agent_no_tools、upload.assignment_parse（可选）"),
				"needs_tools": map[string]any{"type": "boolean", "description": "调用是否需要工具，默认 false", "default": false},
				"needs_json":  map[string]any{"type": "boolean", "description": "调用是否需要 JSON 输出，默认 false", "default": false},
				"config":      toolConfig("要模拟的路由配置（可选；不填按当前设置）"),
			}),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				in := SimulateInput{Role: tools.ArgString(args, "role"), SkillID: tools.ArgString(args, "skill_id"),
					Kind: tools.ArgString(args, "kind")}
				tl, js := tools.ArgBool(args, "needs_tools", false), tools.ArgBool(args, "needs_json", false)
				in.NeedsTools, in.NeedsJSON = &tl, &js
				raw, err := configArg(args)
				if err != nil {
					return nil, err
				}
				in.Config = raw
				return s.Simulate(c.TeacherID, in)
			},
		},
		{
			Name: "teacher.llm_routing.propose",
			Description: "提出一份路由配置（待老师审核，审核通过后才生效）。配置须能表示为老师的一个对话模型：" +
				"一个启用的通道（target 为目录里的 provider/mode/model，不设 fallback_channels、temperature、max_tokens）和路由到它的规则" +
				"（roles 只能是 teacher，kinds 只能是对话调用，不按 skills 或 needs_tools/needs_json 区分）；否则会被拒绝并说明原因。" +
				"enabled=false 表示改回学校的默认模型。Propose a routing config; returns proposal_id for review.",
			Parameters: toolObject(map[string]any{
				"note":   toolString("说明（可选，最多 500 字）"),
				"config": toolConfig("路由配置 {enabled, channels:[{id,title,target:{provider,mode,model}}], rules:[{id,priority,match:{roles,kinds},route:{channel_id}}]}"),
			}, "config"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				raw, err := configArg(args)
				if err != nil {
					return nil, err
				}
				return s.Propose(c.TeacherID, tools.ArgString(args, "note"), raw)
			},
		},
		{
			Name: "teacher.llm_routing.apply",
			Description: "审核一条路由提议：approve=true 应用（默认，生成新版本），false 拒绝。只在老师明确确认后调用。" +
				"Apply or reject a routing proposal, once the teacher has confirmed.",
			Parameters: toolObject(map[string]any{
				"proposal_id": toolString("提议编号（teacher.llm_routing.propose 返回的 proposal_id）"),
				"approve":     map[string]any{"type": "boolean", "description": "true 应用，false 拒绝；默认 true", "default": true},
			}, "proposal_id"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.Review(c.TeacherID, tools.ArgString(args, "proposal_id"), tools.ArgBool(args, "approve", true))
			},
		},
		{
			Name: "teacher.llm_routing.rollback",
			Description: "把模型设置恢复到一个历史版本（作为新版本保存；版本号见 teacher.llm_routing.get 的 history）。只在老师明确确认后调用。" +
				"Restore an older version as a new version.",
			Parameters: toolObject(map[string]any{
				"target_version": toolInt("要恢复的版本号（≥ 1）"),
				"note":           toolString("说明（可选，最多 500 字）"),
			}, "target_version"),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				return s.Rollback(c.TeacherID, tools.ArgInt(args, "target_version", 0), tools.ArgString(args, "note"))
			},
		},
	}
}

func toolObject(props map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func toolString(desc string) map[string]any {
	return map[string]any{"type": "string", "description": desc}
}

func toolInt(desc string, def ...int) map[string]any {
	s := map[string]any{"type": "integer", "description": desc}
	if len(def) > 0 {
		s["default"] = def[0]
	}
	return s
}

// toolConfig is a routing config argument: any object (translate checks
// it as the routes do).
func toolConfig(desc string) map[string]any {
	return map[string]any{"type": "object", "description": desc}
}

// configArg is the "config" argument as the JSON the routes read (nil
// when absent), bounded as a proposal's candidate is.
func configArg(args map[string]any) (json.RawMessage, error) {
	v, ok := args["config"]
	if !ok || v == nil {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "config is not valid JSON")
	}
	if len(raw) > maxCandidateBytes {
		return nil, refusal(fault.TooLarge, "config_too_large", map[string]any{"limit_bytes": maxCandidateBytes})
	}
	return raw, nil
}
