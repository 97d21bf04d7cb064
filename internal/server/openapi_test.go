package server

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lectern/lectern/internal/apidoc"
)

// apiValidator checks requests and responses against the built document;
// it is built once for the test binary and shared by every env.
var apiValidator = sync.OnceValues(func() (*apidoc.Validator, error) {
	built, err := apidoc.Build()
	if err != nil {
		return nil, err
	}
	doc, err := apidoc.Load(context.Background(), built)
	if err != nil {
		return nil, err
	}
	return apidoc.NewValidator(doc)
})

// validated is h with every request and response checked against the
// OpenAPI document. What disagrees with it fails t when t ends (after the
// env's cleanup has closed its HTTP server, so every request has been
// answered): a route missing from the document, a request the document
// refuses but the server accepted, an answer whose status, content type
// or body the document does not describe.
func validated(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	v, err := apiValidator()
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	checked := v.Wrap(h)
	t.Cleanup(func() {
		fails := checked.Failures()
		if len(fails) == 0 {
			return
		}
		var lines []string
		for _, f := range fails {
			if s := f.String(); !slices.Contains(lines, s) {
				lines = append(lines, s)
			}
		}
		more := ""
		if len(lines) > 20 {
			more = fmt.Sprintf("\n… and %d more", len(lines)-20)
			lines = lines[:20]
		}
		t.Errorf("openapi: %d request(s) disagree with internal/apidoc/openapi.yaml (fix the document, or report the handler):\n%s%s",
			len(fails), strings.Join(lines, "\n"), more)
	})
	return checked
}

// registration is one route a source file registers: the receiver of the
// Handle call (mux, debug…) and its pattern.
type registration struct{ recv, pattern string }

// registered lists the calls of file to Handle, HandleFunc or handle whose
// first argument is a string literal: the routes of a ServeMux that cannot
// list its own.
func registered(t *testing.T, file string) []registration {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []registration
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		var recv, name string
		switch fn := call.Fun.(type) {
		case *ast.SelectorExpr:
			name = fn.Sel.Name
			if id, ok := fn.X.(*ast.Ident); ok {
				recv = id.Name
			}
		case *ast.Ident:
			name = fn.Name
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING || (name != "Handle" && name != "HandleFunc" && name != "handle") {
			return true
		}
		p, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, registration{recv, p})
		return true
	})
	if len(out) == 0 {
		t.Fatalf("%s registers no route: has its registration changed?", file)
	}
	return out
}

// served is one route the server serves: a ServeMux pattern with its
// method ("" for every method) and its rule when it is a tenant route.
type served struct {
	method, path, rule string
}

// splitPattern splits "GET /a/{$}" into GET and /a/.
func splitPattern(p string) (method, path string) {
	if m, rest, ok := strings.Cut(p, " "); ok {
		method, p = m, rest
	}
	return method, strings.TrimSuffix(p, "{$}")
}

// covers reports whether the served route s serves the documented one.
func (s served) covers(r apidoc.Route) bool {
	if s.method != "" && s.method != r.Method {
		return false
	}
	if s.path == r.Path {
		return true
	}
	// A pattern ending in "/" is a subtree (net/http/pprof's index
	// serves every named profile under it).
	return strings.HasSuffix(s.path, "/") && strings.HasPrefix(r.Path, s.path)
}

// Every route the server serves is in the document, with its rule, and the
// document has no route the server does not serve: the tenant routes (the
// default tenant's router with authentication on, so /auth/* is there, at
// the root and under /t/{tenant_id}), the admin API, the console and the
// server's own routes.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	built, err := apidoc.Build()
	if err != nil {
		t.Fatal(err)
	}
	documented, err := apidoc.Routes(built)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withAuth)
	var all []served
	tenantRoutes := e.srv.fallback.Routes()
	if len(tenantRoutes) < 50 {
		t.Fatalf("the tenant router lists %d routes", len(tenantRoutes))
	}
	for _, r := range tenantRoutes {
		method, path := splitPattern(r.Pattern)
		if path == "/" && method == "" {
			continue // the router's own 404
		}
		for _, p := range []string{path, apidoc.TenantPrefix + path} {
			all = append(all, served{method, p, r.Rule.String()})
		}
	}
	// tenantapp.WithReadiness answers /ready in front of every tenant.
	all = append(all, served{"GET", "/ready", "public"}, served{"GET", apidoc.TenantPrefix + "/ready", "public"})
	for _, r := range registered(t, "../tenancy/routes.go") {
		method, path := splitPattern(r.pattern)
		switch {
		case path == "/admin/":
			continue // the admin API's own 404
		case r.recv == "debug":
			path = "/admin" + path // served under http.StripPrefix("/admin", debug)
		}
		// A pattern without a method (net/http/pprof's) serves every
		// method: GET must be described, others may be.
		all = append(all, served{method, path, ""})
	}
	for _, r := range registered(t, "../console/console.go") {
		method, path := splitPattern(r.pattern)
		if method == "" && path == "/" {
			continue // the console's own 404
		}
		all = append(all, served{method, path, ""})
	}
	// The server's own: GET /metrics (metricsRoute), the description.
	all = append(all, served{"GET", "/metrics", ""})
	for _, p := range apidoc.Served() {
		method, path := splitPattern(p)
		all = append(all, served{method, path, ""})
	}

	for _, s := range all {
		method := s.method
		if method == "" {
			method = "GET"
		}
		i := slices.IndexFunc(documented, func(r apidoc.Route) bool { return r.Method == method && r.Path == s.path })
		switch {
		case i < 0:
			t.Errorf("%s %s is served but missing from the document", method, s.path)
		case s.rule != "" && documented[i].Rule != s.rule:
			t.Errorf("%s %s: the document says x-lectern-rule %q, the router %q", method, s.path, documented[i].Rule, s.rule)
		}
	}
	for _, r := range documented {
		if !slices.ContainsFunc(all, func(s served) bool { return s.covers(r) }) {
			t.Errorf("%s %s is in the document but not served", r.Method, r.Path)
		}
		if r.Rule == "" {
			t.Errorf("%s %s has no x-lectern-rule", r.Method, r.Path)
		}
	}
	t.Logf("%d operations documented (%d served routes)", len(documented), len(all))
}

// GET /openapi.json is the built document, which kin-openapi loads and
// validates as OpenAPI 3.1; GET /docs is its page, with its own CSP and no
// external asset. Both are served at the root only.
func TestOpenAPIAndDocsServed(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client.Get(e.http.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var body json.RawMessage
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	doc, err := apidoc.Load(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for _, p := range []string{"/exams", "/t/{tenant_id}/exams", "/admin/tenants/{id}", "/metrics"} {
		if doc.Paths.Value(p) == nil {
			t.Errorf("the served document lacks %s", p)
		}
	}

	resp, err = e.client.Get(e.http.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	var page strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		page.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	html := page.String()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("/docs: %d %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{"/exam/{exam_id}/charts/{name}", "POST", "/admin/tenants/{id}", "job_id"} {
		if !strings.Contains(html, want) {
			t.Errorf("/docs lacks %s", want)
		}
	}
	for _, external := range []string{"<script", "http://", "https://", "<link"} {
		if strings.Contains(html, external) {
			t.Errorf("/docs has %q", external)
		}
	}

	expect(t, e.do("POST", "/docs", "", nil), 405, `{"detail":"method not allowed"}`)
	expect(t, e.putTenant("t1", nil), 200, "")
	expect(t, e.get("/t/t1/openapi.json"), 404, `{"detail":"Not Found"}`)
}
