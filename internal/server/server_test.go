package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/limits"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const adminKey = "test-admin-key"

// env is a started server over real files, reached through real HTTP.
type env struct {
	t      testing.TB
	root   string
	srv    *Server
	http   *httptest.Server
	client *http.Client
}

func newEnv(t testing.TB, mutate ...func(*Config)) *env {
	t.Helper()
	root := envRoot(t)
	cfg := Config{
		DataDir:      filepath.Join(root, "data"),
		UploadsDir:   filepath.Join(root, "uploads"),
		TenantDBPath: filepath.Join(root, "data", "_system", "tenants.sqlite3"),
		AdminKey:     adminKey,
		Global:       limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4},
		ChatWorkers:  2,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, root: root, srv: srv, http: newHTTP(t, srv)}
	// No keep-alive: a finished request leaves no connection goroutine
	// behind, so goleak sees only what the server itself keeps running.
	e.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	if _, ok := t.(*testing.B); ok {
		// A benchmark's client keeps its connections, as a browser does:
		// the figure is the server's, not a TCP handshake per request.
		keep := &http.Transport{MaxIdleConnsPerHost: 64}
		e.client = &http.Client{Transport: keep, Timeout: 30 * time.Second}
		t.Cleanup(keep.CloseIdleConnections)
	}
	t.Cleanup(func() {
		e.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return e
}

// envRoot is the test's temporary directory; a benchmark run with
// LECTERN_BENCH_KEEP=dir makes it under dir and leaves it there (the
// caller removes dir), so that deleting one run's files does not tax the
// next one's file creations (on ext4 without a journal, an inode freed in
// the last minutes is skipped by every allocation: see docs/benchmarks.md).
func envRoot(t testing.TB) string {
	keep := os.Getenv("LECTERN_BENCH_KEEP")
	if _, bench := t.(*testing.B); !bench || keep == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(keep, "run-")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// newHTTP serves srv over real HTTP. Every request and response goes
// through the OpenAPI validator (validated, openapi_test.go), whose
// disagreements fail t; a fuzz target's requests, hostile on purpose, and
// a benchmark's, which measure the server alone, are not checked.
func newHTTP(t testing.TB, srv *Server) *httptest.Server {
	t.Helper()
	switch t.(type) {
	case *testing.F, *testing.B:
		return httptest.NewServer(srv.Handler())
	}
	return httptest.NewServer(validated(t, srv.Handler()))
}

type response struct {
	status int
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (e *env) do(method, path, key string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-Admin-Key", key)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, data}
}

func (e *env) get(path string) response { return e.do("GET", path, "", nil) }

func (e *env) tenantDirs(id string) (string, string) {
	return filepath.Join(e.root, "tenants", id, "data"), filepath.Join(e.root, "tenants", id, "uploads")
}

func (e *env) putTenant(id string, extra map[string]any) response {
	e.t.Helper()
	data, uploads := e.tenantDirs(id)
	body := map[string]any{"data_dir": data, "uploads_dir": uploads}
	if extra != nil {
		body["extra"] = extra
	}
	return e.do("PUT", "/admin/tenants/"+id, adminKey, body)
}

func writeManifest(t testing.TB, dataDir, examID, generatedAt string, students int) {
	t.Helper()
	m := map[string]any{"exam_id": examID, "generated_at": generatedAt,
		"counts": map[string]any{"students": students, "responses": students * 10}}
	if err := atomicfile.WriteJSON(filepath.Join(dataDir, "exams", examID, "manifest.json"), m); err != nil {
		t.Fatal(err)
	}
}

func expect(t testing.TB, r response, status int, body string) {
	t.Helper()
	if r.status != status || (body != "" && strings.TrimSpace(string(r.body)) != body) {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, body)
	}
}

// The admin API requires the key; with none configured it is closed.
func TestAdminRequiresKey(t *testing.T) {
	e := newEnv(t)
	expect(t, e.do("PUT", "/admin/tenants/t1", "", map[string]any{"data_dir": "/x", "uploads_dir": "/y"}), 401, `{"detail":"unauthorized"}`)
	expect(t, e.do("GET", "/admin/tenants", "wrong", nil), 401, `{"detail":"unauthorized"}`)
	expect(t, e.do("GET", "/admin/tenants", adminKey+"x", nil), 401, `{"detail":"unauthorized"}`)
	expect(t, e.do("GET", "/admin/nothing", "", nil), 401, `{"detail":"unauthorized"}`)
	expect(t, e.do("GET", "/admin/tenants", adminKey, nil), 200, `{"ok":true,"tenants":[]}`)

	closed := newEnv(t, func(c *Config) { c.AdminKey = "" })
	expect(t, closed.do("GET", "/admin/tenants", "", nil), 401, `{"detail":"admin key not configured"}`)
	expect(t, closed.do("GET", "/admin/tenants", "anything", nil), 401, `{"detail":"admin key not configured"}`)
}

// Create a tenant, then /t/t1/health answers.
func TestCreateTenantThenHealth(t *testing.T) {
	e := newEnv(t)
	expect(t, e.get("/t/t1/health"), 404, `{"detail":"tenant not found"}`)
	expect(t, e.putTenant("t1", nil), 200, `{"ok":true,"tenant_id":"t1"}`)
	expect(t, e.get("/t/t1/health"), 200, healthBody)
	expect(t, e.get("/t/t1/nothing-here"), 404, `{"detail":"Not Found"}`)
	expect(t, e.get("/t/t1/ready"), 200, `{"status":"ready"}`)
	// The directories are made by the tenant's first write, not by its
	// load (a mkdir is ~0.2 ms on this VM's disk).
	data, uploads := e.tenantDirs("t1")
	for _, d := range []string{data, uploads} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s made by the load (%v)", d, err)
		}
	}
	if r := e.postJSON("/t/t1/chat/start", teacherTurn("first-write", "你好")); r.status != 200 {
		t.Fatalf("chat/start: %d %s", r.status, r.body)
	}
	for _, d := range []string{data, uploads} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Fatalf("%s not made by the first write: %v", d, err)
		}
	}
}

