package accounts

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

func TestOpenRefusesMissingOrShortSecret(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(context.Background(), dir, Options{})
	wantCode(t, err, "auth_token_secret_missing")
	_, err = Open(context.Background(), dir, Options{TokenSecret: []byte("short")})
	wantCode(t, err, "auth_token_secret_too_short")
}

func TestOpenSchemaAndReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	r := openTest(t, dir, testOptions(c))
	if st, err := os.Stat(filepath.Join(dir, "auth", "auth_registry.sqlite3")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("registry file %v %v", st, err)
	}
	if len(migrations())-1 != SchemaVersion {
		t.Fatalf("SchemaVersion %d, migrations up to %d", SchemaVersion, len(migrations())-1)
	}
	var v int
	var mode string
	if err := r.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, SchemaVersion)
	}
	if err := r.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v)", mode, err)
	}
	studentWithPassword(t, r, dir, "s1", "张三", "高二(1)班", "abc12345")
	cr, err := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Li Lei", Email: "li@school.cn", Password: "teach1234"})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	r2 := openTest(t, dir, testOptions(c))
	if _, err := login(r2, RoleStudent, "s1", "password", "abc12345"); err != nil {
		t.Fatalf("student login after reopen: %v", err)
	}
	if _, err := login(r2, RoleTeacher, cr.Account.ID, "token", cr.LoginToken); err != nil {
		t.Fatalf("teacher token login after reopen: %v", err)
	}
	if _, err := login(r2, RoleTeacher, cr.Account.ID, "password", "teach1234"); err != nil {
		t.Fatalf("teacher password login after reopen: %v", err)
	}
}

func TestPasswordPolicy(t *testing.T) {
	r := openTest(t, t.TempDir(), testOptions(newClock()))
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"abc12345", true},
		{"ABCDEFG1", true},
		{"密码密码密码a1", true},
		{"abc1234", false},  // 7
		{"abcdefgh", false}, // no digit
		{"12345678", false}, // no letter
		{"密码密码密码密码1", false},
		{strings.Repeat("a1", 128), true},
		{strings.Repeat("a1", 128) + "x", false}, // 257
	} {
		err := r.CheckPassword(tc.pw)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
		if err != nil {
			wantCode(t, err, "weak_password")
			if !errors.Is(err, ErrWeakPassword) || !strings.Contains(err.(*Error).Message(), "8 位") {
				t.Errorf("message %q", err.(*Error).Message())
			}
		}
	}
	r2 := openTest(t, t.TempDir(), Options{TokenSecret: testSecret, PasswordMinLen: 12, ArgonTime: 1, ArgonMemoryKiB: 64, ArgonThreads: 1})
	if err := r2.CheckPassword("abc123456"); err == nil || !strings.Contains(err.(*Error).Message(), "12 位") {
		t.Errorf("min len 12: %v", err)
	}
	for range 50 {
		if p := r2.generatePassword(); r2.CheckPassword(p) != nil {
			t.Fatalf("generated %q fails the policy", p)
		}
	}
}

func TestArgon2idEncodingAndRehash(t *testing.T) {
	p := argonParams{time: 1, memory: 64, threads: 1}
	h, err := hashArgon2id("abc12345", p)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Fatalf("PHC string %q", h)
	}
	if ok, rehash, err := verifyHash(h, "abc12345", p, argon2.IDKey); !ok || rehash || err != nil {
		t.Fatalf("verify = %v %v %v", ok, rehash, err)
	}
	if ok, _, _ := verifyHash(h, "abc12346", p, argon2.IDKey); ok {
		t.Fatal("wrong password verified")
	}
	if ok, rehash, _ := verifyHash(h, "abc12345", argonParams{2, 64, 1}, argon2.IDKey); !ok || !rehash {
		t.Fatal("changed parameters should ask for a rehash")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=64,t=1,p=1$x", "$argon2id$v=16$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "pbkdf2_sha256$0$AA==$AA==", "md5$x"} {
		if _, _, err := verifyHash(bad, "x", p, argon2.IDKey); err == nil {
			t.Errorf("verifyHash(%q) accepted", bad)
		}
	}
}

// Vectors computed with Python's hashlib (the predecessor's code):
//
//	python3 -c "import hashlib,base64; salt=bytes(range(16));
//	  d=hashlib.pbkdf2_hmac('sha256','Secret123'.encode(),salt,310000,32);
//	  print('pbkdf2_sha256$310000$'+base64.b64encode(salt).decode()+'$'+base64.b64encode(d).decode())"
const (
	pyPBKDF2Secret123 = "pbkdf2_sha256$310000$AAECAwQFBgcICQoLDA0ODw==$KXvsjFcvN8SxKMXs6mKAurl7wbS3/ZIB9i7mnsFXp7I="
	// salt b'\xffsalt-for-test\x00\x01', 1000 iterations, password '密码abc123'
	pyPBKDF2Chinese = "pbkdf2_sha256$1000$/3NhbHQtZm9yLXRlc3QAAQ==$naaIAiEUbYeJjQ1AWHd0iZbO3oqWgMpwGHENOIZrO84="
	// hmac.new(b'pepper', b'tok-abc', hashlib.sha256).hexdigest()
	pyTokenHash = "92851801e8f71014de39cfb34e5ff43a9056f69c7232fa019606c831f26c7f1d"
)

func TestPBKDF2PythonVectors(t *testing.T) {
	cur := argonParams{1, 64, 1}
	for _, tc := range []struct{ hash, pw string }{{pyPBKDF2Secret123, "Secret123"}, {pyPBKDF2Chinese, "密码abc123"}} {
		ok, rehash, err := verifyHash(tc.hash, tc.pw, cur, argon2.IDKey)
		if !ok || !rehash || err != nil {
			t.Fatalf("verify %s = %v %v %v", tc.hash, ok, rehash, err)
		}
		if ok, _, _ := verifyHash(tc.hash, tc.pw+"x", cur, argon2.IDKey); ok {
			t.Fatal("wrong password verified")
		}
	}
	r := openTest(t, t.TempDir(), Options{TokenSecret: testSecret, CredentialPepper: []byte("pepper"),
		ArgonTime: 1, ArgonMemoryKiB: 64, ArgonThreads: 1})
	if got := r.hashLoginToken("tok-abc"); got != pyTokenHash {
		t.Fatalf("login token hash %s, want %s", got, pyTokenHash)
	}
}

