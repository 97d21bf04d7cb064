package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/testfixtures"
)

// Two Lectern processes on one config store and one data root, as several
// processes behind one address would run: built from this package into a
// temporary directory, each started with `lectern serve` on its own port.

// buildLectern builds this command into a temporary directory, once per
// test binary run (TestMain removes it: removeBuiltLectern).
var buildLectern = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lectern-bin-")
	if err != nil {
		return "", err
	}
	builtDir = dir
	bin := filepath.Join(dir, "lectern")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// builtDir is where buildLectern built, once it ran.
var builtDir string

// removeBuiltLectern removes what buildLectern built, if it ran (call it
// once the tests are over).
func removeBuiltLectern() {
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
}

// cluster is the environment two processes share.
type cluster struct {
	bin  string
	env  []string
	root string // TENANT_DATA_ROOT
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the lectern binary")
	}
	bin, err := buildLectern()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &cluster{bin: bin, root: filepath.Join(dir, "tenants")}
	c.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"DATA_DIR=" + filepath.Join(dir, "default", "data"),
		"UPLOADS_DIR=" + filepath.Join(dir, "default", "uploads"),
		"TENANT_DB_PATH=" + filepath.Join(dir, "system", "tenants.sqlite3"),
		"TENANT_DATA_ROOT=" + c.root,
		"TENANT_ADMIN_KEY=k",
		"LECTERN_ADDR=127.0.0.1:0",
		"LOG_LEVEL=warn",
	}
	return c
}

// process is one running `lectern serve`.
type process struct {
	name   string
	base   string // http://127.0.0.1:port
	cmd    *exec.Cmd
	logs   *testfixtures.Buffer
	client *http.Client
	killed bool // the test kills and waits for it itself
}

// start runs `lectern serve` and waits until it listens; the process is
// stopped (SIGTERM, then waited for) when the test ends.
func (c *cluster) start(t *testing.T, name string) *process {
	t.Helper()
	p := &process{name: name, logs: &testfixtures.Buffer{}, client: &http.Client{Timeout: 20 * time.Second}}
	p.cmd = exec.Command(c.bin, "serve")
	p.cmd.Env = c.env
	p.cmd.Stderr = p.logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if u, ok := strings.CutPrefix(lines.Text(), "lectern listening on "); ok {
				listening <- u
			}
		}
	}()
	t.Cleanup(func() {
		if p.killed {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-copied; done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited: %v\n%s", name, err, p.logs)
			}
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop on SIGTERM", name)
		}
	})
	select {
	case p.base = <-listening:
	case <-copied:
		t.Fatalf("%s exited before listening:\n%s", name, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s never listened:\n%s", name, p.logs)
	}
	return p
}

// do sends one request and decodes its JSON answer into out (when set).
func (p *process) do(t *testing.T, method, path string, body io.Reader, contentType string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Admin-Key", "k")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s on %s: %d %q: %v", method, path, p.name, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// putTenant is PUT /admin/tenants/{id} with llm_total as its limit.
func (c *cluster) putTenant(t *testing.T, p *process, id string, llmTotal int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"data_dir":    filepath.Join(c.root, id, "data"),
		"uploads_dir": filepath.Join(c.root, id, "uploads"),
		"extra":       map[string]any{"limits": map[string]any{"llm_total": llmTotal}},
	})
	var ans map[string]any
	if code := p.do(t, "PUT", "/admin/tenants/"+id, bytes.NewReader(body), "application/json", &ans); code != 200 {
		t.Fatalf("PUT %s on %s: %d %v\n%s", id, p.name, code, ans, p.logs)
	}
}

// tenantView is what GET /admin/tenants/{id} says of a loaded tenant.
type tenantView struct {
	Tenant struct {
		Extra  map[string]any `json:"extra"`
		Loaded bool           `json:"loaded"`
		Status *struct {
			Limits struct {
				LLMTotal int `json:"llm_total"`
			} `json:"limits"`
		} `json:"status"`
	} `json:"tenant"`
}

// loadedLimit is the llm_total tenant id's loaded instance on p has: 0
// when p has not loaded it.
func (p *process) loadedLimit(t *testing.T, id string) int {
	t.Helper()
	var v tenantView
	if code := p.do(t, "GET", "/admin/tenants/"+id, nil, "", &v); code != 200 {
		t.Fatalf("GET %s on %s: %d", id, p.name, code)
	}
	if !v.Tenant.Loaded || v.Tenant.Status == nil {
		return 0
	}
	return v.Tenant.Status.Limits.LLMTotal
}

