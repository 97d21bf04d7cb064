package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/tools"
)

// writeExam writes exam id to dataDir with the exams package's own
// encoders: the given students (id → name), class 一班, questions 1-3.
func writeExam(t testing.TB, dataDir, id string, students map[string]string) {
	t.Helper()
	qs := []exams.Question{
		{ID: "Q1", No: "1", MaxScore: 4, HasMax: true},
		{ID: "Q2", No: "2", MaxScore: 4, HasMax: true},
		{ID: "Q3", No: "3", MaxScore: 6, HasMax: true},
	}
	ids := make([]string, 0, len(students))
	for sid := range students {
		ids = append(ids, sid)
	}
	slices.Sort(ids)
	var rows []exams.Response
	for n, sid := range ids {
		for i, q := range qs {
			score := float64((n + i) % 5)
			rows = append(rows, exams.Response{ExamID: id, StudentID: sid, StudentName: students[sid], ClassName: "一班",
				QuestionID: q.ID, QuestionNo: q.No, RawValue: exams.FormatScore(score), HasRawValue: true,
				Score: score, Scored: true})
		}
	}
	dir := filepath.Join(dataDir, "exams", id)
	must(t, os.MkdirAll(filepath.Join(dir, "derived"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "manifest.json"),
		[]byte(`{"exam_id":"`+id+`","generated_at":"2026-03-01T10:00:00","meta":{"subject":"物理"},"files":{}}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "derived", "responses_scored.csv"), exams.ResponsesCSV(rows), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "derived", "questions.csv"), exams.QuestionsCSV(qs), 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// whoami reports the principal a tool runs as; adminOnly is a tool no
// teacher may call (so MCP never lists it).
var (
	whoami = tools.Tool{
		Name: "test.whoami", Description: "who the call runs as",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{}, "additionalProperties": false},
		Run: func(_ context.Context, c caller.Principal, _ map[string]any) (any, error) {
			return map[string]any{"tenant": c.Tenant, "role": c.Role, "teacher_id": c.TeacherID, "via": c.Via}, nil
		},
	}
	adminOnly = tools.Tool{
		Name: "test.admin_only", Description: "admins only",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{}, "additionalProperties": false},
		Rule:       policy.Admin,
		Run:        func(context.Context, caller.Principal, map[string]any) (any, error) { return "secret", nil },
	}
)

// tenantRegistry is a DATA_DIR holding exam examID and a registry of
// the exam tools over it (plus whoami and adminOnly).
func tenantRegistry(t testing.TB, examID string, students map[string]string) *tools.Registry {
	t.Helper()
	dir := t.TempDir()
	writeExam(t, dir, examID, students)
	reg, err := tools.NewRegistry(append(tools.ExamTools(exams.NewService(dir)), whoami, adminOnly)...)
	must(t, err)
	return reg
}

func fixed(reg *tools.Registry) func(context.Context) (*tools.Registry, error) {
	return func(context.Context) (*tools.Registry, error) { return reg, nil }
}

// as puts p in every request's context (the tenant middleware's job).
func as(p caller.Principal, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	})
}

// serve runs h over real HTTP.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// headers adds fixed headers to every request of the SDK client.
type headers struct {
	h    http.Header
	base http.RoundTripper
}

func (rt headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range rt.h {
		r.Header[k] = v
	}
	return rt.base.RoundTrip(r)
}

// connect opens an SDK client session to url, sending hdr (key/value
// pairs) with every request.
func connect(t testing.TB, url string, hdr ...string) (*mcp.ClientSession, error) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "lectern-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: headers{h, http.DefaultTransport}, Timeout: 10 * time.Second},
		MaxRetries: -1,
	}, nil)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func mustConnect(t testing.TB, url string, hdr ...string) *mcp.ClientSession {
	t.Helper()
	s, err := connect(t, url, hdr...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	return s
}

// callTool calls name and decodes its one text block.
func callTool(t testing.TB, s *mcp.ClientSession, name string, args any) (any, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("call %s: %d content blocks", name, len(res.Content))
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("call %s: content %T", name, res.Content[0])
	}
	var v any
	if err := json.Unmarshal([]byte(text.Text), &v); err != nil {
		t.Fatalf("call %s: text is not JSON: %v\n%s", name, err, text.Text)
	}
	return v, res.IsError
}

func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

// post sends one raw JSON-RPC body, as the predecessor's clients do.
func post(t testing.TB, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, string(b)
}

var (
	students1 = map[string]string{"S01": "李雷", "S02": "韩梅梅", "S03": "张伟"}
	teacherT1 = caller.Principal{Tenant: "a", Role: caller.RoleTeacher, TeacherID: "T1", Via: caller.Token}
)

func TestInitializeListAndCall(t *testing.T) {
	reg := tenantRegistry(t, "EX1", students1)
	url := serve(t, as(teacherT1, New(Config{Registry: fixed(reg), Resolver: caller.Resolver{Tenant: "a"}, Enforcing: true, Version: "1.2.3"})))
	s := mustConnect(t, url)

	init := s.InitializeResult()
	if init.ServerInfo.Name != "lectern" || init.ServerInfo.Version != "1.2.3" || init.Capabilities.Tools == nil {
		t.Fatalf("initialize: %+v", init)
	}

	ctx := context.Background()
	list, err := s.ListTools(ctx, nil)
	must(t, err)
	var names []string
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	var want []string
	for _, tl := range reg.Allowed(caller.RoleTeacher) {
		want = append(want, tl.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("tools/list names %v, want %v", names, want)
	}
	for _, n := range []string{"exam.list", "exam.get", "exam.students.list", "exam.student.get", "exam.question.get"} {
		if !slices.Contains(names, n) {
			t.Errorf("tools/list lacks %s", n)
		}
	}
	if slices.Contains(names, "test.admin_only") {
		t.Error("tools/list offers an admin-only tool to a teacher")
	}
	// The schema is the registry's, as is.
	for _, tl := range list.Tools {
		reg, _ := reg.Lookup(tl.Name)
		if got, want := asJSON(t, tl.InputSchema), asJSON(t, reg.Parameters); got != want {
			t.Errorf("%s inputSchema %s, want %s", tl.Name, got, want)
		}
		if tl.Description != reg.Description {
			t.Errorf("%s description %q", tl.Name, tl.Description)
		}
	}

	// exam.list on the fixture data.
	out, isErr := callTool(t, s, "exam.list", nil)
	if isErr || !strings.Contains(asJSON(t, out), `"EX1"`) {
		t.Fatalf("exam.list: isError %v, %s", isErr, asJSON(t, out))
	}
	// Each result is exactly what the registry's dispatch returns.
	for _, c := range []struct {
		name string
		args map[string]any
	}{
		{"exam.list", nil},
		{"exam.get", map[string]any{"exam_id": "EX1"}},
		{"exam.students.list", map[string]any{"exam_id": "EX1", "limit": 2}},
		{"exam.student.get", map[string]any{"exam_id": "EX1", "student_id": "S02"}},
	} {
		got, isErr := callTool(t, s, c.name, c.args)
		raw, _ := json.Marshal(c.args)
		var want any
		must(t, json.Unmarshal([]byte(asJSON(t, reg.Dispatch(ctx, teacherT1, c.name, raw))), &want))
		if isErr || asJSON(t, got) != asJSON(t, want) {
			t.Errorf("%s: isError %v\n got %s\nwant %s", c.name, isErr, asJSON(t, got), asJSON(t, want))
		}
	}
	if got := asJSON(t, callMap(t, s, "exam.get", map[string]any{"exam_id": "EX1"})["counts"]); !strings.Contains(got, `"students":3`) {
		t.Errorf("exam.get counts %s", got)
	}

	// The tool ran as the request's principal.
	who, _ := callTool(t, s, "test.whoami", nil)
	if got := asJSON(t, who); got != `{"role":"teacher","teacher_id":"T1","tenant":"a","via":"token"}` {
		t.Errorf("whoami %s", got)
	}
}

// callMap calls name, which must succeed with an object.
func callMap(t testing.TB, s *mcp.ClientSession, name string, args any) map[string]any {
	t.Helper()
	v, isErr := callTool(t, s, name, args)
	m, ok := v.(map[string]any)
	if !ok || isErr {
		t.Fatalf("result %v (isError %v)", v, isErr)
	}
	return m
}

func TestInvalidArgumentsAndToolErrors(t *testing.T) {
	reg := tenantRegistry(t, "EX1", students1)
	url := serve(t, as(teacherT1, New(Config{Registry: fixed(reg), Resolver: caller.Resolver{Tenant: "a"}, Enforcing: true})))
	s := mustConnect(t, url)
	for _, c := range []struct {
		name string
		args any
		want string
	}{
		{"exam.get", map[string]any{}, `{"error":"invalid_arguments","issues":["arguments.exam_id: required"],"tool":"exam.get"}`},
		{"exam.get", map[string]any{"exam_id": "EX1", "teacher_id": "T2"}, `{"error":"invalid_arguments","issues":["arguments.teacher_id: unexpected"],"tool":"exam.get"}`},
		{"exam.students.list", map[string]any{"exam_id": "EX1", "limit": "all"}, `{"error":"invalid_arguments","issues":["arguments.limit: expected integer"],"tool":"exam.students.list"}`},
		{"exam.students.list", map[string]any{"exam_id": "EX1", "limit": true}, `{"error":"invalid_arguments","issues":["arguments.limit: expected integer"],"tool":"exam.students.list"}`},
	} {
		out, isErr := callTool(t, s, c.name, c.args)
		if !isErr || asJSON(t, out) != c.want {
			t.Errorf("%s %v: isError %v, %s\nwant %s", c.name, c.args, isErr, asJSON(t, out), c.want)
		}
	}
	// The tool's own failure (an exam that does not exist) is an error
	// result too.
	out, isErr := callTool(t, s, "exam.get", map[string]any{"exam_id": "NOPE"})
	if m, _ := out.(map[string]any); !isErr || m["tool"] != "exam.get" || m["error"] == nil {
		t.Errorf("missing exam: isError %v, %s", isErr, asJSON(t, out))
	}
	// A tool no teacher may call is not there at all: a protocol error.
	ctx := context.Background()
	if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "test.admin_only"}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Errorf("admin-only tool: %v", err)
	}
	if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "exam_get", Arguments: map[string]any{"exam_id": "EX1"}}); err == nil {
		t.Error("the OpenAI wire name answered over MCP")
	}
	// Arguments that are not an object.
	status, body := post(t, url, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exam.get","arguments":["EX1"]}}`)
	if status != http.StatusOK || !strings.Contains(body, `"isError":true`) || !strings.Contains(body, `arguments: expected object`) {
		t.Errorf("array arguments: %d %s", status, body)
	}
}

// authApp is a tenant's real authenticate middleware (caller.Authenticator)
// over h, with auth on: bearer tokens "teacher-T1", "admin", "student-S01"
// of tenant a, and "other-tenant", a token of tenant b (refused as the
// tenant app refuses it).
func authApp(h http.Handler) http.Handler {
	auth := caller.Authenticator{
		Resolver: caller.Resolver{Tenant: "a", DefaultTeacherID: "teacher_zero"},
		Verify: func(_ context.Context, tok string) (caller.Principal, error) {
			switch tok {
			case "teacher-T1":
				return caller.Principal{Tenant: "a", Role: caller.RoleTeacher, TeacherID: "T1", Via: caller.Token}, nil
			case "admin":
				return caller.Principal{Tenant: "a", Role: caller.RoleAdmin, TeacherID: "admin", Via: caller.Token}, nil
			case "student-S01":
				return caller.Principal{Tenant: "a", Role: caller.RoleStudent, StudentID: "S01", Via: caller.Token}, nil
			case "other-tenant":
				return caller.Principal{}, fault.New(fault.Forbidden, "forbidden_tenant_scope")
			}
			return caller.Principal{}, fault.New(fault.Unauthorized, "invalid_token")
		},
	}
	return auth.Middleware(h)
}

func TestAPIKeyAndTokens(t *testing.T) {
	reg := tenantRegistry(t, "EX1", students1)
	h := New(Config{Registry: fixed(reg), Resolver: caller.Resolver{Tenant: "a", DefaultTeacherID: "teacher_zero"}, Enforcing: true, APIKey: "s3cret-key"})
	url := serve(t, authApp(h))
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

	for _, c := range []struct {
		name   string
		hdr    []string
		status int
		detail string
	}{
		{"wrong key", []string{"X-API-Key", "s3cret-kez"}, 401, "invalid_api_key"},
		{"short key", []string{"X-API-Key", "s"}, 401, "invalid_api_key"},
		{"wrong key with a token", []string{"X-API-Key", "nope", "Authorization", "Bearer teacher-T1"}, 401, "invalid_api_key"},
		{"no credential", nil, 401, "missing_authorization"},
		{"bad token", []string{"Authorization", "Bearer forged"}, 401, "invalid_token"},
		{"another tenant's token", []string{"Authorization", "Bearer other-tenant"}, 403, "forbidden_tenant_scope"},
		{"another tenant's token with the key", []string{"Authorization", "Bearer other-tenant", "X-API-Key", "s3cret-key"}, 403, "forbidden_tenant_scope"},
		{"student token", []string{"Authorization", "Bearer student-S01"}, 403, "forbidden"},
	} {
		status, body := post(t, url, list, c.hdr...)
		if status != c.status || body != `{"detail":"`+c.detail+`"}` {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.detail)
		}
		// The SDK's client is refused at initialize.
		if _, err := connect(t, url, c.hdr...); err == nil {
			t.Errorf("%s: the SDK client connected", c.name)
		}
	}

	for _, c := range []struct {
		name string
		hdr  []string
		who  string
	}{
		// The key acts as the tenant's service teacher.
		{"key", []string{"X-API-Key", "s3cret-key"}, `{"role":"teacher","teacher_id":"teacher_zero","tenant":"a","via":"token"}`},
		{"teacher token", []string{"Authorization", "Bearer teacher-T1"}, `{"role":"teacher","teacher_id":"T1","tenant":"a","via":"token"}`},
		// A verified token keeps its identity next to the key.
		{"teacher token and key", []string{"Authorization", "Bearer teacher-T1", "X-API-Key", "s3cret-key"}, `{"role":"teacher","teacher_id":"T1","tenant":"a","via":"token"}`},
		// The admin works as the teacher it is bound to.
		{"admin token", []string{"Authorization", "Bearer admin"}, `{"role":"teacher","teacher_id":"admin","tenant":"a","via":"token"}`},
	} {
		s := mustConnect(t, url, c.hdr...)
		who, isErr := callTool(t, s, "test.whoami", nil)
		if isErr || asJSON(t, who) != c.who {
			t.Errorf("%s: whoami %s (isError %v), want %s", c.name, asJSON(t, who), isErr, c.who)
		}
		out, isErr := callTool(t, s, "exam.list", nil)
		if isErr || !strings.Contains(asJSON(t, out), "EX1") {
			t.Errorf("%s: exam.list %s", c.name, asJSON(t, out))
		}
	}

	// The predecessor's client: one JSON-RPC POST with the key, no
	// initialize. tools/list answers {"tools":[...]} as the spec says.
	status, body := post(t, url, list, "X-API-Key", "s3cret-key")
	var rpc struct {
		Result struct {
			Tools []map[string]any `json:"tools"`
		} `json:"result"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &rpc) != nil || len(rpc.Result.Tools) != len(reg.Allowed(caller.RoleTeacher)) {
		t.Errorf("raw tools/list: %d %s", status, body)
	}
	status, body = post(t, url, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"exam.get","arguments":{"exam_id":"EX1"}}}`, "X-API-Key", "s3cret-key")
	if status != http.StatusOK || !strings.Contains(body, `"id":"x"`) || !strings.Contains(body, `\"exam_id\":\"EX1\"`) || strings.Contains(body, "isError") {
		t.Errorf("raw tools/call: %d %s", status, body)
	}
}

func TestOpenMode(t *testing.T) {
	reg := tenantRegistry(t, "EX1", students1)
	open := caller.Authenticator{Resolver: caller.Resolver{Tenant: "a", DefaultTeacherID: "teacher_zero"}}
	url := serve(t, open.Middleware(New(Config{Registry: fixed(reg), Resolver: open.Resolver})))

	// No key configured: anyone is a teacher, the claimed one or the
	// default; an X-API-Key header means nothing.
	for _, c := range []struct {
		url string
		hdr []string
		who string
	}{
		{url, nil, `{"role":"teacher","teacher_id":"teacher_zero","tenant":"a","via":"claimed"}`},
		{url + "?teacher_id=teacher_nine", nil, `{"role":"teacher","teacher_id":"teacher_nine","tenant":"a","via":"claimed"}`},
		{url, []string{"X-API-Key", "anything"}, `{"role":"teacher","teacher_id":"teacher_zero","tenant":"a","via":"claimed"}`},
	} {
		s := mustConnect(t, c.url, c.hdr...)
		if who, _ := callTool(t, s, "test.whoami", nil); asJSON(t, who) != c.who {
			t.Errorf("%s %v: whoami %s, want %s", c.url, c.hdr, asJSON(t, who), c.who)
		}
	}
	// A claimed student is refused.
	if status, body := post(t, url+"?role=student&student_id=S01", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); status != 403 || body != `{"detail":"forbidden"}` {
		t.Errorf("claimed student: %d %s", status, body)
	}
	if _, err := connect(t, url+"?role=student"); err == nil {
		t.Error("claimed student connected")
	}

	// With a key configured, open mode needs the key too (as the
	// predecessor did).
	keyed := serve(t, open.Middleware(New(Config{Registry: fixed(reg), Resolver: open.Resolver, APIKey: "k"})))
	if status, body := post(t, keyed, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); status != 401 || body != `{"detail":"missing_authorization"}` {
		t.Errorf("open mode, key configured, none sent: %d %s", status, body)
	}
	if status, body := post(t, keyed, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "X-API-Key", "x"); status != 401 || body != `{"detail":"invalid_api_key"}` {
		t.Errorf("open mode, wrong key: %d %s", status, body)
	}
	s := mustConnect(t, keyed, "X-API-Key", "k")
	if who, _ := callTool(t, s, "test.whoami", nil); asJSON(t, who) != `{"role":"teacher","teacher_id":"teacher_zero","tenant":"a","via":"token"}` {
		t.Errorf("open mode key: whoami %s", asJSON(t, who))
	}
}

func TestTenantsNeverMix(t *testing.T) {
	regA := tenantRegistry(t, "EXA", map[string]string{"A1": "甲一", "A2": "甲二"})
	regB := tenantRegistry(t, "EXB", map[string]string{"B1": "乙一", "B2": "乙二", "B3": "乙三"})
	mux := http.NewServeMux()
	for _, ten := range []struct {
		id  string
		reg *tools.Registry
	}{{"a", regA}, {"b", regB}} {
		h := New(Config{Registry: fixed(ten.reg), Resolver: caller.Resolver{Tenant: ten.id}, Enforcing: true})
		mux.Handle("/t/"+ten.id+"/mcp", as(caller.Principal{Tenant: ten.id, Role: caller.RoleTeacher, TeacherID: "T1", Via: caller.Token}, h))
		// A principal of the other tenant reaching this handler (a wiring
		// mistake) is refused, never served.
		mux.Handle("/wrong/"+ten.id+"/mcp", as(caller.Principal{Tenant: "x", Role: caller.RoleTeacher, TeacherID: "T1", Via: caller.Token}, h))
	}
	url := serve(t, mux)
	sa, sb := mustConnect(t, url+"/t/a/mcp"), mustConnect(t, url+"/t/b/mcp")

	for _, c := range []struct {
		s          *mcp.ClientSession
		own, other string
		students   string
	}{{sa, "EXA", "EXB", `"students":2`}, {sb, "EXB", "EXA", `"students":3`}} {
		list, _ := callTool(t, c.s, "exam.list", nil)
		if got := asJSON(t, list); !strings.Contains(got, c.own) || strings.Contains(got, c.other) {
			t.Errorf("exam.list %s (own %s)", got, c.own)
		}
		if got := asJSON(t, callMap(t, c.s, "exam.get", map[string]any{"exam_id": c.own})); !strings.Contains(got, c.students) {
			t.Errorf("exam.get %s: %s", c.own, got)
		}
		if out, isErr := callTool(t, c.s, "exam.get", map[string]any{"exam_id": c.other}); !isErr {
			t.Errorf("exam.get of the other tenant's %s: %s", c.other, asJSON(t, out))
		}
		who, _ := callTool(t, c.s, "test.whoami", nil)
		if !strings.Contains(asJSON(t, who), `"tenant":"`+strings.ToLower(c.own[2:])+`"`) {
			t.Errorf("whoami %s", asJSON(t, who))
		}
	}
	for _, id := range []string{"a", "b"} {
		if status, body := post(t, url+"/wrong/"+id+"/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); status != 403 || body != `{"detail":"forbidden_tenant_scope"}` {
			t.Errorf("other tenant's principal on %s: %d %s", id, status, body)
		}
	}
}

func TestBoundsAndFailures(t *testing.T) {
	reg := tenantRegistry(t, "EX1", students1)
	url := serve(t, as(teacherT1, New(Config{Registry: fixed(reg), Resolver: caller.Resolver{Tenant: "a"}, Enforcing: true, MaxBodyBytes: 4096})))
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exam.get","arguments":{"exam_id":"` + strings.Repeat("x", 5000) + `"}}}`
	if status, body := post(t, url, big); status != 413 || body != `{"detail":"request body too large"}` {
		t.Errorf("big body: %d %s", status, body)
	}
	// Without a Content-Length the SDK's reader stops at the bound.
	req, err := http.NewRequest(http.MethodPost, url, io.MultiReader(strings.NewReader(big))) // unknown length: chunked
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("big chunked body: %d", resp.StatusCode)
	}
	// Only POST is served (stateless: no standalone SSE stream).
	resp, err = http.Get(url)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}

	// A registry that cannot be built is 503.
	broken := serve(t, as(teacherT1, New(Config{Resolver: caller.Resolver{Tenant: "a"}, Enforcing: true,
		Registry: func(context.Context) (*tools.Registry, error) { return nil, errors.New("boom") }})))
	if status, body := post(t, broken, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); status != 503 || body != `{"detail":"tools_unavailable"}` {
		t.Errorf("broken registry: %d %s", status, body)
	}
}

