package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/lectern/lectern/internal/console"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/tenancy"
	"github.com/lectern/lectern/internal/tenantapp"
)

// consoleRoutes puts the operator console (/admin/console/) and the
// landing page (GET /) in front of next, the dispatcher.
func (s *Server) consoleRoutes(next http.Handler) http.Handler {
	return console.New(console.Options{Key: s.cfg.AdminKey, Source: consoleSource{s}, Logger: s.log}).Wrap(next)
}

// consoleSource is what the console reads: the config store, the
// registry (without loading a tenant, except for its exams) and the
// default tenant.
type consoleSource struct{ s *Server }

func (c consoleSource) defaultTenant() console.Tenant {
	st := c.s.fallback.Status()
	return console.Tenant{ID: tenantapp.DefaultTenantID, Default: true, Enabled: true, Loaded: true,
		DataDir: c.s.cfg.DataDir, UploadsDir: c.s.cfg.UploadsDir, Extra: map[string]any{},
		Limits: c.s.cfg.Global, Status: &st}
}

func (c consoleSource) tenant(rec tenancy.Record) console.Tenant {
	t := console.Tenant{ID: rec.TenantID, Enabled: rec.Enabled, DataDir: rec.DataDir, UploadsDir: rec.UploadsDir,
		UpdatedAt: rec.UpdatedAt, Extra: rec.Extra}
	if t.Extra == nil {
		t.Extra = map[string]any{}
	}
	lim, err := tenancy.Limits(rec.Extra)
	if err != nil {
		// buildTenant runs such a tenant on the defaults.
		t.LimitsError, lim = err.Error(), limits.TenantDefaults()
	}
	t.Limits = lim
	if info, ok := c.s.registry.Info(rec.TenantID); ok {
		n := info.InFlight
		t.Loaded, t.InFlight, t.LoadedAt, t.Status = true, &n, info.LoadedAt, &info.Status
	}
	return t
}

func (c consoleSource) Tenants(ctx context.Context) ([]console.Tenant, error) {
	recs, err := c.s.store.List(ctx, false)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list tenants failed")
	}
	out := make([]console.Tenant, 0, len(recs)+1)
	out = append(out, c.defaultTenant())
	for _, rec := range recs {
		out = append(out, c.tenant(rec))
	}
	return out, nil
}

func (c consoleSource) Tenant(ctx context.Context, id string) (console.Tenant, error) {
	if id == tenantapp.DefaultTenantID {
		return c.defaultTenant(), nil
	}
	rec, err := c.s.store.Get(ctx, id)
	if errors.Is(err, tenancy.ErrNotFound) {
		return console.Tenant{}, errConsoleTenantNotFound
	}
	if err != nil {
		return console.Tenant{}, fault.Wrap(fault.Internal, err, "get tenant failed")
	}
	return c.tenant(rec), nil
}

var errConsoleTenantNotFound = fault.New(fault.NotFound, "tenant not found")

func (c consoleSource) FailedJobs(ctx context.Context, id string, perKind int) ([]tenantapp.FailedJob, error) {
	uploads := c.s.cfg.UploadsDir
	if id != tenantapp.DefaultTenantID {
		t, err := c.Tenant(ctx, id)
		if err != nil {
			return nil, err
		}
		uploads = t.UploadsDir
	}
	jobs, err := tenantapp.FailedJobs(uploads, perKind)
	if err != nil && len(jobs) == 0 {
		return nil, fault.Wrap(fault.Internal, err, "read failed jobs failed")
	}
	if err != nil {
		c.s.log.Warn("some job stores could not be read", "tenant", id, "err", err)
	}
	return jobs, nil
}

// use runs f on the default tenant or on tenant id, loading it; a tenant
// that does not exist or is disabled is NotFound.
func (c consoleSource) use(ctx context.Context, id string, f func(*tenantapp.App) error) error {
	if id == tenantapp.DefaultTenantID {
		return f(c.s.fallback)
	}
	err := c.s.registry.Use(ctx, id, f)
	var fe *fault.Error
	switch {
	case errors.Is(err, tenancy.ErrNotFound):
		return errConsoleTenantNotFound
	case errors.Is(err, tenancy.ErrClosed):
		return fault.Wrap(fault.Unavailable, err, "server is shutting down")
	case err != nil && !errors.As(err, &fe):
		// Not f's answer (always a fault): the tenant did not load.
		c.s.log.Error("tenant could not be loaded", "tenant", id, "err", err)
		return fault.Wrap(fault.Unavailable, err, "tenant unavailable")
	}
	return err
}

func (c consoleSource) Exams(ctx context.Context, id string) ([]exams.Summary, error) {
	var out []exams.Summary
	err := c.use(ctx, id, func(a *tenantapp.App) error {
		var err error
		if out, err = a.ExamSummaries(); err != nil {
			return fault.Wrap(fault.Internal, err, "list exams failed")
		}
		return nil
	})
	return out, err
}

func (c consoleSource) Chart(ctx context.Context, id, examID, name string) ([]byte, error) {
	var svg []byte
	err := c.use(ctx, id, func(a *tenantapp.App) error {
		var err error
		svg, err = a.ExamChart(examID, name)
		return err
	})
	return svg, err
}
