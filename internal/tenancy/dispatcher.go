package tenancy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// Dispatcher is the root handler: /admin/... goes to the admin API,
// /t/{id}[/rest] to tenant id with the path rewritten to /rest, and every
// other path to the default tenant.
type Dispatcher struct {
	admin    http.Handler
	registry *Registry
	fallback http.Handler
	log      *slog.Logger
}

// NewDispatcher returns the root handler.
func NewDispatcher(admin http.Handler, registry *Registry, defaultTenant http.Handler, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{admin: admin, registry: registry, fallback: defaultTenant, log: log}
}

func (d *Dispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(raw, "/admin/"):
		d.admin.ServeHTTP(w, r)
	case strings.HasPrefix(raw, "/t/"):
		d.serveTenant(w, r, raw[len("/t/"):])
	case !CleanPath(r.URL.Path):
		// The router would redirect to a cleaned path; a path that is not
		// already clean is refused instead, as for tenants.
		httpjson.Fail(w, d.log, errNoRoute)
	default:
		d.fallback.ServeHTTP(w, r)
	}
}

// serveTenant handles /t/<rawRest>.
func (d *Dispatcher) serveTenant(w http.ResponseWriter, r *http.Request, rawRest string) {
	id, r2, ok := tenantRequest(r, rawRest)
	if !ok {
		if id != "" { // a valid tenant, a bad path
			httpjson.Fail(w, d.log, errNoRoute)
			return
		}
		tenantNotFound(w)
		return
	}
	switch err := d.registry.Serve(&prefixedWriter{ResponseWriter: w, tenant: id}, r2, id); {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		tenantNotFound(w)
	case errors.Is(err, ErrClosed):
		httpjson.Fail(w, d.log, fault.Wrap(fault.Unavailable, err, "server is shutting down"))
	default:
		// Unavailable, not Internal: Fail does not log it, so it is logged
		// here, with the tenant.
		d.log.Error("tenant could not be loaded", "tenant", id, "err", err)
		httpjson.Fail(w, d.log, fault.Wrap(fault.Unavailable, err, "tenant unavailable"))
	}
}

// tenantRequest splits /t/<rawRest> into the tenant id and the request the
// tenant sees, with its path rewritten to the rest (or "/") and the query
// kept. rawRest is still percent-encoded, so an encoded slash can never
// split or join segments. ok is false for an invalid id (id is then ""),
// or for a NUL byte or a "." or ".." segment anywhere in the rest (id is
// then set).
func tenantRequest(r *http.Request, rawRest string) (id string, r2 *http.Request, ok bool) {
	rawID, rawTail, _ := strings.Cut(rawRest, "/")
	id, err := url.PathUnescape(rawID)
	if err != nil || !ValidTenantID(id) {
		return "", nil, false
	}
	rawTail = "/" + rawTail
	tail, err := url.PathUnescape(rawTail)
	if err != nil || !CleanPath(tail) {
		return id, nil, false
	}
	// The tenant rides in the context too: the tenant's authenticate
	// middleware checks it is its own.
	r2 = r.WithContext(caller.WithTenant(r.Context(), id))
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = tail
	r2.URL.RawPath = ""
	if rawTail != r2.URL.EscapedPath() {
		r2.URL.RawPath = rawTail
	}
	return id, r2, true
}

func tenantNotFound(w http.ResponseWriter) {
	httpjson.Fail(w, nil, errTenantNotFound)
}

// CleanPath reports whether p (decoded) is already clean: no NUL byte, no
// "." or ".." segment and no empty segment ("//"), so no router cleans or
// redirects it (a trailing slash is allowed: it redirects nowhere). A tenant
// router that redirected "/t/a//exams" to its cleaned path would send the
// client to "/exams", which is the default tenant. Every handler in front of
// a mux (the dispatcher, the console) refuses the others with it.
func CleanPath(p string) bool {
	if strings.ContainsRune(p, 0) || strings.Contains(p, "//") {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// prefixedWriter keeps a tenant's responses inside its prefix: the tenant
// sees paths relative to /t/<id>, so a Location it sets relative to its
// root ("/exams") is rewritten under the prefix ("/t/<id>/exams"). An
// absolute URL or a scheme-relative "//host" Location is refused: no
// tenant may send a client to another tenant or another site; so is a
// relative Location that climbs ("../").
type prefixedWriter struct {
	http.ResponseWriter
	tenant      string // the prefix is "/t/" + tenant
	wroteHeader bool
}

func (p *prefixedWriter) WriteHeader(status int) {
	if !p.wroteHeader {
		p.wroteHeader = true
		h := p.ResponseWriter.Header()
		if loc := h.Get("Location"); loc != "" {
			switch {
			case strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.HasPrefix(loc, `/\`):
				h.Set("Location", "/t/"+p.tenant+loc)
			case !strings.HasPrefix(loc, "/") && !strings.ContainsAny(loc, `:\`) && CleanPath("/"+loc):
				// relative to the request and not climbing: it stays inside
			default:
				h.Del("Location")
				h.Del("Content-Length")
				httpjson.Error(p.ResponseWriter, http.StatusInternalServerError, "tenant redirect refused")
				p.ResponseWriter = discard{p.ResponseWriter}
				return
			}
		}
	}
	p.ResponseWriter.WriteHeader(status)
}

func (p *prefixedWriter) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (p *prefixedWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// discard swallows the body of a refused response.
type discard struct{ http.ResponseWriter }

func (discard) WriteHeader(int)             {}
func (discard) Write(b []byte) (int, error) { return len(b), nil }
