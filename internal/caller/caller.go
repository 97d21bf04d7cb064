// Package caller says who is calling. One middleware per tenant
// (Authenticator.Middleware) resolves a typed Principal once per request
// and puts it in the request's context; handlers, chat jobs and tools only
// read it (From). Nobody else parses identity from a request.
//
// In open mode (no credentials configured, the predecessor's behaviour at
// its 2026-02 version, whose web apps have no login) the principal comes
// from what the request claims: the role, teacher_id and student_id of the
// query string, or of a JSON body. With authentication on, it comes from a
// verified bearer token (Authenticator.Verify).
package caller

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
)

// Role is what a principal may act as.
type Role string

// Roles. Any other role a client claims in open mode is kept as is and
// treated as unknown by the policies.
const (
	RoleUnknown Role = ""
	RoleTeacher Role = "teacher"
	RoleStudent Role = "student"
	RoleAdmin   Role = "admin"
)

// Source says how a principal was established.
type Source string

const (
	// Claimed: from the request's own fields (open mode). Nothing was
	// verified.
	Claimed Source = "claimed"
	// Token: from a verified bearer token.
	Token Source = "token"
	// Anonymous: authentication is on and the request carried no
	// credential (the policies let it reach public routes only).
	Anonymous Source = "anonymous"
)

// Principal is who a request, a job or a tool call acts as.
type Principal struct {
	// Tenant is the tenant the request was served by ("_default" at the
	// root).
	Tenant string
	Role   Role
	// TeacherID is the resolved teacher (safe as a path component): the
	// claimed or token id, else the tenant's default teacher. Set for
	// every principal, since teacher endpoints fall back to the default
	// teacher in open mode.
	TeacherID string
	// StudentID is the student as given ("" if none); callers that turn
	// it into a path use fsid or their own validation.
	StudentID string
	Via       Source
	// Refused, when set, is why the request's credential was refused (a
	// token that does not verify, or ids outside its scope). The route's
	// rule decides: only the login routes ignore it.
	Refused error
}

// Verified reports whether the principal comes from a credential.
func (p Principal) Verified() bool { return p.Via == Token }

// Claims are what a request says about its caller.
type Claims struct {
	Role, TeacherID, StudentID string
}

// Resolver turns claims into a Principal for one tenant.
type Resolver struct {
	Tenant string
	// DefaultTeacherID is used when no teacher id is claimed
	// (DEFAULT_TEACHER_ID, else "teacher").
	DefaultTeacherID string
}

// Resolve is the one place claims become a principal.
func (res Resolver) Resolve(c Claims) Principal {
	tid := strings.TrimSpace(c.TeacherID)
	if tid == "" {
		tid = res.DefaultTeacherID
	}
	if tid == "" {
		tid = "teacher"
	}
	return Principal{
		Tenant:    res.Tenant,
		Role:      Role(strings.TrimSpace(c.Role)),
		TeacherID: fsid.Safe(tid, "teacher"),
		StudentID: strings.TrimSpace(c.StudentID),
		Via:       Claimed,
	}
}

// Authenticator is a tenant's authenticate middleware.
type Authenticator struct {
	Resolver Resolver
	// Verify, when set, turns a bearer token into a principal: auth is on.
	// nil is open mode.
	Verify func(ctx context.Context, token string) (Principal, error)
}

// Enforcing reports whether credentials are checked (auth on).
func (a Authenticator) Enforcing() bool { return a.Verify != nil }

// maxPeek bounds the JSON body read for claims (the handlers' own bound).
const maxPeek = 1 << 20

// Middleware resolves the request's principal and puts it in the context.
// In open mode the claims are the query string's role, teacher_id and
// student_id, overridden by those of a JSON body (the body is read, up to
// 1 MiB, and handed on unchanged). With auth on, a request without a
// token is Anonymous, and one whose token does not verify (Verify's fault)
// or whose ids are outside the token's scope (ErrTeacherScope,
// ErrStudentScope) is Anonymous with Refused set.
func (a Authenticator) Middleware(next http.Handler) http.Handler {
	// The principal of a request that claims nothing, resolved once.
	nobody := a.Resolver.Resolve(Claims{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, a.principal(r, &nobody))))
	})
}

