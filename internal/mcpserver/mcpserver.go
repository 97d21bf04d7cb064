// Package mcpserver serves one tenant's tool registry over the Model
// Context Protocol, with the official Go SDK's Streamable HTTP transport.
//
// The integrator mounts one Handler per tenant (at /mcp, which the
// dispatcher serves as /t/{id}/mcp for a named tenant), so an MCP client only
// ever reaches the registry, and so the data, of the tenant it addressed.
//
// Who calls: the principal the tenant's authenticate middleware put in the
// request's context (caller.From), which the Handler narrows to a teacher,
// since every MCP tool is a teacher tool —
//
//   - a verified teacher (bearer token) acts as itself; a verified tenant
//     admin acts as the teacher it is bound to (its own workspace, or the
//     teacher_id it names), as on the teacher routes;
//   - a valid X-API-Key (MCP_API_KEY, the predecessor's credential, compared
//     in constant time) acts as the tenant's service teacher: role teacher,
//     the tenant's default teacher id, Via Token (the key is a credential).
//     A wrong key is 401 {"detail":"invalid_api_key"}. A verified bearer
//     token sent together with a valid key keeps its own identity;
//   - when a key is configured every request needs a credential (the key or
//     a token), in open mode too, as the predecessor required the key;
//   - in open mode without a key, anyone acts as a teacher: the claimed
//     teacher_id, else the default (the predecessor had no auth then);
//   - students (verified or claimed) are refused with 403: the tools are
//     teacher tools. A refused credential (another tenant's token, a stale
//     one) is answered with its own fault.
//
// The transport runs stateless (no Mcp-Session-Id): every POST is a
// complete exchange whose tool calls run as that very request's principal,
// so a token revoked between two calls stops the second one, and a session
// can never be borrowed by another caller. Answers are plain JSON
// (application/json), which is also what the predecessor's clients read.
package mcpserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/tools"
)

// APIKeyHeader carries MCP_API_KEY (the predecessor's header).
const APIKeyHeader = "X-API-Key"

// Defaults of the zero Config fields.
const (
	DefaultMaxBodyBytes = 1 << 20 // as every JSON body of the API
	DefaultCallTimeout  = 60 * time.Second
	DefaultVersion      = "0"
)

// Config configures one tenant's MCP handler.
type Config struct {
	// Registry returns the tenant's tool registry (required). It is called
	// on every request, so it should be cheap (a built-once value); when it
	// returns a different registry the MCP server is rebuilt over it. An
	// error is answered 503.
	Registry func(context.Context) (*tools.Registry, error)
	// Resolver names the tenant and its default teacher: the identity of
	// a request that presents a valid X-API-Key. Pass the tenant's
	// Authenticator.Resolver.
	Resolver caller.Resolver
	// Enforcing is true when the tenant checks credentials (auth on:
	// Authenticator.Enforcing()).
	Enforcing bool
	// APIKey is MCP_API_KEY; "" means no key (an X-API-Key header then
	// means nothing and is ignored).
	APIKey string
	// MaxBodyBytes bounds a request body (DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// CallTimeout bounds one tool call (DefaultCallTimeout).
	CallTimeout time.Duration
	// Version is the serverInfo version the server reports.
	Version string
	Logger  *slog.Logger
}

// Handler serves MCP for one tenant. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	hasKey  bool
	keySum  [sha256.Size]byte
	service caller.Principal // who a valid X-API-Key acts as
	sdk     *mcp.StreamableHTTPHandler

	mu    sync.Mutex
	built *built // the server over the registry last seen
}

// built is an MCP server over one registry.
type built struct {
	reg *tools.Registry
	srv *mcp.Server
}

