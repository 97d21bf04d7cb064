package tenancy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

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
	case !cleanPath(r.URL.Path):
		// The default tenant's router would redirect to a cleaned path;
		// refuse instead, as for tenants.
		httpjson.Error(w, http.StatusNotFound, "Not Found")
	default:
		d.fallback.ServeHTTP(w, r)
	}
}

// serveTenant handles /t/<rawRest>.
func (d *Dispatcher) serveTenant(w http.ResponseWriter, r *http.Request, rawRest string) {
	id, r2, ok := tenantRequest(r, rawRest)
	if !ok {
		if id != "" { // a valid tenant, a bad path
			httpjson.Error(w, http.StatusNotFound, "Not Found")
			return
		}
		tenantNotFound(w)
		return
	}
	switch err := d.registry.Serve(w, r2, id); {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		tenantNotFound(w)
	case errors.Is(err, ErrClosed):
		httpjson.Error(w, http.StatusServiceUnavailable, "server is shutting down")
	default:
		d.log.Error("tenant could not be loaded", "tenant", id, "err", err)
		httpjson.Error(w, http.StatusServiceUnavailable, "tenant unavailable")
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
	if err != nil || !cleanPath(tail) {
		return id, nil, false
	}
	r2 = new(http.Request)
	*r2 = *r
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
	httpjson.Error(w, http.StatusNotFound, "tenant not found")
}

// cleanPath reports whether p (decoded) has no NUL byte and no "." or ".."
// segment, so it names the same thing before and after any cleaning.
func cleanPath(p string) bool {
	if strings.ContainsRune(p, 0) {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
