package llm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

func bigLimits() *limits.Set {
	return limits.NewSet(limits.Config{LLMTotal: 100, LLMStudent: 100, LLMTeacher: 100, OCR: 1})
}

// TestClientStudentLimit: with llm_student=2, ten concurrent student calls
// never have more than two requests at the provider, while another tenant
// (own limits, same global limits, same gateway) gets through at once.
func TestClientStudentLimit(t *testing.T) {
	srv := llmtest.NewServer(t)
	gate := make(chan struct{})
	arrivedA := make(chan struct{}, 10)
	var inA, maxA atomic.Int64
	srv.Respond(func(r llmtest.Recorded) llmtest.Step {
		if r.Messages[0].Content == "tenant-b" {
			return llmtest.Step{Reply: "b done"}
		}
		n := inA.Add(1)
		for {
			m := maxA.Load()
			if n <= m || maxA.CompareAndSwap(m, n) {
				break
			}
		}
		arrivedA <- struct{}{}
		<-gate
		inA.Add(-1) // before the answer is written, so never counted after the client has it
		return llmtest.Step{Reply: "a done"}
	})
	gw := newGateway(&sleeper{}, prov("p", srv, "k"))
	global := bigLimits()
	tenantA := limits.NewSet(limits.Config{LLMTotal: 30, LLMStudent: 2, LLMTeacher: 10, OCR: 1})
	tenantB := limits.NewSet(limits.Config{LLMTotal: 30, LLMStudent: 2, LLMTeacher: 10, OCR: 1})
	clientA := &llm.Client{Gateway: gw, Tenant: tenantA, Global: global, Meter: &llm.Meter{}}
	clientB := &llm.Client{Gateway: gw, Tenant: tenantB, Global: global, Meter: &llm.Meter{}}

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			resp, err := clientA.Chat(context.Background(), llm.Request{Messages: userMsg("tenant-a"), Role: limits.RoleStudent})
			if err == nil && resp.Content != "a done" {
				err = errors.New("wrong reply " + resp.Content)
			}
			errs <- err
		})
	}
	<-arrivedA
	<-arrivedA
	// Two of tenant A's calls hold its two student slots; eight wait.
	if u := tenantA.Usage(); u.LLMStudent != 2 {
		t.Fatalf("tenant A usage %+v", u)
	}
	resp, err := clientB.Chat(context.Background(), llm.Request{Messages: userMsg("tenant-b"), Role: limits.RoleStudent})
	if err != nil || resp.Content != "b done" {
		t.Fatalf("tenant B blocked by tenant A: %v %+v", err, resp)
	}
	if got := srv.MaxInFlight(); got != 3 {
		t.Fatalf("max in flight %d, want 3 (two of A, one of B)", got)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if maxA.Load() != 2 {
		t.Fatalf("tenant A peak in flight %d, want 2", maxA.Load())
	}
	if u := tenantA.Usage(); u != (limits.Usage{}) {
		t.Fatalf("slots left taken: %+v", u)
	}
	if s := clientA.Meter.Snapshot(); s.Calls != 10 || s.Attempts != 10 || s.Failures != 0 {
		t.Fatalf("meter A %+v", s)
	}
	if s := clientB.Meter.Snapshot(); s.Calls != 1 {
		t.Fatalf("meter B %+v", s)
	}
}

