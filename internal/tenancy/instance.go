package tenancy

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/lectern/lectern/internal/tenantapp"
)

// Instance is what the registry needs of a loaded tenant, and all it
// knows of one: the registry builds an instance from the tenant's record,
// starts it, sends it requests, asks it whether it is busy (idle
// eviction keeps a busy tenant) and for its status (the admin API, the
// metrics), and stops it when it is replaced, disabled, idle or the
// registry closes. *tenantapp.App is the server's; a test's fake (see
// instance_test.go) lets the registry be tested alone.
//
// The registry calls Start at most once and Stop once, after the last
// request it let in has left (or the drain timeout passed), also when
// Start failed or was never called (a build refused, a registry closed
// meanwhile). Requests may reach an instance before its Start returns: a
// replacing instance takes the new requests at once, and starts its
// workers only once the instance it replaces has stopped, so the two
// never run the same job. ServeHTTP, Busy and Status may be called from
// many goroutines at once, Status even after Stop.
type Instance interface {
	http.Handler
	// Start starts the instance's background work; ctx bounds the start
	// only (it carries no request's values and ends when Start returns).
	Start(ctx context.Context) error
	// Stop stops the background work and waits for it, or until ctx ends.
	Stop(ctx context.Context) error
	// Busy reports whether work is queued or running (jobs), which keeps
	// the instance loaded however long it has had no request.
	Busy() bool
	// Status is a snapshot for the admin API and the metrics; it must not
	// block on the instance's work.
	Status() tenantapp.Status
}

var _ Instance = (*tenantapp.App)(nil)

// BuilderOf makes a tenant's (not yet started) instance from its stored
// config.
type BuilderOf[I Instance] func(rec Record) (I, error)

// Builder makes a tenant's (not yet started) app from its stored config:
// the builder of the server's [Registry].
type Builder = BuilderOf[*tenantapp.App]

// Registry is the server's registry: of tenant apps.
type Registry = RegistryOf[*tenantapp.App]

// RegistryOptions configure the server's [Registry].
type RegistryOptions = OptionsOf[*tenantapp.App]

// NewRegistry returns an empty registry of tenant apps over store (see
// [NewRegistryOf]).
func NewRegistry(store *Store, build Builder, log *slog.Logger, opts ...RegistryOptions) *Registry {
	return NewRegistryOf(store, build, log, opts...)
}