// principal is the request's principal; nobody (shared, never changed) is
// the one of a request that claims nothing.
func (a Authenticator) principal(r *http.Request, nobody *Principal) *Principal {
	if t := TenantFrom(r.Context()); t != "" && t != a.Resolver.Tenant {
		// Routed to another tenant's app: never act for either.
		return &Principal{Tenant: a.Resolver.Tenant, Via: Anonymous, Refused: errWrongTenant}
	}
	if a.Verify == nil {
		if r.URL.RawQuery == "" && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) {
			return nobody // most reads: no claims to parse
		}
		p := a.Resolver.Resolve(requestClaims(r))
		return &p
	}
	anon := &Principal{Tenant: a.Resolver.Tenant, Via: Anonymous}
	tok, ok := bearer(r)
	if !ok {
		return anon
	}
	p, err := a.Verify(r.Context(), tok)
	if err == nil {
		p, err = bind(p, requestClaims(r), a.Resolver)
	}
	if err != nil {
		anon.Refused = err
		return anon
	}
	return &p
}

// errWrongTenant: the dispatcher and the app disagree on the tenant.
var errWrongTenant error = fault.New(fault.Forbidden, "forbidden_tenant_scope")

// Scope refusals: a request whose claimed ids are not the token's own
// (the predecessor's 403 codes).
var (
	ErrTeacherScope error = fault.New(fault.Forbidden, "forbidden_teacher_scope")
	ErrStudentScope error = fault.New(fault.Forbidden, "forbidden_student_scope")
)

// MayActOnStudent is the scope check for a student named outside the
// query and the JSON body (a path segment, a form field): a verified
// student only on itself (ErrStudentScope); teachers, admins and open mode
// on any student of the tenant.
func (p Principal) MayActOnStudent(studentID string) error {
	if p.Verified() && p.Role == RoleStudent && strings.TrimSpace(studentID) != p.StudentID {
		return ErrStudentScope
	}
	return nil
}

// bind applies a verified principal's scope to what the request claims: a
// teacher acts as itself (another teacher_id is refused) on any student of
// the tenant; a student only as itself (another student_id is refused); an
// admin as the teacher and student it names (or as itself). The claimed
// role never changes a verified one.
func bind(p Principal, c Claims, res Resolver) (Principal, error) {
	tid, sid := strings.TrimSpace(c.TeacherID), strings.TrimSpace(c.StudentID)
	switch p.Role {
	case RoleTeacher:
		if tid != "" && tid != p.TeacherID {
			return p, ErrTeacherScope
		}
		p.StudentID = sid
	case RoleStudent:
		if sid != "" && sid != p.StudentID {
			return p, ErrStudentScope
		}
		p.TeacherID = res.Resolve(Claims{}).TeacherID
	case RoleAdmin:
		if tid != "" {
			p.TeacherID = fsid.Safe(tid, "teacher")
		}
		p.StudentID = sid
	}
	return p, nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// requestClaims reads the claims of an open-mode request.
func requestClaims(r *http.Request) Claims {
	q := r.URL.Query()
	c := Claims{Role: q.Get("role"), TeacherID: q.Get("teacher_id"), StudentID: q.Get("student_id")}
	if b, ok := jsonClaims(r); ok {
		for _, f := range []struct {
			dst *string
			v   *string
		}{{&c.Role, b.Role}, {&c.TeacherID, b.TeacherID}, {&c.StudentID, b.StudentID}} {
			if f.v != nil && strings.TrimSpace(*f.v) != "" {
				*f.dst = *f.v
			}
		}
	}
	return c
}

type bodyClaims struct {
	Role      *string `json:"role"`
	TeacherID *string `json:"teacher_id"`
	StudentID *string `json:"student_id"`
}

// jsonClaims peeks at a JSON object body and puts it back for the
// handler. Form and multipart bodies are left alone.
func jsonClaims(r *http.Request) (bodyClaims, bool) {
	var b bodyClaims
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return b, false
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return b, false
	}
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "multipart/") || strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return b, false
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, maxPeek))
	rest := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), rest), rest}
	if err != nil || len(head) >= maxPeek {
		return b, false // the handler's own decode answers
	}
	trimmed := bytes.TrimSpace(head)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &b) != nil {
		return b, false
	}
	return b, true
}

type key struct{}

type tenantKey struct{}

// WithTenant returns ctx carrying the tenant the dispatcher routed the
// request to.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant the dispatcher put in ctx ("" at the root).
func TenantFrom(ctx context.Context) string {
	t, _ := ctx.Value(tenantKey{}).(string)
	return t
}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context { return context.WithValue(ctx, key{}, &p) }

// From returns the principal in ctx (the zero Principal if none).
func From(ctx context.Context) Principal {
	if p, _ := ctx.Value(key{}).(*Principal); p != nil {
		return *p
	}
	return Principal{}
}
