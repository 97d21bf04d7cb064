package llm_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// sleeper replaces the backoff timer: it records each requested delay (and,
// when held is set, how many slots were held at that moment) and returns at
// once.
type sleeper struct {
	held *atomic.Int64

	mu     sync.Mutex
	delays []time.Duration
	heldAt []int64
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays = append(s.delays, d)
	if s.held != nil {
		s.heldAt = append(s.heldAt, s.held.Load())
	}
	return ctx.Err()
}

func (s *sleeper) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

func prov(name string, srv *llmtest.Server, key string) llm.Provider {
	return llm.Provider{
		Name: name, BaseURL: srv.URL + "/v1", APIKey: key, Model: name + "-model",
		Timeout: 10 * time.Second, MaxAttempts: 3,
	}
}

// newGateway builds a gateway whose backoff sleeps are recorded, not slept,
// and whose jitter is 0.
func newGateway(sl *sleeper, ps ...llm.Provider) *llm.Gateway {
	return llm.NewGateway(llm.Config{Providers: ps}, llm.Options{Sleep: sl.Sleep, Rand: func() float64 { return 0 }})
}

func userMsg(s string) []llm.Message { return []llm.Message{{Role: "user", Content: s}} }

func TestPlainReply(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "hello there"})
	gw := newGateway(&sleeper{}, prov("a", srv, "key-a"))

	msgs := []llm.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: msgs, Kind: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "hello there" || resp.FinishReason != "stop" || len(resp.ToolCalls) != 0 {
		t.Fatalf("resp = %+v", resp)
	}
	if want := (llm.Usage{PromptTokens: 20, CompletionTokens: 5, TotalTokens: 25}); resp.Usage != want {
		t.Fatalf("usage = %+v, want %+v", resp.Usage, want)
	}
	if resp.Provider != "a" || resp.Model != "a-model" || resp.Attempts != 1 || resp.Latency <= 0 {
		t.Fatalf("provider/model/attempts/latency = %q %q %d %v", resp.Provider, resp.Model, resp.Attempts, resp.Latency)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1/chat/completions" || r.Authorization != "Bearer key-a" || r.Model != "a-model" {
		t.Fatalf("path %q auth %q model %q", r.Path, r.Authorization, r.Model)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	if !reflect.DeepEqual(r.Messages, msgs) {
		t.Fatalf("messages = %+v", r.Messages)
	}
	if r.Body["temperature"] != 0.2 || r.Body["stream"] != false {
		t.Fatalf("temperature %v stream %v", r.Body["temperature"], r.Body["stream"])
	}
	for _, k := range []string{"tools", "tool_choice", "response_format", "max_tokens"} {
		if _, ok := r.Body[k]; ok {
			t.Errorf("body has %q: %v", k, r.Body[k])
		}
	}
}

func TestNoKeyNoAuthorizationAndExtraHeaders(t *testing.T) {
	srv := llmtest.NewServer(t)
	p := prov("ollama", srv, "")
	p.Headers = map[string]string{"X-Org": "lectern", "Content-Type": "text/plain"}
	gw := newGateway(&sleeper{}, p)
	if _, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("hi")}, nil); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Authorization != "" {
		t.Fatalf("Authorization %q sent without a key", r.Authorization)
	}
	if r.Header.Get("X-Org") != "lectern" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", r.Header)
	}
}

