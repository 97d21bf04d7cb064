// Package server assembles Lectern: the tenant config store, the registry,
// the default tenant, the admin API and the dispatcher in front of them.
package server

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/accesslog"
	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/bodydeadline"
	"github.com/lectern/lectern/internal/cors"
	"github.com/lectern/lectern/internal/demo"
	"github.com/lectern/lectern/internal/examupload"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/metrics"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/practice"
	"github.com/lectern/lectern/internal/ratelimit"
	"github.com/lectern/lectern/internal/tenancy"
	"github.com/lectern/lectern/internal/tenantapp"
)

// Config is the server's configuration, already validated and with
// absolute paths.
type Config struct {
	DataDir      string
	UploadsDir   string
	TenantDBPath string
	AdminKey     string
	// TenantIdleUnload unloads a tenant with no request and no job for
	// this long (TENANT_IDLE_UNLOAD); 0 never does.
	TenantIdleUnload time.Duration
	// HealthStrict makes /health answer 503 {"status":"degraded"} when the
	// config store or a tenant directory is not writable (HEALTH_STRICT).
	HealthStrict bool
	// MetricsToken is METRICS_TOKEN: a bearer token for GET /metrics
	// (Prometheus's authorization scrape setting); the admin key works too.
	MetricsToken string
	DataRoot     string
	Global       limits.Config
	ChatWorkers  int
	// UploadMaxBytes and UploadMaxFiles bound one upload request.
	UploadMaxBytes int64
	UploadMaxFiles int
	// LLM lists the LLM providers (none: chat answers 503).
	LLM llm.Config
	// OCR selects the OCR engine and its vision model (OCR_ENGINE,
	// OCR_LLM_*, OCR_TIMEOUT_SEC).
	OCR ocr.LLMSettings
	// PDFFont is the CJK TrueType font of assignment PDFs
	// (ASSIGNMENT_PDF_FONT); "" finds one under /usr/share/fonts.
	PDFFont string
	// Chat tunes the chat lanes; DefaultTeacherID names the teacher of
	// requests that name none.
	Chat             tenantapp.ChatSettings
	DefaultTeacherID string
	// ProfileQueueMax bounds each tenant's pending profile updates.
	ProfileQueueMax int
	// Grading tunes the grading of submissions.
	Grading tenantapp.GradingSettings
	// Models configures the teachers' private providers (its LLM field is
	// filled from LLM).
	Models tenantapp.ModelSettings
	// MCPAPIKey is MCP_API_KEY (X-API-Key of the predecessor's MCP clients).
	MCPAPIKey string
	// MemoryAutoApply applies teacher memory proposals without review.
	MemoryAutoApply bool
	// JobQueueMax bounds each tenant's queued jobs of every other kind.
	JobQueueMax int
	// SheetParseMax bounds the score-sheet parses running at once over
	// all tenants (< 1 means 2).
	SheetParseMax int
	// CORS is the parsed CORS_ORIGINS (the zero Policy allows no origin;
	// cors.Parse("") allows every one, as the predecessor did).
	CORS cors.Policy
	// Body bounds how slowly a request body may arrive (zero: no bound).
	Body bodydeadline.Limits
	// Auth turns credentials on for every tenant (zero: open mode).
	Auth tenantapp.AuthSettings
	// RateLimit and LoginRateLimit are the per-client request limits
	// (zero: none); a login route counts against both.
	RateLimit, LoginRateLimit ratelimit.Config
}

