package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/tools"
)

// Live events of a turn, for a view that follows it as it runs (the chat
// stream, GET /chat/stream).
//
// The hook is optional and sits outside Run: a turn reports events only
// when its context carries a sink (WithEvents), and only through the two
// wrappers the Agent is built with — ObserveLLM around its model (model
// rounds and the reply's text as the model streams it) and ObserveTools
// around the tools of its registry (each tool run). Without a sink both
// wrappers pass straight through, so an observed Agent behaves exactly as
// an unobserved one for every other caller (POST /chat, MCP, tests).

// Event types, named as the chat stream names them.
const (
	EventRoundStart = "llm.round.start" // {round (1-based), tools_enabled}
	EventToolStart  = "tool.start"      // {tool_name, tool_call_id}
	EventToolFinish = "tool.finish"     // {tool_name, tool_call_id, ok, duration_ms, error}
	EventDelta      = "assistant.delta" // {delta}
)

// Event is one thing a turn did. Payload holds the stream's fields for
// Type.
type Event struct {
	Type    string
	Payload map[string]any
}

type eventsKey struct{}

// turnEvents is the sink of one turn and what the wrappers need to know
// of it: the model round, and the tool calls of the last answer that have
// not been reported yet.
type turnEvents struct {
	sink func(Event)

	mu        sync.Mutex
	round     int
	pending   []pendingCall
	jsonCalls int
}

type pendingCall struct {
	id, name, args string
	started        bool
}

// WithEvents returns a context whose turn reports its events to sink. The
// sink is called on the turn's goroutine (and never concurrently); it
// should return quickly. One context serves one Run.
func WithEvents(ctx context.Context, sink func(Event)) context.Context {
	if sink == nil {
		return ctx
	}
	return context.WithValue(ctx, eventsKey{}, &turnEvents{sink: sink})
}

func eventsFrom(ctx context.Context) *turnEvents {
	te, _ := ctx.Value(eventsKey{}).(*turnEvents)
	return te
}

// Emit reports an event of another step of the turn (a skill resolution:
// "workflow.resolved") to the sink of ctx, if any.
func Emit(ctx context.Context, e Event) {
	if te := eventsFrom(ctx); te != nil {
		te.emit(e)
	}
}

func (te *turnEvents) emit(e Event) {
	te.sink(e)
}

// ObserveLLM wraps the Agent's model: with a sink in the call's context,
// each call is reported as a round (llm.round.start), asks the model to
// stream, and reports the text as assistant.delta events as it arrives.
// Text that may be a tool call in the JSON-tool protocol (an answer that
// starts with "{" or "`") is held back until the answer is complete and
// dropped if it was one. The \( \) \[ \] delimiters become $ and $$, as in
// the final reply. Text the model writes beside tool calls is streamed
// too: the reply itself is what Run returns. It also reports the tool
// calls of the previous answer that never ran (unknown, refused, invalid
// arguments) as they are answered, by the dotted name reg knows them by
// (reg may be nil).
func ObserveLLM(m LLM, reg *tools.Registry) LLM { return observedLLM{next: m, reg: reg} }

type observedLLM struct {
	next LLM
	reg  *tools.Registry
}

func (o observedLLM) Chat(ctx context.Context, req llm.Request) (*llm.Response, error) {
	te := eventsFrom(ctx)
	if te == nil {
		return o.next.Chat(ctx, req)
	}
	te.answered(req.Messages, o.reg)
	te.mu.Lock()
	te.round++
	round := te.round
	te.mu.Unlock()
	te.emit(Event{Type: EventRoundStart, Payload: map[string]any{"round": round, "tools_enabled": len(req.Tools) > 0}})

	var f *deltaFilter
	if req.OnDelta == nil {
		f = &deltaFilter{te: te, first: true}
		req.OnDelta = f.push
	}
	resp, err := o.next.Chat(ctx, req)
	if err != nil {
		return resp, err
	}
	if f != nil {
		_, _, isJSONTool := parseJSONTool(resp.Content)
		f.end(len(resp.ToolCalls) == 0 && !isJSONTool)
	}
	te.mu.Lock()
	te.pending = te.pending[:0]
	for i, tc := range resp.ToolCalls {
		id := tc.ID
		if id == "" {
			id = fmt.Sprintf("call_%d_%d", round-1, i) // as Run names it
		}
		te.pending = append(te.pending, pendingCall{id: id, name: tc.Function.Name, args: tc.Function.Arguments})
	}
	te.mu.Unlock()
	return resp, err
}