func TestToolCallsParsed(t *testing.T) {
	srv := llmtest.NewServer(t)
	calls := []llm.ToolCall{
		{ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "exam.get", Arguments: `{"exam_id":"E1"}`}},
		{ID: "call_2", Type: "function", Function: llm.FunctionCall{Name: "student_profile", Arguments: `{}`}},
	}
	srv.Script(llmtest.Step{ToolCalls: calls})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))

	tools := []llm.Tool{
		{Type: "function", Function: llm.FunctionDef{Name: "exam.get", Description: "get an exam",
			Parameters: map[string]any{"type": "object", "properties": map[string]any{"exam_id": map[string]any{"type": "string"}}}}},
		{Function: llm.FunctionDef{Name: "student_profile"}}, // no Type, no Parameters
	}
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("which exam?"), Tools: tools}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.ToolCalls, calls) || resp.Content != "" || resp.FinishReason != "tool_calls" {
		t.Fatalf("resp = %+v", resp)
	}
	r := srv.Requests()[0]
	if r.Body["tool_choice"] != "auto" {
		t.Fatalf("tool_choice = %v", r.Body["tool_choice"])
	}
	if len(r.Tools) != 2 || r.Tools[0].Function.Name != "exam.get" || r.Tools[1].Type != "function" {
		t.Fatalf("tools = %+v", r.Tools)
	}
	if got := r.Tools[1].Function.Parameters["type"]; got != "object" {
		t.Fatalf("nil parameters sent as %v", r.Tools[1].Function.Parameters)
	}

	// An explicit tool_choice is passed through; without tools it is omitted.
	if _, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x"), Tools: tools, ToolChoice: "required"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x"), ToolChoice: "required"}, nil); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if reqs[1].Body["tool_choice"] != "required" {
		t.Fatalf("explicit tool_choice = %v", reqs[1].Body["tool_choice"])
	}
	if _, ok := reqs[2].Body["tool_choice"]; ok {
		t.Fatalf("tool_choice sent without tools")
	}
}

func TestToolCallsLenientShapes(t *testing.T) {
	// Content as a list of parts, arguments as an object, a missing id and
	// type: all seen from OpenAI-compatible servers in the wild.
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Handler: func(llmtest.Recorded) (int, string) {
		return 200, `{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],
			"tool_calls":[{"function":{"name":"f","arguments":{"x":1}}}]},"finish_reason":null}]}`
	}})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "ab" || len(resp.ToolCalls) != 1 {
		t.Fatalf("resp = %+v", resp)
	}
	tc := resp.ToolCalls[0]
	if tc.ID == "" || tc.Type != "function" || tc.Function.Arguments != `{"x":1}` {
		t.Fatalf("tool call = %+v", tc)
	}
	if resp.Usage != (llm.Usage{}) {
		t.Fatalf("usage without a usage object = %+v", resp.Usage)
	}
}

func TestResponseFormatTemperatureMaxTokens(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: `{"score":3}`})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	format := map[string]any{"type": "json_schema", "json_schema": map[string]any{
		"name": "judge", "strict": true,
		"schema": map[string]any{"type": "object", "properties": map[string]any{"score": map[string]any{"type": "integer"}}},
	}}
	temp := 0.0
	resp, err := gw.Chat(context.Background(), llm.Request{
		Messages: userMsg("judge"), ResponseFormat: format, Temperature: &temp, MaxTokens: 256, Kind: "profile.judge",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != `{"score":3}` {
		t.Fatalf("content %q", resp.Content)
	}
	b := srv.Requests()[0].Body
	if !reflect.DeepEqual(b["response_format"], format) {
		t.Fatalf("response_format = %#v", b["response_format"])
	}
	if b["temperature"] != 0.0 || b["max_tokens"] != 256.0 {
		t.Fatalf("temperature %v max_tokens %v", b["temperature"], b["max_tokens"])
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Status: 429, RetryAfter: "1"}, llmtest.Step{Reply: "ok after wait"})
	sl := &sleeper{}
	p := prov("a", srv, "k")
	p.MaxAttempts = 2
	gw := newGateway(sl, p)

	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "ok after wait" || resp.Attempts != 2 {
		t.Fatalf("resp = %+v", resp)
	}
	if n := len(srv.Requests()); n != 2 {
		t.Fatalf("%d posts, want 2", n)
	}
	d := sl.Delays()
	if len(d) != 1 || d[0] < time.Second {
		t.Fatalf("backoff delays %v, want one of at least 1s", d)
	}
}

func TestRetryAfterCapped(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Status: 503, RetryAfter: "3600"}, llmtest.Step{Reply: "ok"})
	sl := &sleeper{}
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{prov("a", srv, "k")}},
		llm.Options{Sleep: sl.Sleep, Rand: func() float64 { return 0 }, MaxRetryAfter: 7 * time.Second})
	if _, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if d := sl.Delays(); len(d) != 1 || d[0] != 7*time.Second {
		t.Fatalf("delays %v, want [7s]", d)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Status: 502})
	sl := &sleeper{}
	p := prov("a", srv, "k")
	p.MaxAttempts = 6
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{p}},
		llm.Options{Sleep: sl.Sleep, Rand: func() float64 { return 0.5 }, MaxBackoff: 2 * time.Second})
	_, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	var apiErr *llm.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Provider != "a" || !apiErr.Retryable() {
		t.Fatalf("err = %v", err)
	}
	ms := time.Millisecond
	want := []time.Duration{375 * ms, 625 * ms, 1125 * ms, 2000 * ms, 2000 * ms}
	if got := sl.Delays(); !reflect.DeepEqual(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
}