// Two tenants each see only their own exams; the default tenant sees its own.
func TestTenantsSeeOnlyTheirOwnExams(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"t1", "t2"} {
		expect(t, e.putTenant(id, nil), 200, "")
	}
	d1, _ := e.tenantDirs("t1")
	d2, _ := e.tenantDirs("t2")
	writeManifest(t, d1, "EX_T1", "2026-01-02T10:00:00", 30)
	writeManifest(t, d2, "EX_T2", "2026-01-03T10:00:00", 25)
	writeManifest(t, e.srv.cfg.DataDir, "EX_DEFAULT", "2026-01-04T10:00:00", 5)

	expect(t, e.get("/t/t1/exams"), 200, `{"exams":[{"exam_id":"EX_T1","generated_at":"2026-01-02T10:00:00","students":30,"responses":300}]}`)
	expect(t, e.get("/t/t2/exams"), 200, `{"exams":[{"exam_id":"EX_T2","generated_at":"2026-01-03T10:00:00","students":25,"responses":250}]}`)
	expect(t, e.get("/exams"), 200, `{"exams":[{"exam_id":"EX_DEFAULT","generated_at":"2026-01-04T10:00:00","students":5,"responses":50}]}`)
	expect(t, e.get("/health"), 200, healthBody)
}

// A manifest changed or added behind the server's back shows in the
// listing within exams.Revalidate.
func TestExamListingNoticesChanges(t *testing.T) {
	e := newEnv(t)
	dir := e.srv.cfg.DataDir
	writeManifest(t, dir, "A", "2026-01-01T00:00:00", 1)
	first := e.get("/exams")
	changed := time.Now()
	writeManifest(t, dir, "A", "2026-01-01T00:00:00", 200)
	if err := os.MkdirAll(filepath.Join(dir, "exams", "B"), 0o755); err != nil {
		t.Fatal(err)
	}
	var second response
	waitFor(t, func() bool { second = e.get("/exams"); return !bytes.Equal(first.body, second.body) })
	if d := time.Since(changed); d > exams.Revalidate+500*time.Millisecond {
		t.Fatalf("change noticed after %v", d)
	}
	expect(t, second, 200, `{"exams":[{"exam_id":"A","generated_at":"2026-01-01T00:00:00","students":200,"responses":2000},{"exam_id":"B","generated_at":null,"students":null,"responses":null}]}`)
}

