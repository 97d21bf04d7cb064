package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/limits"
)

// Message is one chat message in the OpenAI wire shape. Role is "system",
// "user", "assistant" or "tool"; an assistant message may carry ToolCalls and
// a tool message answers one of them by ToolCallID.
//
// A message with Parts (a user message carrying images, for a vision model)
// is sent with content as the array of its parts and Content is not sent;
// a message without Parts is sent with content as the string Content, as
// always. Decoding accepts both forms: an array fills Parts and sets
// Content to the texts of its text parts, joined.
type Message struct {
	Role       string        `json:"role"`
	Content    string        `json:"content"`
	Parts      []ContentPart `json:"-"`
	ToolCalls  []ToolCall    `json:"tool_calls,omitempty"`
	ToolCallID string        `json:"tool_call_id,omitempty"`
	Name       string        `json:"name,omitempty"`
}

// Content part types.
const (
	PartText     = "text"
	PartImageURL = "image_url"
)

// ContentPart is one element of an array content: {"type":"text","text":…}
// or {"type":"image_url","image_url":{"url":…}}.
type ContentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is the image of an image_url part: an https URL or a data URL
// ("data:image/png;base64,…"). Detail ("low", "high", "auto") is sent only
// when set.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// TextPart is a text content part.
func TextPart(text string) ContentPart { return ContentPart{Type: PartText, Text: text} }

// ImagePart is an image content part for url (see ImageURL).
func ImagePart(url string) ContentPart {
	return ContentPart{Type: PartImageURL, ImageURL: &ImageURL{URL: url}}
}

// plainMessage is Message without its methods, for the default encoding.
type plainMessage Message

// MarshalJSON sends content as the array of Parts when there are parts,
// else as the string Content.
func (m Message) MarshalJSON() ([]byte, error) {
	if len(m.Parts) == 0 {
		return json.Marshal(plainMessage(m))
	}
	for i, p := range m.Parts {
		if p.Type == PartImageURL && (p.ImageURL == nil || p.ImageURL.URL == "") {
			return nil, fmt.Errorf("llm: message part %d: image_url without a url", i)
		}
	}
	return json.Marshal(struct {
		plainMessage
		Content []ContentPart `json:"content"` // shadows plainMessage.Content
	}{plainMessage(m), m.Parts})
}

// UnmarshalJSON reads content as a string, null, or an array of parts.
func (m *Message) UnmarshalJSON(b []byte) error {
	var w struct {
		plainMessage
		Content json.RawMessage `json:"content"` // shadows plainMessage.Content
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = Message(w.plainMessage)
	raw := w.Content
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		return json.Unmarshal(raw, &m.Content)
	}
	var parts []ContentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return errors.New("llm: message content is neither a string nor a list of parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type == PartText {
			texts = append(texts, p.Text)
		}
	}
	m.Parts, m.Content = parts, strings.Join(texts, "")
	return nil
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
	// OnDelta, when set, asks for a streamed answer (stream: true): it is
	// called with each piece of the reply's text as it arrives, on the
	// calling goroutine, before Chat returns the whole Response (which
	// holds the same text, the tool calls and the usage). A failed attempt
	// is retried, or the next target tried, only while no piece has been
	// passed on: after the first piece a failure ends the call. nil is the
	// plain, unstreamed call.
	OnDelta func(delta string)
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
