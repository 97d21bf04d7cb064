package llm_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// A message with parts goes out with content as the OpenAI array; one
// without keeps its string content, byte for byte as before.
func TestMessagePartsWire(t *testing.T) {
	plain, err := json.Marshal(llm.Message{Role: "user", Content: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != `{"role":"user","content":"hi"}` {
		t.Errorf("plain = %s", plain)
	}
	empty, _ := json.Marshal(llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function",
		Function: llm.FunctionCall{Name: "f", Arguments: "{}"}}}})
	if string(empty) != `{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}` {
		t.Errorf("tool call message = %s", empty)
	}

	m := llm.Message{Role: "user", Content: "ignored on the wire", Parts: []llm.ContentPart{
		llm.TextPart("请做OCR"), llm.ImagePart("data:image/png;base64,iVBORw0KGgo="),
	}}
	got, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"role":"user","content":[{"type":"text","text":"请做OCR"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}`
	if string(got) != want {
		t.Errorf("parts =\n %s\nwant\n %s", got, want)
	}

	// Decoding: both forms.
	var back llm.Message
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.Content != "请做OCR" || !reflect.DeepEqual(back.Parts, m.Parts) || back.Role != "user" {
		t.Errorf("decoded = %+v", back)
	}
	var s llm.Message
	if err := json.Unmarshal(plain, &s); err != nil || s.Content != "hi" || s.Parts != nil {
		t.Errorf("decoded plain = %+v, %v", s, err)
	}
	var null llm.Message
	if err := json.Unmarshal([]byte(`{"role":"assistant","content":null}`), &null); err != nil || null.Content != "" {
		t.Errorf("null content = %+v, %v", null, err)
	}
	if err := json.Unmarshal([]byte(`{"role":"user","content":42}`), &null); err == nil {
		t.Error("numeric content accepted")
	}

	// An image part without a URL is refused rather than sent.
	if _, err := json.Marshal(llm.Message{Role: "user", Parts: []llm.ContentPart{{Type: llm.PartImageURL}}}); err == nil {
		t.Error("image part without url marshalled")
	}
}

// Through the gateway: the body the server receives carries the array
// content, other messages their strings.
func TestMessagePartsThroughGateway(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "text"})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	msgs := []llm.Message{
		{Role: "system", Content: "sys"},
		{Role: "user", Parts: []llm.ContentPart{llm.TextPart("read"), llm.ImagePart("data:image/jpeg;base64,/9j/")}},
	}
	if _, err := gw.Chat(context.Background(), llm.Request{Messages: msgs}, nil); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	wire, _ := r.Body["messages"].([]any)
	if len(wire) != 2 {
		t.Fatalf("messages = %v", r.Body["messages"])
	}
	if c := wire[0].(map[string]any)["content"]; c != "sys" {
		t.Errorf("system content = %#v", c)
	}
	parts, _ := wire[1].(map[string]any)["content"].([]any)
	if len(parts) != 2 {
		t.Fatalf("user content = %#v", wire[1])
	}
	img, _ := parts[1].(map[string]any)
	if img["type"] != "image_url" || img["image_url"].(map[string]any)["url"] != "data:image/jpeg;base64,/9j/" {
		t.Errorf("image part = %#v", img)
	}
	if len(r.Messages) != 2 || len(r.Messages[1].Parts) != 2 || r.Messages[1].Content != "read" {
		t.Errorf("recorded = %+v", r.Messages)
	}
}