// resolveDirs creates the default tenant's directories and the config
// store's, then replaces every configured directory by the path it really
// names, symbolic links followed (TENANT_DATA_ROOT too, which need not
// exist yet). Tenant directories are resolved the same way when they are
// stored, so every comparison between them is between resolved paths: a
// deploy link such as /srv/app/current cannot hide that a tenant's
// directory is the default tenant's.
func (c *Config) resolveDirs() error {
	resolve := func(name string, path *string, create bool) error {
		if create {
			if err := os.MkdirAll(*path, 0o755); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		real, err := tenancy.ResolveDir(*path)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*path = real
		return nil
	}
	dbDir, dbFile := filepath.Split(c.TenantDBPath)
	err := errors.Join(resolve("DATA_DIR", &c.DataDir, true), resolve("UPLOADS_DIR", &c.UploadsDir, true),
		resolve("TENANT_DB_PATH", &dbDir, true))
	if err == nil && c.DataRoot != "" {
		err = resolve("TENANT_DATA_ROOT", &c.DataRoot, false) // need not exist yet
	}
	c.TenantDBPath = filepath.Join(dbDir, dbFile)
	return err
}

func (c Config) uploads() examupload.Limits {
	return examupload.Limits{MaxBytes: c.UploadMaxBytes, MaxFiles: c.UploadMaxFiles}
}

// Server is a running Lectern: Handler serves it, Close stops it.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *tenancy.Store
	shared   tenantapp.Shared
	registry *tenancy.Registry
	fallback *tenantapp.App
	metrics  *metrics.Metrics
	handler  http.Handler
}

