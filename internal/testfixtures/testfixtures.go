// Package testfixtures locates the shared sample data that tests use:
// ../shared/fixtures beside the repository (where CI puts it too).
package testfixtures

import (
	"os"
	"path/filepath"
	"testing"
)

// ExamsDir returns shared/fixtures/exams. Where it is missing the test is
// skipped on a developer's machine and fails under CI (CI=true), so the
// fixture tests can never pass vacuously there.
func ExamsDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testfixtures: no go.mod above the test directory")
		}
		dir = parent
	}
	fx := filepath.Join(dir, "..", "shared", "fixtures", "exams")
	if _, err := os.Stat(filepath.Join(fx, "physics_midterm.xlsx")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testfixtures: exam fixtures missing at %s: %v", fx, err)
		}
		t.Skipf("testfixtures: exam fixtures not found at %s (shared/ goes beside the repository): %v", fx, err)
	}
	return fx
}
