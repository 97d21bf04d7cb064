// Package console is Lectern's operator console, served by the binary at
// /admin/console/, and the small landing page at GET / of the default
// tenant.
//
// The pages are html/template shells that hold no data, with one embedded
// script and style sheet (no CDN, no build step). The operator signs in
// with the admin key (TENANT_ADMIN_KEY), which the script keeps in the
// tab's sessionStorage and sends as X-Admin-Key on every call: to the admin
// API (GET/PUT/DELETE /admin/tenants[/{id}]) to create, change and disable
// tenants, and to the read-only JSON under /admin/console/api/ this package
// serves (the tenants with their status, a tenant's failed jobs, its exams
// and their SVG charts). Every label of the pages and the script comes from
// one table (labels.json), in Chinese and English.
package console

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/tenancy"
	"github.com/lectern/lectern/internal/tenantapp"
)

// Prefix is where the console is served.
const Prefix = "/admin/console/"

// Tenant is one tenant as the console shows it: its stored config and,
// when it is loaded, its status.
type Tenant struct {
	ID string `json:"tenant_id"`
	// Default marks the default tenant (the root routes), configured by
	// the server's environment rather than the store.
	Default bool `json:"default"`
	Enabled bool `json:"enabled"`
	Loaded  bool `json:"loaded"`
	// InFlight counts the requests inside a loaded tenant; nil where the
	// server does not count them (the default tenant).
	InFlight   *int           `json:"in_flight"`
	LoadedAt   string         `json:"loaded_at,omitempty"`
	DataDir    string         `json:"data_dir"`
	UploadsDir string         `json:"uploads_dir"`
	UpdatedAt  string         `json:"updated_at,omitempty"`
	Extra      map[string]any `json:"extra"`
	// Limits are the limits the config asks for (tenancy.Limits of
	// Extra), known without loading the tenant; LimitsError says why the
	// config's limits are refused (the tenant then runs on the defaults).
	Limits      limits.Config `json:"limits"`
	LimitsError string        `json:"limits_error,omitempty"`
	// Status is the loaded tenant's snapshot; nil when not loaded.
	Status *tenantapp.Status `json:"status"`
}

// Summary are the figures of one row of the tenants table, summed over
// the worker kinds.
type Summary struct {
	Queued    int   `json:"queued"`
	MaxQueued int   `json:"max_queued"`
	Busy      int   `json:"busy"`
	Workers   int   `json:"workers"`
	LLMCalls  int64 `json:"llm_calls"`  // today (local time), since the tenant was loaded
	LLMTokens int64 `json:"llm_tokens"` // the same
}

// Source is what the console reads; the server implements it over its
// config store, its registry and its default tenant. Errors are faults
// (NotFound for a tenant that does not exist or is disabled where it must
// be loaded).
type Source interface {
	// Tenants lists the default tenant first, then every stored tenant.
	Tenants(ctx context.Context) ([]Tenant, error)
	// Tenant is one of them (id "_default" is the default tenant).
	Tenant(ctx context.Context, id string) (Tenant, error)
	// FailedJobs are the tenant's most recent failed jobs, at most
	// perKind of each worker kind.
	FailedJobs(ctx context.Context, id string, perKind int) ([]tenantapp.FailedJob, error)
	// Exams lists the tenant's exams, newest first (loading the tenant).
	Exams(ctx context.Context, id string) ([]exams.Summary, error)
	// Chart is the SVG of chart name of exam examID of the tenant.
	Chart(ctx context.Context, id, examID, name string) ([]byte, error)
}

// Options configure the console.
type Options struct {
	// Key is the admin key (TENANT_ADMIN_KEY); empty closes the console's
	// API (every call is 401), as it closes the admin API.
	Key    string
	Source Source
	// Version is shown on the landing page; "" reads the module version
	// from the binary's build information.
	Version string
	Logger  *slog.Logger
}

// Console serves the console and the landing page.
type Console struct {
	key     []byte
	src     Source
	log     *slog.Logger
	version string
	pages   *pages
	mux     *http.ServeMux
}

// New returns the console.
func New(o Options) *Console {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{key: []byte(o.Key), src: o.Source, log: log, version: o.Version, pages: loadPages()}
	if c.version == "" {
		c.version = buildVersion()
	}
	c.mux = c.routes()
	return c
}

// Wrap serves GET and HEAD / (the landing page) and everything under
// /admin/console, and passes every other request to next.
func (c *Console) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			c.serve(w, r)
		case p == "/admin/console" || strings.HasPrefix(p, Prefix):
			c.serve(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// serve answers one console request: the security headers of every
// answer, then the route.
func (c *Console) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		httpjson.Fail(w, c.log, fault.New(fault.MethodNotAllowed, "method not allowed"))
		return
	}
	if !tenancy.CleanPath(r.URL.Path) || strings.HasPrefix(r.URL.EscapedPath(), Prefix) != strings.HasPrefix(r.URL.Path, Prefix) {
		httpjson.Fail(w, c.log, errNoRoute)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// csp allows the console's own script, style sheet and calls, and the
// charts it draws from blob: URLs of the SVGs it fetched with the key; no
// inline script, no frame.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var errNoRoute = fault.New(fault.NotFound, "Not Found")

// routes maps the console. Each route notes its pattern for the access
// log and the metrics (a pattern, never the raw path).
func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if m := policy.MatchOf(w); m != nil {
				m.Pattern = pattern
				if pattern == "GET /{$}" {
					m.Tenant = tenantapp.DefaultTenantID
				}
			}
			h(w, r)
		})
	}
	handle("GET /{$}", c.handleLanding)
	handle("GET /admin/console", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})
	handle("GET /admin/console/{$}", c.handleIndex)
	handle("GET /admin/console/tenants/{id}", c.handleTenantPage)
	handle("GET /admin/console/static/{file}", c.handleStatic)
	handle("GET /admin/console/api/tenants", c.requireKey(c.handleTenants))
	handle("GET /admin/console/api/tenants/{id}", c.requireKey(c.handleTenant))
	handle("GET /admin/console/api/tenants/{id}/failed-jobs", c.requireKey(c.handleFailedJobs))
	handle("GET /admin/console/api/tenants/{id}/exams", c.requireKey(c.handleExams))
	handle("GET /admin/console/api/tenants/{id}/exams/{exam_id}/charts/{name}", c.requireKey(c.handleChart))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { httpjson.Fail(w, c.log, errNoRoute) })
	return mux
}

// requireKey checks X-Admin-Key in constant time, as the admin API does.
func (c *Console) requireKey(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if len(c.key) == 0 {
			httpjson.Fail(w, c.log, fault.New(fault.Unauthorized, "admin key not configured"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Admin-Key")), c.key) != 1 {
			httpjson.Fail(w, c.log, fault.New(fault.Unauthorized, "unauthorized"))
			return
		}
		next(w, r)
	}
}

// buildVersion is the main module's version and VCS revision, as far as
// the build recorded them.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			rev := s.Value[:min(len(s.Value), 12)]
			if v == "" || v == "(devel)" {
				return rev
			}
			return v + " (" + rev + ")"
		}
	}
	return v
}
