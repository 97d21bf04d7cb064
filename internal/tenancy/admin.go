package tenancy

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/tenantapp"
)

// AdminOptions configure the admin API.
type AdminOptions struct {
	// Key is TENANT_ADMIN_KEY; empty disables the API (every call is 401).
	Key string
	// DataRoot is TENANT_DATA_ROOT: when set, every tenant directory must
	// resolve strictly inside it.
	DataRoot string
	// Reserved are directories no tenant may overlap: the default tenant's
	// data and uploads directories and the config store's directory, each
	// resolved (symbolic links followed), as DataRoot is.
	Reserved []string
	Logger   *slog.Logger
}

// Admin is the tenant admin API.
type Admin struct {
	opts     AdminOptions
	store    *Store
	registry *Registry
	log      *slog.Logger
	// putMu serialises validation and storing of PUTs, so that two
	// concurrent PUTs cannot both pass the overlap check.
	putMu sync.Mutex
	// indexed: the overlap check's indexes were asked for (under putMu).
	indexed bool
}

// NewAdmin returns the admin API over store and registry.
func NewAdmin(store *Store, registry *Registry, opts AdminOptions) *Admin {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Admin{opts: opts, store: store, registry: registry, log: log}
}

// requireKey guards every admin route with X-Admin-Key.
func (a *Admin) requireKey(next http.Handler) http.Handler {
	key := []byte(a.opts.Key)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(key) == 0 {
			httpjson.Fail(w, a.log, fault.New(fault.Unauthorized, "admin key not configured"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Admin-Key")), key) != 1 {
			httpjson.Fail(w, a.log, fault.New(fault.Unauthorized, "unauthorized"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tenantView is a tenant as the admin API shows it.
type tenantView struct {
	Record
	Loaded bool `json:"loaded"`
	*LoadedInfo
}

func (a *Admin) view(rec Record, detail bool) tenantView {
	v := tenantView{Record: rec}
	if detail {
		if info, ok := a.registry.Info(rec.TenantID); ok {
			v.Loaded, v.LoadedInfo = true, &info
		}
		return v
	}
	v.Loaded = a.registry.IsLoaded(rec.TenantID)
	return v
}

func (a *Admin) handleList(w http.ResponseWriter, r *http.Request) {
	recs, err := a.store.List(r.Context(), false)
	if err != nil {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, err, "list tenants failed"))
		return
	}
	out := make([]tenantView, 0, len(recs))
	for _, rec := range recs {
		out = append(out, a.view(rec, false))
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenants": out})
}

func (a *Admin) handleGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidTenantID(id) {
		httpjson.Fail(w, a.log, errTenantNotFound)
		return
	}
	rec, err := a.store.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		httpjson.Fail(w, a.log, errTenantNotFound)
		return
	}
	if err != nil {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, err, "get tenant failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenant": a.view(rec, true)})
}

// putBody is the body of PUT /admin/tenants/{id}.
type putBody struct {
	DataDir    string         `json:"data_dir"`
	UploadsDir string         `json:"uploads_dir"`
	Enabled    *bool          `json:"enabled"`
	Extra      map[string]any `json:"extra"`
}

func (a *Admin) handlePut(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidTenantID(id) {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, "invalid tenant_id"))
		return
	}
	var body putBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	rec := Record{TenantID: id, Enabled: body.Enabled == nil || *body.Enabled, Extra: body.Extra}
	if rec.Extra == nil {
		rec.Extra = map[string]any{}
	}
	if _, err := Limits(rec.Extra); err != nil {
		httpjson.Fail(w, a.log, fault.Wrap(fault.Invalid, err, err.Error()))
		return
	}
	a.putMu.Lock()
	defer a.putMu.Unlock()
	if !a.indexed {
		a.indexed = true
		if err := a.store.ensureDirIndexes(r.Context()); err != nil {
			a.log.Warn("no index for the overlap check: each PUT scans every tenant", "err", err)
		}
	}
	var err error
	if rec.DataDir, rec.UploadsDir, err = CheckDirs(r.Context(), a.store, DirRules{DataRoot: a.opts.DataRoot, Reserved: a.opts.Reserved}, id, body.DataDir, body.UploadsDir); err != nil {
		// Every failure, a failed listing of the other tenants too, is
		// a 400 with its text, as it always was.
		httpjson.Fail(w, a.log, fault.Wrap(fault.Invalid, err, err.Error()))
		return
	}
	if _, err := a.registry.Put(r.Context(), rec); err != nil {
		if errors.Is(err, ErrClosed) {
			httpjson.Fail(w, a.log, fault.Wrap(fault.Unavailable, err, "server is shutting down"))
			return
		}
		// A client error, but one the operator must see too.
		a.log.Error("tenant config refused: it does not start", "tenant", id, "err", err)
		httpjson.Fail(w, a.log, fault.Wrap(fault.Invalid, err, fmt.Sprintf("tenant could not be started: %v", err)))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenant_id": id})
}

// DirRules are where a tenant's directories may be: inside DataRoot (when
// set), and overlapping none of Reserved (the server's own directories).
type DirRules struct {
	DataRoot string
	Reserved []string
}

// CheckDirs resolves a tenant's data and uploads directories (ResolveDir)
// and checks them against the rules, each other and every other tenant's
// in the store: the one check of the admin API and the tenants command.
// It returns the resolved directories, or an error saying which one is
// wrong and why.
func CheckDirs(ctx context.Context, store *Store, rules DirRules, id, dataDir, uploadsDir string) (string, string, error) {
	var resolved [2]string
	for i, d := range []struct{ field, value string }{{"data_dir", dataDir}, {"uploads_dir", uploadsDir}} {
		p, err := ResolveDir(d.value)
		if err != nil {
			return "", "", fmt.Errorf("%s %v", d.field, err)
		}
		if rules.DataRoot != "" && (p == rules.DataRoot || !within(p, rules.DataRoot)) {
			return "", "", fmt.Errorf("%s must be inside TENANT_DATA_ROOT (%s)", d.field, rules.DataRoot)
		}
		for _, res := range rules.Reserved {
			if overlaps(p, res) {
				return "", "", fmt.Errorf("%s overlaps %s, which belongs to the server", d.field, res)
			}
		}
		resolved[i] = p
	}
	if overlaps(resolved[0], resolved[1]) {
		return "", "", errors.New("data_dir and uploads_dir must be two separate directories, neither inside the other")
	}
	// Only the tenants whose directories may overlap are read (an index
	// lookup or two each: see mayOverlap), the first by id is reported.
	others, err := store.mayOverlap(ctx, id, resolved[0], resolved[1])
	if err != nil {
		return "", "", err
	}
	for _, o := range others {
		// Stored paths were resolved when they were stored: compare them as
		// they are, so a PUT costs no file-system call per other tenant.
		for _, theirs := range []string{o.DataDir, o.UploadsDir} {
			t := filepath.Clean(theirs)
			for i, field := range []string{"data_dir", "uploads_dir"} {
				if overlaps(resolved[i], t) {
					return "", "", fmt.Errorf("%s overlaps a directory of tenant %s", field, o.TenantID)
				}
			}
		}
	}
	return resolved[0], resolved[1], nil
}

func (a *Admin) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidTenantID(id) {
		httpjson.Fail(w, a.log, errTenantNotFound)
		return
	}
	switch err := a.registry.Disable(r.Context(), id); {
	case errors.Is(err, ErrNotFound):
		httpjson.Fail(w, a.log, errTenantNotFound)
	case err != nil:
		httpjson.Fail(w, a.log, fault.Wrap(fault.Internal, err, "disable tenant failed"))
	default:
		httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenant_id": id})
	}
}

