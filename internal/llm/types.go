package llm

import (
	"time"

	"github.com/lectern/lectern/internal/limits"
)

// Message is one chat message in the OpenAI wire shape. Role is "system",
// "user", "assistant" or "tool"; an assistant message may carry ToolCalls and
// a tool message answers one of them by ToolCallID.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Name       string     `json:"name,omitempty"`
}

// ToolCall is a function call the model asked for.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and carries its arguments as a JSON text.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool offers one function to the model. Type is "function" (an empty Type
// is sent as "function").
type Tool struct {
	Type     string      `json:"type"`
	Function FunctionDef `json:"function"`
}

// FunctionDef describes a function. Parameters is a JSON schema; nil is sent
// as an empty object schema. Names are passed through unchanged.
type FunctionDef struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters"`
}

// DefaultTemperature is sent when Request.Temperature is nil.
const DefaultTemperature = 0.2

// Request is one chat-completions call.
type Request struct {
	Messages []Message
	Tools    []Tool
	// ToolChoice is sent as given ("auto", "none", "required" or an object).
	// nil means "auto" when Tools are present; it is never sent without Tools.
	ToolChoice any
	// ResponseFormat is sent as response_format, for example
	// {"type":"json_object"} or {"type":"json_schema","json_schema":{...}};
	// nil omits it.
	ResponseFormat map[string]any
	Temperature    *float64 // nil → DefaultTemperature (0.2)
	MaxTokens      int      // 0 → omitted
	// Role says which concurrency limits the call counts against.
	Role limits.Role
	// Kind names the caller ("chat.agent", "chat.agent_no_tools",
	// "profile.judge", …) for logs and metrics only.
	Kind string
}

// Response is the first choice of a successful answer.
type Response struct {
	Content      string
	ToolCalls    []ToolCall
	FinishReason string
	Usage        Usage
	// Provider and Model name the target that answered (Model as configured).
	Provider, Model string
	// Attempts counts the HTTP attempts of the call over all targets.
	Attempts int
	// Latency is the wall time of the whole call, including slot waits,
	// retries, backoff and fallbacks.
	Latency time.Duration
}

// Usage is the token count the server reported (zero if it sent none).
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}
