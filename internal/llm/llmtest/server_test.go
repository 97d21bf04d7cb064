package llmtest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// post sends a raw chat-completions request and returns status, headers and
// decoded body.
func post(t *testing.T, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer test-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m
}

func content(m map[string]any) any {
	return m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]
}

const oneMsg = `{"model":"m1","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}`

func TestDefaultReplyAndRecording(t *testing.T) {
	s := llmtest.NewServer(t)
	code, _, m := post(t, s.URL+"/v1/chat/completions", oneMsg)
	if code != 200 || content(m) != "ok" {
		t.Fatalf("%d %v", code, m)
	}
	u := m["usage"].(map[string]any)
	if u["prompt_tokens"] != 10.0 || u["completion_tokens"] != 5.0 || u["total_tokens"] != 15.0 {
		t.Fatalf("usage %v", u)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Authorization != "Bearer test-key" || r.Model != "m1" || r.Path != "/v1/chat/completions" ||
		len(r.Messages) != 1 || r.Messages[0].Content != "hi" || len(r.Tools) != 1 || r.Tools[0].Function.Name != "f" ||
		r.Body["model"] != "m1" {
		t.Fatalf("recorded %+v", r)
	}
}

func TestScriptAdvancesAndLastRepeats(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Script(llmtest.Step{Status: 429, RetryAfter: "3"}, llmtest.Step{Reply: "second"}, llmtest.Step{Reply: "last"})
	code, h, m := post(t, s.URL+"/chat/completions", oneMsg)
	if code != 429 || h.Get("Retry-After") != "3" || m["error"] == nil {
		t.Fatalf("%d %v %v", code, h, m)
	}
	for _, want := range []string{"second", "last", "last", "last"} {
		if _, _, m := post(t, s.URL+"/chat/completions", oneMsg); content(m) != want {
			t.Fatalf("content %v, want %s", content(m), want)
		}
	}
	// Script restarts.
	s.Script(llmtest.Step{Status: 200, Body: "not json"})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/chat/completions", strings.NewReader(oneMsg))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(raw) != "not json" {
		t.Fatalf("%d %q", resp.StatusCode, raw)
	}
}

func TestToolCallReply(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Script(llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}}}})
	_, _, m := post(t, s.URL+"/chat/completions", oneMsg)
	ch := m["choices"].([]any)[0].(map[string]any)
	if content(m) != nil || ch["finish_reason"] != "tool_calls" || len(ch["message"].(map[string]any)["tool_calls"].([]any)) != 1 {
		t.Fatalf("%v", m)
	}
}

func TestRespondAndNotFound(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Respond(func(r llmtest.Recorded) llmtest.Step { return llmtest.Step{Reply: "echo " + r.Messages[0].Content} })
	if _, _, m := post(t, s.URL+"/chat/completions", oneMsg); content(m) != "echo hi" {
		t.Fatalf("%v", m)
	}
	if code, _, _ := post(t, s.URL+"/embeddings", oneMsg); code != 404 {
		t.Fatalf("other path: %d", code)
	}
	if n := len(s.Requests()); n != 1 {
		t.Fatalf("%d recorded, want only chat-completions requests", n)
	}
	// Script replaces Respond.
	s.Script(llmtest.Step{Reply: "scripted"})
	if _, _, m := post(t, s.URL+"/chat/completions", oneMsg); content(m) != "scripted" {
		t.Fatalf("%v", m)
	}
}

func TestInFlightCounts(t *testing.T) {
	s := llmtest.NewServer(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 3)
	s.Respond(func(llmtest.Recorded) llmtest.Step {
		arrived <- struct{}{}
		<-gate
		return llmtest.Step{}
	})
	done := make(chan struct{}, 3)
	for range 3 {
		go func() {
			post(t, s.URL+"/chat/completions", oneMsg)
			done <- struct{}{}
		}()
	}
	for range 3 {
		<-arrived
	}
	if s.InFlight() != 3 || s.MaxInFlight() != 3 {
		t.Fatalf("in flight %d max %d", s.InFlight(), s.MaxInFlight())
	}
	close(gate)
	for range 3 {
		<-done
	}
	if s.InFlight() != 0 || s.MaxInFlight() != 3 {
		t.Fatalf("after: in flight %d max %d", s.InFlight(), s.MaxInFlight())
	}
}

func TestHangEndsWithClient(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Script(llmtest.Step{Hang: true})
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "f", BaseURL: s.URL, Model: "m", Timeout: 50 * time.Millisecond, MaxAttempts: 1}}}, llm.Options{})
	_, err := gw.Chat(context.Background(), llm.Request{Messages: []llm.Message{{Role: "user", Content: "x"}}}, nil)
	if err == nil {
		t.Fatal("hang answered")
	}
}

func TestCleanupReleasesHungRequests(t *testing.T) {
	// A request that nobody cancels is released when the test's server is
	// cleaned up, so Close does not block and no goroutine is left.
	errc := make(chan error, 1)
	t.Run("inner", func(t *testing.T) {
		s := llmtest.NewServer(t)
		arrived := make(chan struct{})
		s.Respond(func(llmtest.Recorded) llmtest.Step { close(arrived); return llmtest.Step{Hang: true} })
		go func() {
			resp, err := http.Post(s.URL+"/chat/completions", "application/json", strings.NewReader(oneMsg))
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-arrived
	})
	if err := <-errc; err == nil {
		t.Fatal("hung request got an answer")
	}
}

func TestGatewayReadsFakeReplies(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Script(llmtest.Step{Reply: "hello", Usage: &llm.Usage{PromptTokens: 3, CompletionTokens: 2}})
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "f", BaseURL: s.URL + "/v1", Model: "m"}}}, llm.Options{})
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: []llm.Message{{Role: "user", Content: "x"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "hello" || resp.Usage != (llm.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}) {
		t.Fatalf("%+v", resp)
	}
}

// A request with "stream": true gets the reply as SSE chunks, ChunkDelay
// apart, with the usage chunk asked for and [DONE]; Streams times it.
func TestStreamedReply(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Script(llmtest.Step{Reply: "一二三四五六", Chunks: 3, ChunkDelay: 20 * time.Millisecond})
	start := time.Now()
	resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("three chunks 20 ms apart took %s", el)
	}
	var text strings.Builder
	var events []string
	for _, ev := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		data := strings.TrimPrefix(ev, "data: ")
		events = append(events, data)
		if data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage *llm.Usage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
	}
	// 3 pieces, the finish chunk, the usage chunk, [DONE].
	if len(events) != 6 || events[5] != "[DONE]" || text.String() != "一二三四五六" || !strings.Contains(events[4], `"usage"`) {
		t.Fatalf("events %q", events)
	}
	st := s.Streams()
	if len(st) != 1 || st[0].FirstChunk.Before(st[0].Received) {
		t.Fatalf("streams %+v", st)
	}
}

// A lean fake answers as the full one does (plain and streamed) but keeps
// no request.
func TestLeanAnswersAndKeepsNothing(t *testing.T) {
	s := llmtest.NewServer(t)
	s.Lean()
	s.Script(llmtest.Step{Reply: "好的"})
	code, _, m := post(t, s.URL+"/v1/chat/completions", oneMsg)
	if code != 200 || content(m) != "好的" {
		t.Fatalf("%d %v", code, m)
	}
	resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.Contains(string(raw), "好的") {
		t.Fatalf("streamed answer %q", raw)
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("a lean fake kept %d requests", n)
	}
}
