// Command slowbody holds N upload requests open by sending their bodies
// one byte every GAP, as a slow-loris client would, and samples the
// server's open file descriptors and the partial upload folders left in its
// uploads directory. It is bounded: it stops after DURATION, and it only
// dials the address it is given (a loopback server started by
// bench/slowbody.sh).
//
//	slowbody -addr 127.0.0.1:8000 -path /t/t1/upload -pid 1234 -uploads DIR/uploads -n 300 -gap 3s -duration 45s
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "server address (loopback only)")
	path := flag.String("path", "/upload", "upload path")
	field := flag.String("field", "files", "multipart file field")
	pid := flag.Int("pid", 0, "server pid, to count its descriptors")
	uploads := flag.String("uploads", "", "directory whose subfolders are partial uploads")
	n := flag.Int("n", 300, "slow clients")
	gap := flag.Duration("gap", 3*time.Second, "pause between two bytes")
	duration := flag.Duration("duration", 45*time.Second, "how long the test runs")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "slowbody: -addr must be a loopback address")
		os.Exit(2)
	}

	var open, cut atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const boundary = "slowbodyboundary"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + *field + "\"; filename=\"slow.csv\"\r\n\r\n"
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", *addr, 5*time.Second)
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: 10000000\r\n\r\n%s", *path, boundary, head)
			open.Add(1)
			closed := make(chan struct{})
			go func() { // the server answering or closing ends the client
				buf := make([]byte, 512)
				for {
					if _, err := conn.Read(buf); err != nil {
						close(closed)
						return
					}
				}
			}()
			tick := time.NewTicker(*gap)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					open.Add(-1)
					return
				case <-closed:
					open.Add(-1)
					cut.Add(1)
					return
				case <-tick.C:
					conn.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := conn.Write([]byte("x")); err != nil {
						open.Add(-1)
						cut.Add(1)
						return
					}
				}
			}
		}()
		time.Sleep(time.Millisecond)
	}

	fmt.Printf("%6s %8s %8s %8s %8s\n", "t(s)", "clients", "cut", "srv_fds", "partial")
	start := time.Now()
	maxFDs, maxPartial := 0, 0
	for t := time.Duration(0); t <= *duration; t += 5 * time.Second {
		time.Sleep(time.Until(start.Add(t)))
		fds, partial := countFDs(*pid), countDirs(*uploads)
		maxFDs, maxPartial = max(maxFDs, fds), max(maxPartial, partial)
		fmt.Printf("%6.0f %8d %8d %8d %8d\n", time.Since(start).Seconds(), open.Load(), cut.Load(), fds, partial)
	}
	close(stop)
	wg.Wait()
	time.Sleep(500 * time.Millisecond)
	fmt.Printf("max: srv_fds %d, partial folders %d; after the clients left: srv_fds %d, partial folders %d\n",
		maxFDs, maxPartial, countFDs(*pid), countDirs(*uploads))
}

func countFDs(pid int) int {
	if pid == 0 {
		return -1
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// countDirs counts the folders directly under dir (and under its
// subfolders named *_jobs or uploads), each one upload in progress.
func countDirs(dir string) int {
	if dir == "" {
		return -1
	}
	n := 0
	for _, sub := range []string{"uploads", "exam_jobs"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
	}
	return n
}
