// Package llmtest is an in-process fake of an OpenAI-compatible
// chat-completions server, for tests anywhere in the repository.
//
//	srv := llmtest.NewServer(t)
//	srv.Script(llmtest.Step{Status: 429, RetryAfter: "1"}, llmtest.Step{Reply: "hi"})
//	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "fake", BaseURL: srv.URL, Model: "m"}}}, llm.Options{})
//
// The server answers POST <URL>/chat/completions (any path ending in
// /chat/completions, so a base URL with /v1 works too) and 404 otherwise.
// A request with "stream": true gets a normal reply as text/event-stream
// chunks (Step.Chunks pieces, Step.ChunkDelay apart) ending with
// "data: [DONE]", as OpenAI streams; Streams reports when each stream's
// first chunk went out.
// It records every request and counts concurrent ones. It is closed by
// t.Cleanup; requests still blocked in Hang or Delay are released first.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm"
)

// Step is how the server answers one request.
//
// Precedence: Delay is waited first (for every kind of answer); then Hang,
// then Handler, then Status, then the normal reply.
type Step struct {
	// Reply and ToolCalls make a normal 200 answer. With ToolCalls the
	// content is null and finish_reason is "tool_calls"; with neither,
	// the reply is "ok".
	Reply     string
	ToolCalls []llm.ToolCall
	// Usage overrides the reported usage of a normal answer. nil → 10
	// prompt tokens per request message and 5 completion tokens.
	Usage *llm.Usage

	// Status != 0 makes an answer with this status and Body. An empty Body
	// is a JSON error object for a non-2xx status and a normal reply for a
	// 2xx one, so Step{Status: 200, Body: "not json"} makes a malformed
	// answer. RetryAfter sets the Retry-After header.
	Status     int
	RetryAfter string
	Body       string

	// Hang blocks until the client gives up (the request's context ends)
	// or the server closes; then the connection is dropped unanswered.
	Hang bool
	// Delay waits before answering (cut short if the client gives up).
	Delay time.Duration
	// Handler, if set, gives the status and body of the answer (a JSON
	// content type is sent). It runs on the request's goroutine, so it may
	// block to let a test hold a request open.
	Handler func(req Recorded) (status int, body string)

	// Chunks is the number of pieces a streamed reply's text is cut into
	// (by characters; 0 or 1: one piece). Tool calls are streamed as two
	// pieces each (name, then the arguments in two halves). ChunkDelay is
	// waited between pieces. CutAfter > 0 drops the connection after that
	// many pieces, without finish_reason or [DONE]: a stream broken off.
	// They apply only to a request that asks for "stream": true.
	Chunks     int
	ChunkDelay time.Duration
	CutAfter   int
}

// Recorded is one request the server received.
type Recorded struct {
	Authorization string         // the Authorization header ("" when absent)
	Header        http.Header    // all request headers
	Path          string         // the URL path
	Body          map[string]any // the decoded JSON body (nil if it was not JSON)
	Messages      []llm.Message
	Tools         []llm.Tool
	Model         string
	Stream        bool      // the request asked for "stream": true
	Received      time.Time // when the request's body had been read
}

// StreamTiming is one streamed answer: when its request arrived and when
// its first chunk was flushed.
type StreamTiming struct {
	Received, FirstChunk time.Time
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	URL string

	ts   *httptest.Server
	done chan struct{}

	mu          sync.Mutex
	steps       []Step
	next        int
	respond     func(Recorded) Step
	reqs        []Recorded
	streams     []StreamTiming
	inFlight    int
	maxInFlight int
	lean        bool
}

// NewServer starts a fake server; t.Cleanup closes it.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{done: make(chan struct{})}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL
	t.Cleanup(func() {
		close(s.done)
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
	return s
}

// Script sets the answers: each request takes the next step, the last step
// repeats once the script is exhausted, and with no steps every request gets
// the reply "ok". Script clears a Respond function and restarts the script.
func (s *Server) Script(steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append([]Step(nil), steps...)
	s.next = 0
	s.respond = nil
}

// Respond decides each answer with fn instead of a script. fn runs on the
// request's goroutine and may block.
func (s *Server) Respond(fn func(req Recorded) Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = fn
}

// Lean is for benchmarks, where the fake's own work is not what is
// measured: requests are no longer kept (Requests returns none of them)
// nor decoded beyond what the answer needs (the stream flag and the
// number of messages; a Respond function or Handler sees only those).
func (s *Server) Lean() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lean = true
}