func TestAdminListGetDelete(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("t1", map[string]any{"limits": map[string]any{"llm_student": 3}, "name": "一中"}), 200, "")
	expect(t, e.putTenant("t2", nil), 200, "")

	list := e.do("GET", "/admin/tenants", adminKey, nil).json(t)
	tenants := list["tenants"].([]any)
	if len(tenants) != 2 {
		t.Fatalf("list: %v", list)
	}
	first := tenants[0].(map[string]any)
	data, _ := e.tenantDirs("t1")
	if first["tenant_id"] != "t1" || first["data_dir"] != data || first["enabled"] != true || first["loaded"] != true ||
		first["updated_at"] == "" || first["extra"].(map[string]any)["name"] != "一中" {
		t.Fatalf("list entry: %v", first)
	}

	one := e.do("GET", "/admin/tenants/t1", adminKey, nil)
	expect(t, one, 200, "")
	tenant := one.json(t)["tenant"].(map[string]any)
	status := tenant["status"].(map[string]any)
	lim := status["limits"].(map[string]any)
	if lim["llm_student"] != 3.0 || lim["llm_total"] != 30.0 || lim["llm_teacher"] != 10.0 || lim["ocr"] != 5.0 {
		t.Fatalf("limits: %v", lim)
	}
	if tenant["loaded_at"] == nil || tenant["in_flight"] != 0.0 || len(status["workers"].([]any)) != 6 {
		t.Fatalf("detail: %v", tenant)
	}

	expect(t, e.do("GET", "/admin/tenants/nope", adminKey, nil), 404, `{"detail":"tenant not found"}`)
	expect(t, e.do("DELETE", "/admin/tenants/nope", adminKey, nil), 404, `{"detail":"tenant not found"}`)
	expect(t, e.do("DELETE", "/admin/tenants/t1", adminKey, nil), 200, `{"ok":true,"tenant_id":"t1"}`)
	expect(t, e.get("/t/t1/health"), 404, `{"detail":"tenant not found"}`)
	after := e.do("GET", "/admin/tenants/t1", adminKey, nil).json(t)["tenant"].(map[string]any)
	if after["enabled"] != false || after["loaded"] != false {
		t.Fatalf("after delete: %v", after)
	}
	expect(t, e.get("/t/t2/health"), 200, healthBody)

	// PUT with enabled:false unloads; enabled again reloads.
	expect(t, e.do("PUT", "/admin/tenants/t2", adminKey, map[string]any{"data_dir": mustDir(e, "t2", 0), "uploads_dir": mustDir(e, "t2", 1), "enabled": false}), 200, "")
	expect(t, e.get("/t/t2/health"), 404, "")
	expect(t, e.putTenant("t2", nil), 200, "")
	expect(t, e.get("/t/t2/health"), 200, "")
}

func mustDir(e *env, id string, i int) string {
	d, u := e.tenantDirs(id)
	return []string{d, u}[i]
}