func TestFallbackAfter5xxKeepsKeysApart(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Status: 500})
	b.Script(llmtest.Step{Reply: "from b"})
	sl := &sleeper{}
	gw := newGateway(sl, prov("a", a, "key-a"), prov("b", b, "key-b"))

	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "from b" || resp.Provider != "b" || resp.Model != "b-model" || resp.Attempts != 4 {
		t.Fatalf("resp = %+v", resp)
	}
	ra, rb := a.Requests(), b.Requests()
	if len(ra) != 3 || len(rb) != 1 {
		t.Fatalf("a got %d, b got %d requests; want 3 and 1", len(ra), len(rb))
	}
	for _, r := range ra {
		if r.Authorization != "Bearer key-a" || r.Model != "a-model" {
			t.Fatalf("a received auth %q model %q", r.Authorization, r.Model)
		}
	}
	if rb[0].Authorization != "Bearer key-b" || rb[0].Model != "b-model" {
		t.Fatalf("b received auth %q model %q", rb[0].Authorization, rb[0].Model)
	}
	// Two waits between a's three attempts, none before moving to b.
	ms := time.Millisecond
	if got, want := sl.Delays(), []time.Duration{250 * ms, 500 * ms}; !reflect.DeepEqual(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
}

func TestNonRetryableMovesOnAtOnce(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Status: 400, Body: `{"error":{"message":"bad tool schema"}}`})
	sl := &sleeper{}
	gw := newGateway(sl, prov("a", a, "ka"), prov("b", b, "kb"))
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Provider != "b" || resp.Attempts != 2 || len(a.Requests()) != 1 || len(sl.Delays()) != 0 {
		t.Fatalf("provider %q attempts %d, a got %d, delays %v", resp.Provider, resp.Attempts, len(a.Requests()), sl.Delays())
	}
}

func TestAllTargetsFail(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Status: 401})
	b.Script(llmtest.Step{Status: 503, Body: "overloaded"})
	pb := prov("b", b, "kb")
	pb.MaxAttempts = 2
	gw := newGateway(&sleeper{}, prov("a", a, "ka"), pb)
	_, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	statuses := map[string]int{}
	var walk func(error)
	walk = func(e error) {
		var ae *llm.APIError
		if x, ok := e.(*llm.APIError); ok {
			ae = x
			statuses[ae.Provider] = ae.Status
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range u.Unwrap() {
				walk(c)
			}
		}
	}
	walk(err)
	if statuses["a"] != 401 || statuses["b"] != 503 {
		t.Fatalf("statuses %v from %v", statuses, err)
	}
	if !strings.Contains(err.Error(), "overloaded") || len(b.Requests()) != 2 {
		t.Fatalf("err %q, b got %d", err, len(b.Requests()))
	}
}

