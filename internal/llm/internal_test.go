package llm

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 2, 8, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		header map[string]string
		want   time.Duration
	}{
		{nil, 0},
		{map[string]string{"Retry-After": "1"}, time.Second},
		{map[string]string{"Retry-After": " 2.5 "}, 2500 * time.Millisecond},
		{map[string]string{"Retry-After": "0"}, 0},
		{map[string]string{"Retry-After": "-3"}, 0},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After": "NaN"}, 0},
		{map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, 7 * time.Second},
		{map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{map[string]string{"Retry-After-Ms": "1500", "Retry-After": "9"}, 1500 * time.Millisecond},
		{map[string]string{"Retry-After-Ms": "junk", "Retry-After": "9"}, 9 * time.Second},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.header {
			h.Set(k, v)
		}
		if got := parseRetryAfter(h, now); got != c.want {
			t.Errorf("%v: got %v, want %v", c.header, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	r := 0.0
	g := NewGateway(Config{}, Options{Rand: func() float64 { return r }})
	ms := time.Millisecond
	for n, want := range map[int]time.Duration{1: 250 * ms, 2: 500 * ms, 3: time.Second, 4: 2 * time.Second, 5: 4 * time.Second, 9: 4 * time.Second, 40: 4 * time.Second} {
		if got := g.backoff(n, 0); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
	r = 0.999
	if got := g.backoff(1, 0); got <= 490*ms || got >= 500*ms {
		t.Errorf("jittered backoff(1) = %v", got)
	}
	r = 2 // out of range: no jitter
	if got := g.backoff(1, 0); got != 250*ms {
		t.Errorf("bad jitter backoff(1) = %v", got)
	}
	if got := g.backoff(1, 9*time.Second); got != 9*time.Second {
		t.Errorf("retry-after floor: %v", got)
	}
}

func TestSleepCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("err = %v", err)
	}
	if err := sleepCtx(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestTruncateUTF8(t *testing.T) {
	s := "ab中文"
	for n := 0; n <= len(s)+1; n++ {
		got := truncateUTF8(s, n)
		if !utf8.ValidString(got) {
			t.Fatalf("n=%d: invalid %q", n, got)
		}
	}
	if got := truncateUTF8(s, 3); got != "ab…" {
		t.Fatalf("got %q", got)
	}
	if got := truncateUTF8("a\xffb", 10); !utf8.ValidString(got) {
		t.Fatalf("got %q", got)
	}
}

func TestEncodeRequestDoesNotMutateTools(t *testing.T) {
	tools := []Tool{{Function: FunctionDef{Name: "f"}}}
	if _, err := encodeRequest("m", Request{Messages: []Message{{Role: "user"}}, Tools: tools}); err != nil {
		t.Fatal(err)
	}
	if tools[0].Type != "" || tools[0].Function.Parameters != nil {
		t.Fatalf("caller's tools changed: %+v", tools)
	}
}

func TestNewGatewayClamps(t *testing.T) {
	g := NewGateway(Config{Providers: []Provider{
		{BaseURL: "http://a.test", Model: "m"},
		{Name: "b", BaseURL: "http://b.test/", Model: "m", Timeout: time.Hour, MaxAttempts: 99},
	}}, Options{})
	a, b := g.targets[0], g.targets[1]
	if a.Name != "provider1" || a.Timeout != DefaultTimeout || a.MaxAttempts != DefaultMaxAttempts {
		t.Fatalf("a = %v", a.Provider)
	}
	if b.Timeout != MaxTimeout || b.MaxAttempts != MaxMaxAttempts || b.endpoint != "http://b.test/chat/completions" {
		t.Fatalf("b = %v %s", b.Provider, b.endpoint)
	}
}

// The meter's day counts: the calls and tokens of today, local time.
func TestMeterToday(t *testing.T) {
	var m Meter
	m.record("chat.agent", "p", 1, time.Millisecond, &Response{Usage: Usage{PromptTokens: 10, CompletionTokens: 5}}, nil)
	m.record("chat.agent", "p", 1, time.Millisecond, nil, errors.New("boom"))
	got := m.Snapshot().Today
	if got.Date != time.Now().Format(time.DateOnly) || got.Calls != 2 || got.Tokens != 15 {
		t.Errorf("today = %+v, want 2 calls and 15 tokens today", got)
	}
	m.todayMu.Lock()
	m.today.Date = "2000-01-01" // a day that has passed
	m.todayMu.Unlock()
	if got := m.Snapshot().Today; got.Calls != 0 || got.Date == "2000-01-01" {
		t.Errorf("a past day's counts shown as today's: %+v", got)
	}
}