// Bad PUTs are 400 with a clear detail, and nothing is stored.
func TestAdminPutValidation(t *testing.T) {
	root := t.TempDir()
	e := newEnv(t, func(c *Config) { c.DataRoot = root })
	ok := func(id string) map[string]any {
		return map[string]any{"data_dir": filepath.Join(root, id, "data"), "uploads_dir": filepath.Join(root, id, "uploads")}
	}
	expect(t, e.do("PUT", "/admin/tenants/good", adminKey, ok("good")), 200, "")
	with := func(id string, k string, v any) map[string]any {
		b := ok(id)
		b[k] = v
		return b
	}
	link := filepath.Join(root, "escape")
	if err := os.Symlink(e.root, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, id string
		body     any
		detail   string
	}{
		{"bad id", "-x", ok("x"), "invalid tenant_id"},
		{"id too long", strings.Repeat("a", 65), ok("x"), "invalid tenant_id"},
		{"dot-dot id", "%2e%2e", ok("x"), "invalid tenant_id"},
		{"slash id", "a%2Fb", ok("x"), "invalid tenant_id"},
		{"empty data_dir", "x", with("x", "data_dir", ""), "data_dir is empty"},
		{"missing uploads_dir", "x", map[string]any{"data_dir": filepath.Join(root, "x")}, "uploads_dir is empty"},
		{"relative", "x", with("x", "data_dir", "rel/data"), `data_dir "rel/data" is not an absolute path`},
		{"outside root", "x", with("x", "uploads_dir", filepath.Join(e.root, "elsewhere")), "uploads_dir must be inside TENANT_DATA_ROOT"},
		{"the root itself", "x", with("x", "data_dir", root), "data_dir must be inside TENANT_DATA_ROOT"},
		{"dotdot escape", "x", with("x", "data_dir", root+"/x/../../outside"), "data_dir must be inside TENANT_DATA_ROOT"},
		{"symlink escape", "x", with("x", "data_dir", filepath.Join(link, "data")), "data_dir must be inside TENANT_DATA_ROOT"},
		{"overlaps other tenant", "x", with("x", "data_dir", filepath.Join(root, "good", "data", "sub")), "data_dir overlaps a directory of tenant good"},
		{"contains other tenant", "x", with("x", "uploads_dir", filepath.Join(root, "good")), "uploads_dir overlaps a directory of tenant good"},
		{"same directory twice", "x", with("x", "uploads_dir", filepath.Join(root, "x", "data")), "data_dir and uploads_dir must be two separate directories"},
		{"uploads inside data", "x", with("x", "uploads_dir", filepath.Join(root, "x", "data", "up")), "data_dir and uploads_dir must be two separate directories"},
		{"data inside uploads", "x", with("x", "data_dir", filepath.Join(root, "x", "uploads", "d")), "data_dir and uploads_dir must be two separate directories"},
		{"malformed json", "x", `{"data_dir":`, ""},
		{"not an object", "x", `[1]`, ""},
		{"unknown field", "x", `{"data_dir":"/a","uploads_dir":"/b","colour":"red"}`, `invalid JSON body: json: unknown field "colour"`},
		{"trailing data", "x", `{"data_dir":"/a","uploads_dir":"/b"} {}`, ""},
		{"zero limit", "x", with("x", "extra", map[string]any{"limits": map[string]any{"llm_total": 0}}), "extra.limits.llm_total must be a positive integer, got 0"},
		{"fraction limit", "x", with("x", "extra", map[string]any{"ocr": 1.5}), "extra.ocr must be a positive integer, got 1.5"},
		{"string limit", "x", with("x", "extra", map[string]any{"limits": map[string]any{"llm_student": "2"}}), "extra.limits.llm_student must be a positive integer, got 2"},
		{"limits not object", "x", with("x", "extra", map[string]any{"limits": 3}), "extra.limits must be an object, not float64"},
		{"enabled not bool", "x", with("x", "enabled", "yes"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("PUT", "/admin/tenants/"+c.id, adminKey, c.body)
			if r.status != 400 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			detail, _ := r.json(t)["detail"].(string)
			if detail == "" || (c.detail != "" && !strings.HasPrefix(detail, c.detail)) {
				t.Fatalf("detail %q, want prefix %q", detail, c.detail)
			}
		})
	}
	list := e.do("GET", "/admin/tenants", adminKey, nil).json(t)["tenants"].([]any)
	if len(list) != 1 {
		t.Fatalf("stored %d tenants, want only the good one: %v", len(list), list)
	}
}

// A body over the admin API's cap is 413, and nothing is stored.
func TestAdminPutBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	data, uploads := e.tenantDirs("big")
	body := `{"data_dir":"` + data + `","uploads_dir":"` + uploads + `","extra":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}`
	r := e.do("PUT", "/admin/tenants/big", adminKey, body)
	if r.status != 413 || !strings.Contains(r.json(t)["detail"].(string), "larger than") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	expect(t, e.do("GET", "/admin/tenants/big", adminKey, nil), 404, "")
}

