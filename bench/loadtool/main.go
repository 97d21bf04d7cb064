// Command loadtool drives the tenant parts of bench/tenancy.sh against a
// running Lectern over HTTP on loopback:
//
//	loadtool exams -data DIR -n 50                     write n demo exams under DIR/exams
//	loadtool cold  -addr A -key K -root R -prefix P -n 50 [-pid PID]
//	                                                   PUT n new tenants, time PUT -> first 200 (and the server's CPU)
//	loadtool lazy  -addr A -prefix P -n 50             time the first request to n stored, unloaded tenants
//	loadtool mem   -addr A -key K -root R -prefix P -n 1000 -pid PID
//	                                                   RSS and threads of PID before/after loading n tenants,
//	                                                   RSS after a request to each, idle CPU
//
// It prints one result line per figure.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/demo"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: loadtool exams|cold|lazy|mem [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "Lectern address")
	key := fs.String("key", "", "TENANT_ADMIN_KEY")
	root := fs.String("root", "", "absolute directory holding the tenants' directories")
	prefix := fs.String("prefix", "bench", "tenant id prefix")
	n := fs.Int("n", 50, "how many exams or tenants")
	dataDir := fs.String("data", "", "data directory (exams)")
	pid := fs.Int("pid", 0, "Lectern's process id (mem; cold: its CPU per load)")
	fs.Parse(os.Args[2:])
	c := &client{base: "http://" + *addr, key: *key, root: *root, hc: &http.Client{Timeout: 30 * time.Second}}
	switch os.Args[1] {
	case "exams":
		writeExams(*dataDir, *n)
	case "cold":
		cold(c, *prefix, *n, *pid)
	case "lazy":
		lazy(c, *prefix, *n)
	case "mem":
		mem(c, *prefix, *n, *pid)
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "loadtool:", msg)
	os.Exit(1)
}

// writeExams writes n distinct small demo exams (manifest plus derived CSVs).
func writeExams(dataDir string, n int) {
	if !filepath.IsAbs(dataDir) {
		fail("-data must be absolute")
	}
	for i := range n {
		e := demo.Exam{
			ID:        fmt.Sprintf("BENCH_EXAM_%03d", i),
			Date:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i).Format("2006-01-02"),
			Subject:   "math",
			Classes:   []string{"高二1班"},
			Students:  5,
			Questions: []float64{5, 5, 10},
			Seed:      uint64(i),
		}
		if i == 0 { // the exam behind the /students target: a real class size
			e.Classes = []string{"高二1班", "高二2班"}
			e.Students = 22
			e.Questions = []float64{4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 8, 10, 18, 22}
		}
		if _, err := demo.WriteExam(dataDir, e); err != nil {
			fail(err.Error())
		}
	}
	fmt.Printf("wrote %d exams under %s\n", n, filepath.Join(dataDir, "exams"))
}

type client struct {
	base, key, root string
	hc              *http.Client
}

func (c *client) do(method, path, body string) (int, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if c.key != "" {
		req.Header.Set("X-Admin-Key", c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// put creates (and, as PUT is eager, loads) tenant id.
func (c *client) put(id string) {
	dir := filepath.Join(c.root, id)
	body := fmt.Sprintf(`{"data_dir":%q,"uploads_dir":%q}`, filepath.Join(dir, "data"), filepath.Join(dir, "uploads"))
	code, err := c.do("PUT", "/admin/tenants/"+id, body)
	if err != nil || code != 200 {
		fail(fmt.Sprintf("PUT %s: %d %v", id, code, err))
	}
}

func tenantID(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }

// cold times PUT and PUT -> first 200 of /t/<id>/health for n new tenants,
// and, given the server's pid, the CPU time the server spent per load (on
// a busy machine the wall time also holds the waits for a CPU).
func cold(c *client, prefix string, n, pid int) {
	var puts, total []time.Duration
	cpu0 := cpuNanos(pid)
	for i := range n {
		id := tenantID(prefix, i)
		t0 := time.Now()
		c.put(id)
		t1 := time.Now()
		for {
			code, err := c.do("GET", "/t/"+id+"/health", "")
			if err == nil && code == 200 {
				break
			}
			if time.Since(t0) > 10*time.Second {
				fail(fmt.Sprintf("tenant %s: no 200 after 10s (%d %v)", id, code, err))
			}
			time.Sleep(time.Millisecond)
		}
		puts = append(puts, t1.Sub(t0))
		total = append(total, time.Since(t0))
	}
	cpu1 := cpuNanos(pid)
	report(fmt.Sprintf("cold load, PUT only        (n=%d)", n), puts)
	report(fmt.Sprintf("cold load, PUT -> first 200 (n=%d)", n), total)
	if pid > 0 {
		fmt.Printf("cold load: server CPU %.2f ms per load (PUT and first request)\n", float64(cpu1-cpu0)/1e6/float64(n))
	}
}

// cpuNanos is the CPU time pid's threads have run, in nanoseconds (the
// first field of each thread's schedstat); 0 without a pid.
func cpuNanos(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		fail(err.Error())
	}
	var sum int64
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			sum += v
		}
	}
	return sum
}

