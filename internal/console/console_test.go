package console

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/tenantapp"
)

const testKey = "console-test-key"

// fakeSource answers from memory what the server reads from its store and
// registry.
type fakeSource struct {
	tenants []Tenant
}

func (f *fakeSource) Tenants(context.Context) ([]Tenant, error) { return f.tenants, nil }

func (f *fakeSource) Tenant(_ context.Context, id string) (Tenant, error) {
	for _, t := range f.tenants {
		if t.ID == id {
			return t, nil
		}
	}
	return Tenant{}, fault.New(fault.NotFound, "tenant not found")
}

func (f *fakeSource) FailedJobs(ctx context.Context, id string, perKind int) ([]tenantapp.FailedJob, error) {
	if _, err := f.Tenant(ctx, id); err != nil {
		return nil, err
	}
	if id != "north" {
		return nil, nil
	}
	return []tenantapp.FailedJob{{Kind: "exam_upload", JobID: "job_1", Error: "scores_parsed_empty",
		Detail: "no rows", Hints: []string{"check the sheet"}, UpdatedAt: "2026-01-02T03:04:05"}}, nil
}

func (f *fakeSource) Exams(ctx context.Context, id string) ([]exams.Summary, error) {
	t, err := f.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	if !t.Enabled {
		return nil, fault.New(fault.NotFound, "tenant not found")
	}
	return []exams.Summary{{ExamID: "EX1", GeneratedAt: "2026-01-01", Students: 3}, {ExamID: ".bad"}}, nil
}

func (f *fakeSource) Chart(_ context.Context, id, examID, name string) ([]byte, error) {
	if examID != "EX1" {
		return nil, fault.New(fault.NotFound, "exam not found")
	}
	return []byte(`<svg xmlns="http://www.w3.org/2000/svg"><title>` + name + `</title></svg>`), nil
}

func newFake() *fakeSource {
	st := tenantapp.Status{
		Workers: []tenantapp.WorkerStatus{{Kind: "chat", Workers: 2, Queued: 1, MaxQueued: 100, Busy: 1},
			{Kind: "exam_upload", Workers: 1, Queued: 2, MaxQueued: 50}},
		Limits: limits.TenantDefaults(), EffectiveLimits: limits.TenantDefaults(),
		LLM: llm.MeterSnapshot{Calls: 9, PromptTokens: 150, CompletionTokens: 23, Today: llm.DaySnapshot{Date: "2026-12-01", Calls: 7, Tokens: 123}},
	}
	n := 3
	return &fakeSource{tenants: []Tenant{
		{ID: tenantapp.DefaultTenantID, Default: true, Enabled: true, Loaded: true, Extra: map[string]any{}, Status: &st},
		{ID: "north", Enabled: true, Loaded: true, InFlight: &n, Extra: map[string]any{"limits": map[string]any{"ocr": 2.0}},
			Limits: limits.TenantDefaults(), Status: &st},
		{ID: "south", Enabled: false, Extra: map[string]any{}, Limits: limits.TenantDefaults()},
	}}
}

// next stands for the dispatcher: it answers every request it gets with
// 418, so a test sees which requests the console let through.
var next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })

func newServer(t *testing.T, key string) *httptest.Server {
	t.Helper()
	c := New(Options{Key: key, Source: newFake(), Version: "v1.2.3"})
	srv := httptest.NewServer(c.Wrap(next))
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
	return m
}

func call(t *testing.T, srv *httptest.Server, method, path string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func withKey(k string) map[string]string { return map[string]string{"X-Admin-Key": k} }

// Every API route needs the key, compared as the admin API compares it;
// the pages and static files need none (they hold no data).
func TestConsoleAPIRequiresKey(t *testing.T) {
	srv := newServer(t, testKey)
	paths := []string{"/admin/console/api/tenants", "/admin/console/api/tenants/north",
		"/admin/console/api/tenants/north/failed-jobs", "/admin/console/api/tenants/north/exams",
		"/admin/console/api/tenants/north/exams/EX1/charts/totals.svg"}
	for _, p := range paths {
		for _, key := range []string{"", "wrong", testKey + "x"} {
			a := call(t, srv, "GET", p, withKey(key))
			if a.status != 401 || strings.TrimSpace(a.body) != `{"detail":"unauthorized"}` {
				t.Fatalf("%s with key %q: %d %s", p, key, a.status, a.body)
			}
			if a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s: Cache-Control %q", p, a.header.Get("Cache-Control"))
			}
		}
		if a := call(t, srv, "GET", p, withKey(testKey)); a.status != 200 {
			t.Fatalf("%s with the key: %d %s", p, a.status, a.body)
		}
	}
	closed := newServer(t, "")
	a := call(t, closed, "GET", "/admin/console/api/tenants", withKey(""))
	if a.status != 401 || strings.TrimSpace(a.body) != `{"detail":"admin key not configured"}` {
		t.Fatalf("no key configured: %d %s", a.status, a.body)
	}
	for _, p := range []string{"/admin/console/", "/admin/console/tenants/north", "/admin/console/static/console.js", "/"} {
		if a := call(t, closed, "GET", p, nil); a.status != 200 {
			t.Fatalf("%s: %d %s", p, a.status, a.body)
		}
	}
}

