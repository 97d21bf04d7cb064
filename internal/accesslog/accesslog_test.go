package accesslog_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/accesslog"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/metrics"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/testfixtures"
)

// tenantMux is a tenant's routes as tenantapp builds them (a policy.Mux
// behind a middleware that sets the principal, as the authenticator does).
func tenantMux(tenant string) http.Handler {
	mux := policy.NewMux(false, func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusForbidden)
	})
	mux.HandleFunc("GET /exam/{exam_id}", policy.Teacher, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "exam "+r.PathValue("exam_id"))
	})
	mux.HandleFunc("POST /exam/upload/start", policy.Teacher, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /rid", policy.Public, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, accesslog.RequestID(w))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), caller.Principal{Tenant: tenant})))
	})
}

// dispatcher mimics tenancy.Dispatcher: /t/{id}/rest to tenant id (a
// copied request with the tenant in its context), /admin/ to a plain
// mux, everything else to the default tenant.
func dispatcher(tenants ...string) http.Handler {
	apps := map[string]http.Handler{}
	for _, t := range tenants {
		apps[t] = tenantMux(t)
	}
	def := tenantMux("_default")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			http.NotFound(w, r)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/t/"); ok {
			id, tail, _ := strings.Cut(rest, "/")
			app, ok := apps[id]
			if !ok {
				http.Error(w, "tenant not found", http.StatusNotFound)
				return
			}
			r2 := r.WithContext(caller.WithTenant(r.Context(), id))
			r2.URL = &*r.URL
			u := *r.URL
			u.Path = "/" + tail
			r2.URL = &u
			app.ServeHTTP(w, r2)
			return
		}
		def.ServeHTTP(w, r)
	})
}

type fixture struct {
	srv *httptest.Server
	m   *metrics.Metrics
	log *bytes.Buffer
}

