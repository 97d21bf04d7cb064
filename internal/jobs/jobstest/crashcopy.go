package jobstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lectern/lectern/internal/jobs"
)

// JournalSnapshot copies the journal segments of the journaled store in
// storeDir as they are now, for a test of a machine crash: once the store
// is closed (which retires them), the returned restore puts them back, as
// a crash would have left them, and what the test then deletes by hand is
// what the crash lost. It fails the test when the store has no segment.
func JournalSnapshot(t testing.TB, storeDir string) (restore func()) {
	t.Helper()
	dir := filepath.Join(storeDir, jobs.JournalDir)
	segs := map[string][]byte{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		segs[e.Name()] = data
	}
	if len(segs) == 0 {
		t.Fatalf("no journal segment in %s", dir)
	}
	return func() {
		t.Helper()
		for name, data := range segs {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
