// Package policy says who may call each route and run each tool. A rule
// is registered with its route (Mux.Handle takes one), so a route without
// a rule cannot be registered, and the route table (Mux.Routes) is what the
// access-matrix test walks.
//
// In open mode (no credentials configured) every rule passes except those
// marked Strict, as the predecessor's guards were no-ops then; the tenant
// admin's routes are never open. With authentication on, a rule needs a
// verified principal of one of its roles.
package policy

import (
	"net/http"
	"slices"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
)

// Rule is who may call a route or run a tool.
type Rule struct {
	name   string
	public bool          // anyone, even without a credential
	login  bool          // and a refused credential does not matter
	roles  []caller.Role // else: a principal of one of these
	strict bool          // checked in open mode too
}

// The rules. Admin here is a tenant's administrator account, not the
// process's X-Admin-Key (the tenancy package guards that one).
var (
	// Public: /health. Anyone without a credential; a credential that is
	// presented must hold (another tenant's token is refused here too).
	Public = Rule{name: "public", public: true}
	// Login: the login-flow routes. Anyone, whatever credential the
	// request carries (a stale token must never stop a login).
	Login = Rule{name: "login", public: true, login: true}
	// Signed: any signed-in principal (the predecessor's "any valid
	// token": /upload, /student/verify, ...).
	Signed = Rule{name: "signed", roles: []caller.Role{caller.RoleStudent, caller.RoleTeacher, caller.RoleAdmin}}
	// Teacher: teachers and the tenant admin.
	Teacher = Rule{name: "teacher", roles: []caller.Role{caller.RoleTeacher, caller.RoleAdmin}}
	// Student: a student's own data: the student, the tenant's teachers
	// (who act on every student of the tenant) and the tenant admin; a
	// student naming another student is refused by its token's scope.
	Student = Rule{name: "student", roles: []caller.Role{caller.RoleStudent, caller.RoleTeacher, caller.RoleAdmin}}
	// Admin: the tenant admin only, in every mode.
	Admin = Rule{name: "admin", roles: []caller.Role{caller.RoleAdmin}, strict: true}
	// MCP: the MCP endpoint, which admits its callers itself because it
	// takes a credential of its own besides tokens (MCP_API_KEY as
	// X-API-Key; internal/mcpserver): the route lets every request reach
	// it, as Public does (a presented token must hold), and the handler
	// admits teachers, the tenant admin and the key, as Teacher would.
	MCP = Rule{name: "mcp", public: true}
)

// String names the rule (for the route table and logs).
func (r Rule) String() string { return r.name }

// Denials, with the predecessor's detail codes.
var (
	errMissing   error = fault.New(fault.Unauthorized, "missing_authorization")
	errForbidden error = fault.New(fault.Forbidden, "forbidden")
)

// Check reports whether p may pass r (nil), or why not (a fault:
// unauthorized without a credential, forbidden for another role);
// enforcing is true when authentication is on.
func (r Rule) Check(p caller.Principal, enforcing bool) error {
	switch {
	case r.login:
		return nil
	case p.Refused != nil:
		return p.Refused
	case r.public:
		return nil
	case !enforcing && !r.strict:
		return nil
	case !p.Verified():
		return errMissing
	case !slices.Contains(r.roles, p.Role):
		return errForbidden
	}
	return nil
}

// Allows reports whether a principal of role may run a tool under r
// (tools run as the chat's principal, whose role is already checked).
func (r Rule) Allows(role caller.Role) bool {
	return r.public || slices.Contains(r.roles, role)
}

// Owns reports whether p may see or act on something that belongs to
// owner (a chat job, an upload job): the ownership half of the policy. Only
// a verified principal is checked (in open mode anyone may, as with the
// predecessor): the tenant admin always; a teacher or a student only what
// is its own, same role and same id. Something without an owner belongs to
// nobody but the admin.
func Owns(p, owner caller.Principal) bool {
	if !p.Verified() || p.Role == caller.RoleAdmin {
		return true
	}
	switch p.Role {
	case caller.RoleTeacher:
		return owner.Role == caller.RoleTeacher && owner.TeacherID != "" && owner.TeacherID == p.TeacherID
	case caller.RoleStudent:
		return owner.Role == caller.RoleStudent && owner.StudentID != "" && owner.StudentID == p.StudentID
	}
	return false
}

// Route is one entry of the route table.
type Route struct {
	Pattern string // "METHOD /path", as http.ServeMux takes it
	Rule    Rule
}

// Mux is an http.ServeMux whose every route carries its rule.
type Mux struct {
	mux       *http.ServeMux
	enforcing bool
	routes    []Route
	deny      func(http.ResponseWriter, *http.Request, error)
}

// NewMux returns an empty Mux; deny answers a refused request.
func NewMux(enforcing bool, deny func(http.ResponseWriter, *http.Request, error)) *Mux {
	return &Mux{mux: http.NewServeMux(), enforcing: enforcing, deny: deny}
}

// Handle registers h for pattern under rule: the principal in the
// request's context is checked before h runs.
func (m *Mux) Handle(pattern string, rule Rule, h http.Handler) {
	if rule.name == "" {
		panic("policy: route " + pattern + " registered without a rule")
	}
	m.routes = append(m.routes, Route{Pattern: pattern, Rule: rule})
	m.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt := MatchOf(w); mt != nil {
			mt.Pattern, mt.Rule = pattern, rule
		}
		if err := rule.Check(caller.From(r.Context()), m.enforcing); err != nil {
			m.deny(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// HandleFunc is Handle for a function.
func (m *Mux) HandleFunc(pattern string, rule Rule, h http.HandlerFunc) { m.Handle(pattern, rule, h) }

// Routes is the route table, in registration order.
func (m *Mux) Routes() []Route { return slices.Clone(m.routes) }

func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if mt := MatchOf(w); mt != nil {
		// The tenant, even when no route matches (a 404 or a 405 is still
		// the tenant's).
		if mt.Tenant = caller.From(r.Context()).Tenant; mt.Tenant == "" {
			mt.Tenant = caller.TenantFrom(r.Context())
		}
	}
	m.mux.ServeHTTP(w, r)
}

// Match is what a Mux matched for a request: its route pattern, the
// route's rule and the tenant that served it. An outer middleware (the
// access log, the metrics) hands the handler chain a ResponseWriter that
// carries an empty Match (see MatchOf), and reads it once the request is
// done: a Mux fills it before its handler runs (before the rule is
// checked, so a refused request has its pattern too). A request that no
// Mux route matched has only its Tenant set (by the Mux it reached, if
// any). On the writer, not in the context: the writer is the request's
// own, so the middleware can reuse it for the next request, while a
// context may be kept past the request.
type Match struct {
	Pattern string // "METHOD /path" as registered, never the raw path
	Rule    Rule
	// Tenant is the principal's tenant (the dispatcher's tenant if the
	// principal names none): "_default" at the root.
	Tenant string
}

// MatchCarrier is a ResponseWriter that carries its request's Match.
type MatchCarrier interface {
	http.ResponseWriter
	Match() *Match
}

// MatchOf returns the Match the writer w carries, or a writer it wraps
// (Unwrap, as http.ResponseController follows); nil if none does.
func MatchOf(w http.ResponseWriter) *Match {
	for w != nil {
		if c, ok := w.(MatchCarrier); ok {
			return c.Match()
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}
