package llm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// collector gathers the pieces OnDelta is given.
type collector struct{ pieces []string }

func (c *collector) add(d string) { c.pieces = append(c.pieces, d) }

// A streamed reply arrives in pieces, in order, and the Response still
// holds the whole text and the usage the last chunk reported.
func TestStreamDeltas(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "你好，这是一个流式回答。", Chunks: 4, Usage: &llm.Usage{PromptTokens: 7, CompletionTokens: 3}})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	var c collector
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.pieces) != 4 || strings.Join(c.pieces, "") != "你好，这是一个流式回答。" {
		t.Fatalf("pieces %q", c.pieces)
	}
	if resp.Content != "你好，这是一个流式回答。" || resp.FinishReason != "stop" || resp.Usage.TotalTokens != 10 || resp.Attempts != 1 {
		t.Fatalf("response %+v", resp)
	}
	req := srv.Requests()[0]
	if !req.Stream || req.Header.Get("Accept") != "text/event-stream" {
		t.Fatalf("request not streamed: %v %q", req.Body["stream"], req.Header.Get("Accept"))
	}
	if opts, _ := req.Body["stream_options"].(map[string]any); opts["include_usage"] != true {
		t.Fatalf("stream_options %v", req.Body["stream_options"])
	}
}

// Without OnDelta nothing changes: stream false, no stream_options.
func TestPlainCallDoesNotStream(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "plain", Chunks: 3})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi")}, nil)
	if err != nil || resp.Content != "plain" {
		t.Fatal(resp, err)
	}
	req := srv.Requests()[0]
	if req.Body["stream"] != false || req.Body["stream_options"] != nil || req.Header.Get("Accept") != "application/json" {
		t.Fatalf("body %v accept %q", req.Body, req.Header.Get("Accept"))
	}
}

// Streamed tool calls are assembled from their pieces.
func TestStreamToolCalls(t *testing.T) {
	srv := llmtest.NewServer(t)
	calls := []llm.ToolCall{
		{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "exam_get", Arguments: `{"exam_id":"EX1"}`}},
		{ID: "c2", Type: "function", Function: llm.FunctionCall{Name: "exam_list", Arguments: `{}`}},
	}
	srv.Script(llmtest.Step{ToolCalls: calls})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	var c collector
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.pieces) != 0 || resp.FinishReason != "tool_calls" || len(resp.ToolCalls) != 2 {
		t.Fatalf("pieces %q response %+v", c.pieces, resp)
	}
	for i, want := range calls {
		if resp.ToolCalls[i] != want {
			t.Errorf("call %d: %+v, want %+v", i, resp.ToolCalls[i], want)
		}
	}
}

// A failure before the first piece is retried like any other.
func TestStreamRetriedBeforeFirstDelta(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Status: 503}, llmtest.Step{Reply: "abcdef", Chunks: 3, CutAfter: 0})
	sl := &sleeper{}
	gw := newGateway(sl, prov("a", srv, "k"))
	var c collector
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
	if err != nil || resp.Content != "abcdef" || resp.Attempts != 2 || strings.Join(c.pieces, "") != "abcdef" {
		t.Fatal(resp, err, c.pieces)
	}
	if len(sl.Delays()) != 1 {
		t.Fatalf("delays %v", sl.Delays())
	}
}

// A stream cut before anything was passed on is retried; one cut after
// its first piece ends the call at once: no retry, no fallback, since the
// pieces already passed on cannot be taken back.
func TestStreamNotRetriedAfterFirstDelta(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Reply: "abcdef", Chunks: 3, CutAfter: 1})
	b.Script(llmtest.Step{Reply: "from b"})
	gw := newGateway(&sleeper{}, prov("a", a, "k"), prov("b", b, "k"))
	var c collector
	_, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
	if err == nil || !strings.Contains(err.Error(), "broke off") {
		t.Fatalf("err %v", err)
	}
	if len(a.Requests()) != 1 || len(b.Requests()) != 0 || strings.Join(c.pieces, "") != "ab" {
		t.Fatalf("requests a=%d b=%d pieces %q", len(a.Requests()), len(b.Requests()), c.pieces)
	}

	// Cut before the first piece (the delay is cut by nothing: CutAfter
	// counts pieces sent, so use a 0-piece cut through a failing target).
	a.Script(llmtest.Step{Status: 400})
	c = collector{}
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
	if err != nil || resp.Provider != "b" || strings.Join(c.pieces, "") != "from b" {
		t.Fatal(resp, err, c.pieces)
	}
}

