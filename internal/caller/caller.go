// Package caller says who is calling: role, teacher id, student id. It is
// resolved in one place per request and handed to handlers, which never
// read identity from the request themselves.
//
// Today the identity comes from what the request claims (query string or
// JSON body), as the predecessor did; per-tenant credentials will replace
// Resolve's trust in those claims without touching the handlers.
package caller

import (
	"context"
	"net/http"
	"strings"

	"github.com/lectern/lectern/internal/fsid"
)

// Roles.
const (
	RoleTeacher = "teacher"
	RoleStudent = "student"
)

// Caller is who a request acts as.
type Caller struct {
	// Role is "teacher", "student", or "" when unknown. Any other value a
	// client claims is kept as is and treated as unknown by the policies.
	Role string
	// TeacherID is the resolved teacher (safe as a path component): the
	// claimed id, else the tenant's default teacher. Set for every caller,
	// since teacher endpoints fall back to the default teacher.
	TeacherID string
	// StudentID is the claimed student id as given ("" if none); callers
	// that turn it into a path use fsid or their own validation.
	StudentID string
}

// Claims are what a request says about its caller.
type Claims struct {
	Role, TeacherID, StudentID string
}

// Resolver turns claims into a Caller for one tenant.
type Resolver struct {
	// DefaultTeacherID is used when no teacher id is claimed
	// (DEFAULT_TEACHER_ID, else "teacher").
	DefaultTeacherID string
}

// Resolve is the one place a caller is decided.
func (res Resolver) Resolve(c Claims) Caller {
	tid := strings.TrimSpace(c.TeacherID)
	if tid == "" {
		tid = res.DefaultTeacherID
	}
	if tid == "" {
		tid = "teacher"
	}
	return Caller{
		Role:      strings.TrimSpace(c.Role),
		TeacherID: fsid.Safe(tid, "teacher"),
		StudentID: strings.TrimSpace(c.StudentID),
	}
}

type key struct{}

// Middleware resolves the caller from the query string (role, teacher_id,
// student_id) and puts it in the request's context.
func (res Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		c := res.Resolve(Claims{Role: q.Get("role"), TeacherID: q.Get("teacher_id"), StudentID: q.Get("student_id")})
		next.ServeHTTP(w, r.WithContext(With(r.Context(), c)))
	})
}

// With returns ctx carrying c.
func With(ctx context.Context, c Caller) context.Context { return context.WithValue(ctx, key{}, c) }

// From returns the caller in ctx (the zero Caller if none).
func From(ctx context.Context) Caller {
	c, _ := ctx.Value(key{}).(Caller)
	return c
}