func TestMalformedAnswerMovesOn(t *testing.T) {
	for _, body := range []string{"not json", `{"choices":[]}`, `{"error":{"message":"quota"}}`, `{"choices":[{"message":{"content":7}}]}`} {
		t.Run(body, func(t *testing.T) {
			a, b := llmtest.NewServer(t), llmtest.NewServer(t)
			a.Script(llmtest.Step{Status: 200, Body: body})
			sl := &sleeper{}
			gw := newGateway(sl, prov("a", a, "ka"), prov("b", b, "kb"))
			resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
			if err != nil || resp.Provider != "b" || len(a.Requests()) != 1 || len(sl.Delays()) != 0 {
				t.Fatalf("err %v resp %+v a=%d delays %v", err, resp, len(a.Requests()), sl.Delays())
			}
			// Alone, the error says what went wrong.
			_, err = newGateway(sl, prov("a", a, "ka")).Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
			if !errors.Is(err, llm.ErrMalformedResponse) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestOversizedAnswerRejected(t *testing.T) {
	srv := llmtest.NewServer(t)
	big := `{"choices":[{"message":{"content":"` + strings.Repeat("x", llm.MaxResponseBytes) + `"}}]}`
	srv.Script(llmtest.Step{Handler: func(llmtest.Recorded) (int, string) { return 200, big }})
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	_, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if !errors.Is(err, llm.ErrMalformedResponse) || len(srv.Requests()) != 1 {
		t.Fatalf("err = %v after %d requests", err, len(srv.Requests()))
	}
}

func TestHangHitsAttemptTimeout(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Hang: true})
	b.Script(llmtest.Step{Reply: "b is alive"})
	pa := prov("a", a, "ka")
	pa.Timeout, pa.MaxAttempts = 100*time.Millisecond, 2
	sl := &sleeper{}
	gw := newGateway(sl, pa, prov("b", b, "kb"))

	start := time.Now()
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Provider != "b" || resp.Attempts != 3 || len(a.Requests()) != 2 || len(sl.Delays()) != 1 {
		t.Fatalf("resp %+v, a got %d, delays %v", resp, len(a.Requests()), sl.Delays())
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("took %v", el)
	}

	// Alone: the call ends with ErrTimeout, which is not the caller's
	// context.DeadlineExceeded.
	_, err = newGateway(sl, pa).Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if !errors.Is(err, llm.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestConnectionErrorRetried(t *testing.T) {
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	b := llmtest.NewServer(t)
	sl := &sleeper{}
	gw := newGateway(sl,
		llm.Provider{Name: "dead", BaseURL: deadURL, Model: "m", Timeout: 5 * time.Second, MaxAttempts: 2},
		prov("b", b, "kb"))
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Provider != "b" || resp.Attempts != 3 || len(sl.Delays()) != 1 {
		t.Fatalf("resp %+v delays %v", resp, sl.Delays())
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Status: 301, Body: "moved"})
	gw := newGateway(&sleeper{}, prov("a", a, "ka"), prov("b", b, "kb"))
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil || resp.Provider != "b" || len(a.Requests()) != 1 {
		t.Fatalf("err %v resp %+v", err, resp)
	}
}

func TestSlotsHeldOnlyDuringAttempts(t *testing.T) {
	srv := llmtest.NewServer(t)
	var held, acquires atomic.Int64
	var heldInHandler []int64
	var mu sync.Mutex
	steps := []llmtest.Step{{Status: 503}, {Status: 429, RetryAfter: "2"}, {Reply: "ok"}}
	var n atomic.Int64
	srv.Respond(func(llmtest.Recorded) llmtest.Step {
		mu.Lock()
		heldInHandler = append(heldInHandler, held.Load())
		mu.Unlock()
		return steps[n.Add(1)-1]
	})
	sl := &sleeper{held: &held}
	gw := newGateway(sl, prov("a", srv, "k"))
	acquire := func(ctx context.Context) (func(), error) {
		acquires.Add(1)
		held.Add(1)
		var once sync.Once
		return func() { once.Do(func() { held.Add(-1) }) }, nil
	}
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, acquire)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Attempts != 3 || acquires.Load() != 3 || held.Load() != 0 {
		t.Fatalf("attempts %d acquires %d held %d", resp.Attempts, acquires.Load(), held.Load())
	}
	if !reflect.DeepEqual(heldInHandler, []int64{1, 1, 1}) {
		t.Fatalf("slots held while the server answered: %v", heldInHandler)
	}
	if !reflect.DeepEqual(sl.heldAt, []int64{0, 0}) {
		t.Fatalf("slots held during backoff sleeps: %v", sl.heldAt)
	}
	if sl.delays[1] < 2*time.Second {
		t.Fatalf("second delay %v ignores Retry-After: 2", sl.delays[1])
	}
}

func TestAcquireErrorEndsCall(t *testing.T) {
	srv := llmtest.NewServer(t)
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	boom := errors.New("no slot")
	_, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")},
		func(context.Context) (func(), error) { return nil, boom })
	if !errors.Is(err, boom) || len(srv.Requests()) != 0 {
		t.Fatalf("err %v, %d requests", err, len(srv.Requests()))
	}
}

func TestCallerCancelStopsEverything(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	arrived := make(chan struct{}, 1)
	a.Respond(func(llmtest.Recorded) llmtest.Step {
		arrived <- struct{}{}
		return llmtest.Step{Hang: true}
	})
	gw := newGateway(&sleeper{}, prov("a", a, "ka"), prov("b", b, "kb"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := gw.Chat(ctx, llm.Request{Messages: userMsg("x")}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(a.Requests()) != 1 || len(b.Requests()) != 0 {
		t.Fatalf("a got %d, b got %d after cancel", len(a.Requests()), len(b.Requests()))
	}
}

func TestSleepInterruptedEndsCall(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Status: 500})
	ctx, cancel := context.WithCancel(context.Background())
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{prov("a", srv, "k")}}, llm.Options{
		Sleep: func(ctx context.Context, d time.Duration) error { cancel(); <-ctx.Done(); return ctx.Err() },
	})
	_, err := gw.Chat(ctx, llm.Request{Messages: userMsg("x")}, nil)
	if !errors.Is(err, context.Canceled) || len(srv.Requests()) != 1 {
		t.Fatalf("err %v after %d requests", err, len(srv.Requests()))
	}
}