// within polls cond every 10 ms for up to 1 s and returns how long it
// took to hold; the test fails if it never did.
func within(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > time.Second {
			t.Fatalf("not within 1 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(began)
}

// A config change made through one process (its admin API, or the
// `lectern tenants` command on the store) reaches the tenant the other
// process has loaded within a second; a tenant disabled through one is
// unloaded by the other.
func TestTwoProcessesSeeConfigChanges(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(t, "A"), c.start(t, "B")

	c.putTenant(t, a, "x", 3)
	if code := b.do(t, "GET", "/t/x/health", nil, "", nil); code != 200 {
		t.Fatalf("B's /t/x/health: %d\n%s", code, b.logs)
	}
	if got := b.loadedLimit(t, "x"); got != 3 {
		t.Fatalf("B loaded x with llm_total %d, want 3", got)
	}

	// PUT through A: B's loaded x is rebuilt with the new limits.
	c.putTenant(t, a, "x", 7)
	took := within(t, "B sees A's PUT", func() bool { return b.loadedLimit(t, "x") == 7 })
	t.Logf("A's PUT reached B's loaded tenant in %v", took)
	if got := a.loadedLimit(t, "x"); got != 7 {
		t.Fatalf("A has llm_total %d, want 7", got)
	}

	// The tenants command writes the store itself: both see it.
	cmd := exec.Command(c.bin, "tenants", "put", "x", "--data-dir", filepath.Join(c.root, "x", "data"),
		"--uploads-dir", filepath.Join(c.root, "x", "uploads"), "--extra", `{"limits":{"llm_total":5}}`)
	cmd.Env = c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lectern tenants put: %v\n%s", err, out)
	}
	took = within(t, "A and B see `lectern tenants put`", func() bool {
		return a.loadedLimit(t, "x") == 5 && b.loadedLimit(t, "x") == 5
	})
	t.Logf("`lectern tenants put` reached both processes in %v", took)

	// Disabled through B: A unloads it and answers 404 for it.
	if code := b.do(t, "DELETE", "/admin/tenants/x", nil, "", nil); code != 200 {
		t.Fatalf("DELETE on B: %d", code)
	}
	within(t, "A unloads the tenant B disabled", func() bool { return a.loadedLimit(t, "x") == 0 })
	if code := a.do(t, "GET", "/t/x/health", nil, "", nil); code != 404 {
		t.Fatalf("A serves disabled x: %d", code)
	}
	for _, p := range []*process{a, b} {
		if strings.Contains(p.logs.String(), "level=ERROR") {
			t.Errorf("%s logged errors:\n%s", p.name, p.logs)
		}
	}
}

// profileNotes is the count of each note in student id's profile on p.
func profileNotes(t *testing.T, p *process, tenant, id string) map[string]int {
	t.Helper()
	var prof struct {
		Notes []struct {
			Note string `json:"note"`
		} `json:"interaction_notes"`
	}
	q := url.Values{"role": {"student"}, "student_id": {id}}
	if code := p.do(t, "GET", "/t/"+tenant+"/student/profile/"+id+"?"+q.Encode(), nil, "", &prof); code != 200 {
		t.Fatalf("profile %s on %s: %d", id, p.name, code)
	}
	out := map[string]int{}
	for _, n := range prof.Notes {
		out[n.Note]++
	}
	return out
}

// 200 profile updates of 10 students (20 each: the notes a profile keeps),
// one student after the other, sent alternately to the two processes, 8 at
// a time (so both processes update one student at once): each is applied
// exactly once, none lost, none twice. Each process has its own profile
// writer over the tenant's one directory.
func TestTwoProcessesApplyEachProfileUpdateOnce(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(t, "A"), c.start(t, "B")
	c.putTenant(t, a, "y", 30)

	const students, each = 10, 20
	type update struct {
		p    *process
		id   string
		note string
	}
	work := make(chan update)
	var wg sync.WaitGroup
	var failed sync.Map
	for range 8 {
		wg.Go(func() {
			for u := range work {
				form := url.Values{"student_id": {u.id}, "interaction_note": {u.note}}
				q := url.Values{"role": {"student"}, "student_id": {u.id}}
				var ans map[string]any
				code := u.p.do(t, "POST", "/t/y/student/profile/update?"+q.Encode(), strings.NewReader(form.Encode()),
					"application/x-www-form-urlencoded", &ans)
				if code != 200 {
					failed.Store(u.note, fmt.Sprintf("%s: %d %v", u.p.name, code, ans))
				}
			}
		})
	}
	n := 0
	for s := range students {
		for i := range each {
			p := []*process{a, b}[n%2]
			n++
			work <- update{p, fmt.Sprintf("s%02d", s), fmt.Sprintf("note %d of s%02d", i, s)}
		}
	}
	close(work)
	wg.Wait()
	failed.Range(func(k, v any) bool {
		t.Errorf("update %s refused: %s", k, v)
		return true
	})
	lost, twice := 0, 0
	for s := range students {
		id := fmt.Sprintf("s%02d", s)
		notes := profileNotes(t, a, "y", id)
		for i := range each {
			switch notes[fmt.Sprintf("note %d of %s", i, id)] {
			case 0:
				lost++
			case 1:
			default:
				twice++
			}
		}
	}
	if lost != 0 || twice != 0 {
		t.Fatalf("of %d updates sent half to each process, %d were lost and %d applied more than once", students*each, lost, twice)
	}
}