// New opens the store, starts the default tenant and returns the server.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Global.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.resolveDirs(); err != nil {
		return nil, err
	}
	store, err := tenancy.OpenStore(ctx, cfg.TenantDBPath, log)
	if err != nil {
		return nil, err
	}
	// The CJK font of assignment PDFs, found once (ASSIGNMENT_PDF_FONT, else
	// a TrueType CJK font under /usr/share/fonts).
	font := cfg.PDFFont
	if font == "" {
		if f, err := practice.FindCJKFont(); err != nil {
			log.Warn("no CJK TrueType font found: POST /assignment/render answers 503 font_unavailable", "err", err)
		} else {
			font = f
		}
	}
	models := cfg.Models
	models.LLM = cfg.LLM
	s := &Server{cfg: cfg, log: log, store: store, shared: tenantapp.Shared{
		Global: limits.NewGlobalSet(cfg.Global),
		LLM:    llm.NewGateway(cfg.LLM, llm.Options{Logger: log}),
		OCR:    cfg.OCR,
		OCRLLM: llm.NewGateway(cfg.OCR.Config(), llm.Options{Logger: log}),
		Font:   font,
		Models: models,
		// A parse may hold tens of MB: two at once, whatever the tenants.
		SheetParses: limits.NewSem(cmp.Or(max(cfg.SheetParseMax, 0), 2)),
	}}
	if cfg.OCR.UsesLLM() && !cfg.OCR.Configured() {
		log.Warn("OCR_ENGINE=" + cfg.OCR.Engine + " but no OCR model endpoint (OCR_LLM_BASE_URL, DS_OCR_BASE_URL, SILICONFLOW_API_KEY or LLM_BASE_URL): llm answers ocr_unavailable, auto uses tesseract")
	} else if cfg.OCR.UsesLLM() {
		log.Info("OCR engine", "engine", cfg.OCR.Engine, "model", cfg.OCR.Provider.Model, "endpoint_from", cfg.OCR.Source)
	}
	if !s.shared.LLM.Configured() {
		log.Warn("no LLM provider configured: chat answers 503 until LLM_BASE_URL (or LLM_PROVIDERS_FILE) is set")
	}
	// The metrics, before any tenant is built: HTTP figures from the access
	// log, tenant loads and unloads from the registry, each tenant's jobs,
	// LLM calls and limiter waits as they finish (Shared.Observer), the
	// rest read from the tenants at scrape. A provider outside the
	// configured ones (a teacher's own) is labelled "private".
	s.metrics = metrics.NewWith(metrics.Options{Snapshots: s.snapshots,
		Providers: slices.Concat(s.shared.LLM.Providers(), s.shared.OCRLLM.Providers())})
	s.shared.Observer = s.metrics
	s.fallback, err = tenantapp.New(tenantapp.Settings{
		TenantID:         tenantapp.DefaultTenantID,
		DataDir:          cfg.DataDir,
		UploadsDir:       cfg.UploadsDir,
		Limits:           cfg.Global,
		ChatWorkers:      cfg.ChatWorkers,
		Uploads:          cfg.uploads(),
		Chat:             cfg.Chat,
		Logger:           log,
		DefaultTeacherID: cfg.DefaultTeacherID,
		ProfileQueueMax:  cfg.ProfileQueueMax,
		Grading:          cfg.Grading,
		MCPAPIKey:        cfg.MCPAPIKey,
		MemoryAutoApply:  cfg.MemoryAutoApply,
		JobQueueMax:      cfg.JobQueueMax,
		Auth:             cfg.Auth,
	}, s.shared)
	if err == nil {
		err = s.fallback.Start(ctx)
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("default tenant: %w", err)
	}
	// /ready (and, with HEALTH_STRICT, a degraded /health) check the config
	// store and the tenant's directories before its router.
	ready := func(a *tenantapp.App) http.Handler {
		return tenantapp.WithReadiness(a, tenantapp.ReadyOptions{Strict: cfg.HealthStrict,
			Checks: []tenantapp.Check{{Name: "config_store", Run: store.Check}}})
	}
	s.registry = tenancy.NewRegistry(store, s.buildTenant, log,
		tenancy.RegistryOptions{IdleUnload: cfg.TenantIdleUnload, Handler: ready, Events: func(e tenancy.Event) {
			s.metrics.ObserveTenant(e.Kind, e.Tenant, e.Took)
		}})
	admin := tenancy.NewAdmin(store, s.registry, tenancy.AdminOptions{
		Key:      cfg.AdminKey,
		DataRoot: cfg.DataRoot,
		Reserved: []string{cfg.DataDir, cfg.UploadsDir, filepath.Dir(cfg.TenantDBPath)},
		Logger:   log,
	})
	var h http.Handler = tenancy.NewDispatcher(admin.Handler(), s.registry, ready(s.fallback), log)
	h = s.consoleRoutes(h)
	h = s.apidocRoutes(h)
	h = cfg.Body.Wrap(h)
	h = ratelimit.New(cfg.LoginRateLimit).Middleware(ratelimit.Not(isLoginRoute))(h)
	h = ratelimit.New(cfg.RateLimit).Middleware(isHealthRoute)(h)
	// CORS outermost: a 429 or a 413 still reaches the page that asked.
	h = cfg.CORS.Wrap(h)
	// The access log and the HTTP metrics are outermost, so refusals
	// (429, 413, preflights) are logged and counted too.
	s.handler = s.metricsRoute(accesslog.New(log, s.metrics)(h))
	return s, nil
}

// isHealthRoute: /health and /t/{id}/health are never rate limited.
func isHealthRoute(r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	return p == "/health" || p == "/ready" || strings.HasPrefix(p, "/t/") && strings.Count(p, "/") == 3 &&
		(strings.HasSuffix(p, "/health") || strings.HasSuffix(p, "/ready"))
}

// isLoginRoute: the credential routes (/auth/{student,teacher,admin}/login,
// identify, set-password), at the root or under /t/{id}, which get the
// tighter login limit too.
func isLoginRoute(r *http.Request) bool {
	p := r.URL.Path
	if strings.HasPrefix(p, "/t/") {
		if i := strings.IndexByte(p[3:], '/'); i >= 0 {
			p = p[3+i:]
		}
	}
	if !strings.HasPrefix(p, "/auth/") {
		return false
	}
	return strings.HasSuffix(p, "/login") || strings.HasSuffix(p, "/identify") || strings.HasSuffix(p, "/set-password")
}

