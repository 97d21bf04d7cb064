package tenantapp

import (
	"context"
	"errors"

	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/chat"
	"github.com/lectern/lectern/internal/llm"
)

// agentReplier lets the chat service reply through the agent loop.
type agentReplier struct{ agent *agent.Agent }

func (r agentReplier) Reply(ctx context.Context, c caller.Caller, msgs []chat.Message, agentID string) (string, error) {
	in := agent.Input{Caller: c, AgentID: agentID, Messages: make([]llm.Message, 0, len(msgs))}
	for _, m := range msgs {
		in.Messages = append(in.Messages, llm.Message{Role: m.Role, Content: m.Content})
	}
	res, err := r.agent.Run(ctx, in)
	if errors.Is(err, llm.ErrNotConfigured) {
		return "", chat.ErrNotConfigured
	}
	return res.Reply, err
}