// A new registry from Config.Registry replaces the tools offered.
func TestRegistryChange(t *testing.T) {
	reg1 := tenantRegistry(t, "EX1", students1)
	reg2, err := tools.NewRegistry(whoami)
	must(t, err)
	var cur atomic.Pointer[tools.Registry]
	cur.Store(reg1)
	h := New(Config{Resolver: caller.Resolver{Tenant: "a"}, Enforcing: true,
		Registry: func(context.Context) (*tools.Registry, error) { return cur.Load(), nil }})
	url := serve(t, as(teacherT1, h))
	count := func() int {
		t.Helper()
		status, body := post(t, url, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
		var rpc struct {
			Result struct{ Tools []json.RawMessage } `json:"result"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &rpc) != nil {
			t.Fatalf("tools/list: %d %s", status, body)
		}
		return len(rpc.Result.Tools)
	}
	if n := count(); n != len(reg1.Allowed(caller.RoleTeacher)) {
		t.Errorf("first registry: %d tools", n)
	}
	cur.Store(reg2)
	if n := count(); n != 1 {
		t.Errorf("second registry: %d tools", n)
	}
}

func TestDispatchError(t *testing.T) {
	for _, c := range []struct {
		out  any
		want bool
	}{
		{map[string]any{"error": "invalid_arguments", "tool": "exam.get", "issues": []string{"x"}}, true},
		{map[string]any{"error": "exam not found", "tool": "exam.get", "detail": map[string]any{"a": 1}}, true},
		{map[string]any{"error": "unknown tool: x"}, true},
		{map[string]any{"error": "permission denied", "tool": "exam.get"}, true},
		{map[string]any{"error": "x", "tool": "other"}, false},
		{map[string]any{"error": "x", "tool": "exam.get", "ok": false}, false},
		{map[string]any{"ok": true}, false},
		{json.RawMessage(`{"error":"x","tool":"exam.get"}`), false},
		{bytes.NewBufferString("x"), false},
	} {
		if got := dispatchError(c.out, "exam.get"); got != c.want {
			t.Errorf("dispatchError(%v) = %v", c.out, got)
		}
	}
}