// buildTenant makes a tenant's app from its stored config.
func (s *Server) buildTenant(rec tenancy.Record) (*tenantapp.App, error) {
	lim, err := tenancy.Limits(rec.Extra)
	if err != nil {
		s.log.Warn("tenant limits are invalid; using the defaults", "tenant", rec.TenantID, "err", err)
		lim = limits.TenantDefaults()
	}
	return tenantapp.New(tenantapp.Settings{
		TenantID:         rec.TenantID,
		DataDir:          rec.DataDir,
		UploadsDir:       rec.UploadsDir,
		Prefix:           "/t/" + rec.TenantID,
		Limits:           lim,
		ChatWorkers:      s.cfg.ChatWorkers,
		Uploads:          s.cfg.uploads(),
		Chat:             s.cfg.Chat,
		Logger:           s.log,
		DefaultTeacherID: s.cfg.DefaultTeacherID,
		ProfileQueueMax:  s.cfg.ProfileQueueMax,
		Grading:          s.cfg.Grading,
		MCPAPIKey:        s.cfg.MCPAPIKey,
		MemoryAutoApply:  s.cfg.MemoryAutoApply,
		JobQueueMax:      s.cfg.JobQueueMax,
		Auth:             s.cfg.Auth,
	}, s.shared)
}

// Handler is the root HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry exposes the tenant registry (for tests and the demo).
func (s *Server) Registry() *tenancy.Registry { return s.registry }

// Close stops every tenant's workers, then the default tenant, then closes
// the store. Call it after the HTTP server has stopped taking requests.
func (s *Server) Close(ctx context.Context) error {
	return errors.Join(
		s.registry.Close(ctx),
		s.fallback.Stop(ctx),
		s.store.Close(),
	)
}

// DemoLogin is a credential SeedDemo created, shown once.
type DemoLogin struct {
	Tenant, Role, ID, Password string
}

// seedDemoAccounts gives a demo tenant (auth on) a teacher and two
// students with generated passwords, the first time only: it returns none
// when the teacher exists already.
func (s *Server) seedDemoAccounts(ctx context.Context, tenant, dataDir string) ([]DemoLogin, error) {
	var out []DemoLogin
	err := s.registry.Use(ctx, tenant, func(app *tenantapp.App) error {
		reg := app.Accounts()
		if reg == nil {
			return nil
		}
		actor := accounts.Actor{ID: "demo", Role: accounts.RoleAdmin}
		pw := "Demo" + strconv.Itoa(100000+mrand.IntN(900000))
		t, err := reg.CreateTeacher(ctx, actor, accounts.NewTeacher{ID: "demo_teacher", Name: "演示老师", Password: pw})
		if errors.Is(err, accounts.ErrAlreadyExists) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, DemoLogin{tenant, "teacher", t.Account.ID, pw})
		for i, name := range []string{"演示学生甲", "演示学生乙"} {
			id := fmt.Sprintf("demo_student_%d", i+1)
			if err := atomicfile.WriteJSON(filepath.Join(dataDir, "student_profiles", id+".json"),
				map[string]any{"student_id": id, "student_name": name, "class_name": "演示班"}); err != nil {
				return err
			}
			creds, err := reg.ResetStudentPasswords(ctx, actor, accounts.StudentPasswordReset{StudentID: id})
			if err != nil {
				return err
			}
			for _, c := range creds {
				out = append(out, DemoLogin{tenant, "student", c.Account.ID, c.Password})
			}
		}
		return nil
	})
	return out, err
}

// DemoTenants are created by SeedDemo.
var DemoTenants = []string{"demo-north", "demo-south"}

