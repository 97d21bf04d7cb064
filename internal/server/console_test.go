package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/demo"
	"github.com/lectern/lectern/internal/jobs"
)

// needChromium is the path of Debian's chromium; without it the test is
// skipped, or fails under CI=true (as testfixtures.NeedBins does for the
// OCR binaries: `make deps` installs it).
func needChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		msg := "chromium not installed (apt-get install -y chromium, or make deps): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// browser drives one headless Chromium tab against the test server.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string

	mu       sync.Mutex
	problems []string // uncaught exceptions and CSP refusals the page met
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// wait evaluates a JavaScript expression until it is true. An evaluation
// that fails (the page navigating away, an element not there yet) is
// tried again.
func (b *browser) wait(expr string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if b.ctx.Err() != nil {
			break
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("waiting for %s: %v", expr, last)
}

// page waits until the page at path (and language lang) has loaded its
// data.
func (b *browser) page(path, lang string) {
	b.t.Helper()
	b.wait(`location.pathname === '` + path + `' && document.documentElement.lang === '` + lang +
		`' && document.body.dataset.ready === 'true'`)
}

// typeInto replaces the value of the input with that id by typing text.
func (b *browser) typeInto(id, text string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(document.getElementById('`+id+`').value = '', true)`)); err != nil {
		b.t.Fatalf("clear %s: %v", id, err)
	}
	b.do(chromedp.SendKeys(chromedp.ID(id), text))
}

// shot writes a PNG of the viewport under the test's temp dir.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if !strings.HasPrefix(string(png), "\x89PNG") {
		b.t.Fatalf("screenshot %s is not a PNG", name)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// see waits until the text of the element matching the CSS selector
// contains want.
func (b *browser) see(sel, want, what string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	w, _ := json.Marshal(want)
	expr := `(document.querySelector(` + string(q) + `)?.textContent || '').includes(` + string(w) + `)`
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && b.ctx.Err() == nil {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector(`+string(q)+`)?.textContent ?? '(no element)'`))
	errs, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('.error')].map(e => e.id + ': ' + e.textContent).join(' | ')`))
	b.t.Fatalf("%s: %s shows %q, not %q (errors shown: %s)", what, sel, strings.TrimSpace(got), want, errs)
}

// The operator console in a real browser: the landing page, signing in
// (a wrong key refused), the tenants table with the default tenant,
// creating a tenant through the form (a bad directory refused inline
// first), seeing it loaded after a request, its page with a failed job and
// an exam's charts, changing a limit (a bad one refused inline first),
// disabling it, and both languages.
func TestConsoleInChromium(t *testing.T) {
	bin := needChromium(t)
	e := newEnv(t)
	data, uploads := e.tenantDirs("north")
	// An exam and a failed upload job, in the tenant's directories before
	// it is created.
	if _, err := demo.WriteExam(data, demo.SampleExams(7)[0]); err != nil {
		t.Fatal(err)
	}
	now := jobs.Timestamp(time.Now())
	if err := atomicfile.WriteJSON(filepath.Join(uploads, "exam_jobs", "job_console_1", jobs.RecordFile), map[string]any{
		"job_id": "job_console_1", "status": "failed", "step": "parse_scores", "error": "scores_parsed_empty",
		"error_detail": "no score rows in sheet.xlsx", "hints": []string{"check the sheet has a header row"},
		"created_at": now, "updated_at": now,
	}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1280, 1400),
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("accept-lang", "zh-CN,zh"))
	defer acancel() // waits for the browser process
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	b := &browser{t: t, ctx: bctx, base: e.http.URL, shots: t.TempDir()}

	// The page's exceptions and CSP refusals, collected until the end.
	if err := chromedp.Do(bctx); err != nil { // starts the browser and the tab
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(bctx)
	var watching sync.WaitGroup
	watching.Go(func() {
		for m, err := range chromedp.Console(cctx) {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	})
	defer func() {
		ccancel()
		watching.Wait()
	}()

	// The landing page, in the browser's language (Accept-Language: zh-CN).
	b.do(chromedp.Navigate(b.base + "/"))
	b.see("h1", "Lectern", "landing title")
	b.see(".tagline", "教学助手服务器", "landing tagline in Chinese")
	b.shot("landing")
	b.do(chromedp.Click(chromedp.ID("link-console")))
	b.page("/admin/console/", "zh")

	// Sign in: a wrong key is refused inline, then the right one.
	b.do(chromedp.WaitVisible(chromedp.ID("signin")))
	b.shot("signin")
	b.typeInto("admin-key", "not-the-key")
	b.do(chromedp.Click(chromedp.ID("sign-in")))
	b.see("#signin-error", "管理密钥不正确", "wrong key")
	b.typeInto("admin-key", adminKey)
	b.do(chromedp.Click(chromedp.ID("sign-in")))
	b.do(chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="_default"]`)))
	b.see("#tenants th", "租户 ID", "a Chinese column label")
	b.see(`#tenants tr[data-tenant="_default"] td[data-col="id"]`, "默认租户", "the default tenant's row")
	b.see(`#tenants tr[data-tenant="_default"] td[data-col="loaded"]`, "是", "the default tenant is loaded")
	// The key is in the tab's sessionStorage only, never in a URL.
	stored, err := chromedp.Run(bctx, chromedp.Evaluate[string](`sessionStorage.getItem('lectern.console.adminKey') + '|' + localStorage.length + '|' + location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(stored, "|"); got[0] != adminKey || got[1] != "0" || strings.Contains(got[2], adminKey) {
		t.Fatalf("key storage: %q", stored)
	}

	// Switch to English: the key stays, the labels change.
	b.do(chromedp.Click(chromedp.ID("lang-en")))
	b.page("/admin/console/", "en")
	b.do(chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="_default"]`)))
	b.see("#tenants th", "Tenant ID", "an English column label")
	b.see("#create-submit", "Create the tenant", "an English button")

	// Create a tenant: a relative data_dir is refused inline with the
	// admin API's message, then the right one is accepted.
	b.typeInto("create-tenant_id", "north")
	b.typeInto("create-data_dir", "relative/data")
	b.typeInto("create-uploads_dir", uploads)
	b.typeInto("create-ocr", "3")
	b.do(chromedp.Click(chromedp.ID("create-submit")))
	b.see("#create-error", `data_dir "relative/data" is not an absolute path`, "validation message")
	b.shot("create-refused")
	b.typeInto("create-data_dir", data)
	b.do(chromedp.Click(chromedp.ID("create-submit")))
	b.see("#create-ok", "Created. north", "created")
	b.do(chromedp.WaitVisible(chromedp.CSS(`#tenants tr[data-tenant="north"]`)))
	if rec, err := e.srv.store.Get(ctx, "north"); err != nil || rec.DataDir != data || !rec.Enabled {
		t.Fatalf("stored: %+v %v", rec, err)
	}

	// Unloaded, it shows so; a request loads it and the table sees it.
	if err := e.srv.Registry().Unload(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.Click(chromedp.ID("refresh")))
	b.wait(`document.querySelector('#tenants tr[data-tenant="north"] td[data-col="loaded"]').textContent === 'no'`)
	expect(t, e.get("/t/north/health"), 200, "")
	b.do(chromedp.Click(chromedp.ID("refresh")))
	b.wait(`document.querySelector('#tenants tr[data-tenant="north"] td[data-col="loaded"]').textContent === 'yes'`)
	b.see(`#tenants tr[data-tenant="north"] td[data-col="limits"]`, "OCR 0/3", "the configured OCR limit in use / limit")
	b.see(`#tenants tr[data-tenant="north"] td[data-col="in_flight"]`, "0", "requests in flight")
	b.shot("tenants")

	// The tenant's page: its failed job and its exam's charts.
	b.do(chromedp.Click(chromedp.CSS(`#tenants tr[data-tenant="north"] td[data-col="id"] a`)))
	b.page("/admin/console/tenants/north", "en")
	b.see(`#failed-jobs tr[data-job="job_console_1"] td[data-col="error"]`, "scores_parsed_empty", "failed job")
	b.see(`#failed-jobs tr[data-job="job_console_1"] td[data-col="detail"]`, "check the sheet has a header row", "failed job hint")
	for _, chart := range []string{"totals", "questions", "classes"} {
		b.wait(`(() => { const i = document.querySelector('article[data-exam="DEMO_PHYS_MID"] img[data-chart="` + chart +
			`"]'); return !!i && i.src.startsWith('blob:') && i.complete && i.naturalWidth > 100; })()`)
	}
	b.see(`#workers tr[data-kind="exam_upload"]`, "exam_upload", "workers per kind")
	b.see(`#config dd[data-field="loaded"]`, "yes", "status: loaded")
	b.see("#edit h2", "Change the tenant", "an English heading")
	b.shot("tenant")

	// Change a limit: 0 is refused inline, 4 is stored and applied.
	b.typeInto("edit-llm_teacher", "0")
	b.do(chromedp.Click(chromedp.ID("edit-submit")))
	b.see("#edit-error", "extra.limits.llm_teacher must be a positive integer, got 0", "limit validation")
	b.typeInto("edit-llm_teacher", "4")
	b.do(chromedp.Click(chromedp.ID("edit-submit")))
	b.see("#edit-ok", "Saved.", "saved")
	b.wait(`document.querySelector('#pools tr[data-pool="llm_teacher"] td[data-col="limit"]').textContent === '4'`)
	if info, ok := e.srv.Registry().Info("north"); !ok || info.Status.Limits.LLMTeacher != 4 || info.Status.Limits.OCR != 3 {
		t.Fatalf("limits after the change: %+v %v", info.Status.Limits, ok)
	}
	b.shot("tenant-changed")

	// Disable it: its routes answer 404, the page says so.
	b.do(chromedp.Click(chromedp.ID("disable")))
	b.see("#disable-ok", "Disabled", "disabled")
	b.do(chromedp.WaitVisible(chromedp.ID("exams-unavailable")))
	b.wait(`document.querySelector('#config dd[data-field="enabled"]').textContent === 'no'`)
	expect(t, e.get("/t/north/health"), 404, `{"detail":"tenant not found"}`)
	if rec, err := e.srv.store.Get(ctx, "north"); err != nil || rec.Enabled {
		t.Fatalf("after disable: %+v %v", rec, err)
	}
	b.shot("tenant-disabled")

	// Back to Chinese on the tenant page.
	b.do(chromedp.Click(chromedp.ID("lang-zh")))
	b.page("/admin/console/tenants/north", "zh")
	b.see("#pools th", "资源池", "a Chinese column label")
	b.see(`#config dd[data-field="enabled"]`, "否", "a Chinese value")
	b.shot("tenant-zh")

	// Signing out forgets the key.
	b.do(chromedp.Click(chromedp.ID("sign-out")))
	b.do(chromedp.WaitVisible(chromedp.ID("signin")))
	if left, err := chromedp.Run(bctx, chromedp.Evaluate[int](`sessionStorage.length`)); err != nil || left != 0 {
		t.Fatalf("after sign-out the tab keeps %d items (%v)", left, err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Fatalf("the page met errors: %q", b.problems)
	}
}