// Requests returns the chat-completions requests received so far, in
// arrival order.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.reqs...)
}

// Streams returns the timings of the streamed answers sent so far whose
// first chunk went out, in the order their first chunks did.
func (s *Server) Streams() []StreamTiming {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StreamTiming(nil), s.streams...)
}

// MaxInFlight is the peak number of concurrent chat-completions requests.
// A request counts from its arrival until its answer is ready to be written,
// so the count never includes a request whose client already has its answer.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// InFlight is the number of chat-completions requests being handled now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		http.Error(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	rec := Recorded{
		Authorization: r.Header.Get("Authorization"),
		Header:        r.Header.Clone(),
		Path:          r.URL.Path,
	}
	s.mu.Lock()
	lean := s.lean
	s.mu.Unlock()
	if lean {
		var brief struct {
			Messages []json.RawMessage `json:"messages"`
			Stream   bool              `json:"stream"`
		}
		if json.Unmarshal(raw, &brief) == nil {
			rec.Messages, rec.Stream = make([]llm.Message, len(brief.Messages)), brief.Stream
		}
	} else {
		var typed struct {
			Model    string        `json:"model"`
			Messages []llm.Message `json:"messages"`
			Tools    []llm.Tool    `json:"tools"`
			Stream   bool          `json:"stream"`
		}
		if json.Unmarshal(raw, &rec.Body) == nil {
			if json.Unmarshal(raw, &typed) == nil {
				rec.Model, rec.Messages, rec.Tools, rec.Stream = typed.Model, typed.Messages, typed.Tools, typed.Stream
			}
		}
	}
	rec.Received = time.Now()

	s.mu.Lock()
	if !s.lean {
		s.reqs = append(s.reqs, rec)
	}
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	respond := s.respond
	var step Step
	if respond == nil {
		step = s.scriptStepLocked()
	}
	s.mu.Unlock()

	status, body, header, stream, ok := s.answer(r, rec, respond, step)
	if ok && stream != nil {
		s.stream(w, r, rec, *stream)
		return
	}

	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()

	if !ok {
		// The client gave up or the server is closing: drop the connection
		// rather than send an empty 200.
		panic(http.ErrAbortHandler)
	}
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (s *Server) scriptStepLocked() Step {
	if len(s.steps) == 0 {
		return Step{}
	}
	st := s.steps[min(s.next, len(s.steps)-1)]
	if s.next < len(s.steps) {
		s.next++
	}
	return st
}

// answer computes the answer; ok is false when the request was abandoned.
// stream is set (and nothing else) when a normal reply is to be streamed.
func (s *Server) answer(r *http.Request, rec Recorded, respond func(Recorded) Step, step Step) (status int, body string, header map[string]string, stream *Step, ok bool) {
	if respond != nil {
		step = respond(rec)
	}
	if step.Delay > 0 && !s.wait(r, step.Delay) {
		return 0, "", nil, nil, false
	}
	if step.Hang {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return 0, "", nil, nil, false
	}
	if step.Handler != nil {
		status, body = step.Handler(rec)
		if status == 0 {
			status = http.StatusOK
		}
		return status, body, nil, nil, true
	}
	if rec.Stream && step.Status == 0 {
		return 0, "", nil, &step, true
	}
	if step.Status != 0 {
		header = map[string]string{}
		if step.RetryAfter != "" {
			header["Retry-After"] = step.RetryAfter
		}
		body = step.Body
		if body == "" {
			if step.Status >= 200 && step.Status <= 299 {
				body = ReplyBody(step, len(rec.Messages))
			} else {
				body = fmt.Sprintf(`{"error":{"message":"fake error %d","type":"fake_error","code":%d}}`, step.Status, step.Status)
			}
		}
		return step.Status, body, header, nil, true
	}
	return http.StatusOK, ReplyBody(step, len(rec.Messages)), nil, nil, true
}

// wait sleeps d; false when the client gave up or the server is closing.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

