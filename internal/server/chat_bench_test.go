package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

// BenchmarkChatJobs: chat jobs through POST /t/{id}/chat/start until done,
// against an instant fake LLM, so the cost measured is the server's own:
// the job record, the idempotency map, the lane queue and the history
// writes (each with fsync). Students are spread over the tenants; each job
// is its own lane. Reported: jobs/s end to end.
func BenchmarkChatJobs(b *testing.B) {
	for _, tenants := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			fake := llmtest.NewServer(b)
			fake.Script(llmtest.Step{Reply: "好的"})
			// The queue bound (JOB_QUEUE_MAX, 100) above the jobs in flight:
			// the figure is throughput, not the 429 past the bound.
			e := newEnv(b, withLLM(10*time.Second, 1, fake), func(c *Config) { c.ChatWorkers = 4; c.JobQueueMax = 1 << 20 })
			for i := range tenants {
				e.putTenant(fmt.Sprint("t", i), nil)
			}
			b.ResetTimer()
			start := time.Now()
			ids := make([]string, b.N)
			prefixes := make([]string, b.N)
			var wg sync.WaitGroup
			next := make(chan int)
			for range 8 {
				wg.Go(func() {
					for i := range next {
						prefixes[i] = fmt.Sprint("/t/t", i%tenants)
						r := e.postJSON(prefixes[i]+"/chat/start", studentTurn(fmt.Sprint("req", i), fmt.Sprint("S", i), "这道题怎么做？"))
						id, ok := r.json(e.t)["job_id"].(string)
						if !ok {
							e.t.Errorf("chat/start: %d %s", r.status, r.body)
							return
						}
						ids[i] = id
					}
				})
			}
			for i := range b.N {
				next <- i
			}
			close(next)
			wg.Wait()
			started := time.Since(start)
			for i := range b.N {
				e.waitChat(prefixes[i], ids[i])
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
			b.ReportMetric(float64(b.N)/started.Seconds(), "starts/s")
		})
	}
}