// The JSON the script reads: the rows with their summary, a tenant, its
// failed jobs, its exams with chart links, and a chart.
func TestConsoleAPIShapes(t *testing.T) {
	srv := newServer(t, testKey)
	k := withKey(testKey)

	list := call(t, srv, "GET", "/admin/console/api/tenants", k).json(t)
	rows := list["tenants"].([]any)
	if list["ok"] != true || len(rows) != 3 {
		t.Fatalf("list: %v", list)
	}
	first := rows[0].(map[string]any)
	if first["tenant_id"] != "_default" || first["default"] != true || first["in_flight"] != nil {
		t.Fatalf("default row: %v", first)
	}
	north := rows[1].(map[string]any)
	sum := north["summary"].(map[string]any)
	want := map[string]any{"queued": 3.0, "max_queued": 150.0, "busy": 1.0, "workers": 3.0, "llm_calls": 7.0, "llm_tokens": 123.0}
	for k, v := range want {
		if sum[k] != v {
			t.Fatalf("summary %s = %v, want %v (%v)", k, sum[k], v, sum)
		}
	}
	if north["in_flight"] != 3.0 || north["status"] == nil || north["limits"].(map[string]any)["ocr"] != 5.0 {
		t.Fatalf("north: %v", north)
	}
	south := rows[2].(map[string]any)
	if south["summary"] != nil || south["status"] != nil || south["loaded"] != false {
		t.Fatalf("south (not loaded): %v", south)
	}

	one := call(t, srv, "GET", "/admin/console/api/tenants/north", k).json(t)["tenant"].(map[string]any)
	if one["tenant_id"] != "north" || one["summary"] == nil {
		t.Fatalf("tenant: %v", one)
	}
	for _, p := range []string{"/admin/console/api/tenants/nobody", "/admin/console/api/tenants/_x",
		"/admin/console/api/tenants/" + strings.Repeat("a", 65)} {
		if a := call(t, srv, "GET", p, k); a.status != 404 || strings.TrimSpace(a.body) != `{"detail":"tenant not found"}` {
			t.Fatalf("%s: %d %s", p, a.status, a.body)
		}
	}

	jobs := call(t, srv, "GET", "/admin/console/api/tenants/north/failed-jobs", k).json(t)["failed_jobs"].([]any)
	if len(jobs) != 1 || jobs[0].(map[string]any)["error"] != "scores_parsed_empty" {
		t.Fatalf("failed jobs: %v", jobs)
	}
	if empty := call(t, srv, "GET", "/admin/console/api/tenants/south/failed-jobs", k); !strings.Contains(empty.body, `"failed_jobs":[]`) {
		t.Fatalf("no failed jobs is an empty list: %s", empty.body)
	}

	ex := call(t, srv, "GET", "/admin/console/api/tenants/north/exams", k).json(t)["exams"].([]any)
	e0 := ex[0].(map[string]any)
	charts := e0["charts"].([]any)
	if e0["exam_id"] != "EX1" || len(charts) != 3 ||
		charts[0].(map[string]any)["url"] != "/admin/console/api/tenants/north/exams/EX1/charts/totals.svg" {
		t.Fatalf("exams: %v", ex)
	}
	if ex[1].(map[string]any)["charts"] != nil {
		t.Fatalf("an exam whose id is no path id has no chart links: %v", ex[1])
	}
	if a := call(t, srv, "GET", "/admin/console/api/tenants/south/exams", k); a.status != 404 {
		t.Fatalf("disabled tenant's exams: %d %s", a.status, a.body)
	}

	svg := call(t, srv, "GET", "/admin/console/api/tenants/north/exams/EX1/charts/questions.svg", k)
	if svg.status != 200 || !strings.HasPrefix(svg.header.Get("Content-Type"), "image/svg+xml") ||
		!strings.Contains(svg.body, "<title>questions</title>") || svg.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("chart: %d %v %s", svg.status, svg.header, svg.body)
	}
	for _, p := range []string{"EX1/charts/questions", "EX1/charts/nope.svg", "NOPE/charts/totals.svg", ".x/charts/totals.svg"} {
		if a := call(t, srv, "GET", "/admin/console/api/tenants/north/exams/"+p, k); a.status != 404 {
			t.Fatalf("%s: %d %s", p, a.status, a.body)
		}
	}
}

