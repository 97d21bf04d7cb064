package grading

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io/fs"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/ocr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a Service over temporary directories, served over HTTP. A
// request's principal comes from the X-Role / X-Student headers (a
// verified token's), else open mode.
type fixture struct {
	t             testing.TB
	data, uploads string
	svc           *Service
	srv           *httptest.Server

	mu     sync.Mutex
	graded []*Report
	hook   func(*Report) error // run by OnGraded after recording
}

type option func(*Config)

// newFixture builds the service; start runs its worker.
func newFixture(t testing.TB, data, uploads string, start bool, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t, data: data, uploads: uploads}
	cfg := Config{DataDir: data, UploadsDir: uploads, Assignments: assignments.NewService(data),
		OnGraded: f.onGraded, Now: func() time.Time { return time.Date(2026, 3, 2, 9, 30, 0, 0, time.Local) }}
	for _, o := range opts {
		o(&cfg)
	}
	f.svc = New(cfg)
	if start {
		if err := f.svc.Runner().Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { f.stop() })
	mux := http.NewServeMux()
	mux.HandleFunc("POST /student/submit", f.svc.Submit)
	mux.HandleFunc("GET /student/submit/status", f.svc.Status)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if role := r.Header.Get("X-Role"); role != "" {
			p := caller.Principal{Role: caller.Role(role), StudentID: r.Header.Get("X-Student"), TeacherID: "t1", Via: caller.Token}
			r = r.WithContext(caller.With(r.Context(), p))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.svc.Runner().Stop(ctx); err != nil {
		f.t.Errorf("stop: %v", err)
	}
}

// onGraded records the report and runs the hook, under f.mu: what the
// hook writes is read safely after gradedCount.
func (f *fixture) onGraded(r *Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.graded = append(f.graded, r)
	if f.hook != nil {
		return f.hook(r)
	}
	return nil
}

func (f *fixture) gradedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.graded)
}

func withText(x ocr.Engine) option {
	return func(c *Config) { c.Text = ocr.New(ocr.Options{Engine: x}) }
}

// file is one uploaded file (without a name: a form value, sent in its
// place among the files).
type file struct {
	field, name string
	data        []byte
}

// submit posts a multipart form; fields keep their order and come before
// the files. hdr sets the principal (role, student id).
func (f *fixture) submit(fields [][2]string, files []file, hdr ...string) (int, map[string]any) {
	f.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, kv := range fields {
		mw.WriteField(kv[0], kv[1])
	}
	for _, fl := range files {
		field := fl.field
		if field == "" {
			field = "files"
		}
		if fl.name == "" { // a form value after the files
			mw.WriteField(field, string(fl.data))
			continue
		}
		w, err := mw.CreateFormFile(field, fl.name)
		if err != nil {
			f.t.Fatal(err)
		}
		w.Write(fl.data)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/student/submit", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	setPrincipal(req, hdr)
	return do(f.t, req)
}

func (f *fixture) status(id string, hdr ...string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/student/submit/status?job_id="+id, nil)
	setPrincipal(req, hdr)
	return do(f.t, req)
}

// setPrincipal: hdr is role, student.
func setPrincipal(req *http.Request, hdr []string) {
	if len(hdr) > 0 {
		req.Header.Set("X-Role", hdr[0])
	}
	if len(hdr) > 1 {
		req.Header.Set("X-Student", hdr[1])
	}
}

func do(t testing.TB, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// waitJob polls the status until the job is done or failed.
func (f *fixture) waitJob(id string) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		code, rec := f.status(id)
		if code != http.StatusOK {
			f.t.Fatalf("status %s: %d %v", id, code, rec)
		}
		if s := rec["status"]; s == StatusDone || s == StatusFailed {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("job %s not finished", id)
	return nil
}

// writeAssignment writes DATA_DIR/assignments/<aid>/ with questions.csv
// (when csv is not "") and extra files (paths relative to DATA_DIR).
func writeAssignment(t testing.TB, data, aid, csv string, extra map[string]string) {
	t.Helper()
	dir := filepath.Join(data, "assignments", aid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if csv != "" {
		writeFile(t, filepath.Join(dir, "questions.csv"), csv)
	}
	for rel, content := range extra {
		writeFile(t, filepath.Join(data, rel), content)
	}
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// items indexes a report's items by question id.
func items(t *testing.T, rep map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	list, _ := rep["items"].([]any)
	for _, x := range list {
		it := x.(map[string]any)
		out[it["question_id"].(string)] = it
	}
	return out
}

// tree lists every file under the dirs with its size and modification
// time.
func tree(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := e.Info()
			if err == nil {
				out[p] = fmt.Sprint(fi.ModTime().UnixNano(), "/", fi.Size())
			}
			return nil
		})
	}
	return out
}

// photo makes a rendered page look photographed: grey paper with a light
// gradient and noise (seeded: the same image every run), slightly
// rotated.
func photo(src *image.Gray, deg float64) *image.Gray {
	b := src.Bounds()
	const pad = 40
	out := image.NewGray(image.Rect(0, 0, b.Dx()+2*pad, b.Dy()+2*pad))
	rng := rand.New(rand.NewPCG(7, 9))
	th := deg * math.Pi / 180
	w, h := out.Bounds().Dx(), out.Bounds().Dy()
	cx, cy := float64(w)/2, float64(h)/2
	for y := range h {
		for x := range w {
			dx, dy := float64(x)-cx, float64(y)-cy
			sx := int(math.Round(dx*math.Cos(th)+dy*math.Sin(th)+cx)) - pad
			sy := int(math.Round(-dx*math.Sin(th)+dy*math.Cos(th)+cy)) - pad
			v := 255
			if image.Pt(sx, sy).In(b) {
				v = int(src.GrayAt(sx, sy).Y)
			}
			paper := 215 + 20*x/w + rng.IntN(25) - 12
			out.Pix[y*out.Stride+x] = uint8(max(0, min(255, v*paper/255)))
		}
	}
	return out
}

// engineFunc is a fake OCR engine.
type engineFunc func(path string) (ocr.Page, error)

func (e engineFunc) Name() string { return "fake" }
func (e engineFunc) Image(_ context.Context, path string) (ocr.Page, error) {
	return e(path)
}