// A server that ignores "stream" and answers plain JSON: the reply is
// passed on whole, once.
func TestStreamAnsweredPlain(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Handler: func(r llmtest.Recorded) (int, string) {
		return 200, llmtest.ReplyBody(llmtest.Step{Reply: "whole"}, len(r.Messages))
	}})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	var c collector
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
	if err != nil || resp.Content != "whole" || len(c.pieces) != 1 || c.pieces[0] != "whole" {
		t.Fatal(resp, err, c.pieces)
	}
}

// The event-stream reader takes what servers really send: CRLF line ends,
// comments, event fields, data split over two lines, no [DONE] after a
// finish reason; and refuses an error event and a stream that just stops.
func TestStreamWireVariants(t *testing.T) {
	cases := []struct {
		name, body string
		want       string // content, or "" for an error
		retryable  bool
	}{
		{"crlf and comments", ": ping\r\n\r\nevent: message\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n" +
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\r\n\r\n", "ab", false},
		{"data on two lines", "data: {\"choices\":[{\"index\":0,\ndata: \"delta\":{\"content\":\"xy\"}}]}\n\ndata: [DONE]\n\n", "xy", false},
		{"finish without done", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"z\"},\"finish_reason\":\"stop\"}]}\n\n", "z", false},
		{"error event", "data: {\"error\":{\"message\":\"overloaded\"}}\n\n", "", false},
		{"cut off", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}\n\n", "", true},
		{"not json", "data: {oops\n\n", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hits := 0
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits++
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
				io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			sl := &sleeper{}
			gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "raw", BaseURL: ts.URL, Model: "m", MaxAttempts: 2, Timeout: 5 * time.Second}}},
				llm.Options{Sleep: sl.Sleep, Rand: func() float64 { return 0 }})
			var c collector
			resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), OnDelta: c.add}, nil)
			if tc.want == "" {
				if err == nil || !errors.Is(err, llm.ErrMalformedResponse) {
					t.Fatalf("err %v", err)
				}
				if wantHits := map[bool]int{true: 2, false: 1}[tc.retryable]; hits != wantHits {
					t.Fatalf("%d attempts, want %d", hits, wantHits)
				}
				return
			}
			if err != nil || resp.Content != tc.want || strings.Join(c.pieces, "") != tc.want {
				t.Fatal(resp, err, c.pieces)
			}
		})
	}
}

// Through a Client, a streamed call takes the limits' slots and its usage
// is metered like a plain one.
func TestClientStreamMetered(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "meter me", Chunks: 2, Usage: &llm.Usage{PromptTokens: 11, CompletionTokens: 4}})
	var m llm.Meter
	c := &llm.Client{
		Gateway: newGateway(&sleeper{}, prov("a", srv, "k")),
		Tenant:  limits.NewSet(limits.TenantDefaults()), Global: limits.NewSet(limits.TenantDefaults()),
		Meter: &m,
	}
	var got collector
	resp, err := c.Chat(context.Background(), llm.Request{Messages: userMsg("hi"), Role: limits.RoleTeacher, OnDelta: got.add})
	if err != nil || resp.Content != "meter me" || len(got.pieces) != 2 {
		t.Fatal(resp, err, got.pieces)
	}
	if s := m.Snapshot(); s.Calls != 1 || s.PromptTokens != 11 || s.CompletionTokens != 4 || s.Attempts != 1 {
		t.Fatalf("meter %+v", s)
	}
}
