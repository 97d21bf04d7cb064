package practice

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/structured"
)

// States of a background generation (generate_status.json "status").
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusDone       = "done"
	StatusFailed     = "failed"
)

const statusFile = "generate_status.json"

func statusURL(id string) string { return "/assignment/" + pathEscape(id) + "/generate/status" }

func (s *Service) writeStatus(dir string, st map[string]any) error {
	return atomicfile.WriteJSON(filepath.Join(dir, statusFile), st)
}

// Status is generate_status.json of an assignment. A generation recorded
// as queued or processing that this process is not running (the server
// restarted, or the tenant was unloaded mid-way) is reported failed with
// error generation_interrupted; the file is not rewritten (a read never
// writes). Errors: Invalid for a bad id, NotFound when there is none.
func (s *Service) Status(id string) (map[string]any, error) {
	aid, dir, _, err := s.asg.Resolve(id)
	if err != nil {
		return nil, err
	}
	st := readSmallJSON(filepath.Join(dir, statusFile))
	if st == nil {
		return nil, fault.New(fault.NotFound, "generate status not found")
	}
	if (st["status"] == StatusQueued || st["status"] == StatusProcessing) && !s.isRunning(aid) {
		st["status"] = StatusFailed
		st["error"] = "generation_interrupted"
		st["hints"] = []string{"生成过程被中断（服务重启或租户卸载），请重新提交生成。"}
	}
	return st, nil
}

// failure is the error part of a failed generation's status: a code, a
// detail and hints, never a stack or a server path.
func failure(err error) map[string]any {
	var ae *structured.AnswerError
	var api *llm.APIError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return map[string]any{"error": "generation_interrupted", "detail": err.Error(),
			"hints": []string{"生成超时或被中断，请稍后重新提交。"}}
	case errors.As(err, &ae):
		return map[string]any{"error": "llm_generate_failed", "detail": ae.Reason, "raw": ae.Raw,
			"hints": []string{"模型返回的内容不是题目 JSON 数组，请重试。", "也可以不勾选 generate，先生成占位题再手工补充。"}}
	case errors.Is(err, llm.ErrNotConfigured):
		return map[string]any{"error": "llm_unavailable", "detail": err.Error(),
			"hints": []string{"没有配置可用的模型，请配置 LLM 后重试，或不使用 generate。"}}
	case errors.As(err, &api), errors.Is(err, llm.ErrTimeout), errors.Is(err, llm.ErrMalformedResponse):
		return map[string]any{"error": "llm_unavailable", "detail": err.Error(),
			"hints": []string{"模型服务暂时不可用，请稍后重试。"}}
	}
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Code != fault.Internal {
		return map[string]any{"error": "generate_failed", "detail": fe.Detail}
	}
	return map[string]any{"error": "generate_failed", "detail": "internal error"}
}
