// Package tenantapp builds one tenant's teaching API: its handler, its
// caches, its limits and its background workers, all held in one App value.
package tenantapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/assignupload"
	"github.com/lectern/lectern/internal/attachments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/chat"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/examupload"
	"github.com/lectern/lectern/internal/grading"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/mcpserver"
	"github.com/lectern/lectern/internal/memory"
	"github.com/lectern/lectern/internal/modelconfig"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/practice"
	"github.com/lectern/lectern/internal/students"
	"github.com/lectern/lectern/internal/tools"
)

// DefaultTenantID names the default tenant in logs and status. It can never
// clash with a real tenant id, which must start with a letter or digit.
const DefaultTenantID = "_default"

// Settings configure one tenant.
type Settings struct {
	TenantID   string
	DataDir    string // absolute
	UploadsDir string // absolute
	// Prefix is the external path prefix the tenant is served under
	// ("/t/<id>", or "" for the default tenant), for building links.
	Prefix      string
	Limits      limits.Config
	ChatWorkers int // chat worker pool size; < 1 means 4
	// Uploads bounds each upload (zero fields take the defaults).
	Uploads examupload.Limits
	// Chat tunes the chat lanes (zero fields take the defaults).
	Chat ChatSettings
	// DefaultTeacherID is the teacher of requests that name none.
	DefaultTeacherID string
	// ProfileQueueMax bounds pending profile updates (500).
	ProfileQueueMax int
	// JobQueueMax bounds the queued jobs of each other kind (chat, exam
	// upload, assignment upload); < 1 means 100.
	JobQueueMax int
	// Grading tunes the grading of submissions.
	Grading GradingSettings
	// MCPAPIKey is MCP_API_KEY: the X-API-Key the predecessor's MCP clients
	// send ("" : only bearer tokens, or open mode).
	MCPAPIKey string
	// MemoryAutoApply applies teacher memory proposals without review
	// (TEACHER_MEMORY_AUTO_APPLY_ENABLED; off by default).
	MemoryAutoApply bool
	// Auth turns credentials on (the zero value is open mode).
	Auth   AuthSettings
	Logger *slog.Logger
}

// ChatSettings tune the chat lanes.
type ChatSettings struct {
	LaneMaxQueue int           // CHAT_LANE_MAX_QUEUE, 6
	Debounce     time.Duration // CHAT_LANE_DEBOUNCE_MS, 500 ms; negative disables
	// MaxToolRounds and MaxToolCalls bound a turn's tool use
	// (CHAT_MAX_TOOL_ROUNDS 5, CHAT_MAX_TOOL_CALLS 12); a skill only
	// tightens them.
	MaxToolRounds, MaxToolCalls int
}

// GradingSettings tune the grading of submissions.
type GradingSettings struct {
	// ReviewThreshold is the confidence a graded item needs to count
	// (GRADE_COUNT_CONF_THRESHOLD, 0.6; 0 means the default).
	ReviewThreshold float64
	// RequireReview holds a result with items to review out of the profile
	// (PROFILE_UPDATE_REQUIRE_REVIEW).
	RequireReview bool
}

// Shared is what every tenant of the process shares.
type Shared struct {
	Global *limits.Set
	LLM    *llm.Gateway // may have no provider: chat then answers 503
	// SheetParses bounds the score-sheet parses running at once over all
	// tenants (SHEET_PARSE_MAX_CONCURRENCY); nil means no bound.
	SheetParses *limits.Sem
	// OCR is the OCR engine choice; OCRLLM reaches its vision model (may
	// have no provider).
	OCR    ocr.LLMSettings
	OCRLLM *llm.Gateway
	// Font is the CJK TrueType font assignment PDFs are rendered with
	// (practice.FindCJKFont at startup); "" → render answers 503.
	Font string
	// Models configures the teachers' private providers.
	Models ModelSettings
	// Observer hears each tenant's finished jobs, LLM calls and limiter
	// waits (the server's metrics); nil: nobody.
	Observer Observer
}

// Observer hears what a tenant's work reports as it finishes, with the
// tenant's id: each job (by the tenant's worker kind), LLM call and wait
// for a limiter slot. The server's metrics implement it. Its methods run on
// the worker's or the caller's goroutine and must return quickly.
type Observer interface {
	ObserveJob(tenant string, e jobs.JobEvent)
	ObserveLLMCall(tenant string, e llm.CallEvent)
	ObserveLimitWait(tenant string, e limits.WaitEvent)
}