// SeedDemo creates (or re-enables) the demo tenants with sample exams,
// under TENANT_DATA_ROOT when set, else beside DATA_DIR in "demo/". Exams
// that already exist are left alone. With auth on, the first run also
// creates a demo teacher and students and returns their credentials.
func (s *Server) SeedDemo(ctx context.Context) (tenants []string, logins []DemoLogin, err error) {
	base := s.cfg.DataRoot
	if base == "" {
		base = filepath.Join(filepath.Dir(s.cfg.DataDir), "demo")
	}
	for i, id := range DemoTenants {
		rec := tenancy.Record{
			TenantID:   id,
			DataDir:    filepath.Join(base, id, "data"),
			UploadsDir: filepath.Join(base, id, "uploads"),
			Enabled:    true,
			Extra:      map[string]any{"display_name": "Demo school " + id, "demo": true},
		}
		for _, e := range demo.SampleExams(uint64(100 * (i + 1))) {
			if _, err := demo.WriteExam(rec.DataDir, e); err != nil {
				return nil, nil, fmt.Errorf("demo tenant %s: %w", id, err)
			}
		}
		if _, err := s.registry.Put(ctx, rec); err != nil {
			return nil, nil, fmt.Errorf("demo tenant %s: %w", id, err)
		}
		l, err := s.seedDemoAccounts(ctx, id, rec.DataDir)
		if err != nil {
			return nil, nil, fmt.Errorf("demo tenant %s accounts: %w", id, err)
		}
		logins = append(logins, l...)
	}
	return DemoTenants, logins, nil
}

// metricsRoute serves GET /metrics (Prometheus exposition) to the admin key
// (X-Admin-Key) or the metrics token (Authorization: Bearer), and every
// other request to next. It is a plain path check, not a ServeMux, so
// unclean paths still reach the dispatcher that refuses them.
func (s *Server) metricsRoute(next http.Handler) http.Handler {
	serve := s.metrics.Handler()
	admin, token := []byte(s.cfg.AdminKey), []byte(s.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpjson.Fail(w, s.log, fault.New(fault.MethodNotAllowed, "method not allowed"))
			return
		}
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok := len(admin) > 0 && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Admin-Key")), admin) == 1 ||
			len(token) > 0 && subtle.ConstantTimeCompare([]byte(bearer), token) == 1
		if !ok {
			httpjson.Fail(w, s.log, fault.New(fault.Unauthorized, "unauthorized: GET /metrics needs X-Admin-Key or the METRICS_TOKEN bearer token"))
			return
		}
		serve.ServeHTTP(w, r)
	})
}

// snapshots are the figures of the default tenant and every loaded tenant,
// read at scrape time.
func (s *Server) snapshots(ctx context.Context) []metrics.TenantSnapshot {
	out := []metrics.TenantSnapshot{snapshot(tenantapp.DefaultTenantID, s.fallback.Status())}
	statuses := s.registry.Statuses()
	for _, id := range slices.Sorted(maps.Keys(statuses)) {
		out = append(out, snapshot(id, statuses[id]))
	}
	return out
}

func snapshot(id string, st tenantapp.Status) metrics.TenantSnapshot {
	sn := metrics.TenantSnapshot{Tenant: id, OCRPages: st.OCR.Pages, OCRFailures: st.OCR.Failures}
	for _, w := range st.Workers {
		sn.Workers = append(sn.Workers, metrics.WorkerSnapshot{Kind: w.Kind, Workers: w.Workers, Queued: w.Queued,
			MaxQueued: w.MaxQueued, Busy: w.Busy, Processed: w.Done, Failed: w.Failed})
	}
	// The LLM calls are events (Shared.Observer), by provider and kind.
	in, lim := st.LimitsInUse, st.EffectiveLimits
	sn.Pools = []metrics.PoolSnapshot{
		{Pool: limits.PoolLLMTotal, InUse: in.LLMTotal, Limit: lim.LLMTotal},
		{Pool: limits.PoolLLMStudent, InUse: in.LLMStudent, Limit: lim.LLMStudent},
		{Pool: limits.PoolLLMTeacher, InUse: in.LLMTeacher, Limit: lim.LLMTeacher},
		{Pool: limits.PoolOCR, InUse: in.OCR, Limit: lim.OCR},
	}
	return sn
}
