package llm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// MaxResponseBytes bounds the body of a successful answer.
	MaxResponseBytes = 8 << 20
	// maxErrorBodyRead bounds what is read of an error answer, and
	// maxErrorBodyKeep what APIError.Body keeps of it.
	maxErrorBodyRead = 64 << 10
	maxErrorBodyKeep = 1 << 10

	// DefaultMaxBackoff caps the computed backoff between attempts.
	DefaultMaxBackoff = 4 * time.Second
	// DefaultMaxRetryAfter caps a server's Retry-After.
	DefaultMaxRetryAfter = 30 * time.Second

	backoffBase   = 250 * time.Millisecond
	backoffJitter = 250 * time.Millisecond
)

// Options tune a Gateway. The zero value is ready for production.
type Options struct {
	// HTTPClient sends the requests. nil → a client on http.DefaultTransport
	// that does not follow redirects (a redirected POST would turn into a GET;
	// the 3xx is reported as an APIError instead).
	HTTPClient *http.Client
	// Sleep waits between attempts. nil → a real timer that returns ctx.Err()
	// if ctx ends first. Tests inject one to record the delays.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the backoff jitter. nil →
	// math/rand/v2.
	Rand func() float64
	// Logger receives one record per failed attempt (Warn) and per finished
	// call (Debug). Keys and message contents are never logged. nil → discard.
	Logger *slog.Logger
	// MaxBackoff caps the computed backoff (default 4s).
	MaxBackoff time.Duration
	// MaxRetryAfter caps a server's Retry-After (default 30s). A delay is
	// never shorter than the capped Retry-After, even above MaxBackoff.
	MaxRetryAfter time.Duration
}

// Gateway sends chat-completions requests along the provider chain. One
// Gateway serves the whole process; it is safe for concurrent use.
type Gateway struct {
	targets       []target
	client        *http.Client
	sleep         func(context.Context, time.Duration) error
	rand          func() float64
	log           *slog.Logger
	maxBackoff    time.Duration
	maxRetryAfter time.Duration
}

// target is a Provider ready to be called.
type target struct {
	Provider
	endpoint string
	badURL   error // set when BaseURL cannot be used; every attempt fails with it
}

// NewGateway builds a gateway over the chain c. Providers with a zero
// Timeout or MaxAttempts get the defaults; values above MaxTimeout and
// MaxMaxAttempts are clamped.
// idleConnsPerProvider is how many idle connections the gateway keeps to
// one provider host.
const idleConnsPerProvider = 64

