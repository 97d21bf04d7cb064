package server

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// BenchmarkChatJobs: chat jobs through POST /t/{id}/chat/start until done,
// against an instant fake LLM, so the cost measured is the server's own:
// the job record, the idempotency map, the lane queue, the history and
// the profile writes. Students are spread over the tenants; with
// students=new each job is a new student's first turn (a new history
// directory, session file and profile each: the worst case), with
// students=200 the jobs go round 200 students who have chatted before.
// Reported: jobs/s end to end, and starts/s (until the last start's
// answer).
func BenchmarkChatJobs(b *testing.B) {
	for _, tenants := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) { benchChatJobs(b, tenants, 0) })
	}
	b.Run("students=200/tenants=16", func(b *testing.B) { benchChatJobs(b, 16, 200) })
}

// benchChatJobs runs b.N chat jobs over tenants; returning > 0 sends
// them round that many students, each warmed by one job first.
func benchChatJobs(b *testing.B, tenants, returning int) {
	fake := llmtest.NewServer(b)
	fake.Lean() // its decoding and kept requests are not the server's cost
	fake.Script(llmtest.Step{Reply: "好的"})
	// The queue bound (JOB_QUEUE_MAX, 100) above the jobs in flight:
	// the figure is throughput, not the 429 past the bound.
	e := newEnv(b, withLLM(10*time.Second, 1, fake), func(c *Config) { c.ChatWorkers = 4; c.JobQueueMax = 1 << 20 })
	for i := range tenants {
		e.putTenant(fmt.Sprint("t", i), nil)
	}
	student := func(i int) string {
		if returning > 0 {
			return fmt.Sprint("S", i%returning)
		}
		return fmt.Sprint("S", i)
	}
	// run sends n jobs from 8 clients and waits for them all; it returns
	// how long the starts took.
	run := func(n int, tag string) (started time.Duration) {
		t0 := time.Now()
		ids := make([]string, n)
		prefixes := make([]string, n)
		var wg sync.WaitGroup
		next := make(chan int)
		for range benchClients {
			wg.Go(func() {
				for i := range next {
					prefixes[i] = fmt.Sprint("/t/t", i%tenants)
					// Each message its own: the lane's debounce never merges two.
					r := e.postJSON(prefixes[i]+"/chat/start", studentTurn(fmt.Sprint(tag, i), student(i), fmt.Sprint("这道题怎么做？", i)))
					id, ok := r.json(e.t)["job_id"].(string)
					if !ok {
						e.t.Errorf("chat/start: %d %s", r.status, r.body)
						return
					}
					ids[i] = id
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		started = time.Since(t0)
		for i := range n {
			e.waitChat(prefixes[i], ids[i])
		}
		return started
	}
	if returning > 0 {
		run(returning, "warm") // every student has a history and a profile
	}
	b.ResetTimer()
	start := time.Now()
	started := run(b.N, "req")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	b.ReportMetric(float64(b.N)/started.Seconds(), "starts/s")
}

// benchClients is how many clients send the benchmark's starts at once.
var benchClients = 8

// BenchmarkIdleJournals: what the job journals of tenants that have had
// work keep once they are idle. Each of b.N tenants runs one chat job
// (a journal each for chat jobs and profile updates), then the benchmark
// reports the journal bytes on disk per tenant and the process's open
// files per tenant, right after the jobs and again after the journals'
// idle delay (jobs.journalIdleDelay, 30 s): run it with -benchtime 200x.
func BenchmarkIdleJournals(b *testing.B) {
	fake := llmtest.NewServer(b)
	fake.Lean()
	fake.Script(llmtest.Step{Reply: "好的"})
	e := newEnv(b, withLLM(10*time.Second, 1, fake))
	fds0 := openFiles(b)
	for i := range b.N {
		prefix := fmt.Sprint("/t/t", i)
		e.putTenant(fmt.Sprint("t", i), nil)
		id := e.startChat(prefix, studentTurn(fmt.Sprint("r", i), "S1", "这道题怎么做？"))["job_id"].(string)
		e.waitChat(prefix, id)
	}
	report := func(unit string) {
		var bytes int64
		filepath.WalkDir(filepath.Join(e.root, "tenants"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == jobs.JournalDir {
				if st, err := os.Stat(p); err == nil {
					bytes += st.Sys().(*syscall.Stat_t).Blocks * 512
				}
			}
			return nil
		})
		b.ReportMetric(float64(bytes)/float64(b.N)/1024, "journal-KiB/tenant"+unit)
		b.ReportMetric(float64(openFiles(b)-fds0)/float64(b.N), "fds/tenant"+unit)
	}
	report("")
	time.Sleep(31 * time.Second)
	report("-idle")
}

// openFiles counts the process's open file descriptors.
func openFiles(b *testing.B) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(entries)
}