// ModelSettings configure the teachers' private model providers.
type ModelSettings struct {
	// MasterKey encrypts their API keys at rest (MODEL_MASTER_KEY…); nil:
	// keys cannot be stored (503 master_key_missing).
	MasterKey []byte
	// LegacyMasterKey reads keys the predecessor stored (LEGACY_MASTER_KEY).
	LegacyMasterKey string
	// LLM is the tenant providers' chain (the shared gateway's config).
	LLM llm.Config
	// AllowPrivate lets the probe and the teachers' providers reach
	// private, loopback and link-local addresses
	// (MODEL_PROVIDER_ALLOW_PRIVATE).
	AllowPrivate bool
	// RequireHTTPS refuses http:// provider URLs (production).
	RequireHTTPS bool
}

// Worker kinds. Each domain keeps its job records in its own folder of
// UPLOADS_DIR: chat_jobs, assignment_jobs, exam_jobs (the predecessor's),
// submission_jobs and profile_jobs.
const (
	KindChat             = "chat"
	KindAssignmentUpload = "assignment_upload"
	KindExamUpload       = "exam_upload"
	KindProfileUpdate    = "profile_update"
	KindSubmission       = "submission"
	KindChatAttachment   = "chat_attachment"
)

// App is one tenant's running application.
type App struct {
	settings    Settings
	log         *slog.Logger
	limits      *limits.Set
	global      *limits.Set
	exams       *exams.Service
	examAPI     *exams.API
	assignments *assignments.API
	practice    *practice.Service
	memory      *memory.Service
	models      *modelconfig.Service
	skills      *lazySkills
	toolsOnce   func() (*tools.Registry, error)
	mcp         func() http.Handler
	assignUp    *assignupload.Pipeline
	grading     *grading.Service
	uploads     *examupload.Pipeline
	ocr         *ocr.Extractor
	auth        caller.Authenticator
	accounts    *accounts.Registry // nil in open mode
	meter       *llm.Meter
	llmOK       bool
	chat        *chat.Service
	attachments *attachments.Service
	history     *history.API
	profiles    *students.Store
	profileW    *students.Worker
	students    *students.API
	workers     []*worker
	// handler is the authenticate middleware in front of the shared
	// router, made on the first request; authMux the tenant's /auth/*
	// routes (routes.go), made on the first of those.
	handlerOnce sync.Once
	handler     http.Handler
	authOnce    sync.Once
	authMux     *policy.Mux

	mu      sync.Mutex
	started bool
	stopped bool
}

// worker is one kind of background job with its runner.
type worker struct {
	kind   string
	runner *jobs.Runner
}

