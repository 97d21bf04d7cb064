package policy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
)

func TestCheck(t *testing.T) {
	anon := caller.Principal{Via: caller.Anonymous}
	claimedTeacher := caller.Principal{Role: caller.RoleTeacher, Via: caller.Claimed}
	tok := func(r caller.Role) caller.Principal { return caller.Principal{Role: r, Via: caller.Token} }
	for _, c := range []struct {
		rule      Rule
		p         caller.Principal
		enforcing bool
		want      string // "" allowed, else the code
	}{
		{Public, anon, true, ""},
		{Teacher, claimedTeacher, false, ""}, // open mode: as the predecessor
		{Teacher, caller.Principal{}, false, ""},
		{Admin, claimedTeacher, false, "missing_authorization"}, // never open
		{Admin, tok(caller.RoleAdmin), false, ""},
		{Teacher, anon, true, "missing_authorization"},
		{Teacher, claimedTeacher, true, "missing_authorization"}, // a claim is not a credential
		{Teacher, tok(caller.RoleTeacher), true, ""},
		{Teacher, tok(caller.RoleAdmin), true, ""},
		{Teacher, tok(caller.RoleStudent), true, "forbidden"},
		{Student, tok(caller.RoleStudent), true, ""},
		{Student, tok(caller.RoleTeacher), true, ""}, // teachers act on their students
		{Login, caller.Principal{Via: caller.Anonymous, Refused: errForbidden}, true, ""},
		{Public, caller.Principal{Via: caller.Anonymous, Refused: errMissing}, true, "missing_authorization"},
		{Teacher, caller.Principal{Via: caller.Anonymous, Refused: errForbidden}, true, "forbidden"},
		{Signed, tok(caller.RoleStudent), true, ""},
		{Signed, tok("service"), true, "forbidden"},
		{Admin, tok(caller.RoleTeacher), true, "forbidden"},
	} {
		got := ""
		if err := c.rule.Check(c.p, c.enforcing); err != nil {
			got = err.Error()
			if (got == "forbidden") != (fault.CodeOf(err) == fault.Forbidden) {
				t.Errorf("%s: %s is %s", c.rule, got, fault.CodeOf(err))
			}
		}
		if got != c.want {
			t.Errorf("%s, %+v, enforcing %v: got %q, want %q", c.rule, c.p, c.enforcing, got, c.want)
		}
	}
}

func TestMux(t *testing.T) {
	m := NewMux(true, func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(map[fault.Code]int{fault.Unauthorized: 401, fault.Forbidden: 403}[fault.CodeOf(err)])
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	m.Handle("GET /health", Public, ok)
	m.Handle("GET /exams", Teacher, ok)
	if got := m.Routes(); len(got) != 2 || got[1].Pattern != "GET /exams" || got[1].Rule.String() != "teacher" {
		t.Fatalf("routes %v", got)
	}
	for path, want := range map[string]int{"/health": 418, "/exams": 401} {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/exams", nil)
	m.ServeHTTP(w, r.WithContext(caller.With(r.Context(), caller.Principal{Role: caller.RoleTeacher, Via: caller.Token})))
	if w.Code != 418 {
		t.Errorf("teacher token: %d", w.Code)
	}
	defer func() {
		if recover() == nil {
			t.Error("a route without a rule was registered")
		}
	}()
	m.Handle("GET /x", Rule{}, ok)
}
