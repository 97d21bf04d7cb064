package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/tools"
)

// observed is an Agent built as the tenant builds it for the chat stream:
// its model and its tools wrapped, over a streaming fake server.
func observed(t *testing.T) (*Agent, *llmtest.Server) {
	t.Helper()
	echo := tools.Tool{
		Name: "demo.echo", Description: "echo",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}},
			"required": []any{"text"}, "additionalProperties": false},
		Run: func(_ context.Context, _ caller.Principal, args map[string]any) (any, error) {
			if args["text"] == "fail" {
				return nil, errors.New("echo failed")
			}
			return map[string]any{"echo": args["text"]}, nil
		},
	}
	reg, err := tools.NewRegistry(ObserveTools(echo)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "test", BaseURL: srv.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()), Global: limits.NewSet(limits.TenantDefaults())}
	return &Agent{LLM: ObserveLLM(client, reg), Tools: reg, Prompts: NewPrompts(t.TempDir())}, srv
}

type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *eventLog) types() []string {
	var out []string
	for _, e := range l.evs {
		out = append(out, e.Type)
	}
	return out
}

func (l *eventLog) text() string {
	var b strings.Builder
	for _, e := range l.evs {
		if e.Type == EventDelta {
			b.WriteString(e.Payload["delta"].(string))
		}
	}
	return b.String()
}

var teacherP = caller.Principal{Role: caller.RoleTeacher, TeacherID: "t1"}

// A turn with a sink reports its rounds, each tool call (run, failed, or
// refused before running) with the id of the model's call, and the reply
// streamed as deltas that add up to the reply.
func TestEventsOfATurn(t *testing.T) {
	a, srv := observed(t)
	srv.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{
			{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "demo_echo", Arguments: `{"text":"hi"}`}},
			{ID: "c2", Type: "function", Function: llm.FunctionCall{Name: "demo_echo", Arguments: `{"bad":1}`}},
			{ID: "c3", Type: "function", Function: llm.FunctionCall{Name: "demo_echo", Arguments: `{"text":"fail"}`}},
			{ID: "c4", Type: "function", Function: llm.FunctionCall{Name: "nope", Arguments: `{}`}},
		}},
		llmtest.Step{Reply: `答案是 \(x^2\)，对吗？`, Chunks: 8},
	)
	var log eventLog
	res, err := a.Run(WithEvents(context.Background(), log.add), Input{Caller: teacherP, Messages: userSays("算一下")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reply != "答案是 $x^2$，对吗？" || log.text() != res.Reply {
		t.Fatalf("reply %q, deltas %q", res.Reply, log.text())
	}
	want := []string{EventRoundStart, EventToolStart, EventToolFinish, EventToolStart, EventToolFinish,
		EventToolStart, EventToolFinish, EventToolStart, EventToolFinish, EventRoundStart}
	got := log.types()
	if len(got) < len(want)+1 || strings.Join(got[:len(want)], ",") != strings.Join(want, ",") {
		t.Fatalf("events %v", got)
	}
	for _, e := range got[len(want):] {
		if e != EventDelta {
			t.Fatalf("events after the last round %v", got)
		}
	}
	p := func(i int) map[string]any { return log.evs[i].Payload }
	if p(0)["round"] != 1 || p(0)["tools_enabled"] != true || p(9)["round"] != 2 {
		t.Errorf("rounds %v %v", p(0), p(9))
	}
	// c1 and c3 ran (in order); c2 (invalid arguments) and c4 (unknown)
	// are reported when the next round starts, as not ok.
	checks := []struct {
		i       int
		id      string
		ok      bool
		errPart string
	}{{2, "c1", true, ""}, {4, "c3", false, "echo failed"}, {6, "c2", false, "invalid_arguments"}, {8, "c4", false, "unknown tool"}}
	for _, c := range checks {
		start, fin := p(c.i-1), p(c.i)
		if start["tool_call_id"] != c.id || fin["tool_call_id"] != c.id || fin["ok"] != c.ok ||
			!strings.Contains(fin["error"].(string), c.errPart) {
			t.Errorf("call %s: start %v finish %v", c.id, start, fin)
		}
	}
	if p(1)["tool_name"] != "demo.echo" || p(5)["tool_name"] != "demo.echo" {
		t.Errorf("tool names %v %v", p(1), p(5))
	}
}

// A reply in the JSON-tool protocol streams nothing: it is a call, not
// text for the user; the run it causes gets a json_<n> id.
func TestEventsHoldBackJSONToolCalls(t *testing.T) {
	a, srv := observed(t)
	srv.Script(
		llmtest.Step{Reply: `{"tool":"demo.echo","arguments":{"text":"x"}}`, Chunks: 5},
		llmtest.Step{Reply: `{"answer": 42} 是结果`, Chunks: 3},
	)
	var log eventLog
	res, err := a.Run(WithEvents(context.Background(), log.add), Input{Caller: teacherP, Messages: userSays("查一下")})
	if err != nil {
		t.Fatal(err)
	}
	got := log.types()
	if strings.Join(got[:4], ",") != "llm.round.start,tool.start,tool.finish,llm.round.start" {
		t.Fatalf("events %v", got)
	}
	if id := log.evs[1].Payload["tool_call_id"]; id != "json_1" {
		t.Errorf("id %v", id)
	}
	// The second answer starts like JSON but is the reply: held, then
	// passed on whole once the answer is complete.
	if log.text() != res.Reply || len(got) != 5 {
		t.Fatalf("deltas %q reply %q events %v", log.text(), res.Reply, got)
	}
}

// Without a sink the wrappers change nothing: no stream is asked for.
func TestNoSinkNoStream(t *testing.T) {
	a, srv := observed(t)
	srv.Script(llmtest.Step{Reply: "好", Chunks: 3})
	res, err := a.Run(context.Background(), Input{Caller: teacherP, Messages: userSays("你好")})
	if err != nil || res.Reply != "好" {
		t.Fatal(res, err)
	}
	if srv.Requests()[0].Stream {
		t.Fatal("streamed without a sink")
	}
}

// A backslash at the end of one piece and a bracket at the start of the
// next still become $$.
func TestDeltaFilterSplitDelimiters(t *testing.T) {
	var log eventLog
	te := &turnEvents{sink: log.add}
	f := &deltaFilter{te: te, first: true}
	for _, p := range []string{"  \n看 \\", "[a\\", "]", " 与 \\", "(b\\)"} {
		f.push(p)
	}
	f.end(true)
	if got := log.text(); got != "看 $$a$$ 与 $b$" {
		t.Fatalf("%q", got)
	}
}