// GET / is the landing page, the console is under /admin/console/, and
// every other request reaches the dispatcher untouched.
func TestConsoleRouting(t *testing.T) {
	srv := newServer(t, testKey)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/", 418}, {"PUT", "/", 418}, {"GET", "/health", 418}, {"GET", "/admin/tenants", 418},
		{"GET", "/admin/consoles", 418}, {"GET", "/t/x/", 418}, {"GET", "/?x=1", 200}, {"HEAD", "/", 200},
		{"GET", "/admin/console", 301}, {"POST", "/admin/console/api/tenants", 405},
		{"DELETE", "/admin/console/", 405}, {"GET", "/admin/console/nothing", 404},
		{"GET", "/admin/console//", 404}, {"GET", "/admin/console/static/../api/tenants", 404},
		{"GET", "/admin/console/static/nope.js", 404}, {"GET", "/admin/console/tenants/bad%20id", 404},
		{"GET", "/admin/console/tenants/_default", 200},
	} {
		a := call(t, srv, c.method, c.path, nil)
		if a.status != c.status {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, a.status, a.body, c.status)
		}
		if c.status == 405 && (a.header.Get("Allow") != "GET, HEAD" || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json")) {
			t.Fatalf("%s %s: %v", c.method, c.path, a.header)
		}
	}
	if a := call(t, srv, "GET", "/admin/console", nil); a.header.Get("Location") != "/admin/console/" {
		t.Fatalf("redirect: %v", a.header)
	}
}

// Every page sets the security headers, escapes what it shows and has
// every label in both languages.
func TestConsolePages(t *testing.T) {
	srv := newServer(t, testKey)
	for _, lang := range []string{"zh", "en"} {
		for _, p := range []string{"/", "/admin/console/", "/admin/console/tenants/north"} {
			a := call(t, srv, "GET", p+"?lang="+lang, nil)
			if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%s: %d %v", p, a.status, a.header)
			}
			csp := a.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") ||
				strings.Contains(csp, "unsafe-inline") || a.header.Get("X-Frame-Options") != "DENY" ||
				a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s headers: %v", p, a.header)
			}
			if strings.Contains(a.body, "⟦") {
				t.Fatalf("%s (%s) shows a label missing from the table: %s", p, lang, a.body)
			}
			if !strings.Contains(a.body, `<html lang="`+lang+`">`) {
				t.Fatalf("%s: not in %s", p, lang)
			}
			if regexp.MustCompile(`<script>|<script [^s]|\son[a-z]+=|style=`).MatchString(a.body) {
				t.Fatalf("%s has inline script or style: %s", p, a.body)
			}
		}
	}
	landing := call(t, srv, "GET", "/?lang=en", nil).body
	for _, s := range []string{`href="/docs"`, `href="/admin/console/"`, "teaching-assistant server for many schools", "v1.2.3"} {
		if !strings.Contains(landing, s) {
			t.Fatalf("landing lacks %q: %s", s, landing)
		}
	}
	if zh := call(t, srv, "GET", "/?lang=zh", nil).body; !strings.Contains(zh, "教学助手服务器") {
		t.Fatalf("landing in Chinese: %s", zh)
	}
	page := call(t, srv, "GET", "/admin/console/tenants/north", nil).body
	if !strings.Contains(page, `data-tenant="north"`) {
		t.Fatalf("tenant page: %s", page)
	}
}

