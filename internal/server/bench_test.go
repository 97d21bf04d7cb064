package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/demo"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/tenancy"
)

// Benchmarks of the tenancy layer, in process (no TCP). The load test over
// loopback is bench/tenancy.sh; docs/benchmarks.md has the figures and the
// commands.

const benchKey = "bench-key"

type benchServer struct {
	*Server
	root string // tenants' directories live under root/tenants
	cfg  Config
}

func benchConfig(root string) Config {
	return Config{
		DataDir:      filepath.Join(root, "default", "data"),
		UploadsDir:   filepath.Join(root, "default", "uploads"),
		TenantDBPath: filepath.Join(root, "system", "tenants.sqlite3"),
		AdminKey:     benchKey,
		Global:       limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4},
		ChatWorkers:  4,
	}
}

// newBenchServer starts a server in a fresh temporary directory (or, when
// root is not "", over root's existing store) and closes it at cleanup.
func newBenchServer(b *testing.B, root string) *benchServer {
	b.Helper()
	if root == "" {
		root = b.TempDir()
	}
	cfg := benchConfig(root)
	srv, err := New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return &benchServer{Server: srv, root: root, cfg: cfg}
}

func (s *benchServer) record(id string) tenancy.Record {
	dir := filepath.Join(s.root, "tenants", id)
	return tenancy.Record{TenantID: id, DataDir: filepath.Join(dir, "data"),
		UploadsDir: filepath.Join(dir, "uploads"), Enabled: true, Extra: map[string]any{}}
}

// put creates tenant id through the admin API, as PUT /admin/tenants/{id}.
func (s *benchServer) put(b *testing.B, id string) {
	rec := s.record(id)
	body := fmt.Sprintf(`{"data_dir":%q,"uploads_dir":%q}`, rec.DataDir, rec.UploadsDir)
	r := httptest.NewRequest("PUT", "/admin/tenants/"+id, strings.NewReader(body))
	r.Header.Set("X-Admin-Key", benchKey)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		b.Fatalf("PUT %s: %d %s", id, w.Code, w.Body)
	}
}

func (s *benchServer) mustGet(b *testing.B, path string) {
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if w.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
}

// benchWriter is a reusable ResponseWriter, so that the dispatch
// benchmarks measure the handlers and not a recorder.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// benchBareHandler is bench/bare's handler: a ServeMux answering GET /health
// exactly as a tenant does.
func benchBareHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"status":"ok","llm":"not_configured","hint":"set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (or LLM_PROVIDERS_FILE) to enable chat"}`)) // the same body as Lectern without an LLM
	})
	return mux
}

// BenchmarkDispatch serves one request in process: the bare baseline, the
// default tenant, tenant t1, and t1's exam list with 50 exams. The
// difference between bare and tenant is the cost of the dispatcher and the
// registry per request.
func BenchmarkDispatch(b *testing.B) {
	s := newBenchServer(b, "")
	rec := s.record("t1")
	for i := range 50 {
		e := demo.Exam{ID: fmt.Sprintf("BENCH_EXAM_%03d", i), Date: fmt.Sprintf("2026-01-%02d", i%28+1),
			Subject: "math", Classes: []string{"c1"}, Students: 5, Questions: []float64{5, 5, 10}, Seed: uint64(i)}
		if _, err := demo.WriteExam(rec.DataDir, e); err != nil {
			b.Fatal(err)
		}
	}
	s.put(b, "t1")
	for _, c := range []struct {
		name, path string
		h          http.Handler
	}{
		{"bare", "/health", benchBareHandler()},
		{"root", "/health", s.Handler()},
		{"tenant", "/t/t1/health", s.Handler()},
		{"exams", "/t/t1/exams", s.Handler()},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", c.path, nil)
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.code = 0
				c.h.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("GET %s: %d", c.path, w.code)
				}
			}
		})
	}
}

// BenchmarkTenantColdLoad: one op is PUT /admin/tenants/{new id} followed
// by GET /t/{id}/health. Tenants accumulate, and PUT checks the new
// directories against every stored tenant, so ns/op grows with b.N: run it
// with a fixed count, e.g. -benchtime=50x.
func BenchmarkTenantColdLoad(b *testing.B) {
	s := newBenchServer(b, "")
	i := 0
	for b.Loop() {
		id := "cold-" + strconv.Itoa(i)
		i++
		s.put(b, id)
		s.mustGet(b, "/t/"+id+"/health")
	}
}

// BenchmarkTenantLazyLoad: one op is the first GET /t/{id}/health of a
// tenant that is stored (enabled) but not loaded, as after a restart: the
// registry reads the row, builds the app and starts its workers. The rows
// are written beside the running server, through a second Store on the
// same file.
func BenchmarkTenantLazyLoad(b *testing.B) {
	s := newBenchServer(b, "")
	store, err := tenancy.OpenStore(context.Background(), s.cfg.TenantDBPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "lazy-" + strconv.Itoa(i)
		rec := s.record(ids[i])
		// The directories exist, as they do for a tenant created before a
		// restart.
		for _, d := range []string{rec.DataDir, rec.UploadsDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := store.Upsert(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for _, id := range ids {
		s.mustGet(b, "/t/"+id+"/health")
	}
	b.StopTimer()
	if n := s.Registry().Len(); n != b.N {
		b.Fatalf("%d tenants loaded, want %d", n, b.N)
	}
}

// BenchmarkTenantMemory loads memTenants idle tenants (through the
// registry, as a PUT or a first request does) and reports what each costs:
// live heap+stack bytes after GC, RSS bytes after returning free memory to
// the OS, goroutines and OS threads. ns/op is the time to load all of them.
// Run it alone (RSS is the process's) and with -benchtime=1x.
func BenchmarkTenantMemory(b *testing.B) {
	const memTenants = 1000
	var heap, stack, rss, gor, thr float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newBenchServer(b, "")
		ctx := context.Background()
		h0, s0, g0 := benchMemStats()
		r0, t0 := benchProcSelf(b)
		b.StartTimer()
		for j := range memTenants {
			if _, err := s.Registry().Put(ctx, s.record("mem-"+strconv.Itoa(j))); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		time.Sleep(200 * time.Millisecond) // let the workers park
		h1, s1, g1 := benchMemStats()
		r1, t1 := benchProcSelf(b)
		if n := s.Registry().Len(); n != memTenants {
			b.Fatalf("%d tenants loaded", n)
		}
		heap += (float64(h1) - float64(h0)) / memTenants
		stack += (float64(s1) - float64(s0)) / memTenants
		rss += float64(r1-r0) / memTenants
		gor += float64(g1-g0) / memTenants
		thr += float64(t1-t0) / memTenants
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric((heap+stack)/n, "heap+stack-B/tenant")
	b.ReportMetric(stack/n, "stack-B/tenant")
	b.ReportMetric(rss/n, "rss-B/tenant")
	b.ReportMetric(gor/n, "goroutines/tenant")
	b.ReportMetric(thr/n, "threads/tenant")
}

// benchMemStats returns HeapInuse and StackInuse after a full GC (which also
// returns free memory to the OS, so that RSS read next is close to what is
// live), and the number of goroutines.
func benchMemStats() (heap, stack uint64, goroutines int) {
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse, runtime.NumGoroutine()
}

// benchProcSelf returns VmRSS (bytes) and Threads from /proc/self/status.
func benchProcSelf(b *testing.B) (rss, threads int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status:", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v * 1024
		case "Threads:":
			threads = v
		}
	}
	return rss, threads
}
