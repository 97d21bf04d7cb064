package tenantapp_test

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/tenancy"
	"github.com/lectern/lectern/internal/tenantapp"
)

// idleRegistry is a registry over a real store building real tenant apps,
// as the server's is.
func idleRegistry(t *testing.T) (*tenancy.Registry, *tenancy.Store, string) {
	t.Helper()
	root := t.TempDir()
	ctx := context.Background()
	store, err := tenancy.OpenStore(ctx, filepath.Join(root, "system", "tenants.sqlite3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	global := limits.NewSet(limits.TenantDefaults())
	reg := tenancy.NewRegistry(store, func(rec tenancy.Record) (*tenantapp.App, error) {
		return tenantapp.New(tenantapp.Settings{TenantID: rec.TenantID, DataDir: rec.DataDir, UploadsDir: rec.UploadsDir,
			Prefix: "/t/" + rec.TenantID, Limits: limits.TenantDefaults(), ChatWorkers: 4}, tenantapp.Shared{Global: global})
	}, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := reg.Close(ctx); err != nil {
			t.Error(err)
		}
		store.Close()
	})
	return reg, store, root
}

func idleRecord(root, id string) tenancy.Record {
	return tenancy.Record{TenantID: id, DataDir: filepath.Join(root, id, "data"),
		UploadsDir: filepath.Join(root, id, "uploads"), Enabled: true, Extra: map[string]any{}}
}

// settledGoroutines waits until the goroutine count is at most want (the
// runtime's and the registry's own come and go) and returns it.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A loaded idle tenant has no goroutine of its own, whether it was loaded
// by a PUT or by its first request, and after serving requests: its job
// workers start with work and are gone once it is done. Nor does it keep
// a router of its own: the tenants share one, so a hundred loaded tenants
// that each answered a request hold little heap each.
func TestLoadedIdleTenantKeepsNoGoroutine(t *testing.T) {
	reg, store, root := idleRegistry(t)
	ctx := context.Background()
	const n = 100
	// One tenant loaded first, so that what the first load of a process
	// makes once (the shared router) is not counted per tenant.
	if _, err := reg.Put(ctx, idleRecord(root, "warm")); err != nil {
		t.Fatal(err)
	}
	serve := func(id, path string) {
		w := httptest.NewRecorder()
		if err := reg.Serve(w, httptest.NewRequest("GET", path, nil), id); err != nil || w.Code != 200 {
			t.Fatalf("GET %s of %s: %d %v", path, id, w.Code, err)
		}
	}
	serve("warm", "/health")
	runtime.GC()
	g0 := runtime.NumGoroutine()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	for i := range n {
		id := fmt.Sprintf("idle-%03d", i)
		if i%2 == 0 { // loaded by a PUT, as the admin API does
			if _, err := reg.Put(ctx, idleRecord(root, id)); err != nil {
				t.Fatal(err)
			}
		} else { // stored, then loaded by its first request
			if _, err := store.Upsert(ctx, idleRecord(root, id)); err != nil {
				t.Fatal(err)
			}
		}
		serve(id, "/health")
		serve(id, "/exams")
	}
	if reg.Len() != n+1 {
		t.Fatalf("%d tenants loaded, want %d", reg.Len(), n+1)
	}
	if g := settledGoroutines(g0); g > g0 {
		t.Errorf("%d idle tenants loaded: %d goroutines, %d before: %.2f per tenant, want 0", n, g, g0, float64(g-g0)/n)
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	// About 15 KB today (without the race detector); a router per tenant
	// was 50 KB more, 9 parked workers' stacks about 37 KB.
	perTenant := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc)) / n
	t.Logf("heap per loaded idle tenant that answered two requests: %d B", perTenant)
	if perTenant > 48<<10 {
		t.Errorf("heap per loaded idle tenant %d B, want under 48 KiB", perTenant)
	}
	for _, st := range reg.Statuses() {
		for _, w := range st.Workers {
			if w.Busy != 0 || w.Queued != 0 {
				t.Errorf("worker %+v is not idle", w)
			}
		}
	}
}

// idleHeap names a file for BenchmarkIdleTenants to write the heap profile
// to while its tenants are loaded (with -test.memprofilerate=1 it shows
// every byte an idle tenant keeps, by where it was allocated).
var idleHeap = flag.String("idleheap", "", "BenchmarkIdleTenants: write the heap profile with the tenants loaded to this file")

// nopObserver stands for the server's metrics: every runner, limiter and
// meter of a tenant gets an observing closure, as in the server.
type nopObserver struct{}

func (nopObserver) ObserveJob(string, jobs.JobEvent)          {}
func (nopObserver) ObserveLLMCall(string, llm.CallEvent)      {}
func (nopObserver) ObserveLimitWait(string, limits.WaitEvent) {}

// BenchmarkIdleTenants builds, starts and sends one request to 1,000
// tenant apps, and reports what each keeps once idle: live heap after GC,
// goroutines and stack, and the time of each step. One op is 1,000
// tenants: run it with -benchtime=1x. The process's RSS per tenant is
// bench/tenancy.sh's (loadtool mem).
func BenchmarkIdleTenants(b *testing.B) {
	const n = 1000
	shared := tenantapp.Shared{Global: limits.NewSet(limits.TenantDefaults()), Observer: nopObserver{}}
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		apps := make([]*tenantapp.App, 0, n)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		var tNew, tStart, tFirst time.Duration
		b.StartTimer()
		for i := range n {
			id := fmt.Sprintf("t%04d", i)
			t0 := time.Now()
			a, err := tenantapp.New(tenantapp.Settings{TenantID: id, DataDir: filepath.Join(root, id, "data"),
				UploadsDir: filepath.Join(root, id, "uploads"), Prefix: "/t/" + id, Limits: limits.TenantDefaults(),
				ChatWorkers: 4, ProfileQueueMax: 500, JobQueueMax: 100}, shared)
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := a.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			w := httptest.NewRecorder()
			a.ServeHTTP(w, httptest.NewRequest("GET", "/health", nil))
			if w.Code != 200 {
				b.Fatalf("health: %d", w.Code)
			}
			tNew, tStart, tFirst = tNew+t1.Sub(t0), tStart+t2.Sub(t1), tFirst+time.Since(t2)
			apps = append(apps, a)
		}
		b.StopTimer()
		g1 := settledGoroutines(g0)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if *idleHeap != "" {
			f, err := os.Create(*idleHeap)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n, "heap-B/tenant")
		b.ReportMetric(float64(int64(m1.StackInuse)-int64(m0.StackInuse))/n, "stack-B/tenant")
		b.ReportMetric(float64(g1-g0)/n, "goroutines/tenant")
		b.ReportMetric(float64(tNew.Microseconds())/n, "new-us/tenant")
		b.ReportMetric(float64(tStart.Microseconds())/n, "start-us/tenant")
		b.ReportMetric(float64(tFirst.Microseconds())/n, "first-request-us/tenant")
		for _, a := range apps {
			if err := a.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}
