package tenancy

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/caller"
)

func TestTenantRequest(t *testing.T) {
	cases := []struct {
		target   string
		id, path string // id "" means refused
		rawQuery string
	}{
		{"/t/t1", "t1", "/", ""},
		{"/t/t1/", "t1", "/", ""},
		{"/t/t1/exams?x=1&y=%2F", "t1", "/exams", "x=1&y=%2F"},
		{"/t/t1/exam/%E9%AB%98%E4%BA%8C/students", "t1", "/exam/高二/students", ""},
		{"/t/t1/exam/a%2Fb", "t1", "/exam/a/b", ""},
		{"/t/..%2F..", "", "", ""},
		{"/t/..%2F../x", "", "", ""},
		{"/t/a%2Fb/x", "", "", ""},
		{"/t/%2e%2e/exams", "", "", ""},
		{"/t/t1/%2e%2e/%2e%2e/t2/exams", "", "", ""},
		{"/t/t1/a/../../t2", "", "", ""},
		{"/t/t1/./exams", "", "", ""},
		{"/t/t1/x%00y", "", "", ""},
		{"/t/t%001/x", "", "", ""},
		{"/t/-bad/x", "", "", ""},
		{"/t/" + strings.Repeat("a", 65), "", "", ""},
		{"/t//exams", "", "", ""},
		{"/t/t1//exams", "", "", ""},
		{"/t/t1/exam//x", "", "", ""},
		{"/t/t1/exam/a%2F%2Fb", "", "", ""},
		{"/t/t1//", "", "", ""},
		{"/t/t1/exams/", "t1", "/exams/", ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "http://x"+c.target, nil)
		id, r2, ok := tenantRequest(r, strings.TrimPrefix(r.URL.EscapedPath(), "/t/"))
		if c.id == "" {
			if ok {
				t.Errorf("%s: routed to %q %q, want refused", c.target, id, r2.URL.Path)
			}
			continue
		}
		if !ok || id != c.id || r2.URL.Path != c.path || r2.URL.RawQuery != c.rawQuery {
			t.Errorf("%s: got ok=%v id=%q path=%q", c.target, ok, id, pathOf(r2))
		}
		if ok && caller.TenantFrom(r2.Context()) != c.id {
			t.Errorf("%s: the context names tenant %q", c.target, caller.TenantFrom(r2.Context()))
		}
		if ok && r.URL.Path == r2.URL.Path && c.target != "/" {
			t.Errorf("%s: original request was modified", c.target)
		}
	}
}

func pathOf(r *http.Request) string {
	if r == nil {
		return ""
	}
	return r.URL.Path
}

// FuzzTenantRequest: whatever the path, a request routed to a tenant has a
// valid id, and a rewritten path that has no NUL byte, no dot segment, and
// is exactly what followed /t/<id> in the decoded original.
func FuzzTenantRequest(f *testing.F) {
	for _, s := range []string{"t1/exams", "..%2F..", "a%2Fb/x", "%2e%2e", "t1/%2e%2e/x", "t1/x%00", "t1", "t1/exam/%E9%AB%98"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawRest string) {
		r, err := http.NewRequest("GET", "http://x/t/"+rawRest, nil)
		if err != nil || r.URL.Opaque != "" {
			return
		}
		escaped := r.URL.EscapedPath()
		if !strings.HasPrefix(escaped, "/t/") {
			return
		}
		id, r2, ok := tenantRequest(r, escaped[len("/t/"):])
		if !ok {
			return
		}
		if !ValidTenantID(id) {
			t.Fatalf("invalid id %q routed", id)
		}
		p := r2.URL.Path
		if !strings.HasPrefix(p, "/") || !CleanPath(p) {
			t.Fatalf("unsafe path %q routed", p)
		}
		want := "/t/" + id + p
		if r.URL.Path != want && !(p == "/" && r.URL.Path == "/t/"+id) {
			t.Fatalf("original %q, tenant %q sees %q", r.URL.Path, id, p)
		}
	})
}

// The hand-written check agrees with the pattern the issue gives.
func FuzzValidTenantID(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	for _, s := range []string{"t1", "", "-a", "a-_b", strings.Repeat("a", 64), strings.Repeat("a", 65), "é", "a b", "A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidTenantID(s), re.MatchString(s); got != want {
			t.Fatalf("ValidTenantID(%q) = %v, want %v", s, got, want)
		}
	})
}

// A tenant's Location headers stay under its prefix; one pointing
// elsewhere is refused.
func TestPrefixedWriter(t *testing.T) {
	for _, c := range []struct {
		loc, want string
		status    int
	}{
		{"/exams", "/t/a/exams", 307},
		{"/exam/x?y=1", "/t/a/exam/x?y=1", 302},
		{"exams", "exams", 302},
		{"../exams", "", 500},
		{"//evil.example/x", "", 500},
		{`/\evil.example/x`, "", 500},
		{"http://evil.example/", "", 500},
		{"", "", 200},
	} {
		rec := httptest.NewRecorder()
		w := &prefixedWriter{ResponseWriter: rec, tenant: "a"}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.loc != "" {
				w.Header().Set("Location", c.loc)
				w.WriteHeader(c.status)
			}
			w.Write([]byte("body"))
		})
		h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
		if rec.Code != c.status || rec.Header().Get("Location") != c.want {
			t.Errorf("Location %q: got %d %q, want %d %q", c.loc, rec.Code, rec.Header().Get("Location"), c.status, c.want)
		}
		if c.status == 500 && strings.Contains(rec.Body.String(), "body") {
			t.Errorf("Location %q: the refused body was sent: %q", c.loc, rec.Body.String())
		}
	}
}