// The language: ?lang= (remembered), else the cookie, else
// Accept-Language, else Chinese.
func TestConsoleLanguage(t *testing.T) {
	srv := newServer(t, testKey)
	langOf := func(a answer) string {
		m := regexp.MustCompile(`<html lang="([a-z]+)">`).FindStringSubmatch(a.body)
		if m == nil {
			t.Fatalf("no lang: %s", a.body)
		}
		return m[1]
	}
	for _, c := range []struct{ accept, want string }{
		{"", "zh"}, {"en-US,en;q=0.9", "en"}, {"zh-CN,zh;q=0.9,en;q=0.8", "zh"}, {"fr-FR", "zh"},
		{"fr;q=0.9, en-GB;q=0.8", "en"}, {"zh-TW", "zh"}, {"!!!", "zh"}, {strings.Repeat("en,", 200), "zh"},
	} {
		if got := langOf(call(t, srv, "GET", "/admin/console/", map[string]string{"Accept-Language": c.accept})); got != c.want {
			t.Fatalf("Accept-Language %q: %s, want %s", c.accept, got, c.want)
		}
	}
	a := call(t, srv, "GET", "/admin/console/?lang=en", map[string]string{"Accept-Language": "zh-CN"})
	ck := a.header.Get("Set-Cookie")
	if langOf(a) != "en" || !strings.Contains(ck, "lectern_lang=en") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Fatalf("?lang=en: %s, cookie %q", langOf(a), ck)
	}
	if got := langOf(call(t, srv, "GET", "/admin/console/", map[string]string{"Accept-Language": "zh-CN", "Cookie": "lectern_lang=en"})); got != "en" {
		t.Fatalf("cookie: %s", got)
	}
	if got := langOf(call(t, srv, "GET", "/admin/console/?lang=xx", map[string]string{"Cookie": "lectern_lang=de"})); got != "zh" {
		t.Fatalf("unknown languages: %s", got)
	}
}

// Every label the templates and the script use is in the one table, in
// both languages, and the table has no label nothing uses.
func TestConsoleLabelTable(t *testing.T) {
	p := loadPages()
	used := map[string]bool{}
	read := func(name string) string {
		b, err := fs.ReadFile(assets, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tmpls, _ := fs.Glob(assets, "assets/templates/*.html")
	for _, name := range tmpls {
		for _, m := range regexp.MustCompile(`\.T "([a-z_]+)"`).FindAllStringSubmatch(read(name), -1) {
			used[m[1]] = true
		}
	}
	js := read("assets/static/console.js")
	for _, m := range regexp.MustCompile(`\bt\('([a-z_]+)'\)`).FindAllStringSubmatch(js, -1) {
		used[m[1]] = true
	}
	// Built names: t('pool_' + p), t('chart_' + c.name).
	for _, pool := range (formView{}).Pools() {
		used["pool_"+pool] = true
		if !strings.Contains(js, "'"+pool+"'") {
			t.Fatalf("the script's POOLS lack %s", pool)
		}
	}
	for _, n := range chartNames() {
		used["chart_"+n] = true
	}
	if len(used) < 40 {
		t.Fatalf("found only %d labels in use: the patterns no longer match", len(used))
	}
	for _, lang := range languages() {
		for id := range used {
			if p.labels[lang][id] == "" {
				t.Errorf("label %q has no %s text", id, lang)
			}
		}
	}
	for id := range p.labels["zh"] {
		if !used[id] {
			t.Errorf("label %q is not used", id)
		}
	}
	if _, err := parseLabels([]byte(`{"a":{"zh":"甲"}}`)); err == nil {
		t.Fatal("a label without English was accepted")
	}
	if _, err := parseLabels([]byte(`{"a":{"zh":"甲","en":"A","fr":"A"}}`)); err == nil {
		t.Fatal("a label with a third language was accepted")
	}
	if !slices.Equal(languages(), []string{"zh", "en"}) {
		t.Fatal(languages())
	}
}

// The static files are served to anyone (they hold no data).
func TestConsoleStatic(t *testing.T) {
	srv := newServer(t, testKey)
	for name, ct := range map[string]string{"console.js": "text/javascript", "console.css": "text/css", "labels.json": "application/json"} {
		a := call(t, srv, "GET", "/admin/console/static/"+name, nil)
		if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), ct) || a.header.Get("Cache-Control") != "no-cache" ||
			a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d %v", name, a.status, a.header)
		}
	}
	js := call(t, srv, "GET", "/admin/console/static/console.js", nil).body
	// The key lives in sessionStorage only, and the script writes no HTML.
	if strings.Contains(js, "localStorage") || strings.Contains(js, "innerHTML") || strings.Contains(js, "document.write") {
		t.Fatal("the script uses localStorage, innerHTML or document.write")
	}
}
