package tenantapp

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/limits"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newApp(t *testing.T) *App {
	t.Helper()
	dir := t.TempDir()
	a, err := New(Settings{TenantID: "t1", DataDir: filepath.Join(dir, "d"), UploadsDir: filepath.Join(dir, "u"),
		Prefix: "/t/t1", Limits: limits.TenantDefaults(), ChatWorkers: 3}, Shared{Global: limits.NewSet(limits.TenantDefaults())})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAppLifecycle(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err == nil {
		t.Fatal("second Start accepted")
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/health", nil))
	if w.Code != 200 || w.Body.String() != healthBody {
		t.Fatalf("health %d %s", w.Code, w.Body)
	}
	st := a.Status()
	if len(st.Workers) != 6 || st.Workers[0].Kind != KindChat || st.Workers[0].Workers != 3 || st.Limits != limits.TenantDefaults() {
		t.Fatalf("status %+v", st)
	}
	for _, k := range []string{"chat_jobs", "assignment_jobs", "exam_jobs", "submission_jobs", "profile_jobs"} {
		_ = os.MkdirAll(filepath.Join(a.Settings().UploadsDir, k), 0o755)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	goleak.VerifyNone(t)
}

func TestNewRejectsBadSettings(t *testing.T) {
	global := Shared{Global: limits.NewSet(limits.TenantDefaults())}
	if _, err := New(Settings{DataDir: "", UploadsDir: "/x"}, global); err == nil {
		t.Fatal("empty data dir accepted")
	}
	bad := limits.TenantDefaults()
	bad.LLMStudent = 0
	dir := t.TempDir()
	if _, err := New(Settings{DataDir: dir + "/d", UploadsDir: dir + "/u", Limits: bad}, global); err == nil {
		t.Fatal("zero limit accepted")
	}
}

// healthBody is GET /health of a server without an LLM.
const healthBody = `{"status":"ok","llm":"not_configured","hint":"set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (or LLM_PROVIDERS_FILE) to enable chat"}`
