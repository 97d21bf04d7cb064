package llm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lectern/lectern/internal/limits"
)

// Meter records one tenant's LLM usage with atomic counters. The zero value
// is ready; a Meter is safe for concurrent use.
//
// Every Client of a tenant shares its Meter (a teacher's private-provider
// client too: modelconfig copies it), so the Meter is also where a
// tenant's finished calls are observed one by one: Observe.
type Meter struct {
	calls, failures, attempts      atomic.Int64
	promptTokens, completionTokens atomic.Int64
	latencyTotal, latencyMax       atomic.Int64 // nanoseconds

	// today counts the calls of the current local day (reset at the first
	// call of a new day): the console's "today" figures.
	todayMu sync.Mutex
	today   DaySnapshot

	// Observe, when set (before the Meter is used), hears every call
	// recorded, on the caller's goroutine once the call is over; it must
	// return quickly. It is how the server's metrics get the calls by
	// provider and kind.
	Observe func(CallEvent)
}

// CallEvent is one finished Client.Chat call.
type CallEvent struct {
	Kind string // Request.Kind
	// Provider names the target that answered, or for a failed call the
	// last one tried; "" when none was (no provider, a refused request).
	Provider string
	Attempts int // HTTP attempts over all targets
	Latency  time.Duration
	// Tokens as the provider reported them (0 for a failed call).
	PromptTokens, CompletionTokens int
	Err                            error // nil for a success; ErrorClass names it
}

// MeterSnapshot is a Meter's counters at one moment (each counter is read
// atomically; the set is not one consistent cut). Latencies are
// time.Duration values, so they marshal to JSON as nanoseconds.
type MeterSnapshot struct {
	Calls            int64         `json:"calls"`    // every Client.Chat, failed or not
	Failures         int64         `json:"failures"` // calls that returned an error
	Attempts         int64         `json:"attempts"` // HTTP attempts over all calls
	PromptTokens     int64         `json:"prompt_tokens"`
	CompletionTokens int64         `json:"completion_tokens"`
	LatencyTotal     time.Duration `json:"latency_total"` // sum of call latencies
	LatencyMax       time.Duration `json:"latency_max"`   // longest call
	// Today is the calls and tokens of the current local day, since the
	// tenant was loaded (zero once the day has passed without a call).
	Today DaySnapshot `json:"today"`
}

// DaySnapshot is one day's calls and tokens.
type DaySnapshot struct {
	Date   string `json:"date"` // YYYY-MM-DD, local time
	Calls  int64  `json:"calls"`
	Tokens int64  `json:"tokens"` // prompt and completion
}

// Snapshot returns the current counters. A nil Meter gives zeros.
func (m *Meter) Snapshot() MeterSnapshot {
	if m == nil {
		return MeterSnapshot{}
	}
	m.todayMu.Lock()
	today := m.today
	m.todayMu.Unlock()
	if d := time.Now().Format(time.DateOnly); today.Date != d {
		today = DaySnapshot{Date: d}
	}
	return MeterSnapshot{
		Today:            today,
		Calls:            m.calls.Load(),
		Failures:         m.failures.Load(),
		Attempts:         m.attempts.Load(),
		PromptTokens:     m.promptTokens.Load(),
		CompletionTokens: m.completionTokens.Load(),
		LatencyTotal:     time.Duration(m.latencyTotal.Load()),
		LatencyMax:       time.Duration(m.latencyMax.Load()),
	}
}

// record adds one finished call of kind, provider the last target tried.
func (m *Meter) record(kind, provider string, attempts int64, latency time.Duration, resp *Response, err error) {
	if m == nil {
		return
	}
	if m.Observe != nil {
		e := CallEvent{Kind: kind, Provider: provider, Attempts: int(attempts), Latency: latency, Err: err}
		if err == nil && resp != nil {
			e.Provider = resp.Provider
			e.PromptTokens, e.CompletionTokens = resp.Usage.PromptTokens, resp.Usage.CompletionTokens
		}
		defer m.Observe(e) // after the counters: a reader of both never sees the event first
	}
	m.calls.Add(1)
	m.attempts.Add(attempts)
	var tokens int64
	if err == nil && resp != nil {
		tokens = int64(resp.Usage.PromptTokens + resp.Usage.CompletionTokens)
	}
	m.todayMu.Lock()
	if d := time.Now().Format(time.DateOnly); m.today.Date != d {
		m.today = DaySnapshot{Date: d}
	}
	m.today.Calls++
	m.today.Tokens += tokens
	m.todayMu.Unlock()
	if err != nil {
		m.failures.Add(1)
	} else if resp != nil {
		m.promptTokens.Add(int64(resp.Usage.PromptTokens))
		m.completionTokens.Add(int64(resp.Usage.CompletionTokens))
	}
	ns := int64(latency)
	m.latencyTotal.Add(ns)
	for {
		cur := m.latencyMax.Load()
		if ns <= cur || m.latencyMax.CompareAndSwap(cur, ns) {
			break
		}
	}
}

// Client is what one tenant uses: the shared gateway, inside the tenant's
// and the process's concurrency limits, with the tenant's meter.
//
// Tenant and Global must both be set (normal use) or both be nil (no limits,
// for tools and tests). Global is the process's limits (limits.NewGlobalSet)
// or any other limits.Limiter, such as one shared by several processes.
// Meter may be nil.
type Client struct {
	Gateway *Gateway
	Tenant  *limits.Set
	Global  limits.Limiter
	Meter   *Meter
}

// Configured reports whether c can reach a provider (nil-safe): the one
// check of "is there a model" for every caller holding a Client.
func (c *Client) Configured() bool { return c != nil && c.Gateway.Configured() }

// errHalfLimits is returned when only one of Tenant and Global is set.
var errHalfLimits = errors.New("llm: Client needs both Tenant and Global limits, or neither")

// Chat sends req through the gateway. Each HTTP attempt first takes the
// slots of limits.AcquireLLM(ctx, Tenant, Global, req.Role) — tenant total,
// tenant role, global total, global role — and gives them back before any
// backoff sleep. The call's usage, attempts, latency and failure are
// recorded in Meter. Without a configured gateway it returns
// ErrNotConfigured (and records a failed call).
func (c *Client) Chat(ctx context.Context, req Request) (*Response, error) {
	start := time.Now()
	var meter *Meter
	if c != nil {
		meter = c.Meter
	}
	if !c.Configured() {
		meter.record(req.Kind, "", 0, time.Since(start), nil, ErrNotConfigured)
		return nil, ErrNotConfigured
	}
	if (c.Tenant == nil) != (c.Global == nil) {
		meter.record(req.Kind, "", 0, time.Since(start), nil, errHalfLimits)
		return nil, errHalfLimits
	}
	var attempts atomic.Int64
	acquire := func(ctx context.Context) (func(), error) {
		if c.Tenant == nil {
			attempts.Add(1)
			return func() {}, nil
		}
		release, err := limits.AcquireLLM(ctx, c.Tenant, c.Global, req.Role)
		if err == nil {
			attempts.Add(1)
		}
		return release, err
	}
	resp, provider, err := c.Gateway.chat(ctx, req, acquire)
	latency := time.Since(start)
	if resp != nil {
		latency = resp.Latency
	}
	meter.record(req.Kind, provider, attempts.Load(), latency, resp, err)
	return resp, err
}