// stream writes step's reply as OpenAI's streamed chunks. The request
// stops counting as in flight just before the last chunk, so that no
// client holds the whole answer while it still counts.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rec Recorded, step Step) {
	inFlight := true
	leave := func() {
		if inFlight {
			inFlight = false
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		}
	}
	defer leave()
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)

	pieces, finish := StreamChunks(step)
	sent := 0
	send := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // only plain values go in
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for i, delta := range pieces {
		if i > 0 && step.ChunkDelay > 0 && !s.wait(r, step.ChunkDelay) {
			panic(http.ErrAbortHandler)
		}
		if step.CutAfter > 0 && sent >= step.CutAfter {
			panic(http.ErrAbortHandler) // broken off: no finish, no [DONE]
		}
		if !send(chunk(delta, nil)) {
			return
		}
		if sent++; sent == 1 {
			s.mu.Lock()
			s.streams = append(s.streams, StreamTiming{Received: rec.Received, FirstChunk: time.Now()})
			s.mu.Unlock()
		}
	}
	if step.CutAfter > 0 && sent >= step.CutAfter {
		panic(http.ErrAbortHandler)
	}
	leave()
	if !send(chunk(map[string]any{}, &finish)) {
		return
	}
	if opts, _ := rec.Body["stream_options"].(map[string]any); opts["include_usage"] == true {
		send(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
			"choices": []any{}, "usage": usageOf(step, len(rec.Messages))})
	}
	io.WriteString(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

func chunk(delta map[string]any, finish *string) map[string]any {
	var fr any
	if finish != nil {
		fr = *finish
	}
	return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake-model",
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": fr}}}
}

// StreamChunks is how step's reply is streamed: the delta of each chunk
// and the finish reason. The text pieces of a reply joined are its text.
func StreamChunks(step Step) (deltas []map[string]any, finish string) {
	if len(step.ToolCalls) > 0 {
		for i, tc := range step.ToolCalls {
			args := []rune(tc.Function.Arguments)
			half := len(args) / 2
			typ := tc.Type
			if typ == "" {
				typ = "function"
			}
			deltas = append(deltas,
				map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": tc.ID, "type": typ,
					"function": map[string]any{"name": tc.Function.Name, "arguments": string(args[:half])}}}},
				map[string]any{"tool_calls": []any{map[string]any{"index": i,
					"function": map[string]any{"arguments": string(args[half:])}}}})
		}
		return deltas, "tool_calls"
	}
	text := []rune(step.Reply)
	if step.Reply == "" {
		text = []rune("ok")
	}
	n := min(max(step.Chunks, 1), len(text))
	for i := range n {
		piece := string(text[i*len(text)/n : (i+1)*len(text)/n])
		d := map[string]any{"content": piece}
		if i == 0 {
			d["role"] = "assistant"
		}
		deltas = append(deltas, d)
	}
	return deltas, "stop"
}

// ReplyBody is the JSON body of a normal answer made from step's Reply,
// ToolCalls and Usage, for a request with nMessages messages. Handlers can
// use it to answer normally after doing something else.
func ReplyBody(step Step, nMessages int) string {
	usage := usageOf(step, nMessages)
	msg := map[string]any{"role": "assistant"}
	finish := "stop"
	switch {
	case len(step.ToolCalls) > 0:
		msg["content"] = nil
		msg["tool_calls"] = step.ToolCalls
		finish = "tool_calls"
	case step.Reply == "":
		msg["content"] = "ok"
	default:
		msg["content"] = step.Reply
	}
	b, err := json.Marshal(map[string]any{
		"id":      "chatcmpl-fake",
		"object":  "chat.completion",
		"created": 0,
		"model":   "fake-model",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
		"usage":   usage,
	})
	if err != nil {
		panic(err) // only plain values go in
	}
	return string(b)
}

// usageOf is the usage an answer reports: step.Usage, else 10 prompt
// tokens per request message and 5 completion tokens.
func usageOf(step Step, nMessages int) llm.Usage {
	usage := llm.Usage{PromptTokens: 10 * nMessages, CompletionTokens: 5}
	if step.Usage != nil {
		usage = *step.Usage
	}
	if usage.TotalTokens == 0 {
		usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	}
	return usage
}
