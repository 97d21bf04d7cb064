package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/testfixtures"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// clock is the tests' settable clock.
type clock = testfixtures.Clock

func newClock() *clock { return testfixtures.NewClock(time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)) }

// cheap Argon2id parameters keep the tests fast; BenchmarkHash and
// TestMaskedFailureTiming use the defaults.
func testOptions(c *clock) Options {
	return Options{
		TenantID:       "t1",
		TokenSecret:    testSecret,
		ArgonTime:      1,
		ArgonMemoryKiB: 64,
		ArgonThreads:   1,
		Now:            c.Now,
	}
}

func openTest(t testing.TB, dir string, opt Options) *Registry {
	t.Helper()
	r, err := Open(context.Background(), dir, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func writeProfile(t testing.TB, dir, id, name, class string) {
	t.Helper()
	p := map[string]any{"student_id": id, "student_name": name, "class_name": class}
	data, _ := json.Marshal(p)
	path := filepath.Join(dir, "student_profiles", id+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeWorkspace(t testing.TB, dir, id, userMD string) {
	t.Helper()
	p := filepath.Join(dir, "teacher_workspaces", id)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "USER.md"), []byte(userMD), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := Code(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	var ce *CredentialError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CredentialError", err)
	}
	if ce.Code() != "invalid_credential" || !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("masked code = %q", ce.Code())
	}
	if ce.Reason != reason {
		t.Fatalf("reason %q, want %q", ce.Reason, reason)
	}
}

var admin = Actor{ID: "admin", Role: RoleAdmin, ClientAddr: "10.0.0.1"}

// studentWithPassword creates a student profile and sets its password via
// a teacher reset.
func studentWithPassword(t testing.TB, r *Registry, dir, id, name, class, pw string) Account {
	t.Helper()
	writeProfile(t, dir, id, name, class)
	res, err := r.ResetStudentPasswords(context.Background(), Actor{ID: "teacher", Role: RoleTeacher},
		StudentPasswordReset{Scope: ScopeStudent, StudentID: id, NewPassword: pw})
	if err != nil {
		t.Fatalf("reset %s: %v", id, err)
	}
	return res[0].Account
}

func login(r *Registry, role Role, id, ctype, cred string) (Account, error) {
	return r.Login(context.Background(), LoginRequest{Role: role, CandidateID: id, CredentialType: ctype,
		Credential: cred, ClientAddr: "192.0.2.7"})
}