// predecessorSchema is the predecessor's registry as the reference
// describes it (no user_version, none of Lectern's columns).
const predecessorSchema = `
CREATE TABLE student_auth (student_id TEXT PRIMARY KEY, student_name TEXT, class_name TEXT, name_norm TEXT,
	class_norm TEXT, token_hash TEXT, token_hint TEXT, password_hash TEXT, password_algo TEXT, password_set_at TEXT,
	token_version INTEGER DEFAULT 1, token_rotated_at TEXT, failed_count INTEGER DEFAULT 0, locked_until TEXT,
	is_disabled INTEGER DEFAULT 0, updated_at TEXT);
CREATE TABLE teacher_auth (teacher_id TEXT PRIMARY KEY, teacher_name TEXT, email TEXT, name_norm TEXT,
	email_norm TEXT, token_hash TEXT, token_hint TEXT, password_hash TEXT, password_algo TEXT, password_set_at TEXT,
	token_version INTEGER DEFAULT 1, token_rotated_at TEXT, failed_count INTEGER DEFAULT 0, locked_until TEXT,
	is_disabled INTEGER DEFAULT 0, updated_at TEXT);
CREATE TABLE admin_auth (admin_username TEXT PRIMARY KEY, username_norm TEXT UNIQUE, password_hash TEXT,
	password_algo TEXT, password_set_at TEXT, failed_count INTEGER DEFAULT 0, locked_until TEXT,
	is_disabled INTEGER DEFAULT 0, updated_at TEXT);
CREATE TABLE auth_audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, actor_id TEXT, actor_role TEXT, action TEXT,
	target_id TEXT, target_role TEXT, detail_json TEXT, created_at TEXT);
INSERT INTO student_auth VALUES ('s1', '张三', '高二(1)班', '张三', '高二(1)班', NULL, NULL,
	'` + pyPBKDF2Chinese + `', 'pbkdf2_sha256', '2026-02-20T08:00:00+00:00', 3, NULL, 2, NULL, 0,
	'2026-02-20T08:00:00+00:00');
INSERT INTO teacher_auth VALUES ('teacher_li', '李老师', 'li@school.cn', '李老师', 'li@school.cn',
	'` + pyTokenHash + `', '-abc', NULL, NULL, NULL, 1, '2026-02-20T08:00:00+00:00', 0, NULL, 0, NULL);
INSERT INTO admin_auth VALUES ('admin', 'admin', '` + pyPBKDF2Secret123 + `', 'pbkdf2_sha256',
	'2026-02-01T00:00:00+00:00', 0, NULL, 0, '2026-02-01T00:00:00+00:00');
INSERT INTO auth_audit_log (actor_id, actor_role, action, target_id, target_role, detail_json, created_at)
	VALUES ('s1', 'student', 'login_attempt', 's1', 'student', '{"result":"success"}', '2026-02-20T08:00:00+00:00');
`

func TestPredecessorRegistryOpensAndUpgradesHashes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "auth", "auth_registry.sqlite3")
	os.MkdirAll(filepath.Dir(path), 0o755)
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(predecessorSchema, ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	raw.Close()

	c := newClock()
	opt := testOptions(c)
	opt.CredentialPepper = []byte("pepper")
	r := openTest(t, dir, opt)

	// Student: PBKDF2 password from the predecessor, upgraded on login.
	a, err := login(r, RoleStudent, "s1", "password", "密码abc123")
	if err != nil {
		t.Fatalf("predecessor student login: %v", err)
	}
	if a.TokenVersion != 3 || a.Name != "张三" || a.FailedCount != 0 {
		t.Fatalf("account %+v", a)
	}
	var hash, algo string
	r.db.QueryRowContext(ctx, `SELECT password_hash, password_algo FROM student_auth WHERE student_id='s1'`).Scan(&hash, &algo)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") || algo != "argon2id" {
		t.Fatalf("not upgraded: %s %s", hash, algo)
	}
	if _, err := login(r, RoleStudent, "s1", "password", "密码abc123"); err != nil {
		t.Fatalf("login after upgrade: %v", err)
	}
	if _, err := login(r, RoleStudent, "s1", "password", "wrong1234"); err == nil {
		t.Fatal("wrong password accepted after upgrade")
	}
	entries, _ := r.AuditLog(ctx, 0)
	var rehashed bool
	for _, e := range entries {
		if e.Detail["rehashed"] == true {
			rehashed = true
		}
	}
	if !rehashed {
		t.Fatal("no audit entry records the rehash")
	}

	// Teacher: the predecessor's login token (HMAC with the pepper).
	if _, err := login(r, RoleTeacher, "teacher_li", "token", "tok-abc"); err != nil {
		t.Fatalf("predecessor token login: %v", err)
	}
	// Admin: PBKDF2 with 310 000 iterations, then a revocable token.
	ad, err := login(r, RoleAdmin, "ADMIN", "", "Secret123")
	if err != nil {
		t.Fatalf("predecessor admin login: %v", err)
	}
	if ad.ID != "admin" || ad.TokenVersion != 1 {
		t.Fatalf("admin %+v", ad)
	}
	tok, _, _ := r.Issue(ad)
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Fatalf("admin token: %v", err)
	}
	// The predecessor's audit row is still there, with Lectern's columns defaulted.
	entries, _ = r.AuditLog(ctx, 0)
	if last := entries[len(entries)-1]; last.Action != "login_attempt" || last.Outcome != "" || last.Time.IsZero() {
		t.Fatalf("old audit row %+v", last)
	}
	r.Close()

	// Reopening a migrated file is a no-op.
	r2 := openTest(t, dir, opt)
	if _, err := login(r2, RoleStudent, "s1", "password", "密码abc123"); err != nil {
		t.Fatal(err)
	}
}