// TestClientStudentLimitWithDelay is the plain form: a server with Delay,
// ten concurrent student calls, never more than two in flight.
func TestClientStudentLimitWithDelay(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "slow", Delay: 20 * time.Millisecond})
	client := &llm.Client{
		Gateway: newGateway(&sleeper{}, prov("p", srv, "k")),
		Tenant:  limits.NewSet(limits.Config{LLMTotal: 30, LLMStudent: 2, LLMTeacher: 10, OCR: 1}),
		Global:  bigLimits(),
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 10 {
		wg.Go(func() {
			if _, err := client.Chat(context.Background(), llm.Request{Messages: userMsg("x"), Role: limits.RoleStudent}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || len(srv.Requests()) != 10 {
		t.Fatalf("%d failed, %d requests", failed.Load(), len(srv.Requests()))
	}
	if got := srv.MaxInFlight(); got > 2 || got < 1 {
		t.Fatalf("max in flight %d, want at most 2", got)
	}
}

// TestClientGlobalRoleLimit: the global student limit binds across tenants.
func TestClientGlobalRoleLimit(t *testing.T) {
	srv := llmtest.NewServer(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 4)
	srv.Respond(func(r llmtest.Recorded) llmtest.Step {
		if r.Messages[0].Content == "teacher" {
			return llmtest.Step{}
		}
		arrived <- struct{}{}
		<-gate
		return llmtest.Step{}
	})
	gw := newGateway(&sleeper{}, prov("p", srv, "k"))
	global := limits.NewSet(limits.Config{LLMTotal: 10, LLMStudent: 1, LLMTeacher: 10, OCR: 1})
	c1 := &llm.Client{Gateway: gw, Tenant: bigLimits(), Global: global}
	c2 := &llm.Client{Gateway: gw, Tenant: bigLimits(), Global: global}
	var wg sync.WaitGroup
	for _, c := range []*llm.Client{c1, c2} {
		wg.Go(func() {
			_, _ = c.Chat(context.Background(), llm.Request{Messages: userMsg("student"), Role: limits.RoleStudent})
		})
	}
	<-arrived
	// One student call holds the only global student slot; a teacher call of
	// either tenant still passes.
	if _, err := c2.Chat(context.Background(), llm.Request{Messages: userMsg("teacher"), Role: limits.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	if u := global.Usage(); u.LLMStudent != 1 {
		t.Fatalf("global usage %+v", u)
	}
	close(gate)
	wg.Wait()
	if got := srv.MaxInFlight(); got != 2 {
		t.Fatalf("max in flight %d, want 2 (one student, one teacher)", got)
	}
}

func TestClientWaitForSlotCancelled(t *testing.T) {
	srv := llmtest.NewServer(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv.Respond(func(llmtest.Recorded) llmtest.Step {
		arrived <- struct{}{}
		<-gate
		return llmtest.Step{}
	})
	client := &llm.Client{
		Gateway: newGateway(&sleeper{}, prov("p", srv, "k")),
		Tenant:  limits.NewSet(limits.Config{LLMTotal: 30, LLMStudent: 1, LLMTeacher: 10, OCR: 1}),
		Global:  bigLimits(),
		Meter:   &llm.Meter{},
	}
	done := make(chan error, 1)
	go func() {
		_, err := client.Chat(context.Background(), llm.Request{Messages: userMsg("first"), Role: limits.RoleStudent})
		done <- err
	}()
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := client.Chat(ctx, llm.Request{Messages: userMsg("second"), Role: limits.RoleStudent})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if s := client.Meter.Snapshot(); s.Calls != 2 || s.Failures != 1 || s.Attempts != 1 {
		t.Fatalf("meter %+v", s)
	}
}

func TestMeterCounts(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(
		llmtest.Step{Reply: "one", Usage: &llm.Usage{PromptTokens: 7, CompletionTokens: 3}},
		llmtest.Step{Status: 503},
		llmtest.Step{Reply: "two", Usage: &llm.Usage{PromptTokens: 11, CompletionTokens: 4}},
		llmtest.Step{Status: 400},
	)
	meter := &llm.Meter{}
	client := &llm.Client{Gateway: newGateway(&sleeper{}, prov("p", srv, "k")), Tenant: bigLimits(), Global: bigLimits(), Meter: meter}
	ctx := context.Background()
	for i, wantErr := range []bool{false, false, true} {
		_, err := client.Chat(ctx, llm.Request{Messages: userMsg("x"), Role: limits.RoleTeacher})
		if (err != nil) != wantErr {
			t.Fatalf("call %d: err %v", i, err)
		}
	}
	s := meter.Snapshot()
	want := llm.MeterSnapshot{Calls: 3, Failures: 1, Attempts: 4, PromptTokens: 18, CompletionTokens: 7,
		Today: llm.DaySnapshot{Date: time.Now().Format(time.DateOnly), Calls: 3, Tokens: 25}}
	got := s
	got.LatencyTotal, got.LatencyMax = 0, 0
	if got != want {
		t.Fatalf("snapshot %+v, want %+v", s, want)
	}
	if s.LatencyTotal <= 0 || s.LatencyMax <= 0 || s.LatencyMax > s.LatencyTotal {
		t.Fatalf("latency total %v max %v", s.LatencyTotal, s.LatencyMax)
	}
	var zero llm.Meter
	z := zero.Snapshot()
	z.Today.Date = "" // today's date, with no call
	if z != (llm.MeterSnapshot{}) {
		t.Fatalf("zero meter not zero: %+v", z)
	}
}

func TestMeterConcurrent(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Usage: &llm.Usage{PromptTokens: 2, CompletionTokens: 1}})
	meter := &llm.Meter{}
	client := &llm.Client{Gateway: newGateway(&sleeper{}, prov("p", srv, "k")), Meter: meter}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _ = client.Chat(context.Background(), llm.Request{Messages: userMsg("x")}) })
	}
	wg.Wait()
	if s := meter.Snapshot(); s.Calls != 20 || s.Attempts != 20 || s.PromptTokens != 40 || s.CompletionTokens != 20 {
		t.Fatalf("snapshot %+v", s)
	}
}

func TestClientNotConfigured(t *testing.T) {
	meter := &llm.Meter{}
	for _, c := range []*llm.Client{
		{Meter: meter},
		{Gateway: llm.NewGateway(llm.Config{}, llm.Options{}), Tenant: bigLimits(), Global: bigLimits(), Meter: meter},
	} {
		if _, err := c.Chat(context.Background(), llm.Request{Messages: userMsg("x")}); !errors.Is(err, llm.ErrNotConfigured) {
			t.Fatalf("err = %v", err)
		}
	}
	var nilClient *llm.Client
	if _, err := nilClient.Chat(context.Background(), llm.Request{Messages: userMsg("x")}); !errors.Is(err, llm.ErrNotConfigured) {
		t.Fatalf("nil client err = %v", err)
	}
	if s := meter.Snapshot(); s.Calls != 2 || s.Failures != 2 || s.Attempts != 0 {
		t.Fatalf("meter %+v", s)
	}
}

func TestClientHalfLimitsRejected(t *testing.T) {
	srv := llmtest.NewServer(t)
	c := &llm.Client{Gateway: newGateway(&sleeper{}, prov("p", srv, "k")), Tenant: bigLimits()}
	if _, err := c.Chat(context.Background(), llm.Request{Messages: userMsg("x")}); err == nil || len(srv.Requests()) != 0 {
		t.Fatalf("err %v, %d requests", err, len(srv.Requests()))
	}
}

// The Meter's observer hears every call: the provider that answered (the
// fallback after a failing first target), the kind, the attempts and
// tokens; a failed call under the last target tried, with its error class;
// a call without a provider under none.
func TestMeterObserve(t *testing.T) {
	bad, good := llmtest.NewServer(t), llmtest.NewServer(t)
	bad.Respond(func(llmtest.Recorded) llmtest.Step { return llmtest.Step{Status: 500} })
	good.Script(llmtest.Step{Reply: "ok", Usage: &llm.Usage{PromptTokens: 7, CompletionTokens: 3}}, llmtest.Step{Status: 401})
	a, b := prov("first", bad, "k1"), prov("second", good, "k2")
	a.MaxAttempts, b.MaxAttempts = 2, 1
	var mu sync.Mutex
	var got []llm.CallEvent
	meter := &llm.Meter{Observe: func(e llm.CallEvent) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}}
	c := &llm.Client{Gateway: newGateway(&sleeper{}, a, b), Tenant: bigLimits(), Global: bigLimits(), Meter: meter}
	if _, err := c.Chat(context.Background(), llm.Request{Messages: userMsg("x"), Kind: "chat.agent"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Chat(context.Background(), llm.Request{Messages: userMsg("y"), Kind: "profile.judge"})
	if err == nil {
		t.Fatal("the second call succeeded")
	}
	none := &llm.Client{Meter: meter}
	none.Chat(context.Background(), llm.Request{Messages: userMsg("z"), Kind: "ocr.llm"})

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d events: %+v", len(got), got)
	}
	ok, failed, unconfigured := got[0], got[1], got[2]
	if ok.Kind != "chat.agent" || ok.Provider != "second" || ok.Attempts != 3 || ok.PromptTokens != 7 ||
		ok.CompletionTokens != 3 || ok.Err != nil || ok.Latency <= 0 {
		t.Errorf("success: %+v", ok)
	}
	if failed.Kind != "profile.judge" || failed.Provider != "second" || failed.Attempts != 3 ||
		llm.ErrorClass(failed.Err) != llm.ClassHTTP4xx || failed.PromptTokens != 0 {
		t.Errorf("failure: %+v (class %q)", failed, llm.ErrorClass(failed.Err))
	}
	if unconfigured.Provider != "" || llm.ErrorClass(unconfigured.Err) != llm.ClassNotConfigured {
		t.Errorf("no provider: %+v", unconfigured)
	}
	if s := meter.Snapshot(); s.Calls != 3 || s.Failures != 2 || s.PromptTokens != 7 {
		t.Errorf("meter %+v", s) // the counters are kept as before
	}
}

func TestErrorClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{llm.ErrNotConfigured, llm.ClassNotConfigured},
		{fmt.Errorf("llm: %w", context.Canceled), llm.ClassCanceled},
		{fmt.Errorf("llm: %w (last attempt: x)", context.DeadlineExceeded), llm.ClassDeadline},
		{fmt.Errorf("p: %w after 1s", llm.ErrTimeout), llm.ClassTimeout},
		{&llm.APIError{Status: 429}, llm.ClassRateLimited},
		{&llm.APIError{Status: 503}, llm.ClassHTTP5xx},
		{&llm.APIError{Status: 403}, llm.ClassHTTP4xx},
		{fmt.Errorf("%w: no choices", llm.ErrMalformedResponse), llm.ClassMalformed},
		{errors.New("something else"), llm.ClassOther},
	} {
		if got := llm.ErrorClass(c.err); got != c.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// Over real connections: a refused dial is "connection", a stream cut
// after its first piece "stream_broken", and a chain is classed by its
// last target.
func TestErrorClassOverHTTP(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "abcdef", Chunks: 3, CutAfter: 1}, llmtest.Step{Status: 500})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	p := prov("p", srv, "k")
	p.MaxAttempts = 1
	gone := llm.Provider{Name: "gone", BaseURL: deadURL, Model: "m", MaxAttempts: 1, Timeout: time.Second}

	_, err = newGateway(&sleeper{}, p).Chat(context.Background(), llm.Request{Messages: userMsg("s"), OnDelta: func(string) {}}, nil)
	if got := llm.ErrorClass(err); got != llm.ClassStream || err.Error() == "" {
		t.Errorf("broken stream: %q (%v)", got, err)
	}
	_, err = newGateway(&sleeper{}, gone).Chat(context.Background(), llm.Request{Messages: userMsg("s")}, nil)
	if got := llm.ErrorClass(err); got != llm.ClassConnection {
		t.Errorf("refused dial: %q (%v)", got, err)
	}
	_, err = newGateway(&sleeper{}, p, gone).Chat(context.Background(), llm.Request{Messages: userMsg("s")}, nil)
	if got := llm.ErrorClass(err); got != llm.ClassConnection {
		t.Errorf("chain 500 then refused: %q (%v)", got, err)
	}
}
