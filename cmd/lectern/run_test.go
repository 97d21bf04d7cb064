package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runThenClean{m})
}

// runThenClean runs the tests, then removes the lectern binary the
// two-process tests built.
type runThenClean struct{ m *testing.M }

func (r runThenClean) Run() int {
	code := r.m.Run()
	removeBuiltLectern()
	return code
}

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestBadEnvironmentNamesTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"LLM_MAX_CONCURRENCY":         "many",
		"LLM_MAX_CONCURRENCY_STUDENT": "0",
		"LLM_MAX_CONCURRENCY_TEACHER": "-3",
		"OCR_MAX_CONCURRENCY":         "1.5",
		"CHAT_WORKER_POOL_SIZE":       "x",
		"UPLOAD_MAX_MB":               "0",
		"UPLOAD_MAX_FILES":            "lots",
		"LECTERN_ADDR":                "nonsense",
		"LOG_LEVEL":                   "loud",
		"DATA_DIR":                    "a\x00b",
	} {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), []string{"lectern", "serve"}, envFrom(map[string]string{name: value}), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("err = %v, want it to name %s", err, name)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"lectern", "help"}, envFrom(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "lectern serve") {
		t.Fatalf("usage: %q", out.String())
	}
	if err := run(context.Background(), []string{"lectern", "frobnicate"}, envFrom(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), []string{"lectern"}, envFrom(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("no command accepted")
	}
}

// serve starts on an ephemeral port, serves the demo tenants, and returns
// nil once its context ends (what SIGINT/SIGTERM do through main).
func TestServeDemoAndShutdown(t *testing.T) {
	dir := t.TempDir()
	env := envFrom(map[string]string{
		"DATA_DIR":         filepath.Join(dir, "data"),
		"UPLOADS_DIR":      filepath.Join(dir, "uploads"),
		"TENANT_DB_PATH":   filepath.Join(dir, "data", "_system", "tenants.sqlite3"),
		"TENANT_ADMIN_KEY": "k",
		"LOG_LEVEL":        "warn",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"lectern", "serve", "--addr", "127.0.0.1:0", "--demo"}, env, pw, io.Discard)
		pw.Close()
	}()
	var base string
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "lectern listening on "); ok {
			base = u
			break
		}
	}
	if base == "" {
		t.Fatalf("server never said where it listens: %v", <-done)
	}
	go io.Copy(io.Discard, pr)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for _, c := range []struct{ path, want string }{
		{"/health", `{"status":"ok"`},
		{"/t/demo-north/exams", `"exam_id":"DEMO_PHYS_MID"`},
		{"/t/demo-south/exams", `"exam_id":"DEMO_MATH_Q1"`},
	} {
		resp, err := client.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), c.want) {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after shutdown, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
}
