// Package llmtest is an in-process fake of an OpenAI-compatible
// chat-completions server, for tests anywhere in the repository.
//
//	srv := llmtest.NewServer(t)
//	srv.Script(llmtest.Step{Status: 429, RetryAfter: "1"}, llmtest.Step{Reply: "hi"})
//	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "fake", BaseURL: srv.URL, Model: "m"}}}, llm.Options{})
//
// The server answers POST <URL>/chat/completions (any path ending in
// /chat/completions, so a base URL with /v1 works too) and 404 otherwise.
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
	inFlight    int
	maxInFlight int
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

// Requests returns the chat-completions requests received so far, in
// arrival order.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.reqs...)
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
	var typed struct {
		Model    string        `json:"model"`
		Messages []llm.Message `json:"messages"`
		Tools    []llm.Tool    `json:"tools"`
	}
	if json.Unmarshal(raw, &rec.Body) == nil {
		if json.Unmarshal(raw, &typed) == nil {
			rec.Model, rec.Messages, rec.Tools = typed.Model, typed.Messages, typed.Tools
		}
	}

	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	respond := s.respond
	var step Step
	if respond == nil {
		step = s.scriptStepLocked()
	}
	s.mu.Unlock()

	status, body, header, ok := s.answer(r, rec, respond, step)

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
func (s *Server) answer(r *http.Request, rec Recorded, respond func(Recorded) Step, step Step) (status int, body string, header map[string]string, ok bool) {
	if respond != nil {
		step = respond(rec)
	}
	if step.Delay > 0 {
		t := time.NewTimer(step.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return 0, "", nil, false
		case <-s.done:
			return 0, "", nil, false
		}
	}
	if step.Hang {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return 0, "", nil, false
	}
	if step.Handler != nil {
		status, body = step.Handler(rec)
		if status == 0 {
			status = http.StatusOK
		}
		return status, body, nil, true
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
		return step.Status, body, header, true
	}
	return http.StatusOK, ReplyBody(step, len(rec.Messages)), nil, true
}

// ReplyBody is the JSON body of a normal answer made from step's Reply,
// ToolCalls and Usage, for a request with nMessages messages. Handlers can
// use it to answer normally after doing something else.
func ReplyBody(step Step, nMessages int) string {
	usage := llm.Usage{PromptTokens: 10 * nMessages, CompletionTokens: 5}
	if step.Usage != nil {
		usage = *step.Usage
	}
	if usage.TotalTokens == 0 {
		usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	}
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