func TestStudentIdentify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	writeProfile(t, dir, "s1", "张三", "高二(1)班")
	writeProfile(t, dir, "s2", "张 三", "高二(2)班")
	writeProfile(t, dir, "s3", "Li Si", "高二(1)班")

	_, err := r.IdentifyStudent(ctx, "  ", "")
	wantCode(t, err, "missing_name")
	_, err = r.IdentifyStudent(ctx, "王五", "")
	wantCode(t, err, "not_found")
	if err.(*Error).Message() == "" {
		t.Fatal("not_found without a message")
	}
	_, err = r.IdentifyStudent(ctx, "张三", "")
	wantCode(t, err, "multiple")
	var amb *AmbiguousError
	if !errors.As(err, &amb) || len(amb.Candidates) != 2 || amb.Message() != "同名学生，请补充班级。" || amb.NeedEmail {
		t.Fatalf("ambiguous %+v", amb)
	}
	a, err := r.IdentifyStudent(ctx, "张三", "高二 (2)班")
	if err != nil || a.ID != "s2" || a.ClassName != "高二(2)班" || a.PasswordSet || a.TokenVersion != 1 {
		t.Fatalf("identify = %+v, %v", a, err)
	}
	a, err = r.IdentifyStudent(ctx, "lisi", "")
	if err != nil || a.ID != "s3" {
		t.Fatalf("identify normalised = %+v, %v", a, err)
	}
	// A renamed profile refreshes the row.
	writeProfile(t, dir, "s3", "Li Si", "高三(1)班")
	a, _ = r.IdentifyStudent(ctx, "Li Si", "")
	if a.ClassName != "高三(1)班" {
		t.Fatalf("class not refreshed: %+v", a)
	}
}

func TestStudentLoginAndSetPassword(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	writeProfile(t, dir, "s1", "张三", "高二(1)班")

	// No password yet: the login token (from an admin export) works.
	_, err := login(r, RoleStudent, "s1", "password", "abc12345")
	wantReason(t, err, ReasonPasswordNotSet)
	cr, err := r.ResetLoginToken(ctx, admin, RoleStudent, "s1")
	if err != nil || len(cr.LoginToken) != 32 || cr.Account.TokenHint != cr.LoginToken[28:] {
		t.Fatalf("reset token = %+v, %v", cr, err)
	}
	a, err := login(r, RoleStudent, "s1", "TOKEN", " "+cr.LoginToken+" ")
	if err != nil {
		t.Fatalf("token login: %v", err)
	}
	tok, _, _ := r.Issue(a)

	req := SetPasswordRequest{LoginRequest: LoginRequest{Role: RoleStudent, CandidateID: "s1",
		CredentialType: "token", Credential: cr.LoginToken}, NewPassword: "short"}
	_, err = r.SetPassword(ctx, req)
	wantCode(t, err, "weak_password")
	req.NewPassword = "abc12345"
	req.Credential = "wrong-token"
	_, err = r.SetPassword(ctx, req)
	wantReason(t, err, ReasonWrongCredential)
	req.Credential = cr.LoginToken
	a2, err := r.SetPassword(ctx, req)
	if err != nil || !a2.PasswordSet || a2.TokenVersion != a.TokenVersion+1 {
		t.Fatalf("set password = %+v, %v", a2, err)
	}
	// The change revoked the old access token.
	_, err = r.Verify(ctx, tok)
	wantCode(t, err, "token_revoked")
	if _, err := login(r, RoleStudent, "s1", "password", "abc12345"); err != nil {
		t.Fatalf("password login: %v", err)
	}
	// Pass-through errors.
	_, err = login(r, RoleStudent, "", "password", "x")
	wantCode(t, err, "missing_candidate_id")
	_, err = login(r, RoleStudent, "s1", "otp", "x")
	wantCode(t, err, "invalid_credential_type")
	_, err = login(r, RoleStudent, "s1", "password", "")
	wantCode(t, err, "missing_credential")
	_, err = login(r, RoleAdmin, "", "", "x")
	wantCode(t, err, "missing_username")
	_, err = login(r, RoleAdmin, "admin", "", "")
	wantCode(t, err, "missing_password")
	_, err = login(r, RoleAdmin, "admin", "token", "x")
	wantCode(t, err, "invalid_credential_type")
}

func TestLoginFailuresAreMasked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	studentWithPassword(t, r, dir, "s1", "张三", "一班", "abc12345")
	tc, _ := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Wang", Password: "teach1234"})
	r.SetTeacherDisabled(ctx, admin, tc.Account.ID, true)

	_, err := login(r, RoleStudent, "nobody", "password", "abc12345")
	wantReason(t, err, ReasonNotFound)
	_, err = login(r, RoleStudent, "s1", "password", "abc12346")
	wantReason(t, err, ReasonWrongCredential)
	_, err = login(r, RoleTeacher, tc.Account.ID, "password", "teach1234")
	wantReason(t, err, ReasonDisabled)
	_, err = login(r, RoleStudent, strings.Repeat("x", 129), "password", "abc12345")
	wantReason(t, err, ReasonCandidateTooLong)
	_, err = login(r, RoleStudent, "s1", "password", strings.Repeat("x", 2049))
	wantReason(t, err, ReasonCredentialTooLong)
	_, err = login(r, RoleStudent, "s1", "token", "whatever")
	wantReason(t, err, ReasonWrongCredential)

	entries, _ := r.AuditLog(ctx, 0)
	results := map[string]bool{}
	for _, e := range entries {
		if e.Action == ActionLoginAttempt {
			results[e.Detail["result"].(string)] = true
			if e.Outcome != OutcomeFailure || e.ClientAddr != "192.0.2.7" {
				t.Fatalf("entry %+v", e)
			}
			if len([]rune(e.ActorID)) > 128 {
				t.Fatalf("actor id not truncated: %d", len(e.ActorID))
			}
		}
	}
	for _, want := range []string{"not_found", "invalid_credential", "disabled", "candidate_id_too_long", "credential_too_long"} {
		if !results[want] {
			t.Errorf("no audited result %q (have %v)", want, results)
		}
	}
}

