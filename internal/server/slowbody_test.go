package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/bodydeadline"
)

// slowPost sends a multipart request whose body dribbles in: the head of
// the body at once, then one byte every gap, and returns the status the
// server answered with (0 if it only closed the connection) and when.
func slowPost(t *testing.T, addr, path, field string, gap time.Duration) (int, time.Duration) {
	t.Helper()
	ctype := "multipart/form-data; boundary=" + fuzzBoundary
	head := "--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"" + field + "\"; filename=\"slow.csv\"\r\n\r\n姓名,总分\n"
	if field == "" {
		ctype, head = "application/json", `{"request_id":"slow","messages":[`
	}
	return slowSend(t, addr, path, ctype, head, gap)
}

func slowSend(t *testing.T, addr, path, ctype, head string, gap time.Duration) (int, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 100000\r\n\r\n%s", path, ctype, head)
	start := time.Now()
	answered := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case status := <-answered:
			return status, time.Since(start)
		case <-tick.C:
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write([]byte(" ")); err != nil {
				return <-answered, time.Since(start)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the slow body was never cut", path)
		}
	}
}

// A body that stalls, or trickles in below the minimum rate, is cut with
// 408 and the partial upload is removed; a body at a normal pace is not.
func TestSlowBodiesAreCut(t *testing.T) {
	lim := bodydeadline.Limits{Idle: 400 * time.Millisecond, MinRate: 2 << 10}
	e := newEnv(t, func(c *Config) { c.Body = lim })
	expect(t, e.putTenant("a", nil), 200, "")
	_, uploads := e.tenantDirs("a")
	addr := strings.TrimPrefix(e.http.URL, "http://")
	for _, c := range []struct {
		name, path, field string
		gap               time.Duration
		partial           string
	}{
		{"stalled upload", "/t/a/upload", "files", time.Hour, "uploads"},
		{"trickled upload", "/t/a/upload", "files", 50 * time.Millisecond, "uploads"},
		{"trickled exam upload", "/t/a/exam/upload/start", "score_files", 50 * time.Millisecond, "exam_jobs"},
		{"trickled JSON", "/t/a/chat/start", "", 50 * time.Millisecond, "chat_jobs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, took := slowPost(t, addr, c.path, c.field, c.gap)
			if status != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", status)
			}
			// Cut after the grace (Idle), before Idle + the bytes sent at
			// the minimum rate, with room for a loaded machine.
			if took < lim.Idle || took > 3*time.Second {
				t.Errorf("cut after %v", took)
			}
			entries, _ := os.ReadDir(filepath.Join(uploads, c.partial))
			for _, en := range entries {
				if en.IsDir() {
					t.Errorf("partial upload left behind: %s", en.Name())
				}
			}
		})
	}
	// A normal upload goes through the same limits.
	r := e.do("POST", "/t/a/upload", "", nil)
	if r.status != 400 {
		t.Fatalf("empty upload: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("POST", e.http.URL+"/t/a/upload", strings.NewReader(multipartBody("files", "ok.txt", strings.Repeat("x", 1<<20))))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("normal upload: %d", resp.StatusCode)
	}
}