// New returns the tenant's MCP handler. It panics without a Registry
// function (a wiring mistake).
func New(cfg Config) *Handler {
	if cfg.Registry == nil {
		panic("mcpserver: Config.Registry is nil")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{cfg: cfg, log: log, hasKey: cfg.APIKey != ""}
	if h.hasKey {
		// Comparing digests keeps the comparison constant-time in the
		// key's length too.
		h.keySum = sha256.Sum256([]byte(cfg.APIKey))
	}
	h.service = cfg.Resolver.Resolve(caller.Claims{})
	h.service.Role, h.service.StudentID, h.service.Via = caller.RoleTeacher, "", caller.Token
	h.sdk = mcp.NewStreamableHTTPHandler(serverOf, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		// The bound is checked again by the SDK while it reads (chunked
		// bodies have no Content-Length).
		MaxRequestBodyBytes: cfg.MaxBodyBytes,
		// A client that hangs up cancels its call (newer protocol versions;
		// older ones end at CallTimeout).
		PropagateRequestCancellation: true,
		// The SDK's DNS-rebinding guard refuses a loopback connection whose
		// Host is not loopback, which is every request of a reverse proxy on
		// the same machine. Lectern's other routes have no such check and
		// MCP is authenticated as they are, so it is off.
		DisableLocalhostProtection: true,
		Logger:                     sdkLogger(log),
	})
	return h
}

// sdkLogger is log for the SDK's own messages, from warnings up: it logs
// every (per-request, stateless) session's start and end at info.
func sdkLogger(log *slog.Logger) *slog.Logger {
	return slog.New(minLevel{log.Handler(), slog.LevelWarn})
}

// minLevel drops records below its level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.min}
}

// serverKey carries the request's MCP server to serverOf.
type serverKey struct{}

// serverOf is the SDK's getServer: the server ServeHTTP chose.
func serverOf(r *http.Request) *mcp.Server {
	s, _ := r.Context().Value(serverKey{}).(*mcp.Server)
	return s
}

// Refusals, with the codes of the rest of the API.
var (
	errInvalidKey error = fault.New(fault.Unauthorized, "invalid_api_key")
	errMissing    error = fault.New(fault.Unauthorized, "missing_authorization")
	errForbidden  error = fault.New(fault.Forbidden, "forbidden")
	errTenant     error = fault.New(fault.Forbidden, "forbidden_tenant_scope")
	errTooLarge   error = fault.Wrap(fault.TooLarge, httpjson.ErrBodyTooLarge, "request body too large")
)

// ServeHTTP authenticates the request, then hands it to the SDK's
// Streamable HTTP handler with the principal in its context: the tools it
// calls run as that principal.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		httpjson.Fail(w, h.log, err)
		return
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		httpjson.Fail(w, h.log, errTooLarge)
		return
	}
	srv, err := h.server(r.Context())
	if err != nil {
		httpjson.Fail(w, h.log, fault.Wrap(fault.Unavailable, err, "tools_unavailable"))
		return
	}
	ctx := context.WithValue(caller.With(r.Context(), p), serverKey{}, srv)
	h.sdk.ServeHTTP(w, r.WithContext(ctx))
}

// principal is who the request's tool calls run as (see the package
// comment), or why it may not call any.
func (h *Handler) principal(r *http.Request) (caller.Principal, error) {
	p := caller.From(r.Context())
	if p.Refused != nil {
		return p, p.Refused
	}
	if t := h.cfg.Resolver.Tenant; t != "" && p.Tenant != "" && p.Tenant != t {
		return p, errTenant // never act on another tenant's registry
	}
	if key := r.Header.Get(APIKeyHeader); key != "" && h.hasKey {
		sum := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(sum[:], h.keySum[:]) != 1 {
			return p, errInvalidKey
		}
		if !p.Verified() {
			p = h.service
		}
	}
	switch {
	case p.Verified():
	case h.hasKey || h.cfg.Enforcing:
		return p, errMissing
	case p.Role == caller.RoleStudent:
		return p, errForbidden
	default:
		// Open mode, no key: the predecessor's unauthenticated server.
		p.Role, p.StudentID = caller.RoleTeacher, ""
		return p, nil
	}
	switch p.Role {
	case caller.RoleTeacher:
	case caller.RoleAdmin:
		// The registry gives tools to teachers and students only; the
		// admin works as the teacher its token is bound to.
		p.Role, p.StudentID = caller.RoleTeacher, ""
	default:
		return p, errForbidden
	}
	return p, nil
}

// server returns the MCP server over the tenant's current registry,
// building it when the registry is new.
func (h *Handler) server(ctx context.Context) (*mcp.Server, error) {
	reg, err := h.cfg.Registry(ctx)
	if err == nil && reg == nil {
		err = errors.New("no tool registry")
	}
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.built == nil || h.built.reg != reg {
		h.built = &built{reg: reg, srv: h.newServer(reg)}
	}
	return h.built.srv, nil
}