// Unknown subjects cost a dummy Argon2id with the default parameters, so
// they take about as long as a wrong password.
func TestMaskedFailureTiming(t *testing.T) {
	// What makes the timings alike is the work, so the work is what is
	// checked (a wall-clock comparison is no unit test's business on a
	// shared machine): a wrong password and an unknown subject each cost
	// one Argon2id computation with the same parameters.
	ctx := context.Background()
	dir := t.TempDir()
	opt := testOptions(newClock())
	opt.LockThreshold = 100
	r := openTest(t, dir, opt)
	studentWithPassword(t, r, dir, "s1", "张三", "一班", "abc12345")
	type work struct{ time, memory uint32 }
	var mu sync.Mutex
	var done []work
	r.idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		mu.Lock()
		done = append(done, work{time, memory})
		mu.Unlock()
		return argon2.IDKey(password, salt, time, memory, threads, keyLen)
	}
	spent := func(id string) []work {
		mu.Lock()
		done = nil
		mu.Unlock()
		if _, err := login(r, RoleStudent, id, "password", "wrong1234"); !errors.Is(err, ErrInvalidCredential) {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(done)
	}
	wrong, unknown := spent("s1"), spent("nobody")
	if len(wrong) != 1 || !slices.Equal(wrong, unknown) {
		t.Fatalf("Argon2id work: wrong password %v, unknown subject %v; want one computation each, the same", wrong, unknown)
	}
	_ = ctx
}

func TestLockoutEscalatesAndExpires(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	r := openTest(t, dir, testOptions(c)) // 5 failures, 15 min, window 24 h
	studentWithPassword(t, r, dir, "s1", "张三", "一班", "abc12345")

	for i := 1; i <= 4; i++ {
		_, err := login(r, RoleStudent, "s1", "password", "bad")
		wantReason(t, err, ReasonWrongCredential)
	}
	a, _ := r.GetStudent(ctx, "s1")
	if a.FailedCount != 4 || !a.LockedUntil.IsZero() {
		t.Fatalf("after 4: %+v", a)
	}
	_, err := login(r, RoleStudent, "s1", "password", "bad") // 5th: locks
	wantReason(t, err, ReasonWrongCredential)
	_, err = login(r, RoleStudent, "s1", "password", "abc12345") // right password, but locked
	wantReason(t, err, ReasonLocked)
	if ce := err.(*CredentialError); ce.RetryAfter != 15*time.Minute {
		t.Fatalf("retry after %v", ce.RetryAfter)
	}
	c.Advance(14 * time.Minute)
	_, err = login(r, RoleStudent, "s1", "password", "abc12345")
	wantReason(t, err, ReasonLocked)
	a, _ = r.GetStudent(ctx, "s1")
	if !a.LockedUntil.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("locked attempts extended the lock: %v", a.LockedUntil)
	}

	// The lock expired, but the history did not: one more failure locks
	// again, for twice as long.
	c.Advance(time.Minute)
	_, err = login(r, RoleStudent, "s1", "password", "bad")
	wantReason(t, err, ReasonWrongCredential)
	_, err = login(r, RoleStudent, "s1", "password", "abc12345")
	wantReason(t, err, ReasonLocked)
	if ce := err.(*CredentialError); ce.RetryAfter != 30*time.Minute {
		t.Fatalf("second lock %v, want 30m", ce.RetryAfter)
	}
	c.Advance(30 * time.Minute)
	_, err = login(r, RoleStudent, "s1", "password", "bad")
	wantReason(t, err, ReasonWrongCredential)
	_, err = login(r, RoleStudent, "s1", "password", "abc12345")
	if ce := err.(*CredentialError); ce.Reason != ReasonLocked || ce.RetryAfter != time.Hour {
		t.Fatalf("third lock: %v", err)
	}

	// After the lock, the right password works and clears everything.
	c.Advance(time.Hour)
	if a, err = login(r, RoleStudent, "s1", "password", "abc12345"); err != nil {
		t.Fatal(err)
	}
	if a.FailedCount != 0 || !a.LockedUntil.IsZero() {
		t.Fatalf("success did not clear: %+v", a)
	}

	// Failures spread over more than the window do not accumulate.
	for range 4 {
		login(r, RoleStudent, "s1", "password", "bad")
	}
	c.Advance(24 * time.Hour)
	for range 4 {
		login(r, RoleStudent, "s1", "password", "bad")
	}
	if _, err := login(r, RoleStudent, "s1", "password", "abc12345"); err != nil {
		t.Fatalf("4+4 failures in two windows locked the account: %v", err)
	}

	// Bound: with the defaults, at most 11 failures get checked in a window.
	checked := 0
	start := c.Now()
	for c.Now().Sub(start) < 24*time.Hour {
		_, err := login(r, RoleStudent, "s1", "password", "bad")
		if err.(*CredentialError).Reason == ReasonWrongCredential {
			checked++
		}
		c.Advance(time.Minute)
	}
	if checked != 11 {
		t.Fatalf("%d guesses checked in 24 h, want 11", checked)
	}
}

func TestLockoutAppliesToAdminsAndResetClearsIt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	r := openTest(t, dir, testOptions(c))
	if _, err := r.CreateAdmin(ctx, Actor{ID: "root", Role: RoleAdmin}, "boss", "boss1234"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		login(r, RoleAdmin, "boss", "", "nope")
	}
	_, err := login(r, RoleAdmin, "boss", "", "boss1234")
	wantReason(t, err, ReasonLocked)

	tc, _ := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Wang", Password: "teach1234"})
	for range 5 {
		login(r, RoleTeacher, tc.Account.ID, "password", "nope")
	}
	_, err = login(r, RoleTeacher, tc.Account.ID, "password", "teach1234")
	wantReason(t, err, ReasonLocked)
	if _, err := r.ResetTeacherPassword(ctx, admin, tc.Account.ID, "fresh1234"); err != nil {
		t.Fatal(err)
	}
	if _, err := login(r, RoleTeacher, tc.Account.ID, "password", "fresh1234"); err != nil {
		t.Fatalf("reset did not clear the lock: %v", err)
	}
}