// New builds a tenant's App: it checks that its directories can be made
// (they are made by their first write) and wires its state. Nothing runs
// until Start.
func New(s Settings, shared Shared) (*App, error) {
	global := shared.Global
	if s.DataDir == "" || s.UploadsDir == "" {
		return nil, errors.New("tenant app: data and uploads directories are required")
	}
	if err := s.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("tenant app: %w", err)
	}
	for _, d := range []string{s.DataDir, s.UploadsDir} {
		if err := creatable(d); err != nil {
			return nil, fmt.Errorf("tenant app: %w", err)
		}
	}
	if s.ChatWorkers < 1 {
		s.ChatWorkers = 4
	}
	if s.JobQueueMax < 1 {
		s.JobQueueMax = 100
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("tenant", s.TenantID)
	a := &App{
		settings: s,
		log:      log,
		limits:   limits.NewTenantSet(s.TenantID, s.Limits),
		global:   global,
		exams:    exams.NewService(s.DataDir),
		auth:     caller.Authenticator{Resolver: caller.Resolver{Tenant: s.TenantID, DefaultTeacherID: s.DefaultTeacherID}},
		meter:    &llm.Meter{},
		llmOK:    shared.LLM.Configured(),
	}
	// The observer hears the tenant's limiter waits and LLM calls (every
	// client below shares this Set and this Meter; the jobs are wired at
	// the end, once the runners exist).
	if obs := shared.Observer; obs != nil {
		a.limits.SetObserver(func(e limits.WaitEvent) { obs.ObserveLimitWait(s.TenantID, e) })
		a.meter.Observe = func(e llm.CallEvent) { obs.ObserveLLMCall(s.TenantID, e) }
	}
	if s.Auth.Enabled {
		if err := a.openAccounts(s); err != nil {
			return nil, err
		}
	}
	llmClient := &llm.Client{Gateway: shared.LLM, Tenant: a.limits, Global: global, Meter: a.meter}

	// Students: profiles and their one writer.
	a.profiles = students.NewStore(s.DataDir)
	var judge students.Judge
	if a.llmOK {
		judge = students.NewJudge(llmClient)
	}
	a.profileW = students.NewWorker(students.WorkerConfig{UploadsDir: s.UploadsDir, Profiles: a.profiles,
		Bound: s.ProfileQueueMax, Judge: judge, Logger: log})
	a.students = students.NewAPI(students.APIConfig{Profiles: a.profiles, Worker: a.profileW, Exams: a.exams,
		DataDir: s.DataDir, UploadsDir: s.UploadsDir, MaxUploadBytes: s.Uploads.MaxBytes, MaxUploadFiles: s.Uploads.MaxFiles, Logger: log})

	// Assignments: reading them and their requirements.
	asg := assignments.NewService(s.DataDir)
	a.assignments = assignments.NewAPI(asg, log)
	// Generation from the question bank, the PDF render, and the
	// auto-generation of /assignment/today.
	a.practice = practice.New(practice.Config{DataDir: s.DataDir, Assignments: asg, LLM: llmClient,
		Font: shared.Font, Logger: log})

	// OCR: one extractor for every upload of the tenant, each page within
	// the tenant's OCR slot, then the process's.
	// The engine is tesseract, the vision model (its calls also within the
	// tenant's and the process's LLM limits), or the model falling back to
	// tesseract (OCR_ENGINE).
	ocrLLM := &llm.Client{Gateway: shared.OCRLLM, Tenant: a.limits, Global: global, Meter: a.meter}
	engine, err := ocr.EngineFor(shared.OCR.Engine,
		&ocr.LLM{Client: ocrLLM, Timeout: shared.OCR.Timeout},
		&ocr.Tesseract{Timeout: shared.OCR.Timeout})
	if err != nil {
		return nil, err
	}
	a.ocr = ocr.New(ocr.Options{Engine: engine, Timeout: shared.OCR.Timeout, Acquire: func(ctx context.Context) (func(), error) {
		return limits.AcquireOCR(ctx, a.limits, a.global)
	}})

	// Assignment uploads (and the OCR of question images) on the tenant's
	// assignment_upload jobs.
	a.assignUp = assignupload.New(assignupload.Config{DataDir: s.DataDir, UploadsDir: s.UploadsDir, Assignments: asg,
		Text: a.ocr, LLM: llmClient, MaxQueued: s.JobQueueMax, Logger: log})

	// Submissions: graded in the tenant's submission jobs; each result
	// reaches the profile through the tenant's one profile writer.
	a.grading = grading.New(grading.Config{DataDir: s.DataDir, UploadsDir: s.UploadsDir, Assignments: asg,
		Text: a.ocr, LLM: llmClient, MaxQueued: s.JobQueueMax, Logger: log,
		ReviewThreshold: s.Grading.ReviewThreshold, RequireReview: s.Grading.RequireReview,
		OnGraded: func(r *grading.Report) error {
			_, err := a.profileW.Enqueue(grading.ProfileUpdate(r))
			return err
		}})

	// Exams: reading and the upload pipeline.
	a.examAPI = exams.NewAPI(a.exams, s.Prefix, log)
	a.uploads = examupload.New(examupload.Config{DataDir: s.DataDir, UploadsDir: s.UploadsDir, Exams: a.exams,
		Limits: s.Uploads, OnConfirmed: a.examConfirmed, MaxQueued: s.JobQueueMax, ParseSlots: shared.SheetParses,
		Text: a.ocr, LLM: llmClient,
		Logger: log})

	// Chat: history, the agent (built on the first turn, so an idle tenant
	// does not carry tool schemas and prompts) and the chat jobs.
	hist := history.NewStore(s.DataDir, 0)
	a.history = history.NewAPI(hist, log)
	// Teacher memory, model settings and skills.
	a.memory = memory.New(memory.Config{DataDir: s.DataDir, AutoApply: s.MemoryAutoApply, Logger: log})
	models, err := modelconfig.New(modelconfig.Config{DataDir: s.DataDir, MasterKey: shared.Models.MasterKey,
		LegacySecret: shared.Models.LegacyMasterKey, Shared: shared.Models.LLM,
		AllowPrivateProbe: shared.Models.AllowPrivate, RequireHTTPS: shared.Models.RequireHTTPS, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("tenant app: model settings: %w", err)
	}
	a.models = models
	a.skills = &lazySkills{dataDir: s.DataDir, log: log}

	// The tool registry, built on first use (the agent's first turn or the
	// first MCP call) and shared by both: every tool of the predecessor's
	// registry but the code-running ones, each acting as its caller.
	a.toolsOnce = sync.OnceValues(func() (*tools.Registry, error) {
		reg, err := tools.NewRegistry(agent.ObserveTools(slices.Concat(
			tools.ExamTools(a.exams),
			tools.ChartTools(a.exams, s.Prefix),
			tools.AssignmentTools(asg, a.practice),
			tools.LessonTools(asg, tools.LessonConfig{UploadsDir: s.UploadsDir, Text: a.ocr}),
			tools.StudentTools(a.profiles, a.profileW, a.exams),
			tools.CoreExampleTools(s.DataDir, s.UploadsDir, a.practice.RenderText),
			a.memory.Tools(),
			a.models.Tools(),
		)...)...)
		if err != nil {
			return nil, fmt.Errorf("tool registry: %w", err)
		}
		return reg.WithLogger(log), nil
	})
	// The MCP server is built on the first /mcp request, like the tools.
	a.mcp = sync.OnceValue(func() http.Handler {
		return mcpserver.New(mcpserver.Config{Registry: func(context.Context) (*tools.Registry, error) { return a.toolsOnce() },
			Resolver: a.auth.Resolver, Enforcing: a.auth.Enforcing(), APIKey: s.MCPAPIKey, Logger: log})
	})

	replier := &agentReplier{profiles: a.profiles, history: hist, memory: a.memory, models: a.models, skills: a.skills,
		base: llmClient, build: func() (*agent.Agent, error) {
			registry, err := a.toolsOnce()
			if err != nil {
				return nil, err
			}
			return &agent.Agent{LLM: agent.ObserveLLM(llmClient, registry), Tools: registry, Prompts: agent.NewPrompts(s.DataDir), Logger: log,
				MaxRounds: s.Chat.MaxToolRounds, MaxCalls: s.Chat.MaxToolCalls}, nil
		}}
	debounce := s.Chat.Debounce
	if debounce == 0 {
		debounce = 500 * time.Millisecond
	}
	a.attachments = attachments.New(attachments.Config{UploadsDir: s.UploadsDir, Extractor: a.ocr,
		Resolver: a.auth.Resolver, Workers: 1, MaxQueued: s.JobQueueMax, Logger: log})
	obs := &memoryObserver{memory: a.memory, history: hist, log: log}
	a.chat = chat.New(chat.Config{
		Attachments:    a.attachments,
		UploadsDir:     s.UploadsDir,
		History:        hist,
		Replier:        replier,
		Resolver:       a.auth.Resolver,
		Workers:        s.ChatWorkers,
		LaneMaxQueue:   s.Chat.LaneMaxQueue,
		MaxQueued:      s.JobQueueMax,
		Debounce:       max(debounce, 0),
		OnStudentReply: a.studentReplied,
		OnTeacherReply: obs.observe,
		Logger:         log,
	})

	a.workers = workerKinds(map[string]*jobs.Runner{
		KindChat: a.chat.Runner(), KindExamUpload: a.uploads.Runner(), KindProfileUpdate: a.profileW.Runner(),
		KindSubmission: a.grading.Runner(), KindAssignmentUpload: a.assignUp.Runner(),
		KindChatAttachment: a.attachments.Runner(),
	})
	if obs := shared.Observer; obs != nil {
		for _, w := range a.workers {
			kind := w.kind // the snapshots' kind label, whatever the domain named its runner
			w.runner.SetObserver(func(e jobs.JobEvent) {
				e.Kind = kind
				obs.ObserveJob(s.TenantID, e)
			})
		}
	}
	return a, nil
}

// workerKinds lists the worker kinds in stop order (profile updates last:
// the others feed them), each with its domain's runner.
func workerKinds(runners map[string]*jobs.Runner) []*worker {
	var out []*worker
	for _, kind := range []string{KindChat, KindChatAttachment, KindAssignmentUpload, KindExamUpload, KindSubmission, KindProfileUpdate} {
		out = append(out, &worker{kind: kind, runner: runners[kind]})
	}
	return out
}

// Settings returns the settings the App was built with.
func (a *App) Settings() Settings { return a.settings }

// Handler serves the tenant's API with paths relative to its prefix.
func (a *App) Handler() http.Handler { return a }

// ServeHTTP serves the tenant's API: through the router every tenant
// shares (routes.go), with the tenant's App in the request's context.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.handlerOnce.Do(func() { a.handler = a.auth.Middleware(a.router()) })
	a.handler.ServeHTTP(w, r.WithContext(&appContext{Context: r.Context(), app: a}))
}

