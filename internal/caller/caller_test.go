package caller

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve runs r through a's middleware and returns the principal the
// handler saw and the body it could still read.
func serve(t *testing.T, a Authenticator, r *http.Request) (Principal, string, int) {
	t.Helper()
	var got Principal
	var body string
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = From(r.Context())
		b, _ := io.ReadAll(r.Body)
		body = string(b)
	}))
	h.ServeHTTP(httptest.NewRecorder(), r)
	status := 200
	if got.Refused != nil {
		status = 401
	}
	return got, body, status
}

func TestOpenModeClaims(t *testing.T) {
	a := Authenticator{Resolver: Resolver{Tenant: "t1", DefaultTeacherID: "t_default"}}
	for _, c := range []struct {
		name, method, target, ctype, body string
		want                              Principal
	}{
		{"query", "GET", "/student/history/sessions?student_id=s1&role=student", "", "",
			Principal{Tenant: "t1", Role: RoleStudent, TeacherID: "t_default", StudentID: "s1", Via: Claimed}},
		{"nothing claimed", "GET", "/exams", "", "",
			Principal{Tenant: "t1", TeacherID: "t_default", Via: Claimed}},
		{"JSON body wins over the query", "PUT", "/teacher/session/view-state?teacher_id=q", "application/json",
			`{"teacher_id":"t_zhang","role":"teacher","state":{}}`,
			Principal{Tenant: "t1", Role: RoleTeacher, TeacherID: "t_zhang", Via: Claimed}},
		{"JSON without a content type", "POST", "/chat/start", "", `  {"student_id":"高二_张三","role":"student"}`,
			Principal{Tenant: "t1", Role: RoleStudent, TeacherID: "t_default", StudentID: "高二_张三", Via: Claimed}},
		{"blank body field keeps the query's", "POST", "/chat?student_id=s9", "application/json", `{"student_id":"  "}`,
			Principal{Tenant: "t1", TeacherID: "t_default", StudentID: "s9", Via: Claimed}},
		{"a form body is not read", "POST", "/student/profile/update", "application/x-www-form-urlencoded", "student_id=s1",
			Principal{Tenant: "t1", TeacherID: "t_default", Via: Claimed}},
		{"malformed JSON: no claims", "POST", "/chat", "application/json", `{"student_id":`,
			Principal{Tenant: "t1", TeacherID: "t_default", Via: Claimed}},
		{"ids that are not strings: no claims", "POST", "/chat", "application/json", `{"student_id":7}`,
			Principal{Tenant: "t1", TeacherID: "t_default", Via: Claimed}},
	} {
		r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		got, body, _ := serve(t, a, r)
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
		if body != c.body {
			t.Errorf("%s: the handler read %q, want the whole body %q", c.name, body, c.body)
		}
	}
}

// A body over the peek bound reaches the handler whole, unparsed.
func TestOpenModeLargeBody(t *testing.T) {
	a := Authenticator{}
	big := `{"student_id":"s1","pad":"` + strings.Repeat("x", maxPeek) + `"}`
	got, body, _ := serve(t, a, httptest.NewRequest("POST", "/chat", strings.NewReader(big)))
	if got.StudentID != "" || body != big {
		t.Fatalf("principal %+v, body of %d bytes", got, len(body))
	}
}

var errBad = errors.New("invalid_token")

func TestEnforcingMode(t *testing.T) {
	a := Authenticator{Resolver: Resolver{Tenant: "t1"}, Verify: func(ctx context.Context, tok string) (Principal, error) {
		if tok != "good" {
			return Principal{}, errBad
		}
		return Principal{Tenant: "t1", Role: RoleTeacher, TeacherID: "t_zhang", Via: Token}, nil
	}}
	for _, c := range []struct {
		header string
		want   Principal
		status int
	}{
		{"", Principal{Tenant: "t1", Via: Anonymous}, 200},
		{"Bearer good", Principal{Tenant: "t1", Role: RoleTeacher, TeacherID: "t_zhang", Via: Token}, 200},
		{"bearer  good ", Principal{Tenant: "t1", Role: RoleTeacher, TeacherID: "t_zhang", Via: Token}, 200},
		{"Bearer bad", Principal{Tenant: "t1", Via: Anonymous, Refused: errBad}, 401},
		{"Basic Zm9v", Principal{Tenant: "t1", Via: Anonymous}, 200},
	} {
		r := httptest.NewRequest("GET", "/exams?role=admin", nil) // a claimed role never changes a token's
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		got, _, status := serve(t, a, r)
		if got != c.want || status != c.status {
			t.Errorf("%q: got %+v %d, want %+v %d", c.header, got, status, c.want, c.status)
		}
	}
	if !a.Enforcing() || (Authenticator{}).Enforcing() {
		t.Error("Enforcing")
	}
}