func TestConcurrentLogins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	r := openTest(t, dir, testOptions(c))
	for i := range 4 {
		id := "s" + string(rune('0'+i))
		studentWithPassword(t, r, dir, id, "学生"+id, "一班", "abc12345")
	}
	studentWithPassword(t, r, dir, "victim", "受害者", "一班", "abc12345")

	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := 0
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Parallel guesses at one account...
			for range 3 {
				_, err := login(r, RoleStudent, "victim", "password", "guess")
				var ce *CredentialError
				if !errors.As(err, &ce) {
					t.Errorf("guess: %v", err)
					return
				}
				if ce.Reason == ReasonWrongCredential {
					mu.Lock()
					checked++
					mu.Unlock()
				}
			}
			// ...and good logins and token checks on others.
			id := "s" + string(rune('0'+g%4))
			a, err := login(r, RoleStudent, id, "password", "abc12345")
			if err != nil {
				t.Errorf("login %s: %v", id, err)
				return
			}
			tok, _, _ := r.Issue(a)
			if _, err := r.Verify(ctx, tok); err != nil {
				t.Errorf("verify: %v", err)
			}
		}()
	}
	wg.Wait()
	if checked != 5 {
		t.Fatalf("%d parallel guesses were checked, want exactly the threshold 5", checked)
	}
	a, _ := r.GetStudent(ctx, "victim")
	if a.FailedCount != 5 || a.LockedUntil.IsZero() {
		t.Fatalf("victim %+v", a)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	r := openTest(t, dir, testOptions(c))
	a := studentWithPassword(t, r, dir, "s1", "张三", "一班", "abc12345")

	tok, exp, err := r.Issue(a)
	if err != nil || !exp.Equal(c.Now().Add(8*time.Hour)) {
		t.Fatalf("issue: %v %v", exp, err)
	}
	if !strings.HasPrefix(tok, r.fast.header+".") {
		t.Fatalf("minted header is not the fast path's: %s", tok)
	}
	cl, err := r.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Subject: "s1", Role: RoleStudent, TenantID: "t1", TokenVersion: a.TokenVersion,
		IssuedAt: c.Now(), ExpiresAt: exp}
	if cl != want {
		t.Fatalf("claims %+v, want %+v", cl, want)
	}

	// Expiry.
	c.Advance(8*time.Hour - time.Second)
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Fatalf("just before exp: %v", err)
	}
	c.Advance(time.Second)
	_, err = r.Verify(ctx, tok)
	wantCode(t, err, "token_expired")

	// Revoked after a reset.
	tok, _, _ = r.Issue(a)
	if _, err := r.Verify(ctx, tok); err != nil { // cached now
		t.Fatal(err)
	}
	if _, err := r.ResetStudentPasswords(ctx, admin, StudentPasswordReset{StudentID: "s1"}); err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(ctx, tok)
	wantCode(t, err, "token_revoked")

	// Wrong tenant: same secret, other registry tenant.
	opt2 := testOptions(c)
	opt2.TenantID = "t2"
	r2 := openTest(t, t.TempDir(), opt2)
	a, _ = r.GetStudent(ctx, "s1")
	tok, _, _ = r.Issue(a)
	_, err = r2.Verify(ctx, tok)
	wantCode(t, err, "forbidden_tenant_scope")

	// Tampering and malformed tokens.
	parts := strings.Split(tok, ".")
	for _, tc := range []struct{ tok, code string }{
		{"", "missing_bearer_token"},
		{"abc", "invalid_token_format"},
		{"a.b", "invalid_token_format"},
		{parts[0] + "." + parts[1] + ".AAAA", "invalid_token_signature"},
		{parts[0] + ".eyJzdWIiOiJzMiJ9." + parts[2], "invalid_token_signature"},
		{"!!." + parts[1] + "." + parts[2], "invalid_token_payload"},
		// alg none
		{"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + ".", "invalid_token_signature"},
	} {
		_, err := r.Verify(ctx, tc.tok)
		wantCode(t, err, tc.code)
	}
	// Signed by us but without exp, tv or a known role.
	for _, tc := range []struct {
		claims map[string]any
		code   string
	}{
		{map[string]any{"sub": "s1", "role": "student", "tenant_id": "t1", "tv": a.TokenVersion}, "invalid_token_exp"},
		{map[string]any{"sub": "s1", "role": "student", "tenant_id": "t1", "exp": c.Now().Unix() + 60}, "invalid_token_claims"},
		{map[string]any{"sub": "s1", "role": "service", "tenant_id": "t1", "tv": 1, "exp": c.Now().Unix() + 60}, "invalid_token_claims"},
		{map[string]any{"sub": "", "role": "student", "tenant_id": "t1", "tv": 1, "exp": c.Now().Unix() + 60}, "invalid_token_claims"},
		{map[string]any{"sub": "s1", "role": "student", "tv": a.TokenVersion, "exp": c.Now().Unix() + 60}, "forbidden_tenant_scope"},
		{map[string]any{"sub": "s1", "role": "student", "tid": "t1", "tv": a.TokenVersion, "exp": c.Now().Unix() + 60}, ""},
		{map[string]any{"sub": "s1", "role": "student", "tid": "t1", "tv": a.TokenVersion + 1, "exp": c.Now().Unix() + 60}, "token_revoked"},
		{map[string]any{"sub": "ghost", "role": "student", "tid": "t1", "tv": 1, "exp": c.Now().Unix() + 60}, "token_revoked"},
		{map[string]any{"sub": "s1", "role": "student", "tid": "t1", "tv": 1.5, "exp": c.Now().Unix() + 60}, "invalid_token_payload"},
	} {
		_, err := r.Verify(ctx, signRaw(t, tc.claims))
		wantCode(t, err, tc.code)
	}
	// A short TTL is raised to the 5-minute minimum.
	opt3 := testOptions(c)
	opt3.TokenTTL = time.Second
	if r3 := openTest(t, t.TempDir(), opt3); r3.TokenTTL() != 5*time.Minute {
		t.Fatalf("ttl %v", r3.TokenTTL())
	}
}

