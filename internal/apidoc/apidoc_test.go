package apidoc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// built is the document, loaded once for the package's tests.
var built = sync.OnceValues(func() (*openapi3.T, error) {
	b, err := Build()
	if err != nil {
		return nil, err
	}
	return Load(context.Background(), b)
})

func document(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := built()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// The document is OpenAPI 3.1 (kin-openapi validates it as such); every
// tenant route has its /t/{tenant_id} copy with the tenant parameter and
// the answers of the layers in front of the routers.
func TestBuild(t *testing.T) {
	doc := document(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	b, _ := Build()
	routes, err := Routes(b)
	if err != nil {
		t.Fatal(err)
	}
	var root, copies int
	for _, r := range routes {
		if r.Scope != ScopeTenant {
			continue
		}
		if r.TenantCopy {
			copies++
			continue
		}
		root++
		cp := doc.Paths.Value(TenantPrefix + r.Path)
		if cp == nil || cp.GetOperation(r.Method) == nil {
			t.Errorf("%s %s has no tenant copy", r.Method, r.Path)
			continue
		}
		if p := cp.Parameters.GetByInAndName("path", "tenant_id"); p == nil || !p.Required {
			t.Errorf("%s%s lacks the tenant_id parameter", TenantPrefix, r.Path)
		}
		op := cp.GetOperation(r.Method)
		for _, status := range []int{404, 500, 503} {
			if op.Responses.Status(status) == nil {
				t.Errorf("%s %s%s lacks %d", r.Method, TenantPrefix, r.Path, status)
			}
		}
		if r.Rule != "login" && op.Responses.Status(401) == nil {
			t.Errorf("%s %s lacks 401", r.Method, r.Path)
		}
		if op.RequestBody != nil && (op.Responses.Status(413) == nil || op.Responses.Status(408) == nil) {
			t.Errorf("%s %s takes a body but lacks 408 or 413", r.Method, r.Path)
		}
	}
	known := map[string]bool{}
	for _, r := range rules {
		known[r.Name] = true
	}
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	for _, r := range routes {
		op := doc.Paths.Value(r.Path).GetOperation(r.Method)
		if !known[r.Rule] {
			t.Errorf("%s %s: x-lectern-rule %q is not explained on /docs", r.Method, r.Path, r.Rule)
		}
		if op.Summary == "" || len(op.Tags) != 1 || !tags[op.Tags[0]] {
			t.Errorf("%s %s: summary %q, tags %v", r.Method, r.Path, op.Summary, op.Tags)
		}
	}
	if root < 90 || copies != root {
		t.Fatalf("%d tenant routes, %d copies", root, copies)
	}
	if got := doc.Paths.Value("/health").Get.Responses.Status(429); got != nil {
		t.Error("/health is described as rate limited")
	}
	if doc.Paths.Value("/exams").Get.Responses.Status(429) == nil {
		t.Error("/exams is not described as rate limited")
	}
}

// GET /openapi.json and GET /docs, at the root only; other requests pass.
func TestDocsHandler(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(NewDocs(nil).Wrap(next))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %v", resp.StatusCode, resp.Header)
	}
	doc, err := Load(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil || doc.Paths.Value("/t/{tenant_id}/chat/stream") == nil {
		t.Fatalf("served document: %v", err)
	}

	resp, err = http.Get(srv.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(data)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("/docs: %d %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{"/exam/upload/start", "score_files: &lt;file&gt;   (repeatable)", "/admin/tenants/{id}",
		"also /t/{tenant_id}/exams", "X-Admin-Key", "rate_limit_exceeded"} {
		if !strings.Contains(page, want) {
			t.Errorf("/docs lacks %q", want)
		}
	}

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"HEAD", "/docs", 200}, {"POST", "/openapi.json", 405}, {"GET", "/t/a/docs", 418}, {"GET", "/docs/", 418}, {"GET", "/exams", 418},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
	}
}

// Example makes a body from a schema: its example, enum or const, else
// one value of its type.
func TestExample(t *testing.T) {
	doc := document(t)
	v := Example(doc.Paths.Value("/admin/tenants/{id}").Put.RequestBody.Value.Content.Get("application/json").Schema)
	m, ok := v.(map[string]any)
	if !ok || m["data_dir"] != "string" || m["enabled"] != true {
		t.Fatalf("PUT /admin/tenants/{id} example: %#v", v)
	}
	v = Example(doc.Paths.Value("/exams").Get.Responses.Status(200).Value.Content.Get("application/json").Schema)
	data, _ := json.Marshal(v)
	if string(data) != `{"exams":[{"exam_id":"string","generated_at":"string","responses":0,"students":0}]}` {
		t.Fatalf("GET /exams example: %s", data)
	}
}

// fakeServer answers like the server, or not, for the validator's tests.
func fakeServer() http.Handler {
	mux := http.NewServeMux()
	exams := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("answer") {
		case "wrong":
			io.WriteString(w, `{"exams":[{"generated_at":1}]}`)
		case "teapot":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, `{"detail":"teapot"}`)
		case "text":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "404 page not found")
		default:
			io.WriteString(w, `{"exams":[{"exam_id":"E1","generated_at":null,"students":3,"responses":30}]}`)
		}
	}
	mux.HandleFunc("GET /exams", exams)
	mux.HandleFunc("GET /t/t1/exams", exams)
	mux.HandleFunc("PUT /admin/tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		err := json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("accept") == "" && (err != nil || body["uploads_dir"] == nil) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"detail":"uploads_dir is empty"}`)
			return
		}
		io.WriteString(w, `{"ok":true,"tenant_id":"`+r.PathValue("id")+`"}`)
	})
	mux.HandleFunc("GET /assignment/{id}/pdf", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.URL.Query().Get("type"))
		io.WriteString(w, "%PDF-1.4 …")
	})
	mux.HandleFunc("GET /chat/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for i := range 3 {
			fmt.Fprintf(w, "id: %d\nevent: job.delta\ndata: {}\n\n", i+1)
			http.NewResponseController(w).Flush()
			<-r.Context().Done() // the client reads the first event, then leaves
			return
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("answer") == "ok" {
			io.WriteString(w, `{"ok":true}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"detail":"Not Found"}`)
	})
	return mux
}