// answered reports the calls of the last answer that did not run: the
// tool messages of msgs give their results.
func (te *turnEvents) answered(msgs []llm.Message, reg *tools.Registry) {
	te.mu.Lock()
	var skipped []pendingCall
	for _, p := range te.pending {
		if !p.started {
			skipped = append(skipped, p)
		}
	}
	te.pending = te.pending[:0]
	te.mu.Unlock()
	for _, p := range skipped {
		msg := "not run"
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].Role == "tool" && msgs[i].ToolCallID == p.id {
				msg = resultError(msgs[i].Content)
				break
			}
		}
		name := p.name
		if reg != nil {
			if t, ok := reg.Lookup(p.name); ok {
				name = t.Name
			}
		}
		te.emit(Event{Type: EventToolStart, Payload: map[string]any{"tool_name": name, "tool_call_id": p.id}})
		te.emit(Event{Type: EventToolFinish, Payload: map[string]any{"tool_name": name, "tool_call_id": p.id,
			"ok": false, "duration_ms": 0, "error": msg}})
	}
}

// resultError is the "error" of a tool result's JSON ("" when it has none).
func resultError(content string) string {
	var m map[string]any
	if json.Unmarshal([]byte(content), &m) != nil {
		return ""
	}
	if e, ok := m["error"]; ok {
		return fmt.Sprint(e)
	}
	return ""
}

// ObserveTools wraps each tool's Run: with a sink in the context, a run is
// reported as tool.start and tool.finish (ok, duration, error), with the
// id of the model's call it answers (matched by name and arguments among
// the calls of the model's last answer; a JSON-protocol call gets
// "json_<n>"). Build the registry from the wrapped tools.
func ObserveTools(ts ...tools.Tool) []tools.Tool {
	out := make([]tools.Tool, len(ts))
	for i, t := range ts {
		run, name := t.Run, t.Name
		if run != nil {
			t.Run = func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				te := eventsFrom(ctx)
				if te == nil {
					return run(ctx, c, args)
				}
				id := te.start(name, args)
				te.emit(Event{Type: EventToolStart, Payload: map[string]any{"tool_name": name, "tool_call_id": id}})
				began := time.Now()
				res, err := run(ctx, c, args)
				msg := ""
				switch m, _ := res.(map[string]any); {
				case err != nil:
					msg = err.Error()
				case m != nil && m["error"] != nil:
					msg = fmt.Sprint(m["error"])
				}
				te.emit(Event{Type: EventToolFinish, Payload: map[string]any{"tool_name": name, "tool_call_id": id,
					"ok": err == nil && msg == "", "duration_ms": time.Since(began).Milliseconds(), "error": msg}})
				return res, err
			}
		}
		out[i] = t
	}
	return out
}

// start finds the call a run of tool name with args answers: the first
// call not yet started with that tool's name (dotted or wire) and the same
// arguments, else the first with that name.
func (te *turnEvents) start(name string, args map[string]any) string {
	te.mu.Lock()
	defer te.mu.Unlock()
	wire := tools.WireName(name)
	match := -1
	for i, p := range te.pending {
		if p.started || (p.name != name && p.name != wire) {
			continue
		}
		if match < 0 {
			match = i
		}
		if sameArgs(p.args, args) {
			match = i
			break
		}
	}
	if match < 0 {
		te.jsonCalls++
		return fmt.Sprintf("json_%d", te.jsonCalls)
	}
	te.pending[match].started = true
	return te.pending[match].id
}

// sameArgs compares a call's JSON arguments with the validated ones,
// decoded the way Dispatch decodes them.
func sameArgs(raw string, args map[string]any) bool {
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return len(args) == 0 && strings.TrimSpace(raw) == ""
	}
	return reflect.DeepEqual(v, args)
}

// deltaFilter passes one answer's streamed text on as assistant.delta
// events.
type deltaFilter struct {
	te      *turnEvents
	first   bool            // nothing passed on yet
	holding bool            // text held: it may be a JSON-protocol tool call
	held    strings.Builder // the held text
	carry   string          // a trailing backslash, until the next piece shows what it starts
}

func (f *deltaFilter) push(d string) {
	if f.first {
		f.held.WriteString(d)
		t := strings.TrimLeft(f.held.String(), " \t\r\n")
		if t == "" || t[0] == '{' || t[0] == '`' {
			f.holding = true
			return
		}
		f.first, f.holding = false, false
		f.held.Reset()
		d = t
	}
	f.send(d)
}

// end closes the answer: reply says it was the turn's reply (not a tool
// call), so held text is passed on; otherwise it is dropped.
func (f *deltaFilter) end(reply bool) {
	if f.first && f.holding && reply {
		if t := strings.TrimLeft(f.held.String(), " \t\r\n"); t != "" {
			f.send(t)
		}
	}
	if f.carry != "" && reply {
		c := f.carry
		f.carry = ""
		f.te.emit(Event{Type: EventDelta, Payload: map[string]any{"delta": c}})
	}
}

func (f *deltaFilter) send(d string) {
	d = f.carry + d
	f.carry = ""
	if strings.HasSuffix(d, `\`) {
		d, f.carry = d[:len(d)-1], `\`
	}
	if d = latexDelims.Replace(d); d != "" {
		f.te.emit(Event{Type: EventDelta, Payload: map[string]any{"delta": d}})
	}
}