func TestRealSleepRespectsContext(t *testing.T) {
	// With the default timer, a long Retry-After wait ends when ctx does.
	srv := llmtest.NewServer(t)
	answered := make(chan struct{})
	srv.Respond(func(llmtest.Recorded) llmtest.Step {
		return llmtest.Step{Handler: func(llmtest.Recorded) (int, string) {
			close(answered) // only one request is expected
			return 429, `{"error":{"message":"slow down"}}`
		}}
	})
	var release atomic.Int64
	acquire := func(context.Context) (func(), error) { return func() { release.Add(1) }, nil }
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{prov("a", srv, "k")}}, llm.Options{Rand: func() float64 { return 0 }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := gw.Chat(ctx, llm.Request{Messages: userMsg("x")}, acquire)
		done <- err
	}()
	<-answered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestDeadlineTooNearSkipsWait(t *testing.T) {
	a, b := llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Status: 429, RetryAfter: "25"})
	sl := &sleeper{}
	gw := newGateway(sl, prov("a", a, "ka"), prov("b", b, "kb"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := gw.Chat(ctx, llm.Request{Messages: userMsg("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Provider != "b" || len(a.Requests()) != 1 || len(sl.Delays()) != 0 {
		t.Fatalf("resp %+v a=%d delays %v", resp, len(a.Requests()), sl.Delays())
	}
}

func TestNotConfigured(t *testing.T) {
	gw := llm.NewGateway(llm.Config{}, llm.Options{})
	if gw.Configured() || (llm.Config{}).Configured() {
		t.Fatal("empty config reports configured")
	}
	if _, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil); !errors.Is(err, llm.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
	var nilGW *llm.Gateway
	if nilGW.Configured() {
		t.Fatal("nil gateway configured")
	}
	if _, err := nilGW.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil); !errors.Is(err, llm.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
	if llm.ErrNotConfigured.Error() != "llm_not_configured" {
		t.Fatal(llm.ErrNotConfigured)
	}
}

func TestEmptyRequestRejected(t *testing.T) {
	srv := llmtest.NewServer(t)
	gw := newGateway(&sleeper{}, prov("a", srv, "k"))
	if _, err := gw.Chat(context.Background(), llm.Request{}, nil); err == nil || len(srv.Requests()) != 0 {
		t.Fatalf("err %v, %d requests", err, len(srv.Requests()))
	}
}

func TestBadBaseURLMovesOn(t *testing.T) {
	b := llmtest.NewServer(t)
	gw := newGateway(&sleeper{}, llm.Provider{Name: "bad", BaseURL: "ftp://x", Model: "m"}, prov("b", b, "kb"))
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil || resp.Provider != "b" || resp.Attempts != 2 {
		t.Fatalf("err %v resp %+v", err, resp)
	}
	if got := gw.Providers(); !reflect.DeepEqual(got, []string{"bad", "b"}) {
		t.Fatalf("providers %v", got)
	}
}
