package chat

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

// BenchmarkFirstToken is the time to the first streamed token that
// Lectern adds to the model's own: from POST /chat/start to the client
// reading the first assistant.delta of GET /chat/stream, minus the fake
// LLM's own time to its first chunk (from its request to that chunk's
// flush). What is left is Lectern's: the start (job record, idempotency
// map, history prewrite), the queue, the job's pickup, the agent's prompt,
// the HTTP call, the SSE parse, the event log and the stream to the
// client, over real HTTP on loopback. Reported: added-ms (mean) and
// added-p95-ms, and the fake's own first-chunk time.
//
//	go test -run '^$' -bench BenchmarkFirstToken -benchtime 200x ./internal/chat/
func BenchmarkFirstToken(b *testing.B) {
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("model_delay=%s", delay), func(b *testing.B) {
			dir := b.TempDir()
			if d := os.Getenv("LECTERN_BENCH_DIR"); d != "" { // e.g. /dev/shm: the same without the disk's fsyncs
				dir, _ = os.MkdirTemp(d, "firsttoken")
				b.Cleanup(func() { os.RemoveAll(dir) })
			}
			e := newEnvIn(b, dir, nil)
			e.fake.Script(llmtest.Step{Reply: longReply, Chunks: 20, Delay: delay})
			var added, own, starts, toModel []time.Duration
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				id := e.start(teacherA, fmt.Sprint("r", i), "讲一下牛顿第二定律", map[string]any{"session_id": "bench"})
				starts = append(starts, time.Since(start))
				s, code := e.openStream(teacherA, id, 0, "")
				if code != 200 {
					b.Fatalf("stream %d", code)
				}
				for {
					ev, err := s.next()
					if err != nil {
						b.Fatal(err)
					}
					if ev.name == EventDelta {
						break
					}
				}
				first := time.Since(start)
				for {
					if _, err := s.next(); err != nil {
						break // the job's end
					}
				}
				s.close()
				st := e.fake.Streams()
				fake := st[len(st)-1].FirstChunk.Sub(st[len(st)-1].Received)
				toModel = append(toModel, st[len(st)-1].Received.Sub(start))
				own = append(own, fake)
				added = append(added, first-fake)
			}
			b.StopTimer()
			slices.Sort(added)
			var sum, ownSum time.Duration
			for i := range added {
				sum += added[i]
				ownSum += own[i]
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(sum/time.Duration(len(added))), "added-ms")
			b.ReportMetric(ms(added[len(added)*95/100]), "added-p95-ms")
			b.ReportMetric(ms(ownSum/time.Duration(len(own))), "fake-own-ms")
			// Where the added time goes: the /chat/start answer (its durable
			// write), and the time until the model has the request.
			mean := func(ds []time.Duration) time.Duration {
				var t time.Duration
				for _, d := range ds {
					t += d
				}
				return t / time.Duration(len(ds))
			}
			b.ReportMetric(ms(mean(starts)), "start-ms")

			b.ReportMetric(ms(mean(toModel)), "to-model-ms")
		})
	}
}