func TestDisabledTeacherTokensAreRevoked(t *testing.T) {
	ctx := context.Background()
	r := openTest(t, t.TempDir(), testOptions(newClock()))
	tc, _ := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Wang", Password: "teach1234"})
	a, _ := login(r, RoleTeacher, tc.Account.ID, "password", "teach1234")
	tok, _, _ := r.Issue(a)
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	d, err := r.SetTeacherDisabled(ctx, admin, tc.Account.ID, true)
	if err != nil || !d.Disabled || d.TokenVersion != a.TokenVersion+1 {
		t.Fatalf("disable = %+v, %v", d, err)
	}
	_, err = r.Verify(ctx, tok)
	wantCode(t, err, "token_revoked")
	// A token with the new version is still refused while disabled.
	tok2, _, _ := r.Issue(d)
	_, err = r.Verify(ctx, tok2)
	wantCode(t, err, "token_revoked")
	e, _ := r.SetTeacherDisabled(ctx, admin, tc.Account.ID, false)
	if e.Disabled || e.TokenVersion != d.TokenVersion+1 {
		t.Fatalf("enable = %+v", e)
	}
	if _, err := login(r, RoleTeacher, tc.Account.ID, "password", "teach1234"); err != nil {
		t.Fatal(err)
	}
	_, err = r.SetTeacherDisabled(ctx, admin, "nobody_here", true)
	wantCode(t, err, "not_found")
	_, err = r.SetTeacherDisabled(ctx, admin, "", true)
	wantCode(t, err, "missing_target_id")
}

func TestTokenCacheSeesOtherProcessesAfterTTL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	r := openTest(t, dir, testOptions(c))
	other := openTest(t, dir, testOptions(c)) // e.g. another process
	a := studentWithPassword(t, r, dir, "s1", "张三", "一班", "abc12345")
	tok, _, _ := r.Issue(a)
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ResetLoginToken(ctx, admin, RoleStudent, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Fatalf("within the cache TTL the cached version is used: %v", err)
	}
	c.Advance(10 * time.Second)
	_, err := r.Verify(ctx, tok)
	wantCode(t, err, "token_revoked")
}

func TestTeacherBootstrapIdentifyAndList(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	writeWorkspace(t, dir, "teacher_wang1", "# User\n- name: 王老师\n- email: wang1@school.cn\n")
	writeWorkspace(t, dir, "teacher_wang2", "- name: 王 老师\n- email: WANG2@school.cn\n")
	writeWorkspace(t, dir, "teacher_zhao", "- name: (unknown)\n- email: none\n")

	_, err := r.IdentifyTeacher(ctx, "", "")
	wantCode(t, err, "missing_name")
	_, err = r.IdentifyTeacher(ctx, "王老师", "")
	wantCode(t, err, "multiple")
	var amb *AmbiguousError
	errors.As(err, &amb)
	if !amb.NeedEmail || len(amb.Candidates) != 2 || amb.Candidates[0].Email != "w***@school.cn" {
		t.Fatalf("ambiguous %+v", amb)
	}
	a, err := r.IdentifyTeacher(ctx, "王老师", "wang2@SCHOOL.cn")
	if err != nil || a.ID != "teacher_wang2" || a.Email != "WANG2@school.cn" || a.PasswordSet {
		t.Fatalf("identify = %+v, %v", a, err)
	}
	_, err = r.IdentifyTeacher(ctx, "王老师", "x@y.z")
	wantCode(t, err, "not_found")
	a, err = r.IdentifyTeacher(ctx, "teacher_zhao", "")
	if err != nil || a.Email != "" {
		t.Fatalf("placeholder values: %+v, %v", a, err)
	}

	// Admin-created teachers join the list; same name → derived id suffix.
	c1, err := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Zhang Wei", Email: "zw1@school.cn"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Zhang Wei", Email: "zw2@school.cn", Password: "teach1234"})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Account.ID != "Zhang_Wei" || c2.Account.ID != "Zhang_Wei_2" || c1.LoginToken == "" || c1.Account.PasswordSet || !c2.Account.PasswordSet {
		t.Fatalf("created %+v / %+v", c1.Account, c2.Account)
	}
	_, err = r.CreateTeacher(ctx, admin, NewTeacher{Name: "Other", Email: "ZW1@school.cn"})
	wantCode(t, err, "already_exists")
	_, err = r.CreateTeacher(ctx, admin, NewTeacher{ID: "Zhang_Wei", Name: "Other"})
	wantCode(t, err, "already_exists")
	_, err = r.CreateTeacher(ctx, admin, NewTeacher{Name: "Weak", Password: "weak"})
	wantCode(t, err, "weak_password")
	_, err = r.CreateTeacher(ctx, admin, NewTeacher{Name: " "})
	wantCode(t, err, "missing_name")

	list, err := r.ListTeachers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	if got := strings.Join(ids, ","); got != "Zhang_Wei,Zhang_Wei_2,teacher,teacher_wang1,teacher_wang2,teacher_zhao" {
		t.Fatalf("list %s", got)
	}
	// Teacher first login with the token, then set a password.
	if _, err := login(r, RoleTeacher, c1.Account.ID, "token", c1.LoginToken); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetPassword(ctx, SetPasswordRequest{LoginRequest: LoginRequest{Role: RoleTeacher,
		CandidateID: c1.Account.ID, CredentialType: "token", Credential: c1.LoginToken}, NewPassword: "mine1234"}); err != nil {
		t.Fatal(err)
	}
	if _, err := login(r, RoleTeacher, c1.Account.ID, "password", "mine1234"); err != nil {
		t.Fatal(err)
	}

	// NoTeacherBootstrap: only created teachers.
	opt := testOptions(newClock())
	opt.NoTeacherBootstrap = true
	r2 := openTest(t, dir+"/other", opt)
	writeWorkspace(t, dir+"/other", "teacher_wang1", "- name: 王老师\n")
	if l, _ := r2.ListTeachers(ctx); len(l) != 0 {
		t.Fatalf("bootstrap disabled but listed %d", len(l))
	}
}