// Routes is the tenant's route table with each route's rule.
func (a *App) Routes() []policy.Route { return a.router().Routes() }

// Start starts the background workers; queued jobs found on disk resume.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return errors.New("tenant app: already started")
	}
	a.started = true
	for i, w := range a.workers {
		if err := w.runner.Start(ctx); err != nil {
			for _, prev := range a.workers[:i] {
				prev.runner.Stop(ctx)
			}
			return fmt.Errorf("start %s worker: %w", w.kind, err)
		}
	}
	a.log.Debug("tenant started")
	return nil
}

// Stop stops every worker and waits for them, or until ctx ends. Jobs cut
// short stay queued on disk and resume at the next Start.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return nil
	}
	a.stopped = true
	a.chat.Close()
	var errs []error
	// Chat first, as the predecessor did: it is the kind users wait on.
	for _, w := range a.workers {
		if err := w.runner.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s worker: %w", w.kind, err))
		}
	}
	if err := a.practice.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop assignment generations: %w", err))
	}
	if err := a.profileW.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close the profile update journal: %w", err))
	}
	if a.accounts != nil {
		if err := a.accounts.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close accounts: %w", err))
		}
	}
	a.log.Debug("tenant stopped")
	return errors.Join(errs...)
}

// WorkerStatus describes one worker kind.
type WorkerStatus struct {
	Kind    string `json:"kind"`
	Workers int    `json:"workers"`
	Queued  int    `json:"queued"`
	// MaxQueued bounds Queued (429 beyond); 0 means no bound.
	MaxQueued int   `json:"max_queued"`
	Busy      int   `json:"busy"`
	Done      int64 `json:"processed"`
	Failed    int64 `json:"failed"`
}