// The server's own directories are resolved at startup: configured through
// a symbolic link (a deploy link such as /srv/app/current), they are still
// recognised when a tenant names them by their real path, or by another
// link, and a TENANT_DATA_ROOT reached through a link still admits the
// directories inside it.
func TestAdminPutRefusesServerDirectoriesThroughSymlinks(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "releases", "v1")
	tenantsReal := filepath.Join(base, "tenants-real")
	for _, d := range []string{real, tenantsReal} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(base, "current")
	tenantsLink := filepath.Join(base, "tenants")
	for link, target := range map[string]string{current: real, tenantsLink: tenantsReal} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	linked := func(c *Config) {
		c.DataDir = filepath.Join(current, "data")
		c.UploadsDir = filepath.Join(current, "uploads")
		c.TenantDBPath = filepath.Join(current, "system", "tenants.sqlite3")
	}
	t.Run("reserved", func(t *testing.T) {
		e := newEnv(t, linked)
		writeManifest(t, filepath.Join(real, "data"), "SECRET_DEFAULT", "2026-01-01T00:00:00", 1)
		other := filepath.Join(base, "sneaky") // another link to the release, made after startup
		if err := os.Symlink(real, other); err != nil {
			t.Fatal(err)
		}
		for name, dir := range map[string]string{
			"default data by its real path":     filepath.Join(real, "data"),
			"default uploads by its real path":  filepath.Join(real, "uploads"),
			"store dir by its real path":        filepath.Join(real, "system"),
			"inside default data":               filepath.Join(real, "data", "exams"),
			"default data through another link": filepath.Join(other, "data"),
			"store dir through another link":    filepath.Join(other, "system"),
		} {
			r := e.do("PUT", "/admin/tenants/evil", adminKey, map[string]any{"data_dir": dir, "uploads_dir": filepath.Join(base, "evil", "uploads")})
			if r.status != 400 || !strings.Contains(string(r.body), "belongs to the server") {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		expect(t, e.do("GET", "/admin/tenants/evil", adminKey, nil), 404, "")
		expect(t, e.get("/t/evil/exams"), 404, `{"detail":"tenant not found"}`)
	})
	t.Run("data root through a link", func(t *testing.T) {
		e := newEnv(t, linked, func(c *Config) { c.DataRoot = tenantsLink })
		for i, dir := range []string{filepath.Join(tenantsLink, "ok1"), filepath.Join(tenantsReal, "ok2")} {
			id := fmt.Sprintf("ok%d", i+1)
			r := e.do("PUT", "/admin/tenants/"+id, adminKey, map[string]any{"data_dir": filepath.Join(dir, "data"), "uploads_dir": filepath.Join(dir, "uploads")})
			expect(t, r, 200, "")
		}
		r := e.do("PUT", "/admin/tenants/out", adminKey, map[string]any{"data_dir": filepath.Join(current, "x"), "uploads_dir": filepath.Join(tenantsLink, "out")})
		if r.status != 400 {
			t.Errorf("outside the root: %d %s", r.status, r.body)
		}
	})
}

// No tenant may overlap the default tenant's directories or the store's.
func TestAdminPutRefusesServerDirectories(t *testing.T) {
	e := newEnv(t)
	cfg := e.srv.cfg
	other := filepath.Join(e.root, "ok")
	for name, body := range map[string]map[string]any{
		"default data":    {"data_dir": filepath.Join(cfg.DataDir, "t1"), "uploads_dir": other},
		"default uploads": {"data_dir": other, "uploads_dir": cfg.UploadsDir},
		"store dir":       {"data_dir": filepath.Dir(cfg.TenantDBPath), "uploads_dir": other},
		"parent of all":   {"data_dir": e.root, "uploads_dir": other + "2"},
		"filesystem root": {"data_dir": "/", "uploads_dir": other},
	} {
		r := e.do("PUT", "/admin/tenants/t1", adminKey, body)
		if r.status != 400 || !strings.Contains(string(r.body), "belongs to the server") {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// Encoded tricks never reach another tenant or the default tenant's data.
func TestDispatcherEncodedTricks(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("t1", nil), 200, "")
	expect(t, e.putTenant("t2", nil), 200, "")
	d2, _ := e.tenantDirs("t2")
	writeManifest(t, d2, "SECRET_T2", "2026-01-01T00:00:00", 1)
	writeManifest(t, e.srv.cfg.DataDir, "SECRET_DEFAULT", "2026-01-01T00:00:00", 1)
	for _, p := range []string{
		"/t/..%2F..", "/t/..%2F../exams", "/t/a%2Fb/x", "/t/%2e%2e/exams", "/t/%2E%2E/t2/exams",
		"/t/t1/%2e%2e/t2/exams", "/t/t1/..%2F..%2Ft2%2Fexams", "/t/t1/%2e%2e/%2e%2e/exams",
		"/t/t1%00/exams", "/t/t1/exams%00", "/t/t2%2Fexams", "/t//exams", "/t/%00/exams",
	} {
		r := e.get(p)
		if r.status != 404 || bytes.Contains(r.body, []byte("SECRET")) {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	expect(t, e.get("/t/t1/exams"), 200, `{"exams":[]}`)
}

// 50 concurrent first requests to a tenant that is in the store but not
// loaded (as after a restart) all succeed against one instance.
func TestConcurrentFirstRequests(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("t1", nil), 200, "")
	if err := e.srv.Registry().Unload(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failures atomic.Int32
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			if r := e.get("/t/t1/health"); r.status != 200 {
				failures.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of 50 first requests failed", n)
	}
}

// A loop of requests while PUT replaces the tenant twenty times: no
// request fails, and each sees a consistent listing.
func TestReplaceUnderLoad(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("t1", nil), 200, "")
	d1, _ := e.tenantDirs("t1")
	for i := range 5 {
		writeManifest(t, d1, fmt.Sprintf("EX%d", i), "2026-01-01T00:00:00", i)
	}
	client := &http.Client{Timeout: 30 * time.Second} // keep-alive on: realistic load
	defer client.CloseIdleConnections()
	stop := make(chan struct{})
	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(e.http.URL + "/t/t1/exams")
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"EX4"`)) {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, body))
				}
			}
		})
	}
	for i := range 20 {
		r := e.putTenant("t1", map[string]any{"limits": map[string]any{"llm_total": i + 1}})
		if r.status != 200 {
			t.Errorf("PUT %d: %d %s", i, r.status, r.body)
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during replaces; first: %v", n, requests.Load(), firstFailure.Load())
	}
	if requests.Load() < 20 {
		t.Fatalf("only %d requests ran during the replaces", requests.Load())
	}
	detail := e.do("GET", "/admin/tenants/t1", adminKey, nil).json(t)["tenant"].(map[string]any)
	if got := detail["status"].(map[string]any)["limits"].(map[string]any)["llm_total"]; got != 20.0 {
		t.Fatalf("llm_total after replaces = %v, want 20", got)
	}
}

// DELETE stops every goroutine of the tenant.
func TestDeleteLeavesNoGoroutines(t *testing.T) {
	e := newEnv(t)
	baseline := goleak.IgnoreCurrent()
	expect(t, e.putTenant("t1", nil), 200, "")
	expect(t, e.get("/t/t1/exams"), 200, "")
	expect(t, e.do("DELETE", "/admin/tenants/t1", adminKey, nil), 200, "")
	goleak.VerifyNone(t, baseline)
}

// The default tenant answers at root paths exactly as before, and /t and
// /admin (no slash) fall through to it.
func TestDefaultTenantAtRoot(t *testing.T) {
	e := newEnv(t)
	expect(t, e.get("/health"), 200, healthBody)
	expect(t, e.get("/exams"), 200, `{"exams":[]}`)
	expect(t, e.get("/t"), 404, `{"detail":"Not Found"}`)
	expect(t, e.get("/admin"), 404, `{"detail":"Not Found"}`)
}

// healthBody is GET /health of a server without an LLM.
const healthBody = `{"status":"ok","llm":"not_configured","hint":"set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (or LLM_PROVIDERS_FILE) to enable chat"}`