func TestAdminTeacherResets(t *testing.T) {
	ctx := context.Background()
	r := openTest(t, t.TempDir(), testOptions(newClock()))
	tc, _ := r.CreateTeacher(ctx, admin, NewTeacher{Name: "Wang", Password: "teach1234"})

	_, err := r.ResetTeacherPassword(ctx, admin, tc.Account.ID, "weak")
	wantCode(t, err, "weak_password")
	_, err = r.ResetTeacherPassword(ctx, admin, "missing_teacher", "")
	wantCode(t, err, "not_found")
	_, err = r.ResetTeacherPassword(ctx, admin, "", "")
	wantCode(t, err, "missing_target_id")
	gen, err := r.ResetTeacherPassword(ctx, admin, tc.Account.ID, "")
	if err != nil || !gen.GeneratedPassword || gen.Password == "" || gen.Account.TokenVersion != 2 {
		t.Fatalf("generated reset = %+v, %v", gen, err)
	}
	if _, err := login(r, RoleTeacher, tc.Account.ID, "password", gen.Password); err != nil {
		t.Fatal(err)
	}
	given, _ := r.ResetTeacherPassword(ctx, admin, tc.Account.ID, "given1234")
	if given.GeneratedPassword || given.Password != "" || given.Account.TokenVersion != 3 {
		t.Fatalf("given reset = %+v", given)
	}
	tr, err := r.ResetLoginToken(ctx, admin, RoleTeacher, tc.Account.ID)
	if err != nil || tr.Account.TokenVersion != 4 {
		t.Fatalf("reset token = %+v, %v", tr, err)
	}
	if _, err := login(r, RoleTeacher, tc.Account.ID, "token", tc.LoginToken); err == nil {
		t.Fatal("old login token still works")
	}
	if _, err := login(r, RoleTeacher, tc.Account.ID, "token", tr.LoginToken); err != nil {
		t.Fatal(err)
	}
	_, err = r.ResetLoginToken(ctx, admin, RoleAdmin, "admin")
	wantCode(t, err, "invalid_role")

	entries, _ := r.AuditLog(ctx, 0)
	actions := map[string]int{}
	for _, e := range entries {
		actions[e.Action]++
		if e.Action != ActionLoginAttempt && (e.ActorID != "admin" || e.ClientAddr != "10.0.0.1" || e.Outcome != OutcomeSuccess) {
			t.Fatalf("admin entry %+v", e)
		}
	}
	if actions[ActionResetPassword] != 2 || actions[ActionResetToken] != 1 || actions[ActionCreateTeacher] != 1 {
		t.Fatalf("audit actions %v", actions)
	}
}

func TestResetStudentPasswords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	writeProfile(t, dir, "s1", "张三", "高二(1)班")
	writeProfile(t, dir, "s2", "李四", "高二(1)班")
	writeProfile(t, dir, "s3", "王五", "高二(2)班")
	teacher := Actor{ID: "teacher", Role: RoleTeacher}

	for _, tc := range []struct {
		req  StudentPasswordReset
		code string
	}{
		{StudentPasswordReset{Scope: "student"}, "missing_student_id"},
		{StudentPasswordReset{Scope: "class"}, "missing_class_name"},
		{StudentPasswordReset{Scope: "school"}, "invalid_scope"},
		{StudentPasswordReset{Scope: "student", StudentID: "nobody"}, "not_found"},
		{StudentPasswordReset{Scope: "class", ClassName: "高三"}, "not_found"},
		{StudentPasswordReset{Scope: "all", NewPassword: "weak"}, "weak_password"},
	} {
		_, err := r.ResetStudentPasswords(ctx, teacher, tc.req)
		wantCode(t, err, tc.code)
	}
	items, err := r.ResetStudentPasswords(ctx, teacher, StudentPasswordReset{Scope: "CLASS", ClassName: "高二 (1)班"})
	if err != nil || len(items) != 2 {
		t.Fatalf("class reset = %v, %v", items, err)
	}
	for _, it := range items {
		if !it.GeneratedPassword || r.CheckPassword(it.Password) != nil || it.Account.TokenVersion != 2 {
			t.Fatalf("item %+v", it)
		}
		if _, err := login(r, RoleStudent, it.Account.ID, "password", it.Password); err != nil {
			t.Fatal(err)
		}
	}
	items, err = r.ResetStudentPasswords(ctx, teacher, StudentPasswordReset{Scope: "all", NewPassword: "same1234"})
	if err != nil || len(items) != 3 || items[2].Password != "same1234" || items[2].GeneratedPassword {
		t.Fatalf("all reset = %+v, %v", items, err)
	}
	if _, err := login(r, RoleStudent, "s3", "password", "same1234"); err != nil {
		t.Fatal(err)
	}
}

