package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/tools"
)

// newServer is an MCP server offering reg's teacher tools under their
// dotted names ("exam.students.list": MCP allows dots), with the very
// schema maps the agent sees.
func (h *Handler) newServer(reg *tools.Registry) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "lectern", Title: "Lectern", Version: h.cfg.Version},
		&mcp.ServerOptions{Logger: sdkLogger(h.log)})
	// Only teachers get this far (principal), so the list is the teacher's.
	for _, t := range reg.Allowed(caller.RoleTeacher) {
		srv.AddTool(&mcp.Tool{Name: t.Name, Description: t.Description, InputSchema: t.Parameters}, h.call(reg, t))
	}
	return srv
}

// call runs t for the request's principal. The registry validates the
// arguments against t's schema before t runs; a refusal, invalid
// arguments and the tool's own failure are results with isError set (the
// model can read and correct them), not protocol errors.
func (h *Handler) call(reg *tools.Registry, t tools.Tool) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		p := caller.From(ctx)
		if t.Rule.String() != "" {
			if err := t.Rule.Check(p, h.cfg.Enforcing); err != nil {
				return result(map[string]any{"error": "permission denied", "tool": t.Name}, true), nil
			}
		}
		ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
		defer cancel()
		out := reg.Dispatch(ctx, p, t.Name, req.Params.Arguments)
		failed := dispatchError(out, t.Name)
		if failed {
			h.log.Info("mcp tool call failed", "tenant", p.Tenant, "teacher", p.TeacherID, "tool", t.Name, "error", out.(map[string]any)["error"])
		}
		return result(out, failed), nil
	}
}

// dispatchError reports whether out is one of Dispatch's error objects
// ({"error": string, "tool": name} with at most issues and detail besides),
// rather than a tool's result.
func dispatchError(out any, name string) bool {
	m, ok := out.(map[string]any)
	if !ok {
		return false
	}
	msg, ok := m["error"].(string)
	if !ok || (m["tool"] != name && !strings.HasPrefix(msg, "unknown tool:")) {
		return false
	}
	for k := range m {
		switch k {
		case "error", "tool", "issues", "detail":
		default:
			return false
		}
	}
	return true
}

// result is out as MCP content: one text block holding its JSON (HTML
// characters and non-ASCII text left as they are).
func result(out any, isError bool) *mcp.CallToolResult {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		buf.Reset()
		buf.WriteString(`{"error":"result could not be encoded"}`)
		isError = true
	}
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: strings.TrimSuffix(buf.String(), "\n")}},
		IsError: isError,
	}
}
