package server

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

func TestStreamThroughTheServer(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Script(llmtest.Step{Reply: "一二三四五六七八九十", Chunks: 5, ChunkDelay: 50 * time.Millisecond})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.putTenant("t1", nil), 200, "")
	start := e.startChat("/t/t1", teacherTurn("r1", "你好"))
	id := start["job_id"].(string)
	t0 := time.Now()
	resp, err := http.Get(e.http.URL + "/t/t1/chat/stream?job_id=" + id + "&teacher_id=t_zhang&role=teacher")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var lines []string
	var firstDelta time.Duration
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(l, "event: assistant.delta") && firstDelta == 0 {
			firstDelta = time.Since(t0)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	t.Logf("status %d ct %q first delta after %v; %d lines; last %v", resp.StatusCode, resp.Header.Get("Content-Type"), firstDelta, len(lines), lines[len(lines)-3:])
	if firstDelta > 150*time.Millisecond {
		t.Fatal("buffered")
	}
	up := e.get("/t/t1/chat/attachments/status?role=teacher&attachment_ids=att_0123456789abcdef")
	t.Logf("attachments status: %d %s", up.status, up.body)
}