func newFixture(t *testing.T, opts metrics.Options, tenants ...string) *fixture {
	t.Helper()
	f := &fixture{m: metrics.NewWith(opts), log: new(bytes.Buffer)}
	log := slog.New(slog.NewJSONHandler(f.log, nil))
	root := http.NewServeMux()
	root.Handle("GET /metrics", f.m.Handler())
	root.Handle("/", accesslog.New(log, f.m)(dispatcher(tenants...)))
	f.srv = httptest.NewServer(root)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func (f *fixture) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func (f *fixture) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(f.log.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestMetricsByRoutePattern(t *testing.T) {
	f := newFixture(t, metrics.Options{}, "t1")
	f.do(t, "GET", "/exam/E1")
	f.do(t, "GET", "/exam/E2")
	f.do(t, "GET", "/t/t1/exam/E3")
	f.do(t, "POST", "/t/t1/exam/upload/start")
	f.do(t, "GET", "/no/such/route")
	f.do(t, "GET", "/t/ghost/exam/E4")
	f.do(t, "BREW", "/exam/E5")
	out := f.scrape(t)
	for _, want := range []string{
		`lectern_http_requests_total{code="200",method="GET",route="GET /exam/{exam_id}",tenant="_default"} 2`,
		`lectern_http_requests_total{code="200",method="GET",route="GET /exam/{exam_id}",tenant="t1"} 1`,
		`lectern_http_requests_total{code="202",method="POST",route="POST /exam/upload/start",tenant="t1"} 1`,
		`lectern_http_requests_total{code="404",method="GET",route="other",tenant="none"} 1`,     // unknown tenant
		`lectern_http_requests_total{code="404",method="GET",route="other",tenant="_default"} 1`, // no route
		`lectern_http_requests_total{code="405",method="OTHER",route="other",tenant="_default"} 1`,
		`lectern_http_request_duration_seconds_count{class="2xx",method="GET",route="GET /exam/{exam_id}",tenant="_default"} 2`,
		`lectern_http_request_duration_seconds_bucket{class="2xx",method="GET",route="GET /exam/{exam_id}",tenant="t1",le="+Inf"} 1`,
		"go_goroutines ", "go_memstats_alloc_bytes ", "process_start_time_seconds ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, bad := range []string{"E1", "E3", "ghost", "/no/such"} {
		if strings.Contains(out, bad) {
			t.Errorf("/metrics carries a raw path or id %q", bad)
		}
	}
}

func TestMetricsTenantLabelBounded(t *testing.T) {
	f := newFixture(t, metrics.Options{MaxTenants: 2}, "a", "b", "c")
	for _, id := range []string{"a", "b", "c", "c"} {
		f.do(t, "GET", "/t/"+id+"/exam/E1")
	}
	out := f.scrape(t)
	for _, want := range []string{
		`route="GET /exam/{exam_id}",tenant="a"} 1`,
		`route="GET /exam/{exam_id}",tenant="b"} 1`,
		`route="GET /exam/{exam_id}",tenant="other"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(out, `tenant="c"`) {
		t.Error("a tenant beyond the cap has its own label")
	}
	// Unloading a (ForgetTenant) frees its label for c.
	f.m.ForgetTenant("a")
	f.do(t, "GET", "/t/c/exam/E1")
	out = f.scrape(t)
	if strings.Contains(out, `tenant="a"`) || !strings.Contains(out, `route="GET /exam/{exam_id}",tenant="c"} 1`) {
		t.Errorf("after ForgetTenant(a):\n%s", testfixtures.Lines(out, "lectern_http_requests_total"))
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, metrics.Options{})
	gen := regexp.MustCompile(`^[0-9a-f]{16}$`)

	resp := f.do(t, "GET", "/rid")
	if id := resp.Header.Get("X-Request-ID"); !gen.MatchString(id) {
		t.Errorf("generated id %q", id)
	}
	a, b := f.do(t, "GET", "/rid").Header.Get("X-Request-ID"), f.do(t, "GET", "/rid").Header.Get("X-Request-ID")
	if a == b {
		t.Errorf("two requests got the same id %q", a)
	}

	sane := "req-1.A_b" + strings.Repeat("x", 55) // 64 bytes
	if got := f.do(t, "GET", "/rid", "X-Request-ID", sane).Header.Get("X-Request-ID"); got != sane {
		t.Errorf("sane id: echoed %q", got)
	}
	for _, insane := range []string{sane + "y", "a b", "a/b", "<script>", "é"} {
		got := f.do(t, "GET", "/rid", "X-Request-ID", insane).Header.Get("X-Request-ID")
		if !gen.MatchString(got) {
			t.Errorf("insane id %q: echoed %q, want a generated one", insane, got)
		}
	}

	// The handler sees the same id in its context.
	req, _ := http.NewRequest("GET", f.srv.URL+"/rid", nil)
	req.Header.Set("X-Request-ID", "abc")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if string(body) != "abc" {
		t.Errorf("context id %q, want abc", body)
	}
}

func TestAccessLine(t *testing.T) {
	f := newFixture(t, metrics.Options{}, "t1")
	f.do(t, "GET", "/t/t1/exam/E1", "X-Request-ID", "rid-42")
	f.do(t, "GET", "/t/t1/"+strings.Repeat("p", 1000))
	lines := f.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), f.log)
	}
	l := lines[0]
	want := map[string]any{
		"level": "INFO", "msg": "http", "method": "GET", "route": "GET /exam/{exam_id}",
		"path": "/t/t1/exam/E1", "status": float64(200), "bytes": float64(len("exam E1")),
		"tenant": "t1", "request_id": "rid-42",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v", k, l[k], v)
		}
	}
	if d, ok := l["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration %v", l["duration"])
	}
	if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
		t.Errorf("remote %q", l["remote"])
	}
	// The catch-all of a tenant has no route here (the real tenants have a
	// "/" route); the path is cut.
	if p, _ := lines[1]["path"].(string); len(p) > 256 || lines[1]["status"] != float64(404) {
		t.Errorf("second line %v", lines[1])
	}
}

func TestPanicIsLoggedAndCounted(t *testing.T) {
	m := metrics.New()
	var buf testfixtures.Buffer
	mux := policy.NewMux(false, nil)
	mux.HandleFunc("GET /boom", policy.Public, func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	srv := httptest.NewServer(accesslog.New(slog.New(slog.NewJSONHandler(&buf, nil)), m)(mux))
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/boom"); err == nil {
		resp.Body.Close()
	}
	// The client sees the connection drop before the server's deferred
	// log line is written: wait for it.
	want := `"route":"GET /boom","path":"/boom","status":500`
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("log: %s", buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
