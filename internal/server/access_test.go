package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/tenantapp"
)

const testSecret = "test-secret-of-at-least-thirty-two-bytes"

func withAuth(c *Config) {
	c.Auth = tenantapp.AuthSettings{Enabled: true, Secret: []byte(testSecret), TTL: time.Hour,
		Admin: "admin", AdminPassword: "Admin12345"}
}

// mint opens a tenant's registry (a second handle on its file: WAL) and
// returns a token for each identity of the matrix.
func mint(t testing.TB, dataDir, tenant string) map[string]string {
	t.Helper()
	for _, s := range []string{"s1", "s2"} {
		if err := atomicfile.WriteJSON(filepath.Join(dataDir, "student_profiles", s+".json"),
			map[string]any{"student_id": s, "student_name": "学生" + s, "class_name": "高二1班"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	open := func(now func() time.Time) *accounts.Registry {
		reg, err := accounts.Open(ctx, dataDir, accounts.Options{TenantID: tenant, TokenSecret: []byte(testSecret),
			TokenTTL: time.Hour, ArgonMemoryKiB: 1024, ArgonTime: 1, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		return reg
	}
	reg := open(nil)
	past := open(func() time.Time { return time.Now().Add(-2 * time.Hour) })
	actor := accounts.Actor{ID: "admin", Role: accounts.RoleAdmin}
	for _, name := range []string{"teacherone", "teachertwo", "teacherrev"} {
		if _, err := reg.CreateTeacher(ctx, actor, accounts.NewTeacher{ID: name, Name: name, Password: "Passw0rd1"}); err != nil {
			t.Fatal(err)
		}
	}
	issue := func(r *accounts.Registry, role accounts.Role, id string) string {
		t.Helper()
		var a accounts.Account
		var err error
		switch role {
		case accounts.RoleStudent:
			a, err = r.GetStudent(ctx, id)
		case accounts.RoleTeacher:
			a, err = r.GetTeacher(ctx, id)
		default:
			a, err = r.GetAdmin(ctx, id)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", role, id, err)
		}
		tok, _, err := r.Issue(a)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	toks := map[string]string{
		"student":         issue(reg, accounts.RoleStudent, "s1"),
		"another student": issue(reg, accounts.RoleStudent, "s2"),
		"teacher":         issue(reg, accounts.RoleTeacher, "teacherone"),
		"another teacher": issue(reg, accounts.RoleTeacher, "teachertwo"),
		"tenant admin":    issue(reg, accounts.RoleAdmin, "admin"),
		"expired":         issue(past, accounts.RoleTeacher, "teacherone"),
		"revoked":         issue(reg, accounts.RoleTeacher, "teacherrev"),
	}
	if _, err := reg.ResetLoginToken(ctx, actor, accounts.RoleTeacher, "teacherrev"); err != nil {
		t.Fatal(err)
	}
	return toks
}

// The access matrix, generated from the tenant's route table: every route
// × every kind of caller → what the route's rule says. A route whose rule
// is not one of the five below fails it.
func TestAccessMatrix(t *testing.T) {
	e := newEnv(t, withAuth)
	expect(t, e.putTenant("a", nil), 200, "")
	expect(t, e.putTenant("b", nil), 200, "")
	aData, _ := e.tenantDirs("a")
	bData, _ := e.tenantDirs("b")
	toks := mint(t, aData, "a")
	toks["another tenant's"] = mint(t, bData, "b")["teacher"]
	toks["none"] = ""

	// Who passes each rule (the others: 401 without a valid credential,
	// 403 with one). A credential that is presented must hold everywhere
	// but on the login routes: another tenant's token is 403 even on
	// /t/a/health.
	passes := map[string]map[string]bool{
		"login":   {"none": true, "student": true, "another student": true, "teacher": true, "another teacher": true, "tenant admin": true, "expired": true, "revoked": true, "another tenant's": true},
		"public":  {"none": true, "student": true, "another student": true, "teacher": true, "another teacher": true, "tenant admin": true},
		"signed":  {"student": true, "teacher": true, "another teacher": true, "tenant admin": true},
		"teacher": {"teacher": true, "another teacher": true, "tenant admin": true},
		"student": {"student": true, "teacher": true, "another teacher": true, "tenant admin": true},
		"admin":   {"tenant admin": true},
		// The MCP handler admits teachers and the tenant admin (and its
		// key, which this matrix does not send), as the teacher rule does.
		"mcp": {"teacher": true, "another teacher": true, "tenant admin": true},
	}
	// The request names student s1: "another student" (s2) is outside
	// its scope on every route that is not public.
	unauthenticated := map[string]string{"none": "missing_authorization", "expired": "token_expired", "revoked": "token_revoked"}
	app := e.srv.fallback
	routes := app.Routes()
	rules := map[string]int{}
	for _, rt := range routes {
		rules[rt.Rule.String()]++
	}
	if len(routes) < 40 || rules["login"] < 7 || rules["admin"] < 8 || rules["teacher"] < 10 {
		t.Fatalf("%d routes, by rule %v: the /auth routes are missing from the table", len(routes), rules)
	}
	for _, rt := range routes {
		rule := rt.Rule.String()
		who, ok := passes[rule]
		if !ok {
			t.Errorf("route %s has rule %q, which the matrix does not know", rt.Pattern, rule)
			continue
		}
		method, path, found := strings.Cut(rt.Pattern, " ")
		if !found {
			method, path = "GET", rt.Pattern
		}
		for _, seg := range []string{"{exam_id}", "{student_id}", "{question_id}", "{name}", "{assignment_id}"} {
			path = strings.ReplaceAll(path, seg, "s1")
		}
		if path == "/" {
			path = "/nothing-here"
		}
		for identity, tok := range toks {
			var body string
			if method == "POST" || method == "PUT" {
				body = `{}`
			}
			req, _ := http.NewRequest(method, e.http.URL+"/t/a"+path+"?student_id=s1&job_id=job_000000000000", strings.NewReader(body))
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 512)
			n, _ := resp.Body.Read(data)
			resp.Body.Close()
			got, detail := resp.StatusCode, string(data[:n])
			denied := got == 401 || got == 403
			switch {
			case who[identity] && identity == "another student" && rule != "login":
				// s2 passes the rule but names s1.
				if got != 403 || !strings.Contains(detail, "forbidden_student_scope") {
					t.Errorf("%s %s as %s: %d %s, want 403 forbidden_student_scope", method, path, identity, got, detail)
				}
			case who[identity]:
				if denied {
					t.Errorf("%s %s as %s: %d %s, want it allowed", method, path, identity, got, detail)
				}
			case identity == "another tenant's":
				if got != 403 || !strings.Contains(detail, "forbidden_tenant_scope") {
					t.Errorf("%s %s as %s: %d %s, want 403 forbidden_tenant_scope", method, path, identity, got, detail)
				}
			case unauthenticated[identity] != "":
				if got != 401 || !strings.Contains(detail, unauthenticated[identity]) {
					t.Errorf("%s %s as %s: %d %s, want 401 %s", method, path, identity, got, detail, unauthenticated[identity])
				}
			default:
				if got != 403 {
					t.Errorf("%s %s as %s: %d %s, want 403", method, path, identity, got, detail)
				}
			}
		}
	}
	// The default tenant's tokens name no tenant: at /t/a they are another
	// tenant's.
	if _, err := os.Stat(filepath.Join(aData, "auth", "auth_registry.sqlite3")); err != nil {
		t.Fatal(err)
	}
}

// The root admin key creates a tenant's administrators; the one created
// can log in. Without auth the tenant has no accounts (409).
func TestRootCreatesTenantAdmin(t *testing.T) {
	e := newEnv(t, withAuth)
	expect(t, e.putTenant("a", nil), 200, "")
	r := e.do("POST", "/admin/tenants/a/admins", adminKey, map[string]any{"username": "principal"})
	body := r.json(t)
	pw, _ := body["password"].(string)
	if r.status != 200 || body["username"] != "principal" || len(pw) < 8 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	expect(t, e.do("POST", "/admin/tenants/a/admins", adminKey, map[string]any{"username": "principal"}), 409, "")
	expect(t, e.do("POST", "/admin/tenants/a/admins", adminKey, map[string]any{"username": "x", "password": "short"}), 400, "")
	expect(t, e.do("POST", "/admin/tenants/a/admins", "", map[string]any{"username": "y"}), 401, "")
	expect(t, e.do("POST", "/admin/tenants/nobody/admins", adminKey, map[string]any{"username": "y"}), 404, "")

	aData, _ := e.tenantDirs("a")
	reg, err := accounts.Open(context.Background(), aData, accounts.Options{TenantID: "a", TokenSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Login(context.Background(), accounts.LoginRequest{Role: accounts.RoleAdmin, CandidateID: "principal", Credential: pw}); err != nil {
		t.Fatalf("the new admin cannot log in: %v", err)
	}

	open := newEnv(t)
	expect(t, open.putTenant("a", nil), 200, "")
	expect(t, open.do("POST", "/admin/tenants/a/admins", adminKey, map[string]any{"username": "principal"}), 409, "")
}

// The whole login flow over HTTP under /t/a: the tenant admin logs in and
// creates a teacher, who logs in, works, and issues a student's password;
// the student logs in; resets revoke the old tokens.
func TestLoginFlowEndToEnd(t *testing.T) {
	e := newEnv(t, withAuth)
	expect(t, e.putTenant("a", nil), 200, "")
	aData, _ := e.tenantDirs("a")
	if err := atomicfile.WriteJSON(filepath.Join(aData, "student_profiles", "s1.json"),
		map[string]any{"student_id": "s1", "student_name": "张三", "class_name": "高二1班"}); err != nil {
		t.Fatal(err)
	}
	call := e.authCall
	ok := func(m map[string]any, what string) map[string]any {
		t.Helper()
		if m["_status"] != 200.0 || m["ok"] != true {
			t.Fatalf("%s: %v", what, m)
		}
		return m
	}
	admin := ok(call("POST", "/t/a/auth/admin/login", "", map[string]any{"username": "admin", "password": "Admin12345"}), "admin login")["access_token"].(string)
	created := ok(call("POST", "/t/a/auth/admin/teacher/create", admin, map[string]any{"teacher_name": "张老师", "password": "Teach3r-pass"}), "create teacher")
	tid := created["target_id"].(string)
	cand := ok(call("POST", "/t/a/auth/teacher/identify", "", map[string]any{"name": "张老师"}), "identify teacher")["candidate_id"].(string)
	login := func(path, cand, cred string) string {
		t.Helper()
		return ok(call("POST", path, "", map[string]any{"candidate_id": cand, "credential_type": "password", "credential": cred}), path)["access_token"].(string)
	}
	teacher := login("/t/a/auth/teacher/login", cand, "Teach3r-pass")
	if st := call("GET", "/t/a/exams", teacher, nil)["_status"]; st != 200.0 {
		t.Fatalf("teacher on /t/a/exams: %v", st)
	}
	if m := call("GET", "/exams", teacher, nil); m["_status"] != 403.0 || m["detail"] != "forbidden_tenant_scope" {
		t.Fatalf("tenant a's token at the root: %v", m)
	}
	// A wrong password is masked, as the predecessor's client expects.
	if m := call("POST", "/t/a/auth/teacher/login", "", map[string]any{"candidate_id": cand, "credential_type": "password", "credential": "nope"}); m["ok"] != false || m["error"] != "invalid_credential" {
		t.Fatalf("wrong password: %v", m)
	}
	reset := ok(call("POST", "/t/a/auth/teacher/student/reset-passwords", teacher, map[string]any{"scope": "student", "student_id": "s1"}), "reset student")
	items := reset["items"].([]any)
	pw, _ := items[0].(map[string]any)["temp_password"].(string)
	if pw == "" {
		t.Fatalf("no password issued: %v", reset)
	}
	scand := ok(call("POST", "/t/a/auth/student/identify", "", map[string]any{"name": "张三"}), "identify student")["candidate_id"].(string)
	student := login("/t/a/auth/student/login", scand, pw)
	if st := call("GET", "/t/a/student/history/sessions", student, nil)["_status"]; st != 200.0 {
		t.Fatalf("student's own history: %v", st)
	}
	if m := call("GET", "/t/a/exams", student, nil); m["_status"] != 403.0 || m["detail"] != "forbidden" {
		t.Fatalf("student on a teacher route: %v", m)
	}
	if m := call("GET", "/t/a/student/history/sessions?student_id=someone", student, nil); m["_status"] != 403.0 || m["detail"] != "forbidden_student_scope" {
		t.Fatalf("student naming another: %v", m)
	}
	// A student named in the path or a form field is checked too.
	if m := call("GET", "/t/a/student/profile/someone", student, nil); m["_status"] != 403.0 || m["detail"] != "forbidden_student_scope" {
		t.Fatalf("another student's profile: %v", m)
	}
	if m := call("GET", "/t/a/student/profile/s1", student, nil); m["_status"] == 403.0 || m["_status"] == 401.0 {
		t.Fatalf("own profile: %v", m)
	}
	if m := call("GET", "/t/a/student/profile/s1", teacher, nil); m["_status"] == 403.0 || m["_status"] == 401.0 {
		t.Fatalf("a teacher on a student's profile: %v", m)
	}
	req, _ := http.NewRequest("POST", e.http.URL+"/t/a/student/profile/update", strings.NewReader("student_id=someone&weak_kp=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+student)
	if resp, err := e.client.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("updating another student's profile: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	// The admin resets the teacher's password: the old token is revoked.
	ok(call("POST", "/t/a/auth/admin/teacher/reset-password", admin, map[string]any{"target_id": tid}), "reset teacher")
	if m := call("GET", "/t/a/exams", teacher, nil); m["_status"] != 401.0 || m["detail"] != "token_revoked" {
		t.Fatalf("old teacher token after a reset: %v", m)
	}
}

// --demo with auth on: a teacher and two students per demo tenant, their
// passwords returned the first time only; the teacher can log in.
func TestDemoLogins(t *testing.T) {
	e := newEnv(t, withAuth)
	_, logins, err := e.srv.SeedDemo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(logins) != 3*len(DemoTenants) {
		t.Fatalf("%d logins: %+v", len(logins), logins)
	}
	l := logins[0]
	if l.Role != "teacher" || len(l.Password) < 8 {
		t.Fatalf("%+v", l)
	}
	r := e.do("POST", "/t/"+l.Tenant+"/auth/teacher/login", "", map[string]any{"candidate_id": l.ID, "credential_type": "password", "credential": l.Password})
	if r.status != 200 || r.json(t)["ok"] != true {
		t.Fatalf("demo teacher login: %d %s", r.status, r.body)
	}
	s := logins[1]
	r = e.do("POST", "/t/"+s.Tenant+"/auth/student/login", "", map[string]any{"candidate_id": s.ID, "credential_type": "password", "credential": s.Password})
	if r.status != 200 || r.json(t)["ok"] != true {
		t.Fatalf("demo student login: %d %s", r.status, r.body)
	}
	if _, again, err := e.srv.SeedDemo(context.Background()); err != nil || len(again) != 0 {
		t.Fatalf("second seed: %v %v", again, err)
	}
}

// A chat job runs as the principal that started it, also when it resumes
// after a restart; only that principal may read it.
func TestChatJobKeepsItsPrincipalAcrossRestart(t *testing.T) {
	hang := llmtest.NewServer(t)
	hang.Script(llmtest.Step{Hang: true})
	e := newEnv(t, withAuth, withLLM(30*time.Second, 1, hang))
	toks := mint(t, e.srv.cfg.DataDir, "")
	body := `{"request_id":"r-restart","role":"teacher","teacher_id":"teacherone","messages":[{"role":"user","content":"讲讲这道题"}]}`
	post := func(tok string) map[string]any { return e.authCall("POST", "/chat/start", tok, body) }
	// A student claiming to be a teacher: the claims are overwritten from
	// the token (as the predecessor's chat binding did), it runs as itself.
	m := post(toks["student"])
	id, _ := m["job_id"].(string)
	if m["_status"] != 200.0 || id == "" {
		t.Fatalf("start: %v", m)
	}
	deadline := time.Now().Add(10 * time.Second)
	for hang.InFlight() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the job never reached the LLM")
		}
		time.Sleep(time.Millisecond)
	}
	reply := llmtest.NewServer(t)
	reply.Script(llmtest.Step{Reply: "好的，我们一步一步来。"})
	e.restart(func(c *Config) { c.LLM.Providers = nil }, withLLM(30*time.Second, 1, reply))
	status := func(tok string) map[string]any { return e.authCall("GET", "/chat/status?job_id="+id, tok, nil) }
	for {
		st := status(toks["student"])
		if st["status"] == "done" {
			break
		}
		if st["status"] == "failed" || time.Now().After(deadline.Add(10*time.Second)) {
			t.Fatalf("resumed job: %v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The reply, then (for a student) the profile judgement: no teacher
	// tools.
	reqs := reply.Requests()
	if len(reqs) == 0 || teacherRequest(reqs[0]) {
		t.Fatalf("the resumed job did not run as the student: %d requests", len(reqs))
	}
	for who, want := range map[string]float64{"another student": 403, "teacher": 403, "tenant admin": 200} {
		if st := status(toks[who]); st["_status"] != want {
			t.Errorf("%s reading the job: %v", who, st)
		}
	}
}

// authCall sends a request with a bearer token (none when empty) and a
// body (nil, raw JSON text, or a value to encode), and returns the decoded
// answer with its status under "_status".
func (e *env) authCall(method, path, token string, body any) map[string]any {
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
	req, _ := http.NewRequest(method, e.http.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if out == nil {
		out = map[string]any{}
	}
	out["_status"] = float64(resp.StatusCode)
	return out
}
