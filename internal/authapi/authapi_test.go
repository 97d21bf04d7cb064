package authapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/policy"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	url   string
	reg   *accounts.Registry
	clock *clock
	mux   *policy.Mux
}

const (
	adminUser = "boss"
	adminPass = "Admin-pass-123"
)

// newEnv serves the API (with auth on) over real HTTP, on a registry with
// three student profiles (two named 李四) and the admin boss.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	profiles := filepath.Join(dir, "student_profiles")
	if err := os.MkdirAll(profiles, 0o755); err != nil {
		t.Fatal(err)
	}
	for id, p := range map[string][2]string{
		"s1": {"张三", "一班"}, "s2": {"李四", "一班"}, "s3": {"李四", "二班"},
	} {
		data, _ := json.Marshal(map[string]string{"student_id": id, "student_name": p[0], "class_name": p[1]})
		if err := os.WriteFile(filepath.Join(profiles, id+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	reg, err := accounts.Open(ctx, dir, accounts.Options{
		TenantID:           "t1",
		TokenSecret:        []byte("0123456789abcdef0123456789abcdef-authapi-test"),
		ArgonTime:          1,
		ArgonMemoryKiB:     64,
		ArgonThreads:       1,
		NoTeacherBootstrap: true,
		Now:                clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if _, err := reg.CreateAdmin(ctx, accounts.Actor{ID: "root", Role: accounts.RoleAdmin}, adminUser, adminPass); err != nil {
		t.Fatal(err)
	}
	fail := func(w http.ResponseWriter, r *http.Request, err error) { httpjson.Fail(w, nil, err) }
	mux := policy.NewMux(true, fail)
	New(reg, nil).Register(mux)
	mux.HandleFunc("GET /whoami", policy.Signed, func(w http.ResponseWriter, r *http.Request) {
		p := caller.From(r.Context())
		httpjson.Write(w, http.StatusOK, map[string]any{"role": p.Role, "teacher_id": p.TeacherID, "student_id": p.StudentID})
	})
	auth := caller.Authenticator{Resolver: caller.Resolver{Tenant: "t1"}, Verify: verifier(reg, "t1")}
	srv := httptest.NewServer(auth.Middleware(mux))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, reg: reg, clock: clk, mux: mux}
}

// do sends body (nil: none) as JSON with the bearer token (if any) and
// returns the status and the decoded object.
func (e *env) do(method, path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("%s %s: status %d, body not a JSON object: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// ok posts and requires 200 {"ok":true,…}.
func (e *env) ok(method, path, token string, body any) map[string]any {
	e.t.Helper()
	st, out := e.do(method, path, token, body)
	if st != http.StatusOK || out["ok"] != true {
		e.t.Fatalf("%s %s: %d %v, want 200 ok:true", method, path, st, out)
	}
	return out
}

// refused posts and requires 200 {"ok":false,"error":code}.
func (e *env) refused(path, token string, body any, code string) map[string]any {
	e.t.Helper()
	st, out := e.do("POST", path, token, body)
	if st != http.StatusOK || out["ok"] != false || out["error"] != code {
		e.t.Fatalf("POST %s: %d %v, want 200 ok:false error %q", path, st, out, code)
	}
	return out
}

// detail requires status and {"detail": detail}.
func (e *env) detail(method, path, token string, body any, status int, detail string) {
	e.t.Helper()
	st, out := e.do(method, path, token, body)
	if st != status || out["detail"] != detail {
		e.t.Fatalf("%s %s: %d %v, want %d detail %q", method, path, st, out, status, detail)
	}
}

func (e *env) adminToken() string {
	e.t.Helper()
	out := e.ok("POST", "/auth/admin/login", "", map[string]any{"username": adminUser, "password": adminPass})
	if out["role"] != "admin" || out["subject_id"] != adminUser || out["expires_in"] != float64(8*3600) {
		e.t.Fatalf("admin login: %v", out)
	}
	return out["access_token"].(string)
}

func (e *env) whoami(token string) map[string]any {
	e.t.Helper()
	st, out := e.do("GET", "/whoami", token, nil)
	if st != http.StatusOK {
		e.t.Fatalf("whoami: %d %v", st, out)
	}
	return out
}

// createTeacher creates a teacher through the admin route and returns its
// id and login token.
func (e *env) createTeacher(admin, name, email string) (id, token string) {
	e.t.Helper()
	out := e.ok("POST", "/auth/admin/teacher/create", admin, map[string]any{"teacher_name": name, "email": email})
	return out["target_id"].(string), out["token"].(string)
}

func TestStudentIdentifyLoginSetPassword(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()

	out := e.ok("POST", "/auth/student/identify", "", map[string]any{"name": " 张 三 ", "class_name": ""})
	if out["candidate_id"] != "s1" || out["password_set"] != false {
		t.Fatalf("identify: %v", out)
	}
	if st := out["student"].(map[string]any); st["student_id"] != "s1" || st["student_name"] != "张三" || st["class_name"] != "一班" {
		t.Fatalf("identify student: %v", st)
	}
	// No password yet: a password login is masked.
	e.refused("/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": "whatever1"}, "invalid_credential")

	// The admin hands out a login token; the student logs in with it.
	tok := e.ok("POST", "/auth/admin/student/reset-token", admin, map[string]any{"target_id": "s1"})
	if tok["role"] != "student" || tok["target_id"] != "s1" || tok["student"].(map[string]any)["student_id"] != "s1" {
		t.Fatalf("reset-token: %v", tok)
	}
	loginTok := tok["token"].(string)
	if hint := tok["token_hint"].(string); !strings.HasSuffix(loginTok, hint) || len(hint) != 4 {
		t.Fatalf("token_hint %q of %q", hint, loginTok)
	}
	login := e.ok("POST", "/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "TOKEN", "credential": loginTok})
	if login["role"] != "student" || login["subject_id"] != "s1" || login["password_set"] != false || login["expires_in"] != float64(28800) {
		t.Fatalf("login: %v", login)
	}
	access := login["access_token"].(string)
	if who := e.whoami(access); who["role"] != "student" || who["student_id"] != "s1" {
		t.Fatalf("whoami: %v", who)
	}

	// Weak password first, then a good one.
	out = e.refused("/auth/student/set-password", "", map[string]any{
		"candidate_id": "s1", "credential_type": "token", "credential": loginTok, "new_password": "short"}, "weak_password")
	if out["message"] != "密码至少 8 位，且需同时包含字母与数字。" {
		t.Fatalf("weak_password message: %v", out)
	}
	set := e.ok("POST", "/auth/student/set-password", "", map[string]any{
		"candidate_id": "s1", "credential_type": "token", "credential": loginTok, "new_password": "newpass123"})
	if set["role"] != "student" || set["subject_id"] != "s1" {
		t.Fatalf("set-password: %v", set)
	}
	// The change revoked the old access token; the answer carries a new one.
	e.detail("GET", "/whoami", access, nil, http.StatusUnauthorized, "token_revoked")
	if who := e.whoami(set["access_token"].(string)); who["student_id"] != "s1" {
		t.Fatalf("whoami with the new token: %v", who)
	}
	login = e.ok("POST", "/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": "newpass123"})
	if login["password_set"] != true {
		t.Fatalf("login after set-password: %v", login)
	}
	out = e.ok("POST", "/auth/student/identify", "", map[string]any{"name": "张三"})
	if out["password_set"] != true {
		t.Fatalf("identify after set-password: %v", out)
	}
}

func TestStudentIdentifyRefusals(t *testing.T) {
	e := newEnv(t)
	out := e.refused("/auth/student/identify", "", map[string]any{"name": "  "}, "missing_name")
	if out["message"] != "请先输入姓名。" {
		t.Fatalf("missing_name: %v", out)
	}
	out = e.refused("/auth/student/identify", "", map[string]any{"name": "王五"}, "not_found")
	if out["message"] != "未找到该学生，请检查姓名或班级。" {
		t.Fatalf("not_found: %v", out)
	}
	out = e.refused("/auth/student/identify", "", map[string]any{"name": "李四"}, "multiple")
	cands, _ := out["candidates"].([]any)
	if out["message"] != "同名学生，请补充班级。" || len(cands) != 2 {
		t.Fatalf("multiple: %v", out)
	}
	c0 := cands[0].(map[string]any)
	if c0["candidate_id"] == nil || c0["student"].(map[string]any)["student_name"] != "李四" || c0["password_set"] != false {
		t.Fatalf("candidate: %v", c0)
	}
	out = e.ok("POST", "/auth/student/identify", "", map[string]any{"name": "李四", "class_name": "二班"})
	if out["candidate_id"] != "s3" {
		t.Fatalf("identify with class: %v", out)
	}
	// Login-flow input errors pass through unmasked.
	e.refused("/auth/student/login", "", map[string]any{"credential_type": "password", "credential": "x"}, "missing_candidate_id")
	e.refused("/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "sms", "credential": "x"}, "invalid_credential_type")
	e.refused("/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "password"}, "missing_credential")
}

func TestWrongPasswordMasked(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	e.ok("POST", "/auth/teacher/student/reset-passwords", admin, map[string]any{"scope": "student", "student_id": "s1", "new_password": "right1234"})
	for _, body := range []map[string]any{
		{"candidate_id": "s1", "credential_type": "password", "credential": "wrong1234"},
		{"candidate_id": "nobody", "credential_type": "password", "credential": "wrong1234"},
		{"candidate_id": "s2", "credential_type": "password", "credential": "wrong1234"}, // no password set
	} {
		out := e.refused("/auth/student/login", "", body, "invalid_credential")
		if len(out) != 2 {
			t.Fatalf("masked failure discloses more than the code: %v", out)
		}
	}
	out := e.refused("/auth/admin/login", "", map[string]any{"username": adminUser, "password": "nope12345"}, "invalid_credential")
	if len(out) != 2 {
		t.Fatalf("admin failure: %v", out)
	}
	e.refused("/auth/admin/login", "", map[string]any{"password": "x"}, "missing_username")
	e.refused("/auth/admin/login", "", map[string]any{"username": adminUser}, "missing_password")
	// set-password masks too (unlike the predecessor).
	e.refused("/auth/student/set-password", "", map[string]any{
		"candidate_id": "nobody", "credential_type": "password", "credential": "wrong1234", "new_password": "newpass123"}, "invalid_credential")
}

func TestLockoutAfterFive(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	e.ok("POST", "/auth/teacher/student/reset-passwords", admin, map[string]any{"student_id": "s1", "new_password": "right1234"})
	right := map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": "right1234"}
	wrong := map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": "wrong1234"}
	for range 5 {
		e.refused("/auth/student/login", "", wrong, "invalid_credential")
	}
	out := e.refused("/auth/student/login", "", right, "invalid_credential")
	if _, leaked := out["retry_after_sec"]; leaked || len(out) != 2 {
		t.Fatalf("locked answer: %v", out)
	}
	e.clock.Advance(16 * time.Minute)
	e.ok("POST", "/auth/student/login", "", right)
}

func TestTeacherIdentifyLogin(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	id, loginTok := e.createTeacher(admin, "王老师", "wang@school.cn")

	out := e.ok("POST", "/auth/teacher/identify", "", map[string]any{"name": "王老师"})
	if out["candidate_id"] != id || out["password_set"] != false {
		t.Fatalf("identify: %v", out)
	}
	if tt := out["teacher"].(map[string]any); tt["teacher_id"] != id || tt["teacher_name"] != "王老师" || tt["email"] != "wang@school.cn" {
		t.Fatalf("identify teacher: %v", tt)
	}
	out = e.refused("/auth/teacher/identify", "", map[string]any{"name": ""}, "missing_name")
	if out["message"] != "请先输入教师姓名。" {
		t.Fatalf("missing_name: %v", out)
	}
	e.refused("/auth/teacher/identify", "", map[string]any{"name": "王老师", "email": "other@school.cn"}, "not_found")

	login := e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": id, "credential_type": "token", "credential": loginTok})
	if login["role"] != "teacher" || login["subject_id"] != id || login["teacher"].(map[string]any)["email"] != "wang@school.cn" {
		t.Fatalf("login: %v", login)
	}
	access := login["access_token"].(string)
	if who := e.whoami(access); who["role"] != "teacher" || who["teacher_id"] != id {
		t.Fatalf("whoami: %v", who)
	}
	set := e.ok("POST", "/auth/teacher/set-password", "", map[string]any{
		"candidate_id": id, "credential_type": "token", "credential": loginTok, "new_password": "teach1234"})
	if set["role"] != "teacher" {
		t.Fatalf("set-password: %v", set)
	}
	e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": id, "credential_type": "password", "credential": "teach1234"})

	// A same-named colleague: identify asks for the e-mail, masking them.
	e.createTeacher(admin, "王老师", "wang2@school.cn")
	out = e.refused("/auth/teacher/identify", "", map[string]any{"name": "王老师"}, "multiple")
	cands, _ := out["candidates"].([]any)
	if out["need_email_disambiguation"] != true || len(cands) != 2 {
		t.Fatalf("multiple: %v", out)
	}
	for _, c := range cands {
		if email := c.(map[string]any)["email"].(string); !strings.HasPrefix(email, "w***@") {
			t.Fatalf("candidate e-mail not masked: %v", c)
		}
	}
	out = e.ok("POST", "/auth/teacher/identify", "", map[string]any{"name": "王老师", "email": "WANG2@school.cn"})
	if out["teacher"].(map[string]any)["email"] != "wang2@school.cn" {
		t.Fatalf("identify by e-mail: %v", out)
	}
}

func TestTeacherResetsStudentPasswords(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	id, loginTok := e.createTeacher(admin, "赵老师", "")
	teacher := e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": id, "credential_type": "token", "credential": loginTok})["access_token"].(string)

	out := e.ok("POST", "/auth/teacher/student/reset-passwords", teacher, map[string]any{"scope": "class", "class_name": "一 班"})
	items, _ := out["items"].([]any)
	if out["scope"] != "class" || out["count"] != float64(2) || out["generated_password"] != true || len(items) != 2 {
		t.Fatalf("reset class: %v", out)
	}
	it := items[0].(map[string]any)
	if it["student_id"] != "s1" || it["generated_password"] != true || it["temp_password"] == "" || it["token_version"] == nil {
		t.Fatalf("item: %v", it)
	}
	e.ok("POST", "/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": it["temp_password"]})

	out = e.ok("POST", "/auth/teacher/student/reset-passwords", teacher, map[string]any{"student_id": "s3", "new_password": "given1234"})
	it = out["items"].([]any)[0].(map[string]any)
	if out["scope"] != "student" || out["generated_password"] != false || it["temp_password"] != "given1234" {
		t.Fatalf("reset student: %v", out)
	}
	e.refused("/auth/teacher/student/reset-passwords", teacher, map[string]any{"scope": "student"}, "missing_student_id")
	e.refused("/auth/teacher/student/reset-passwords", teacher, map[string]any{"scope": "class"}, "missing_class_name")
	e.refused("/auth/teacher/student/reset-passwords", teacher, map[string]any{"scope": "school"}, "invalid_scope")
	e.refused("/auth/teacher/student/reset-passwords", teacher, map[string]any{"student_id": "s1", "new_password": "weak"}, "weak_password")
	e.detail("POST", "/auth/teacher/student/reset-passwords", teacher, map[string]any{"student_id": "nobody"}, http.StatusNotFound, "not_found")
	e.detail("POST", "/auth/teacher/student/reset-passwords", teacher, map[string]any{"scope": "class", "class_name": "九班"}, http.StatusNotFound, "not_found")

	// Students may not; nobody may without a token.
	student := e.ok("POST", "/auth/student/login", "", map[string]any{"candidate_id": "s3", "credential_type": "password", "credential": "given1234"})["access_token"].(string)
	e.detail("POST", "/auth/teacher/student/reset-passwords", student, map[string]any{"scope": "all"}, http.StatusForbidden, "forbidden")
	e.detail("POST", "/auth/teacher/student/reset-passwords", "", map[string]any{"scope": "all"}, http.StatusUnauthorized, "missing_authorization")
}

func TestAdminTeacherManagement(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()

	out := e.ok("GET", "/auth/admin/teacher/list", admin, nil)
	if out["count"] != float64(0) {
		t.Fatalf("empty list: %v", out)
	}
	created := e.ok("POST", "/auth/admin/teacher/create", admin, map[string]any{
		"target_id": "teacher_li", "teacher_name": "李老师", "email": "li@school.cn", "password": "Li-pass-123"})
	if created["target_id"] != "teacher_li" || created["password_set"] != true || created["token"] == "" {
		t.Fatalf("create: %v", created)
	}
	e.detail("POST", "/auth/admin/teacher/create", admin, map[string]any{"target_id": "teacher_li", "teacher_name": "又一个"}, http.StatusConflict, "already_exists")
	e.refused("/auth/admin/teacher/create", admin, map[string]any{"teacher_name": " "}, "missing_name")
	e.refused("/auth/admin/teacher/create", admin, map[string]any{"teacher_name": "x", "password": "weak"}, "weak_password")

	out = e.ok("GET", "/auth/admin/teacher/list", admin, nil)
	items := out["items"].([]any)
	row := items[0].(map[string]any)
	if out["count"] != float64(1) || row["teacher_id"] != "teacher_li" || row["password_set"] != true || row["is_disabled"] != false ||
		row["locked_until"] != nil || row["token_version"] != float64(1) || row["failed_count"] != float64(0) ||
		row["updated_at"] != "2026-03-01T04:00:00+00:00" || len(row["token_hint"].(string)) != 4 {
		t.Fatalf("list row: %v", row)
	}

	teacher := e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": "teacher_li", "credential_type": "password", "credential": "Li-pass-123"})["access_token"].(string)
	e.whoami(teacher)

	// Disable: the token is revoked and logins fail (masked).
	dis := e.ok("POST", "/auth/admin/teacher/set-disabled", admin, map[string]any{"target_id": "teacher_li", "is_disabled": true})
	if dis["role"] != "teacher" || dis["target_id"] != "teacher_li" || dis["is_disabled"] != true || dis["token_version"] != float64(2) ||
		dis["teacher"].(map[string]any)["teacher_id"] != "teacher_li" {
		t.Fatalf("set-disabled: %v", dis)
	}
	e.detail("GET", "/whoami", teacher, nil, http.StatusUnauthorized, "token_revoked")
	e.refused("/auth/teacher/login", "", map[string]any{"candidate_id": "teacher_li", "credential_type": "password", "credential": "Li-pass-123"}, "invalid_credential")
	e.ok("POST", "/auth/admin/teacher/set-disabled", admin, map[string]any{"target_id": "teacher_li", "is_disabled": false})
	e.detail("POST", "/auth/admin/teacher/set-disabled", admin, map[string]any{"target_id": "nobody", "is_disabled": true}, http.StatusNotFound, "not_found")
	e.refused("/auth/admin/teacher/set-disabled", admin, map[string]any{"is_disabled": true}, "missing_target_id")
	if st, _ := e.do("POST", "/auth/admin/teacher/set-disabled", admin, map[string]any{"target_id": "teacher_li"}); st != http.StatusBadRequest {
		t.Fatalf("set-disabled without is_disabled: %d", st)
	}

	// Reset password: generated, then given.
	res := e.ok("POST", "/auth/admin/teacher/reset-password", admin, map[string]any{"target_id": "teacher_li"})
	temp, _ := res["temp_password"].(string)
	if res["generated_password"] != true || temp == "" || res["token_version"] != float64(4) {
		t.Fatalf("reset-password: %v", res)
	}
	e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": "teacher_li", "credential_type": "password", "credential": temp})
	res = e.ok("POST", "/auth/admin/teacher/reset-password", admin, map[string]any{"target_id": "teacher_li", "new_password": "Given-123"})
	if _, shown := res["temp_password"]; shown || res["generated_password"] != false {
		t.Fatalf("reset-password given: %v", res)
	}
	e.refused("/auth/admin/teacher/reset-password", admin, map[string]any{"target_id": "teacher_li", "new_password": "weak"}, "weak_password")
	e.detail("POST", "/auth/admin/teacher/reset-password", admin, map[string]any{"target_id": "nobody"}, http.StatusNotFound, "not_found")

	// Reset token.
	tok := e.ok("POST", "/auth/admin/teacher/reset-token", admin, map[string]any{"target_id": "teacher_li"})
	if tok["role"] != "teacher" || tok["teacher"].(map[string]any)["teacher_id"] != "teacher_li" {
		t.Fatalf("teacher reset-token: %v", tok)
	}
	e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": "teacher_li", "credential_type": "token", "credential": tok["token"]})
	e.detail("POST", "/auth/admin/student/reset-token", admin, map[string]any{"target_id": "nobody"}, http.StatusNotFound, "not_found")
	e.refused("/auth/admin/student/reset-token", admin, map[string]any{}, "missing_target_id")
}

func TestAdminExportTokens(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	e.createTeacher(admin, "钱老师", "qian@school.cn")

	out := e.ok("POST", "/auth/admin/student/export-tokens", admin, map[string]any{})
	items := out["items"].([]any)
	if out["role"] != "student" || out["count"] != float64(3) || len(items) != 3 {
		t.Fatalf("student export: %v", out)
	}
	csv := out["csv"].(string)
	lines := strings.Split(strings.TrimRight(csv, "\r\n"), "\r\n")
	if lines[0] != "student_id,student_name,class_name,token" || len(lines) != 4 {
		t.Fatalf("student csv: %q", csv)
	}
	first := items[0].(map[string]any)
	if first["student_id"] != "s1" || first["class_name"] != "一班" {
		t.Fatalf("student item: %v", first)
	}
	// An exported token logs in.
	e.ok("POST", "/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "token", "credential": first["token"]})

	// No body at all, and a filter.
	if st, out := e.do("POST", "/auth/admin/student/export-tokens", admin, nil); st != http.StatusOK || out["count"] != float64(3) {
		t.Fatalf("export without a body: %d %v", st, out)
	}
	out = e.ok("POST", "/auth/admin/student/export-tokens", admin, map[string]any{"ids": []string{"s2", "nobody"}})
	if out["count"] != float64(1) {
		t.Fatalf("filtered export: %v", out)
	}

	out = e.ok("POST", "/auth/admin/teacher/export-tokens", admin, nil)
	csv = out["csv"].(string)
	if out["role"] != "teacher" || out["count"] != float64(1) ||
		!strings.HasPrefix(csv, "teacher_id,teacher_name,email,token\r\n") || !strings.Contains(csv, "qian@school.cn") {
		t.Fatalf("teacher export: %v", out)
	}
	it := out["items"].([]any)[0].(map[string]any)
	if it["teacher_name"] != "钱老师" || it["token"] == "" {
		t.Fatalf("teacher item: %v", it)
	}
}

func TestAdminRoutesNeedTheAdmin(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	e.ok("POST", "/auth/teacher/student/reset-passwords", admin, map[string]any{"student_id": "s1", "new_password": "right1234"})
	student := e.ok("POST", "/auth/student/login", "", map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": "right1234"})["access_token"].(string)
	id, loginTok := e.createTeacher(admin, "孙老师", "")
	teacher := e.ok("POST", "/auth/teacher/login", "", map[string]any{"candidate_id": id, "credential_type": "token", "credential": loginTok})["access_token"].(string)

	for _, r := range []struct{ method, path string }{
		{"GET", "/auth/admin/teacher/list"},
		{"POST", "/auth/admin/teacher/create"},
		{"POST", "/auth/admin/teacher/set-disabled"},
		{"POST", "/auth/admin/teacher/reset-password"},
		{"POST", "/auth/admin/student/reset-token"},
		{"POST", "/auth/admin/teacher/reset-token"},
		{"POST", "/auth/admin/student/export-tokens"},
		{"POST", "/auth/admin/teacher/export-tokens"},
	} {
		var body any
		if r.method == "POST" {
			body = map[string]any{}
		}
		e.detail(r.method, r.path, "", body, http.StatusUnauthorized, "missing_authorization")
		e.detail(r.method, r.path, student, body, http.StatusForbidden, "forbidden")
		e.detail(r.method, r.path, teacher, body, http.StatusForbidden, "forbidden")
	}
	e.detail("GET", "/auth/admin/teacher/list", "not-a-jwt", nil, http.StatusUnauthorized, "invalid_token_format")
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{"", "{", `{"name": 3}`, `{"name":"张三","extra":1}`, `[]`} {
		resp, err := http.Post(e.url+"/auth/student/identify", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || out["detail"] == nil {
			t.Fatalf("body %q: %d %v, want 400 with a detail", body, resp.StatusCode, out)
		}
	}
}

func TestRouteRules(t *testing.T) {
	e := newEnv(t)
	public := map[string]bool{
		"POST /auth/student/identify": true, "POST /auth/student/login": true, "POST /auth/student/set-password": true,
		"POST /auth/teacher/identify": true, "POST /auth/teacher/login": true, "POST /auth/teacher/set-password": true,
		"POST /auth/admin/login": true,
	}
	n := 0
	for _, r := range e.mux.Routes() {
		path := r.Pattern[strings.Index(r.Pattern, " ")+1:]
		if !strings.HasPrefix(path, "/auth/") {
			continue
		}
		n++
		want := policy.Admin
		switch {
		case public[r.Pattern]:
			want = policy.Login
		case path == "/auth/teacher/student/reset-passwords":
			want = policy.Teacher
		case !strings.HasPrefix(path, "/auth/admin/"):
			t.Errorf("unexpected route %s", r.Pattern)
		}
		if r.Rule.String() != want.String() {
			t.Errorf("%s: rule %s, want %s", r.Pattern, r.Rule, want)
		}
	}
	if n != 16 {
		t.Errorf("%d /auth routes, want 16", n)
	}
}

// verifier is the bearer-token check for caller.Authenticator.Verify (as
// package tenantapp's):
// reg.Verify, its claims made a principal of tenant (teachers and admins:
// TeacherID = the subject; students: StudentID = the subject), its
// errors mapped by toFault (401 with the predecessor's codes, 403
// forbidden_tenant_scope).
func verifier(reg *accounts.Registry, tenant string) func(ctx context.Context, token string) (caller.Principal, error) {
	return func(ctx context.Context, token string) (caller.Principal, error) {
		c, err := reg.Verify(ctx, token)
		if err != nil {
			return caller.Principal{}, toFault(err, management)
		}
		p := caller.Principal{Tenant: tenant, Role: caller.Role(c.Role), Via: caller.Token}
		switch c.Role {
		case accounts.RoleStudent:
			p.StudentID = c.Subject
		default:
			p.TeacherID = c.Subject
		}
		return p, nil
	}
}

// TestLoginIgnoresStaleToken: a revoked token on a login route does not
// stop the login (policy.Login), while other routes refuse it.
func TestLoginIgnoresStaleToken(t *testing.T) {
	e := newEnv(t)
	admin := e.adminToken()
	e.ok("POST", "/auth/teacher/student/reset-passwords", admin, map[string]any{"student_id": "s1", "new_password": "right1234"})
	creds := map[string]any{"candidate_id": "s1", "credential_type": "password", "credential": "right1234"}
	old := e.ok("POST", "/auth/student/login", "", creds)["access_token"].(string)
	e.ok("POST", "/auth/teacher/student/reset-passwords", admin, map[string]any{"student_id": "s1", "new_password": "right1234"})
	e.detail("GET", "/whoami", old, nil, http.StatusUnauthorized, "token_revoked")
	e.ok("POST", "/auth/student/login", old, creds)
	e.ok("POST", "/auth/student/identify", old, map[string]any{"name": "张三"})
}

// TestOpenMode: without authentication the admin routes stay closed; the
// teacher route acts as teacher_local, as the predecessor's did.
func TestOpenMode(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "student_profiles"), 0o755)
	os.WriteFile(filepath.Join(dir, "student_profiles", "s1.json"), []byte(`{"student_id":"s1","student_name":"张三","class_name":"一班"}`), 0o644)
	reg, err := accounts.Open(context.Background(), dir, accounts.Options{
		TenantID: "t1", TokenSecret: []byte("0123456789abcdef0123456789abcdef-authapi-test"),
		ArgonTime: 1, ArgonMemoryKiB: 64, ArgonThreads: 1, NoTeacherBootstrap: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	fail := func(w http.ResponseWriter, r *http.Request, err error) { httpjson.Fail(w, nil, err) }
	mux := policy.NewMux(false, fail)
	New(reg, nil).Register(mux)
	srv := httptest.NewServer(caller.Authenticator{Resolver: caller.Resolver{Tenant: "t1"}}.Middleware(mux))
	defer srv.Close()
	e := &env{t: t, url: srv.URL, reg: reg}
	e.detail("GET", "/auth/admin/teacher/list", "", nil, http.StatusUnauthorized, "missing_authorization")
	e.detail("POST", "/auth/admin/student/export-tokens", "", map[string]any{"role": "admin"}, http.StatusUnauthorized, "missing_authorization")
	out := e.ok("POST", "/auth/teacher/student/reset-passwords", "", map[string]any{"student_id": "s1"})
	if out["count"] != float64(1) {
		t.Fatalf("open-mode reset: %v", out)
	}
}