// The console's API over the real server: the key is required, the
// default tenant is a row, a stored tenant shows its record and, once
// loaded, its status; failed jobs and exams are read from its directories.
func TestConsoleAPIOverServer(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/admin/console/api/tenants", "/admin/console/api/tenants/_default"} {
		expect(t, e.do("GET", p, "", nil), 401, `{"detail":"unauthorized"}`)
		expect(t, e.do("GET", p, "wrong", nil), 401, `{"detail":"unauthorized"}`)
	}
	closed := newEnv(t, func(c *Config) { c.AdminKey = "" })
	expect(t, closed.do("GET", "/admin/console/api/tenants", "", nil), 401, `{"detail":"admin key not configured"}`)

	data, uploads := e.tenantDirs("t1")
	if _, err := demo.WriteExam(data, demo.SampleExams(3)[1]); err != nil {
		t.Fatal(err)
	}
	expect(t, e.putTenant("t1", map[string]any{"limits": map[string]any{"ocr": 2}}), 200, "")
	expect(t, e.putTenant("t2", map[string]any{"ocr": "many"}), 400, `{"detail":"extra.ocr must be a positive integer, got many"}`)

	list := e.do("GET", "/admin/console/api/tenants", adminKey, nil).json(t)["tenants"].([]any)
	if len(list) != 2 {
		t.Fatalf("rows: %v", list)
	}
	def, t1 := list[0].(map[string]any), list[1].(map[string]any)
	if def["tenant_id"] != "_default" || def["default"] != true || def["loaded"] != true || def["summary"] == nil || def["in_flight"] != nil {
		t.Fatalf("default row: %v", def)
	}
	if t1["tenant_id"] != "t1" || t1["loaded"] != true || t1["in_flight"] != 0.0 || t1["data_dir"] != data ||
		t1["limits"].(map[string]any)["ocr"] != 2.0 || t1["status"].(map[string]any)["limits"].(map[string]any)["ocr"] != 2.0 {
		t.Fatalf("t1 row: %v", t1)
	}
	// Unloaded: no status, and reading it does not load it.
	if err := e.srv.Registry().Unload(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	one := e.do("GET", "/admin/console/api/tenants/t1", adminKey, nil).json(t)["tenant"].(map[string]any)
	if one["loaded"] != false || one["status"] != nil || one["summary"] != nil || e.srv.Registry().IsLoaded("t1") {
		t.Fatalf("unloaded t1: %v", one)
	}
	// Failed jobs come from disk, without loading it either.
	now := jobs.Timestamp(time.Now())
	for i, status := range []string{"failed", "done"} {
		id := "job_" + status
		if err := atomicfile.WriteJSON(filepath.Join(uploads, "submission_jobs", id, jobs.RecordFile), map[string]any{
			"job_id": id, "status": status, "error": "grading_failed", "error_detail": strings.Repeat("x", 900),
			"created_at": now, "updated_at": now, "n": i}); err != nil {
			t.Fatal(err)
		}
	}
	// A finished chat job is one sealed file (jobs.Store.Seal): its record
	// first, then its events.
	sealed, _ := json.Marshal(map[string]any{"record": map[string]any{"job_id": "cjob_failed", "status": "failed",
		"error": "llm_not_configured", "created_at": now, "updated_at": now},
		"files": map[string]string{"events.jsonl": strings.Repeat(`{"event_id":1}`+"\n", 100)}})
	os.MkdirAll(filepath.Join(uploads, "chat_jobs"), 0o755)
	if err := os.WriteFile(filepath.Join(uploads, "chat_jobs", "cjob_failed"+jobs.SealedSuffix), sealed, 0o644); err != nil {
		t.Fatal(err)
	}
	failed := e.do("GET", "/admin/console/api/tenants/t1/failed-jobs", adminKey, nil).json(t)["failed_jobs"].([]any)
	if len(failed) != 2 || e.srv.Registry().IsLoaded("t1") {
		t.Fatalf("failed jobs: %v", failed)
	}
	kinds := map[string]map[string]any{}
	for _, f := range failed {
		kinds[f.(map[string]any)["kind"].(string)] = f.(map[string]any)
	}
	if j := kinds["submission"]; j == nil || j["job_id"] != "job_failed" || len([]rune(j["error_detail"].(string))) > 501 {
		t.Fatalf("failed job: %v", failed)
	}
	if j := kinds["chat"]; j == nil || j["job_id"] != "cjob_failed" || j["error"] != "llm_not_configured" {
		t.Fatalf("failed sealed chat job: %v", failed)
	}
	// Exams load the tenant, as one of its requests would.
	exams := e.do("GET", "/admin/console/api/tenants/t1/exams", adminKey, nil).json(t)["exams"].([]any)
	if len(exams) != 1 || exams[0].(map[string]any)["exam_id"] != "DEMO_MATH_Q1" || !e.srv.Registry().IsLoaded("t1") {
		t.Fatalf("exams: %v", exams)
	}
	url := exams[0].(map[string]any)["charts"].([]any)[0].(map[string]any)["url"].(string)
	req, _ := http.NewRequest("GET", e.http.URL+url, nil)
	req.Header.Set("X-Admin-Key", adminKey)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("chart %s: %d %v", url, resp.StatusCode, resp.Header)
	}
	expect(t, e.do("GET", "/admin/console/api/tenants/t1/exams/NOPE/charts/totals.svg", adminKey, nil), 404, `{"detail":"exam not found"}`)
	// The default tenant's exams (none) and a disabled tenant's (404).
	expect(t, e.do("GET", "/admin/console/api/tenants/_default/exams", adminKey, nil), 200, `{"exams":[],"ok":true,"tenant_id":"_default"}`)
	expect(t, e.do("DELETE", "/admin/tenants/t1", adminKey, nil), 200, "")
	expect(t, e.do("GET", "/admin/console/api/tenants/t1/exams", adminKey, nil), 404, `{"detail":"tenant not found"}`)
	expect(t, e.do("GET", "/admin/console/api/tenants/nobody", adminKey, nil), 404, `{"detail":"tenant not found"}`)
	expect(t, e.do("GET", "/admin/console/api/tenants/nobody/failed-jobs", adminKey, nil), 404, `{"detail":"tenant not found"}`)
}

// GET / is the landing page now (it was a 404 JSON); every other method,
// and every other path, still reaches the dispatcher.
func TestLandingPage(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.http.URL+"/", nil)
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	page := string(body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") ||
		resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("landing: %d %v", resp.StatusCode, resp.Header)
	}
	for _, s := range []string{"<title>Lectern</title>", `href="/docs"`, `href="/admin/console/"`, "teaching-assistant server for many schools"} {
		if !strings.Contains(page, s) {
			t.Fatalf("landing lacks %q: %s", s, page)
		}
	}
	expect(t, e.do("POST", "/", "", nil), 404, `{"detail":"Not Found"}`)
	expect(t, e.get("/health"), 200, "")
	expect(t, e.get("/exams"), 200, "")
	expect(t, e.get("/admin/console/api/tenants"), 401, `{"detail":"unauthorized"}`)
	if r := e.get("/admin/console/"); r.status != 200 || !strings.Contains(string(r.body), `data-page="index"`) {
		t.Fatalf("console: %d %s", r.status, r.body)
	}
}