func NewGateway(c Config, o Options) *Gateway {
	g := &Gateway{
		client:        o.HTTPClient,
		sleep:         o.Sleep,
		rand:          o.Rand,
		log:           o.Logger,
		maxBackoff:    o.MaxBackoff,
		maxRetryAfter: o.MaxRetryAfter,
	}
	if g.client == nil {
		// Its own pool, kept per provider host beyond net/http's default
		// of 2 idle connections: every tenant's calls to one provider
		// share it, and past 2 each call would dial anew.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = idleConnsPerProvider
		g.client = &http.Client{
			Transport: t,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if g.sleep == nil {
		g.sleep = sleepCtx
	}
	if g.rand == nil {
		g.rand = rand.Float64
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.maxBackoff <= 0 {
		g.maxBackoff = DefaultMaxBackoff
	}
	if g.maxRetryAfter <= 0 {
		g.maxRetryAfter = DefaultMaxRetryAfter
	}
	for i, p := range c.Providers {
		t := target{Provider: p}
		if t.Name == "" {
			t.Name = fmt.Sprintf("provider%d", i+1)
		}
		switch {
		case t.Timeout <= 0:
			t.Timeout = DefaultTimeout
		case t.Timeout > MaxTimeout:
			t.Timeout = MaxTimeout
		}
		switch {
		case t.MaxAttempts <= 0:
			t.MaxAttempts = DefaultMaxAttempts
		case t.MaxAttempts > MaxMaxAttempts:
			t.MaxAttempts = MaxMaxAttempts
		}
		if u, err := normalizeBaseURL(strings.TrimSpace(t.BaseURL)); err != nil {
			t.badURL = fmt.Errorf("llm: provider %q: base URL %w", t.Name, err)
		} else {
			t.endpoint = u + "/chat/completions"
		}
		g.targets = append(g.targets, t)
	}
	return g
}

// Configured reports whether the gateway has at least one provider. A nil
// Gateway is not configured.
func (g *Gateway) Configured() bool { return g != nil && len(g.targets) > 0 }

// Providers returns the names of the chain's targets, in order.
func (g *Gateway) Providers() []string {
	if g == nil {
		return nil
	}
	names := make([]string, len(g.targets))
	for i, t := range g.targets {
		names[i] = t.Name
	}
	return names
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Chat sends req along the chain and returns the first successful answer.
//
// Before each HTTP attempt it calls acquire (nil → no limits) with ctx and
// calls the returned release as soon as that attempt is over, so waits
// between attempts hold no slot. An error from acquire ends the call. When
// ctx ends, Chat returns an error wrapping ctx.Err(). When every target
// failed, the error wraps each target's last error.
func (g *Gateway) Chat(ctx context.Context, req Request, acquire func(context.Context) (release func(), err error)) (*Response, error) {
	resp, _, err := g.chat(ctx, req, acquire)
	return resp, err
}

// chat is Chat that also returns the name of the last target it tried
// ("" when none was): the provider a failed call is reported under.
func (g *Gateway) chat(ctx context.Context, req Request, acquire func(context.Context) (release func(), err error)) (_ *Response, provider string, _ error) {
	if !g.Configured() {
		return nil, "", ErrNotConfigured
	}
	if len(req.Messages) == 0 {
		return nil, "", errors.New("llm: request has no messages")
	}
	start := time.Now()
	attempts := 0
	var failed chainError
	var lastErr error
	// A streamed answer whose first piece was passed on cannot be taken
	// back: from then on a failure ends the call (no retry, no fallback).
	delivered := false
	onDelta := req.OnDelta
	if onDelta != nil {
		onDelta = func(d string) {
			delivered = true
			req.OnDelta(d)
		}
	}
	for ti := range g.targets {
		t := &g.targets[ti]
		body, err := encodeRequest(t.Model, req)
		if err != nil {
			return nil, provider, err
		}
		provider = t.Name
		for n := 1; n <= t.MaxAttempts; n++ {
			if err := ctx.Err(); err != nil {
				return nil, provider, ctxError(err, lastErr)
			}
			res, err := g.attempt(ctx, t, body, acquire, onDelta)
			if err != nil { // acquire failed: the caller's context ended or the limits refused
				return nil, provider, ctxError(err, lastErr)
			}
			attempts++
			if res.err == nil {
				out := res.resp
				out.Provider, out.Model = t.Name, t.Model
				out.Attempts = attempts
				out.Latency = time.Since(start)
				g.log.LogAttrs(ctx, slog.LevelDebug, "llm call done",
					slog.String("kind", req.Kind), slog.String("provider", t.Name), slog.String("model", t.Model),
					slog.Int("attempts", attempts), slog.Duration("latency", out.Latency),
					slog.Int("prompt_tokens", out.Usage.PromptTokens), slog.Int("completion_tokens", out.Usage.CompletionTokens))
				return out, provider, nil
			}
			lastErr = res.err
			if err := ctx.Err(); err != nil {
				return nil, provider, ctxError(err, lastErr)
			}
			if delivered {
				g.log.LogAttrs(ctx, slog.LevelWarn, "llm stream broke after its first piece",
					slog.String("kind", req.Kind), slog.String("provider", t.Name), slog.String("model", t.Model),
					slog.Int("attempt", n), slog.String("error", res.err.Error()))
				return nil, provider, fmt.Errorf("llm: %w: %w", errStreamBroken, res.err)
			}
			retry := res.retryable && n < t.MaxAttempts
			var delay time.Duration
			if retry {
				delay = g.backoff(n, res.retryAfter)
				if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= delay {
					retry = false // the caller's deadline would pass while waiting: try the next target
				}
			}
			g.log.LogAttrs(ctx, slog.LevelWarn, "llm attempt failed",
				slog.String("kind", req.Kind), slog.String("provider", t.Name), slog.String("model", t.Model),
				slog.Int("attempt", n), slog.Int("max_attempts", t.MaxAttempts),
				slog.Bool("retryable", res.retryable), slog.Bool("will_retry", retry),
				slog.Duration("backoff", delay), slog.String("error", res.err.Error()))
			if !retry {
				break
			}
			if err := g.sleep(ctx, delay); err != nil {
				if cerr := ctx.Err(); cerr != nil {
					err = cerr
				}
				return nil, provider, ctxError(err, lastErr)
			}
		}
		failed = append(failed, lastErr)
	}
	if len(failed) == 1 {
		return nil, provider, failed[0]
	}
	return nil, provider, failed
}

func ctxError(err, last error) error {
	if last == nil {
		return fmt.Errorf("llm: %w", err)
	}
	return fmt.Errorf("llm: %w (last attempt: %v)", err, last)
}

// backoff is the wait after failed attempt n (1-based): 250ms·2^(n-1) plus
// up to 250ms of jitter, capped at maxBackoff, and never less than
// retryAfter (already capped at maxRetryAfter).
func (g *Gateway) backoff(n int, retryAfter time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	d := g.maxBackoff
	if n <= 16 {
		d = backoffBase << (n - 1)
	}
	j := g.rand()
	if !(j >= 0 && j < 1) { // also catches NaN
		j = 0
	}
	d += time.Duration(j * float64(backoffJitter))
	d = min(d, g.maxBackoff)
	return max(d, retryAfter)
}

// result is the outcome of one HTTP attempt.
type result struct {
	resp       *Response
	err        error
	retryable  bool
	retryAfter time.Duration
}

// attempt takes the slots, makes one HTTP attempt under the provider's
// timeout, and gives the slots back. A non-nil error means acquire failed.
func (g *Gateway) attempt(ctx context.Context, t *target, body []byte, acquire func(context.Context) (func(), error), onDelta func(string)) (result, error) {
	if acquire != nil {
		release, err := acquire(ctx)
		if err != nil {
			return result{}, err
		}
		defer release()
	}
	actx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	return g.do(actx, t, body, onDelta), nil
}

// do makes one HTTP attempt; with onDelta the answer is read as a stream.
func (g *Gateway) do(actx context.Context, t *target, body []byte, onDelta func(string)) result {
	if t.badURL != nil {
		return result{err: t.badURL}
	}
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("llm: provider %q: %w", t.Name, err)}
	}
	for k, v := range t.Headers {
		hreq.Header.Set(k, v)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if onDelta != nil {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if t.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+t.APIKey)
	}
	resp, err := g.client.Do(hreq)
	if err != nil {
		return transportFailure(actx, t, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyRead))
		e := &APIError{
			Status:     resp.StatusCode,
			Provider:   t.Name,
			Body:       truncateUTF8(strings.TrimSpace(string(raw)), maxErrorBodyKeep),
			RetryAfter: min(parseRetryAfter(resp.Header, time.Now()), g.maxRetryAfter),
		}
		return result{err: e, retryable: e.Retryable(), retryAfter: e.RetryAfter}
	}
	if onDelta != nil && isEventStream(resp.Header.Get("Content-Type")) {
		return readStream(actx, t, resp.Body, onDelta)
	}

	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return transportFailure(actx, t, err)
	}
	if len(raw) > MaxResponseBytes {
		return result{err: fmt.Errorf("llm: provider %q: %w: body larger than %d bytes", t.Name, ErrMalformedResponse, MaxResponseBytes)}
	}
	out, err := decodeResponse(raw)
	if err != nil {
		return result{err: fmt.Errorf("llm: provider %q: %w", t.Name, err)}
	}
	if onDelta != nil && out.Content != "" {
		// Asked to stream, the server answered in one piece: pass it on whole.
		onDelta(out.Content)
	}
	return result{resp: out}
}

