// Package practice makes assignments out of a tenant's question bank, as
// the predecessor's select_practice.py, generate_variants.py and
// render_assignment_pdf.py did, but inside the tenant's DATA_DIR only:
//
//	DATA_DIR/question_bank/questions.csv               the bank (read)
//	DATA_DIR/core_examples/stems/<id>.md, variants/<id>.md  core examples (read)
//	DATA_DIR/assignments/<id>/questions.csv assignment.md meta.json (written)
//	DATA_DIR/assignments/<id>/generated_stems|generated_solutions|explicit_stems|explicit_solutions/
//	DATA_DIR/assignments/<id>/generate_status.json     a background generation's state
//	DATA_DIR/assignments/<id>/assignment_<id>.pdf      the rendered PDF
//	DATA_DIR/assignments/generated_from_core/<core id>/ core-example variants
//
// Generate selects questions (§3.4 of the reference, with its weak spots
// fixed: recency from other assignments' dates, an advanced question from
// three per knowledge point on, "challenge" counted as advanced, LLM items
// capped at what is missing). Without an LLM it runs in the request: it
// only reads and writes small local files. With one, the HTTP handler runs
// it in the background (one generation per assignment, a few per tenant)
// and the client follows generate_status.json. Render draws a PDF whose
// Chinese text shows, with a CJK TrueType font found at startup
// (FindCJKFont).
package practice

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/llm"
)

// DefaultMaxRunning bounds a tenant's background generations.
const DefaultMaxRunning = 2

// DefaultGenerateTimeout bounds one background generation (its LLM calls).
const DefaultGenerateTimeout = 5 * time.Minute

// Config is what a tenant's practice service needs.
type Config struct {
	// DataDir is the tenant's DATA_DIR: everything is read and written
	// under it.
	DataDir string
	// Assignments validates assignment ids, saves requirements and
	// completes meta.json (FinalizeMeta).
	Assignments *assignments.Service
	// LLM fills the gaps of a selection when a generation asks for it;
	// nil or unconfigured: placeholders.
	LLM *llm.Client
	// Font is the path of a CJK TrueType font (FindCJKFont); "" makes
	// render answer 503 font_unavailable.
	Font   string
	Logger *slog.Logger
	Now    func() time.Time
	// MaxRunning bounds background generations at once (0:
	// DefaultMaxRunning); past it a generation is refused with 429.
	MaxRunning int
	// GenerateTimeout bounds one background generation (0:
	// DefaultGenerateTimeout).
	GenerateTimeout time.Duration
}

// Service is one tenant's question selection, generation and rendering.
type Service struct {
	dataDir    string
	asg        *assignments.Service
	llm        *llm.Client
	fontPath   string
	log        *slog.Logger
	now        func() time.Time
	maxRunning int
	timeout    time.Duration

	// base is cancelled by Stop; background generations run under it.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	busy    map[string]chan struct{} // assignment id → closed when its generation ends
	running int                      // background generations

	renderSlot chan struct{} // one render at a time per tenant

	fontMu sync.Mutex
	font   *fontFile
}

// New returns the practice service of one tenant.
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Assignments == nil {
		c.Assignments = assignments.NewService(c.DataDir)
	}
	if c.MaxRunning <= 0 {
		c.MaxRunning = DefaultMaxRunning
	}
	if c.GenerateTimeout <= 0 {
		c.GenerateTimeout = DefaultGenerateTimeout
	}
	base, cancel := context.WithCancel(context.Background())
	return &Service{
		dataDir: c.DataDir, asg: c.Assignments, llm: c.LLM, fontPath: c.Font, log: c.Logger, now: c.Now,
		maxRunning: c.MaxRunning, timeout: c.GenerateTimeout,
		base: base, cancel: cancel,
		busy:       map[string]chan struct{}{},
		renderSlot: make(chan struct{}, 1),
	}
}

// LLMConfigured reports whether generation can use a model (the
// predecessor's "generate is effective only with an API key").
func (s *Service) LLMConfigured() bool {
	return s.llm.Configured()
}

// Stop cancels the background generations and waits for them to write
// their final status (or for ctx to end). Later generations are refused
// with 503. It is what a tenant unload calls.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	errStopped = fault.New(fault.Unavailable, "assignment generation is shutting down; retry later")
	errTooMany = &fault.Error{Code: fault.TooMany, RetryAfter: 30 * time.Second,
		Detail: "当前生成中的作业过多，请稍后重试。(too many assignment generations are running; retry later)"}
)

func errRunning(id string) error {
	return fault.New(fault.Conflict, map[string]any{"error": "generation_running", "assignment_id": id,
		"message": "该作业正在生成中，请稍后再试。"})
}

// claim takes assignment id's generation slot at once, or refuses: 409
// while another generation of it runs. The returned func gives it back.
func (s *Service) claim(id string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errStopped
	}
	if _, ok := s.busy[id]; ok {
		return nil, errRunning(id)
	}
	return s.hold(id), nil
}

// claimWait takes id's slot, waiting for a running generation of it to end.
func (s *Service) claimWait(ctx context.Context, id string) (func(), error) {
	for {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return nil, errStopped
		}
		ch, ok := s.busy[id]
		if !ok {
			release := s.hold(id)
			s.mu.Unlock()
			return release, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "the assignment is still being generated; retry later")
		}
	}
}

// hold marks id busy; s.mu is held.
func (s *Service) hold(id string) func() {
	ch := make(chan struct{})
	s.busy[id] = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.busy, id)
			s.mu.Unlock()
			close(ch)
		})
	}
}

// isRunning reports whether a generation of id is in progress.
func (s *Service) isRunning(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.busy[id]
	return ok
}

// hasRoom reports whether a background generation could start now.
func (s *Service) hasRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running < s.maxRunning
}

// background runs fn in a tracked goroutine under the base context with
// the generation timeout, if a background place is free (429 otherwise).
// before runs first, once the place is taken (a failure gives the place
// back and is returned). release (id's slot) is given back when fn
// returns; it is the caller's to give back when background fails.
func (s *Service) background(release func(), before func() error, fn func(ctx context.Context)) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errStopped
	}
	if s.running >= s.maxRunning {
		s.mu.Unlock()
		return errTooMany
	}
	s.running++
	s.wg.Add(1)
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
		s.wg.Done()
	}
	if err := before(); err != nil {
		done()
		return err
	}
	go func() {
		defer done()
		defer release()
		ctx, cancel := context.WithTimeout(s.base, s.timeout)
		defer cancel()
		fn(ctx)
	}()
	return nil
}
