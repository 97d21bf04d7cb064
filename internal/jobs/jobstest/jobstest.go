// Package jobstest is the guarantee suite every jobs.JobStore
// implementation must pass: the guarantees jobs.JobStore documents, checked
// against real crashes. A child process (the test binary itself, started
// again) works on a store and kills itself with SIGKILL at one durable
// step; the test then opens the store again and checks that everything the
// child had acknowledged is there, whole, that nothing is claimed by the
// dead child, and that a runner finishes every job with its effect made
// exactly once. It does so for every crash point the workload passes.
//
// Use: in the implementation's test package,
//
//	func TestMain(m *testing.M) {
//		jobstest.MaybeChild(map[string]jobstest.Open{"mine": open}) // never returns in a child
//		os.Exit(m.Run())
//	}
//
//	func TestGuarantees(t *testing.T) { jobstest.Run(t, "mine", open) }
//
// where open(dir, onStep) returns the implementation over dir, with onStep
// called at each durable step it passes.
package jobstest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/jobs"
)

// Open returns the store under test over dir; onStep must be called at
// each durable step the store passes (the crash points).
type Open func(dir string, onStep func(step string)) jobs.JobStore

// Environment of a child process.
const (
	envChild   = "LECTERN_JOBSTEST_CHILD" // the store's directory
	envCrashAt = "LECTERN_JOBSTEST_CRASH_AT"
	envMode    = "LECTERN_JOBSTEST_MODE"
	envStore   = "LECTERN_JOBSTEST_STORE"
	ledgerName = "ledger.txt"  // what the child had acknowledged, synced line by line
	effectName = "effects.txt" // the runner's effects, one line per job
	stepsName  = "steps.txt"   // the steps a child without crash passed
)

// The workload: jobs created one after another, a third of them updated,
// and then a runner over all of them.
const workloadJobs = 4

// MaybeChild runs the child's workload and exits when the process is a
// child of Run (over the store Run named); otherwise it returns at once.
// Call it first in TestMain.
func MaybeChild(stores map[string]Open) {
	dir := os.Getenv(envChild)
	if dir == "" {
		return
	}
	open := stores[os.Getenv(envStore)]
	if open == nil {
		fatal(fmt.Errorf("no store named %q", os.Getenv(envStore)))
	}
	crashAt, _ := strconv.Atoi(os.Getenv(envCrashAt))
	var mu sync.Mutex
	var steps []string
	onStep := func(step string) {
		mu.Lock()
		steps = append(steps, step)
		n := len(steps)
		mu.Unlock()
		if n == crashAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	store := open(dir, onStep)
	ledger, err := os.OpenFile(filepath.Join(dir, ledgerName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fatal(err)
	}
	ack := func(format string, args ...any) {
		fmt.Fprintf(ledger, format+"\n", args...)
		if err := ledger.Sync(); err != nil {
			fatal(err)
		}
	}
	switch os.Getenv(envMode) {
	case "runner":
		runWorkload(store, dir)
	default:
		for i := range workloadJobs {
			id := jobID(i)
			if err := store.Create(id, map[string]any{"n": i, "status": "queued"}); err != nil {
				fatal(err)
			}
			ack("created %s", id)
			if i%3 == 0 {
				if _, err := store.Update(id, func(r map[string]any) error { r["v"] = 2; return nil }); err != nil {
					fatal(err)
				}
				ack("updated %s", id)
			}
		}
		// Held until the process ends, as a crashed holder's would be: an
		// updated job, and one only created (a store may keep it apart
		// from what it has written out, as a resident store does).
		for _, id := range []string{jobID(0), jobID(1)} {
			if c, err := store.Claim(id); err != nil {
				fatal(err)
			} else {
				_ = c
			}
		}
	}
	if err := store.Close(); err != nil {
		fatal(err)
	}
	mu.Lock()
	os.WriteFile(filepath.Join(dir, stepsName), []byte(strings.Join(steps, "\n")), 0o644)
	mu.Unlock()
	os.Exit(0)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "jobstest child:", err)
	os.Exit(3)
}

func jobID(i int) string { return fmt.Sprintf("job_%03d", i) }

// runWorkload runs every unfinished job of the store to its end with a
// Runner; each job's effect (a line keyed by its id) is made once: checked
// before it is made, and the job marked done after.
func runWorkload(store jobs.JobStore, dir string) {
	var effMu sync.Mutex
	effect := func(id string) error {
		effMu.Lock()
		defer effMu.Unlock()
		path := filepath.Join(dir, effectName)
		if data, err := os.ReadFile(path); err == nil && slices.Contains(strings.Split(string(data), "\n"), id) {
			return nil // made before the crash: not again
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, id); err != nil {
			return err
		}
		return f.Sync()
	}
	done := make(chan struct{})
	var remaining sync.WaitGroup
	ids, err := store.Scan("queued", "processing")
	if err != nil {
		fatal(err)
	}
	remaining.Add(len(ids))
	r := jobs.NewRunner(jobs.Options{Kind: "jobstest", Store: store, Workers: 2,
		Process: func(ctx context.Context, id string) error {
			defer remaining.Done()
			if _, err := store.Update(id, func(r map[string]any) error { r["status"] = "processing"; return nil }); err != nil {
				return err
			}
			if err := effect(id); err != nil {
				return err
			}
			_, err := store.Update(id, func(r map[string]any) error { r["status"] = "done"; return nil })
			return err
		}})
	if err := r.Start(context.Background()); err != nil {
		fatal(err)
	}
	go func() { remaining.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		fatal(errors.New("runner did not finish"))
	}
	if err := r.Stop(context.Background()); err != nil {
		fatal(err)
	}
}

// child runs one child process over dir; crashAt 0 runs it to its end.
func child(t *testing.T, name, dir, mode string, crashAt int) (crashed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+dir, envCrashAt+"="+strconv.Itoa(crashAt), envMode+"="+mode, envStore+"="+name)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return false
	case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() &&
		exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
		return true
	}
	t.Fatalf("child (crash at %d): %v\n%s", crashAt, err, out)
	return false
}