// With a token, the request's ids must be the token's own: a teacher acts
// on any student, a student only on itself.
func TestTokenScope(t *testing.T) {
	principals := map[string]Principal{
		"teacher": {Tenant: "t1", Role: RoleTeacher, TeacherID: "t_zhang", Via: Token},
		"student": {Tenant: "t1", Role: RoleStudent, StudentID: "s1", Via: Token},
		"admin":   {Tenant: "t1", Role: RoleAdmin, TeacherID: "root", Via: Token},
	}
	a := Authenticator{Resolver: Resolver{Tenant: "t1", DefaultTeacherID: "teacher"}, Verify: func(ctx context.Context, tok string) (Principal, error) {
		return principals[tok], nil
	}}
	for _, c := range []struct {
		token, query string
		wantTeacher  string
		wantStudent  string
		status       int
	}{
		{"teacher", "", "t_zhang", "", 200},
		{"teacher", "teacher_id=t_zhang&student_id=s7&role=student", "t_zhang", "s7", 200},
		{"teacher", "teacher_id=t_li", "", "", 403},
		{"student", "student_id=s1", "teacher", "s1", 200},
		{"student", "", "teacher", "s1", 200},
		{"student", "student_id=s2", "", "", 403},
		{"admin", "teacher_id=t_lisi&student_id=s2", "t_lisi", "s2", 200},
	} {
		r := httptest.NewRequest("GET", "/x?"+c.query, nil)
		r.Header.Set("Authorization", "Bearer "+c.token)
		var got Principal
		h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = From(r.Context()) }))
		h.ServeHTTP(httptest.NewRecorder(), r)
		status := 200
		if errors.Is(got.Refused, ErrTeacherScope) || errors.Is(got.Refused, ErrStudentScope) {
			status = 403
		}
		if status != c.status || (status == 200 && (got.TeacherID != c.wantTeacher || got.StudentID != c.wantStudent || got.Role != principals[c.token].Role)) {
			t.Errorf("%s %q: %d %+v", c.token, c.query, status, got)
		}
	}
}

func TestMayActOnStudent(t *testing.T) {
	student := Principal{Role: RoleStudent, StudentID: "s1", Via: Token}
	for _, c := range []struct {
		p    Principal
		id   string
		want error
	}{
		{student, "s1", nil},
		{student, "s2", ErrStudentScope},
		{Principal{Role: RoleTeacher, TeacherID: "t1", Via: Token}, "s2", nil},
		{Principal{Role: RoleStudent, StudentID: "s1", Via: Claimed}, "s2", nil}, // open mode
	} {
		if got := c.p.MayActOnStudent(c.id); got != c.want {
			t.Errorf("%+v on %s: %v", c.p, c.id, got)
		}
	}
}

// A request the dispatcher routed to another tenant is never served as
// anyone.
func TestWrongTenantIsRefused(t *testing.T) {
	a := Authenticator{Resolver: Resolver{Tenant: "a"}}
	r := httptest.NewRequest("GET", "/exams?teacher_id=x", nil)
	got, _, _ := serve(t, a, r.WithContext(WithTenant(r.Context(), "b")))
	if got.Refused == nil || got.Via != Anonymous {
		t.Fatalf("%+v", got)
	}
	got, _, _ = serve(t, a, r.WithContext(WithTenant(r.Context(), "a")))
	if got.Refused != nil || got.Tenant != "a" {
		t.Fatalf("%+v", got)
	}
}
