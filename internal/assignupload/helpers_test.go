package assignupload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/testfixtures"
)

// fixture is a pipeline over temporary directories served over real HTTP.
type fixture struct {
	t             testing.TB
	p             *Pipeline
	cfg           Config
	srv           *httptest.Server
	data, uploads string
}

// newFixture builds a pipeline (its worker started unless noStart) with
// the options applied to its Config.
func newFixture(t testing.TB, noStart bool, opts ...func(*Config)) *fixture {
	t.Helper()
	data, uploads := t.TempDir(), t.TempDir()
	cfg := Config{DataDir: data, UploadsDir: uploads, Assignments: assignments.NewService(data),
		Now: testfixtures.NewClock(time.Date(2026, 2, 8, 9, 30, 0, 0, time.Local)).Now}
	for _, o := range opts {
		o(&cfg)
	}
	f := &fixture{t: t, cfg: cfg, data: data, uploads: uploads}
	f.p = New(cfg)
	if !noStart {
		startRunner(t, f.p)
	}
	f.srv = httptest.NewServer(routes(f.p))
	t.Cleanup(f.srv.Close)
	return f
}

func startRunner(t testing.TB, p *Pipeline) {
	t.Helper()
	if err := p.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Runner().Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// routes serves the pipeline's handlers as the tenant's router would,
// behind a middleware that takes the caller from test headers: X-Teacher
// (default t_zhang) with a token, X-Role admin for the admin, X-Open for
// open mode.
func routes(p *Pipeline) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /assignment/upload/start", p.Start)
	mux.HandleFunc("GET /assignment/upload/status", p.Status)
	mux.HandleFunc("GET /assignment/upload/draft", p.Draft)
	mux.HandleFunc("POST /assignment/upload/draft/save", p.DraftSave)
	mux.HandleFunc("POST /assignment/upload/confirm", p.Confirm)
	mux.HandleFunc("POST /assignment/questions/ocr", p.QuestionsOCR)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := caller.Principal{Role: caller.RoleTeacher, TeacherID: "t_zhang", Via: caller.Token}
		if t := r.Header.Get("X-Teacher"); t != "" {
			who.TeacherID = t
		}
		if r.Header.Get("X-Role") == "admin" {
			who.Role, who.TeacherID = caller.RoleAdmin, "root"
		}
		if r.Header.Get("X-Open") != "" {
			who.Via = caller.Claimed
		}
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), who)))
	})
}

// part is one multipart part: a file when name is set, else a value.
type part struct {
	field, name string
	data        []byte
}

func value(field, v string) part             { return part{field: field, data: []byte(v)} }
func file(field, name string, d []byte) part { return part{field: field, name: name, data: d} }

// do sends a request and decodes the JSON answer.
func (f *fixture) do(req *http.Request, header ...string) (int, map[string]any) {
	f.t.Helper()
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		f.t.Fatalf("%s %s: %d, not JSON: %s", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// post sends a multipart form.
func (f *fixture) post(path string, parts []part, header ...string) (int, map[string]any) {
	f.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range parts {
		if p.name == "" {
			mw.WriteField(p.field, string(p.data))
			continue
		}
		w, err := mw.CreateFormFile(p.field, p.name)
		if err != nil {
			f.t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return f.do(req, header...)
}

func (f *fixture) postJSON(path string, v any, header ...string) (int, map[string]any) {
	f.t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return f.do(req, header...)
}

func (f *fixture) get(path string, header ...string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	return f.do(req, header...)
}

// start posts an upload and returns its job id.
func (f *fixture) start(parts ...part) string {
	f.t.Helper()
	code, out := f.post("/assignment/upload/start", parts)
	id, _ := out["job_id"].(string)
	if code != http.StatusOK || id == "" {
		f.t.Fatalf("start: %d %v", code, out)
	}
	return id
}

// wait polls the status route until the job is done or failed.
func (f *fixture) wait(id string) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		code, rec := f.get("/assignment/upload/status?job_id=" + id)
		if code != http.StatusOK {
			f.t.Fatalf("status: %d %v", code, rec)
		}
		if s := rec["status"]; s == StatusDone || s == StatusFailed || s == StatusConfirmed {
			return rec
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("job %s not finished", id)
	return nil
}

// draft reads the job's draft.
func (f *fixture) draft(id string) map[string]any {
	f.t.Helper()
	code, out := f.get("/assignment/upload/draft?job_id=" + id)
	if code != http.StatusOK {
		f.t.Fatalf("draft: %d %v", code, out)
	}
	d, _ := out["draft"].(map[string]any)
	return d
}

// withOCR gives the pipeline the real tesseract extractor.
func withOCR(t testing.TB) func(*Config) {
	testfixtures.NeedBins(t, "tesseract", "pdftotext", "pdftoppm", "pdfinfo")
	return func(c *Config) { c.Text = ocr.New(ocr.Options{}) }
}

// fakeLLM is the in-process fake provider, the client to it, and the
// gateway's log (each call's kind is logged at debug level).
type fakeLLM struct {
	srv *llmtest.Server
	log *testfixtures.Buffer
}

func newFakeLLM(t testing.TB) (*fakeLLM, func(*Config)) {
	srv := llmtest.NewServer(t)
	buf := &testfixtures.Buffer{}
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "fake", BaseURL: srv.URL, Model: "m",
		Timeout: 10 * time.Second, MaxAttempts: 1}}},
		llm.Options{Logger: slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
	return &fakeLLM{srv: srv, log: buf}, func(c *Config) { c.LLM = client }
}

// tree lists every file and directory under the roots with its size,
// mode and modification time.
func tree(t testing.TB, roots ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out[p] = fmt.Sprintf("%v %s %d", fi.Mode(), fi.ModTime().Format(time.RFC3339Nano), fi.Size())
			return nil
		})
	}
	return out
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readJSONFile(t testing.TB, p string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(readFile(t, p)), &m); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return m
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := []string{}
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// fullRequirements is a checklist that passes.
func fullRequirements() map[string]any {
	return map[string]any{
		"subject": "物理", "topic": "牛顿第二定律", "grade_level": "高一", "class_level": "一般",
		"core_concepts": "牛顿第二定律，加速度，合力", "typical_problem": "已知合力求加速度",
		"misconceptions":   []any{"质量与重量混淆", "合力方向判断错误", "单位换算错误", "忽略摩擦力"},
		"duration_minutes": "40分钟", "preferences": []any{"A", "B提升"}, "extra_constraints": "允许使用计算器",
	}
}