// The validator accepts what agrees with the document and records the
// rest: an answer the document does not describe, a request it refuses
// that the server accepted, a route it lacks.
func TestValidator(t *testing.T) {
	v, err := NewValidator(document(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body string
		want                     string // "" for no failure, else a part of it
	}{
		{"good answer", "GET", "/exams", "", ""},
		{"good answer, tenant copy", "GET", "/t/t1/exams", "", ""},
		{"HEAD as GET", "HEAD", "/exams", "", ""},
		{"body off its schema", "GET", "/exams?answer=wrong", "", "response body doesn't match"},
		{"undocumented status", "GET", "/exams?answer=teapot", "", "status is not supported"},
		{"undocumented content type", "GET", "/t/t1/exams?answer=text", "", `"text/plain"`},
		{"refused request, refused by both", "PUT", "/admin/tenants/x", `{"data_dir":"/a"}`, ""},
		{"refused request the server accepted", "PUT", "/admin/tenants/x?accept=1", `{"data_dir":"/a"}`, "the document refuses a request the server accepted"},
		{"unknown field the server accepted", "PUT", "/admin/tenants/x?accept=1", `{"data_dir":"/a","uploads_dir":"/b","colour":1}`, "colour"},
		{"good request", "PUT", "/admin/tenants/x", `{"data_dir":"/a","uploads_dir":"/b"}`, ""},
		{"bad tenant id, refused by both", "GET", "/t/%2e%2e/exams", "", ""},
		{"PDF", "GET", "/assignment/a1/pdf?type=application/pdf", "", ""},
		{"PDF as text", "GET", "/assignment/a1/pdf?type=text/plain", "", `Content-Type "text/plain" is not documented`},
		{"no route, 404", "GET", "/nowhere", "", ""},
		{"no route, served", "GET", "/nowhere?answer=ok", "", "route missing from the document"},
		{"no method, served", "PATCH", "/exams?answer=ok", "", "method missing from the document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checked := v.Wrap(fakeServer())
			srv := httptest.NewServer(checked)
			defer srv.Close()
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			srv.Close()
			fails := checked.Failures()
			switch {
			case c.want == "" && len(fails) > 0:
				t.Fatalf("failures: %v", fails)
			case c.want != "" && (len(fails) != 1 || !strings.Contains(fails[0].Err, c.want)):
				t.Fatalf("failures %v, want one with %q", fails, c.want)
			}
		})
	}
}

// An event stream is passed through as it is written, not buffered: the
// client reads the first event while the handler still runs.
func TestValidatorStreams(t *testing.T) {
	v, err := NewValidator(document(t))
	if err != nil {
		t.Fatal(err)
	}
	checked := v.Wrap(fakeServer())
	srv := httptest.NewServer(checked)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/chat/stream?job_id=j1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "id: 1\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	resp.Body.Close()
	srv.Close()
	if fails := checked.Failures(); len(fails) > 0 {
		t.Fatal(fails)
	}
	if n := checked.Counts(); n.Routed != 1 || n.ResponseBodies != 0 {
		t.Fatalf("counts %+v", n)
	}
}