// Status is a snapshot for the admin API.
type Status struct {
	Workers      []WorkerStatus `json:"workers"`
	Limits       limits.Config  `json:"limits"`
	LimitsInUse  limits.Usage   `json:"limits_in_use"`
	GlobalLimits limits.Config  `json:"global_limits"`
	// EffectiveLimits are Limits capped by GlobalLimits: the most calls of
	// each kind the tenant can run at once (fewer while other tenants share
	// the global pools, which are divided fairly between them).
	EffectiveLimits limits.Config     `json:"effective_limits"`
	LLM             llm.MeterSnapshot `json:"llm_usage"`
	// OCR counts the pages the tenant's OCR engine was given, and those
	// that failed, since it was loaded.
	OCR OCRUsage `json:"ocr_usage"`
	// Goroutines is the whole process's count (every tenant's and the
	// server's), for leak checks: compare it before and after a tenant is
	// unloaded; /admin/debug/pprof/goroutine lists them.
	Goroutines int `json:"goroutines"`
}

// OCRUsage is a tenant's OCR pages since it was loaded.
type OCRUsage struct {
	Pages    int64 `json:"pages"`
	Failures int64 `json:"failures"`
}

// Status reports queues, workers and limits.
func (a *App) Status() Status {
	st := Status{
		Limits:       a.limits.Config(),
		LimitsInUse:  a.limits.Usage(),
		GlobalLimits: a.global.Config(),
		LLM:          a.meter.Snapshot(),
		Goroutines:   runtime.NumGoroutine(),
	}
	st.OCR.Pages, st.OCR.Failures = a.ocr.Stats()
	st.EffectiveLimits = limits.Effective(st.Limits, st.GlobalLimits)
	for _, w := range a.workers {
		s := w.runner.Stats()
		st.Workers = append(st.Workers, WorkerStatus{Kind: w.kind,
			Workers: s.Workers, Queued: s.Queued, MaxQueued: s.MaxQueued, Busy: s.Busy, Done: s.Processed, Failed: s.Failed})
	}
	return st
}

// LoadTimeout bounds how long building and starting a tenant may take.
const LoadTimeout = 30 * time.Second
