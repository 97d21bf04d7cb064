package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

// Chat jobs acknowledged by a process killed with SIGKILL right after the
// last acknowledgement (some queued, some at the model, some ending) all
// finish after a restart, each with its reply in its session's history
// exactly once, and a retried start (the same request_id) still names its
// job. The records were resident (in memory and the journal): the
// restart's replay brings them back.
func TestChatJobsSurviveKill9(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Script(llmtest.Step{Reply: "先看受力分析。", Delay: 30 * time.Millisecond})
	c := newCluster(t)
	c.env = append(c.env, "LLM_BASE_URL="+fake.URL, "LLM_API_KEY=x", "LLM_MODEL=m", "RATE_LIMIT_RPM=0")
	a := c.startKillable(t, "A")
	c.putTenant(t, a, "k", 8)

	const jobs = 60
	type acked struct{ request, job string }
	var mu sync.Mutex
	var ok []acked
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				body, _ := json.Marshal(map[string]any{"request_id": fmt.Sprint("kill-", i), "role": "student",
					"student_id": fmt.Sprint("S", i), "messages": []map[string]any{{"role": "user", "content": fmt.Sprint("第", i, "题怎么做？")}}})
				var ans map[string]any
				if code := a.do(t, "POST", "/t/k/chat/start", bytes.NewReader(body), "application/json", &ans); code == 200 {
					mu.Lock()
					ok = append(ok, acked{fmt.Sprint("kill-", i), ans["job_id"].(string)})
					mu.Unlock()
				}
			}
		})
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	a.cmd.Process.Signal(syscall.SIGKILL) // right after the last acknowledgement
	a.cmd.Wait()
	if len(ok) != jobs {
		t.Fatalf("%d of %d starts acknowledged before the kill", len(ok), jobs)
	}

	b := c.start(t, "B")
	deadline := time.Now().Add(60 * time.Second)
	for _, j := range ok {
		var st map[string]any
		for {
			b.do(t, "GET", "/t/k/chat/status?job_id="+j.job, nil, "", &st)
			if st["status"] == "done" || st["status"] == "failed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s still %v after the restart\n%s", j.job, st["status"], b.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st["status"] != "done" || st["reply"] != "先看受力分析。" {
			t.Fatalf("job %s after the restart: %v", j.job, st)
		}
		student, session := st["student_id"].(string), st["session_id"].(string)
		var hist struct {
			Messages []map[string]any `json:"messages"`
		}
		q := url.Values{"student_id": {student}, "session_id": {session}}
		if code := b.do(t, "GET", "/t/k/student/history/session?"+q.Encode(), nil, "", &hist); code != 200 {
			t.Fatalf("history of %s: %d", student, code)
		}
		replies, turns := 0, 0
		for _, m := range hist.Messages {
			if m["role"] == "assistant" && m["job_id"] == j.job {
				replies++
			}
			if m["role"] == "user" && m["request_id"] == j.request {
				turns++
			}
		}
		if replies != 1 || turns != 1 {
			t.Errorf("job %s: %d replies and %d user turns in %s's history, want 1 and 1: %v", j.job, replies, turns, student, hist.Messages)
		}
		// The same start again: the same job, not a new one.
		body, _ := json.Marshal(map[string]any{"request_id": j.request, "role": "student", "student_id": student,
			"messages": []map[string]any{{"role": "user", "content": "again"}}})
		var again map[string]any
		if code := b.do(t, "POST", "/t/k/chat/start", bytes.NewReader(body), "application/json", &again); code != 200 || again["job_id"] != j.job {
			t.Errorf("retried start of %s: %d %v, want job %s", j.request, code, again, j.job)
		}
	}
}

// startKillable is start for a process the test kills itself: its
// cleanup does not expect a clean exit.
func (c *cluster) startKillable(t *testing.T, name string) *process {
	t.Helper()
	p := c.start(t, name)
	p.killed = true
	return p
}