// errTenantNotFound is the answer for a tenant id that names no tenant.
var errTenantNotFound = fault.New(fault.NotFound, "tenant not found")

// errNoRoute is the answer for a path no route serves.
var errNoRoute = fault.New(fault.NotFound, "Not Found")

func handleAdminNotFound(w http.ResponseWriter, r *http.Request) {
	httpjson.Fail(w, nil, errNoRoute)
}

// createAdminBody is the body of POST /admin/tenants/{id}/admins.
type createAdminBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// handleCreateAdmin creates an administrator account of the tenant (its
// first, or another): what the root X-Admin-Key may do inside a tenant. A
// password left out is generated and answered once. 409 when auth is off
// (the tenant has no accounts), or the username exists.
func (a *Admin) handleCreateAdmin(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidTenantID(id) {
		httpjson.Fail(w, a.log, errTenantNotFound)
		return
	}
	var body createAdminBody
	if err := httpjson.Decode(w, r, &body); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	var out map[string]any
	err := a.registry.Use(r.Context(), id, func(app *tenantapp.App) error {
		reg := app.Accounts()
		if reg == nil {
			return fault.New(fault.Conflict, "authentication is off: set AUTH_TOKEN_SECRET (or AUTH_REQUIRED=1) to give tenants accounts")
		}
		c, err := reg.CreateAdmin(r.Context(), accounts.Actor{ID: "root", Role: accounts.RoleAdmin, ClientAddr: r.RemoteAddr}, body.Username, body.Password)
		if err != nil {
			code := accounts.Code(err)
			if code == "" {
				return fault.Wrap(fault.Internal, err, "create admin failed")
			}
			if errors.Is(err, accounts.ErrAlreadyExists) {
				return fault.Wrap(fault.Conflict, err, code)
			}
			return fault.Wrap(fault.Invalid, err, code)
		}
		out = map[string]any{"ok": true, "tenant_id": id, "username": c.Account.ID}
		if c.GeneratedPassword {
			out["password"] = c.Password
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		httpjson.Fail(w, a.log, errTenantNotFound)
	case err != nil:
		httpjson.Fail(w, a.log, err)
	default:
		httpjson.Write(w, http.StatusOK, out)
	}
}