func TestExportTokensCSV(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	writeProfile(t, dir, "s1", "=HYPERLINK(\"x\")", "+1班")
	writeProfile(t, dir, "s2", "@SUM(A1)", "-2班")
	writeProfile(t, dir, "s3", "普通, 名字", "三班")
	a, _ := r.GetStudent(ctx, "s1")
	tok, _, _ := r.Issue(a)

	ex, err := r.ExportLoginTokens(ctx, admin, ExportRequest{Role: RoleStudent})
	if err != nil || len(ex.Items) != 3 {
		t.Fatalf("export = %+v, %v", ex, err)
	}
	lines := strings.Split(ex.CSV, "\r\n")
	if lines[0] != "student_id,student_name,class_name,token" || len(lines) != 5 || lines[4] != "" {
		t.Fatalf("csv %q", ex.CSV)
	}
	if !strings.HasPrefix(lines[1], `s1,"'=HYPERLINK(""x"")",'+1班,`) ||
		!strings.HasPrefix(lines[2], "s2,'@SUM(A1),'-2班,") ||
		!strings.HasPrefix(lines[3], "s3,\"普通, 名字\",三班,") {
		t.Fatalf("escaping:\n%s", ex.CSV)
	}
	for _, it := range ex.Items {
		if _, err := login(r, RoleStudent, it.Account.ID, "token", it.LoginToken); err != nil {
			t.Fatalf("exported token: %v", err)
		}
		if !strings.Contains(ex.CSV, ","+EscapeCSVCell(it.LoginToken)+"\r\n") {
			t.Fatal("token missing from the CSV")
		}
	}
	// Export does not log anyone out unless asked to.
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Fatalf("export revoked sessions: %v", err)
	}
	ex, err = r.ExportLoginTokens(ctx, admin, ExportRequest{Role: RoleStudent, IDs: []string{"s1", "s1", "nobody"}, RevokeSessions: true})
	if err != nil || len(ex.Items) != 1 {
		t.Fatalf("filtered export = %+v, %v", ex, err)
	}
	_, err = r.Verify(ctx, tok)
	wantCode(t, err, "token_revoked")

	tc, _ := r.CreateTeacher(ctx, admin, NewTeacher{Name: "-Wang", Email: "=w@x.cn"})
	ex, err = r.ExportLoginTokens(ctx, admin, ExportRequest{Role: RoleTeacher, IDs: []string{tc.Account.ID}})
	if err != nil || len(ex.Items) != 1 {
		t.Fatalf("teacher export = %+v, %v", ex, err)
	}
	if !strings.HasPrefix(ex.CSV, "teacher_id,teacher_name,email,token\r\n"+tc.Account.ID+",'-Wang,'=w@x.cn,") {
		t.Fatalf("teacher csv %q", ex.CSV)
	}
	entries, _ := r.AuditLog(ctx, 0)
	if e := entries[0]; e.Action != ActionExportTokens || e.Detail["count"] != float64(1) || e.Detail["filtered"] != true {
		t.Fatalf("audit %+v", e)
	}
	_, err = r.ExportLoginTokens(ctx, admin, ExportRequest{Role: RoleAdmin})
	wantCode(t, err, "invalid_role")
}

func TestEscapeCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"":       "",
		"plain":  "plain",
		"=1+2":   "'=1+2",
		"+1":     "'+1",
		"-1":     "'-1",
		"@x":     "'@x",
		"\tx":    "'\tx",
		"\rx":    "'\rx",
		"a=b":    "a=b",
		"'=safe": "'=safe",
		"张三":     "张三",
	} {
		if got := EscapeCSVCell(in); got != want {
			t.Errorf("EscapeCSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAdminBootstrapAndCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))

	c, created, err := r.EnsureAdmin(ctx, "admin", "")
	if err != nil || !created || !c.GeneratedPassword || c.Password == "" {
		t.Fatalf("ensure = %+v %v %v", c, created, err)
	}
	path := filepath.Join(dir, "auth", "admin_bootstrap.txt")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap file %v %v", st, err)
	}
	body, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(body), "username=admin\npassword="+c.Password+"\ngenerated_at=2026-03-01T04:00:00+00:00\n") {
		t.Fatalf("bootstrap file %q", body)
	}
	// An existing row is never updated.
	_, created, err = r.EnsureAdmin(ctx, "Admin", "other1234")
	if err != nil || created {
		t.Fatalf("second ensure %v %v", created, err)
	}
	a, err := login(r, RoleAdmin, "admin", "password", c.Password)
	if err != nil || a.Role != RoleAdmin || a.ID != "admin" {
		t.Fatalf("admin login %+v %v", a, err)
	}
	_, _, err = r.EnsureAdmin(ctx, "ops", "weak")
	wantCode(t, err, "weak_password")

	// Root admin key creates the tenant's admins.
	root := Actor{ID: "root", Role: RoleAdmin, ClientAddr: "127.0.0.1"}
	cr, err := r.CreateAdmin(ctx, root, "Principal", "")
	if err != nil || cr.Password == "" || cr.Account.ID != "Principal" {
		t.Fatalf("create admin %+v %v", cr, err)
	}
	_, err = r.CreateAdmin(ctx, root, "principal", "abc12345")
	wantCode(t, err, "already_exists")
	_, err = r.CreateAdmin(ctx, root, "", "abc12345")
	wantCode(t, err, "missing_username")
	_, err = r.CreateAdmin(ctx, root, "two words", "abc12345")
	wantCode(t, err, "invalid_username")

	// Admin tokens are revocable (the predecessor's were not).
	a, _ = login(r, RoleAdmin, "principal", "", cr.Password)
	tok, _, _ := r.Issue(a)
	cl, err := r.Verify(ctx, tok)
	if err != nil || cl.Subject != "Principal" || cl.Role != RoleAdmin {
		t.Fatalf("admin token %+v %v", cl, err)
	}
	if _, err := r.SetPassword(ctx, SetPasswordRequest{LoginRequest: LoginRequest{Role: RoleAdmin,
		CandidateID: "Principal", Credential: cr.Password}, NewPassword: "new12345"}); err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(ctx, tok)
	wantCode(t, err, "token_revoked")
}

func TestAuditLoginEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openTest(t, dir, testOptions(newClock()))
	studentWithPassword(t, r, dir, "s1", "张三", "一班", "abc12345")
	login(r, RoleStudent, "s1", "password", "bad")
	login(r, RoleStudent, "s1", "password", "abc12345")
	entries, err := r.AuditLog(ctx, 2)
	if err != nil || len(entries) != 2 {
		t.Fatalf("%v %v", entries, err)
	}
	ok, bad := entries[0], entries[1]
	if ok.Action != "login_attempt" || ok.Outcome != "success" || ok.Detail["result"] != "success" ||
		ok.ActorID != "s1" || ok.TargetID != "s1" || ok.ActorRole != RoleStudent || ok.ClientAddr != "192.0.2.7" ||
		!ok.Time.Equal(newClock().Now()) {
		t.Fatalf("success entry %+v", ok)
	}
	if bad.Outcome != "failure" || bad.Detail["result"] != "invalid_credential" || bad.Detail["failed_count"] != float64(1) ||
		bad.Detail["credential_type"] != "password" {
		t.Fatalf("failure entry %+v", bad)
	}
	var created string
	r.db.QueryRowContext(ctx, `SELECT created_at FROM auth_audit_log ORDER BY id DESC LIMIT 1`).Scan(&created)
	if created != "2026-03-01T04:00:00+00:00" {
		t.Fatalf("created_at %q", created)
	}
}