// lazy times the first and second GET /t/<id>/health of n tenants that are
// stored but not loaded (the server was restarted after they were created).
func lazy(c *client, prefix string, n int) {
	var first, second []time.Duration
	for i := range n {
		path := "/t/" + tenantID(prefix, i) + "/health"
		for _, dst := range []*[]time.Duration{&first, &second} {
			t0 := time.Now()
			code, err := c.do("GET", path, "")
			if err != nil || code != 200 {
				fail(fmt.Sprintf("GET %s: %d %v", path, code, err))
			}
			*dst = append(*dst, time.Since(t0))
		}
	}
	report(fmt.Sprintf("lazy load, first request    (n=%d)", n), first)
	report(fmt.Sprintf("loaded, second request      (n=%d)", n), second)
}

// mem loads n tenants and reports the growth of the server's RSS and OS
// thread count per tenant, then the RSS once each has answered a request
// (its first: what a tenant loaded by a request costs), and the server's
// CPU while they all sit idle.
func mem(c *client, prefix string, n, pid int) {
	if pid <= 0 {
		fail("-pid is required")
	}
	rss0, thr0 := procStatus(pid)
	fd0 := openFiles(pid)
	var lat []time.Duration
	began := time.Now()
	for i := range n {
		t0 := time.Now()
		c.put(tenantID(prefix, i))
		lat = append(lat, time.Since(t0))
	}
	took := time.Since(began)
	time.Sleep(2 * time.Second) // let whatever the loads started settle
	rss1, thr1 := procStatus(pid)
	fmt.Printf("memory: %d tenants loaded in %.1f s: VmRSS %.1f MiB -> %.1f MiB = %.1f KiB/tenant; OS threads %d -> %d = %.3f/tenant\n",
		n, took.Seconds(), float64(rss0)/1024, float64(rss1)/1024, float64(rss1-rss0)/float64(n), thr0, thr1, float64(thr1-thr0)/float64(n))
	fmt.Printf("memory: open files %d -> %d\n", fd0, openFiles(pid))
	k := min(100, n)
	report(fmt.Sprintf("PUT latency, tenants 1-%d", k), lat[:k])
	report(fmt.Sprintf("PUT latency, tenants %d-%d", n-k+1, n), lat[n-k:])

	var first []time.Duration
	for i := range n {
		path := "/t/" + tenantID(prefix, i) + "/health"
		t0 := time.Now()
		if code, err := c.do("GET", path, ""); err != nil || code != 200 {
			fail(fmt.Sprintf("GET %s: %d %v", path, code, err))
		}
		first = append(first, time.Since(t0))
	}
	time.Sleep(time.Second)
	rss2, _ := procStatus(pid)
	fmt.Printf("memory: the %d tenants after one request each: VmRSS %.1f MiB = %.1f KiB/tenant over the start\n",
		n, float64(rss2)/1024, float64(rss2-rss0)/float64(n))
	report(fmt.Sprintf("first request of each loaded tenant (n=%d)", n), first)

	const idle = 5 * time.Second
	t0 := cpuTicks(pid)
	time.Sleep(idle)
	t1 := cpuTicks(pid)
	fmt.Printf("idle: %d tenants loaded, server CPU %.2f%% of one CPU over %v (%d ticks)\n",
		n, float64(t1-t0)/clockTicks/idle.Seconds()*100, idle, t1-t0)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// Linux whatever the kernel's HZ).
const clockTicks = 100

// cpuTicks is pid's user+system CPU time in clock ticks.
func cpuTicks(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fail(err.Error())
	}
	// The command name (field 2) may hold spaces: count from its ")".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// openFiles counts pid's open file descriptors.
func openFiles(pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		fail(err.Error())
	}
	return len(fds)
}

// procStatus returns VmRSS (KiB) and Threads of pid.
func procStatus(pid int) (rssKiB, threads int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail(err.Error())
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rssKiB = v
		case "Threads:":
			threads = v
		}
	}
	return rssKiB, threads
}

func report(what string, d []time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p int) time.Duration { return s[max(0, (p*len(s)+99)/100-1)] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	fmt.Printf("%s: median %s  p90 %s  min %s  max %s\n", what, ms(pct(50)), ms(pct(90)), ms(s[0]), ms(s[len(s)-1]))
}