// transportFailure classifies an error from sending the request or reading
// the answer: the attempt's own timeout and connection errors are
// retryable; certificate errors are not (the next target may do better).
func transportFailure(actx context.Context, t *target, err error) result {
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return result{err: fmt.Errorf("llm: provider %q: %w after %s", t.Name, ErrTimeout, t.Timeout), retryable: true}
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &recordErr) {
		return result{err: transportError{fmt.Errorf("llm: provider %q: %w", t.Name, err)}}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the URL: it repeats the configured base URL in every log line
	}
	return result{err: transportError{fmt.Errorf("llm: provider %q: connection error: %w", t.Name, err)}, retryable: true}
}

// parseRetryAfter reads retry-after-ms (milliseconds, sent by some
// OpenAI-compatible servers) or Retry-After (delay-seconds or an HTTP date).
// Absent, unparsable or past values give 0.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s > 0 && s < 1e9) { // also catches NaN
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if at, err := http.ParseTime(v); err == nil {
		if d := at.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// wireRequest is the chat-completions request body.
type wireRequest struct {
	Model          string         `json:"model"`
	Messages       []Message      `json:"messages"`
	Temperature    float64        `json:"temperature"`
	Stream         bool           `json:"stream"`
	StreamOptions  map[string]any `json:"stream_options,omitempty"`
	MaxTokens      int            `json:"max_tokens,omitempty"`
	Tools          []Tool         `json:"tools,omitempty"`
	ToolChoice     any            `json:"tool_choice,omitempty"`
	ResponseFormat map[string]any `json:"response_format,omitempty"`
}

func encodeRequest(model string, req Request) ([]byte, error) {
	w := wireRequest{
		Model:          model,
		Messages:       req.Messages,
		Temperature:    DefaultTemperature,
		MaxTokens:      max(req.MaxTokens, 0),
		ResponseFormat: req.ResponseFormat,
	}
	if req.OnDelta != nil {
		// include_usage: the last chunk reports the usage, as a plain answer does.
		w.Stream, w.StreamOptions = true, map[string]any{"include_usage": true}
	}
	if req.Temperature != nil {
		w.Temperature = *req.Temperature
	}
	if len(req.Tools) > 0 {
		w.Tools = make([]Tool, len(req.Tools))
		for i, tool := range req.Tools {
			if tool.Type == "" {
				tool.Type = "function"
			}
			if tool.Function.Parameters == nil {
				tool.Function.Parameters = map[string]any{"type": "object", "properties": map[string]any{}}
			}
			w.Tools[i] = tool
		}
		w.ToolChoice = req.ToolChoice
		if w.ToolChoice == nil {
			w.ToolChoice = "auto"
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("llm: encoding the request: %w", err)
	}
	return b, nil
}

// wireResponse is the part of a chat-completions answer the gateway reads.
type wireResponse struct {
	Choices []struct {
		Message struct {
			Content   json.RawMessage `json:"content"`
			ToolCalls []wireToolCall  `json:"tool_calls"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage          `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type wireToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

func decodeResponse(raw []byte) (*Response, error) {
	var w wireResponse
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	if len(w.Choices) == 0 {
		if len(w.Error) > 0 && string(w.Error) != "null" {
			return nil, fmt.Errorf("%w: error in a 2xx answer: %s", ErrMalformedResponse, truncateUTF8(string(w.Error), maxErrorBodyKeep))
		}
		return nil, fmt.Errorf("%w: no choices", ErrMalformedResponse)
	}
	c := w.Choices[0]
	content, err := decodeContent(c.Message.Content)
	if err != nil {
		return nil, fmt.Errorf("%w: message content: %v", ErrMalformedResponse, err)
	}
	out := &Response{Content: content}
	if c.FinishReason != nil {
		out.FinishReason = *c.FinishReason
	}
	if w.Usage != nil {
		out.Usage = *w.Usage
		if out.Usage.TotalTokens == 0 {
			out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
		}
	}
	for i, tc := range c.Message.ToolCalls {
		call := ToolCall{ID: tc.ID, Type: tc.Type, Function: FunctionCall{Name: tc.Function.Name}}
		if call.Type == "" {
			call.Type = "function"
		}
		if call.ID == "" {
			// Some servers (older Ollama) send no id; the agent needs one to
			// link the tool's answer to the call.
			call.ID = fmt.Sprintf("call_%d_%08x", i, rand.Uint32())
		}
		args, err := decodeArguments(tc.Function.Arguments)
		if err != nil {
			return nil, fmt.Errorf("%w: tool_calls[%d].function.arguments: %v", ErrMalformedResponse, i, err)
		}
		call.Function.Arguments = args
		out.ToolCalls = append(out.ToolCalls, call)
	}
	return out, nil
}

// decodeContent accepts a string, null, or an array of content parts
// ({"type":"text","text":…}), whose texts are joined.
func decodeContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("neither a string nor a list of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "" || p.Type == "text" || p.Type == "output_text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

// decodeArguments accepts the standard JSON string, or a JSON object sent
// as is (some servers do), returned as its JSON text.
func decodeArguments(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", errors.New("neither a string nor an object")
	}
	return string(bytes.TrimSpace(raw)), nil
}