// Run checks open's store against the guarantees, with a crash at each
// durable step of the workload.
func Run(t *testing.T, name string, open Open) {
	t.Run("crash_points", func(t *testing.T) {
		// A run without a crash counts the steps.
		base := t.TempDir()
		child(t, name, base, "create", 0)
		steps := readSteps(t, base)
		if len(steps) < workloadJobs {
			t.Fatalf("the workload passed %d durable steps: the store does not report its steps", len(steps))
		}
		checkAfter(t, open, base, true)
		for k := 1; k <= len(steps); k++ {
			dir := t.TempDir()
			if !child(t, name, dir, "create", k) {
				t.Fatalf("crash point %d (%s) never reached", k, steps[k-1])
			}
			checkAfter(t, open, dir, false)
			if t.Failed() {
				t.Logf("after a crash at step %d (%s)", k, steps[k-1])
				return
			}
		}
		t.Logf("%d crash points", len(steps))
	})
	t.Run("runner_exactly_once", func(t *testing.T) {
		// The jobs exist; a runner is killed at each of its steps in
		// turn, then run again to the end: every job is done and its
		// effect made once.
		seed := func(t *testing.T) string {
			dir := t.TempDir()
			s := open(dir, nil)
			for i := range workloadJobs {
				if err := s.Create(jobID(i), map[string]any{"n": i, "status": "queued"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return dir
		}
		base := seed(t)
		child(t, name, base, "runner", 0)
		steps := readSteps(t, base)
		for k := 1; k <= len(steps); k += max(1, len(steps)/6) {
			dir := seed(t)
			child(t, name, dir, "runner", k)
			if child(t, name, dir, "runner", 0) {
				t.Fatal("the second runner crashed")
			}
			s := open(dir, nil)
			for i := range workloadJobs {
				if rec, err := s.Load(jobID(i)); err != nil || rec["status"] != "done" {
					t.Errorf("crash at %d (%s): %s = %v, %v; want done", k, steps[k-1], jobID(i), rec, err)
				}
			}
			s.Close()
			data, _ := os.ReadFile(filepath.Join(dir, effectName))
			lines := strings.Fields(string(data))
			for i := range workloadJobs {
				if n := countOf(lines, jobID(i)); n != 1 {
					t.Errorf("crash at %d (%s): effect of %s made %d times", k, steps[k-1], jobID(i), n)
				}
			}
		}
	})
}

func countOf(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}

func readSteps(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, stepsName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// checkAfter opens the store a (crashed) child left and checks what it
// had acknowledged: every created job there whole, every update kept, Scan
// listing them, Create of each refused, its claim free again.
func checkAfter(t *testing.T, open Open, dir string, complete bool) {
	t.Helper()
	created, updated := map[string]bool{}, map[string]bool{}
	if f, err := os.Open(filepath.Join(dir, ledgerName)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if what, id, ok := strings.Cut(sc.Text(), " "); ok {
				switch what {
				case "created":
					created[id] = true
				case "updated":
					updated[id] = true
				}
			}
		}
		f.Close()
	}
	if complete && len(created) != workloadJobs {
		t.Fatalf("a child without crash acknowledged %d jobs, want %d", len(created), workloadJobs)
	}
	s := open(dir, nil)
	defer s.Close()
	ids, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	for i := range workloadJobs {
		id := jobID(i)
		rec, err := s.Load(id)
		switch {
		case created[id] && err != nil:
			t.Errorf("%s acknowledged, then %v", id, err)
			continue
		case err != nil && !errors.Is(err, jobs.ErrNotFound):
			t.Errorf("%s: %v (a torn record?)", id, err)
			continue
		case err != nil:
			continue // not acknowledged, not there: fine
		}
		if rec["n"] != float64(i) {
			t.Errorf("%s = %v", id, rec)
		}
		if updated[id] && rec["v"] != float64(2) {
			t.Errorf("%s: acknowledged update lost: %v", id, rec)
		}
		if !slices.Contains(ids, id) {
			t.Errorf("%s is there but Scan does not list it", id)
		}
		if err := s.Create(id, nil); !errors.Is(err, jobs.ErrExists) {
			t.Errorf("Create of the existing %s = %v, want ErrExists", id, err)
		}
		c, err := s.Claim(id)
		if err != nil {
			t.Errorf("claim of %s after the child's death: %v", id, err)
			continue
		}
		if _, err := s.Claim(id); !errors.Is(err, jobs.ErrClaimed) {
			t.Errorf("second claim of %s = %v, want ErrClaimed", id, err)
		}
		c.Release()
	}
}
