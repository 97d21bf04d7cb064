package tenantapp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/httpjson"
)

// Check is one readiness check: Run returns nil when the thing it checks
// is usable.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// CheckTimeout bounds one round of readiness checks; a check still running
// then is reported as timed out.
const CheckTimeout = 2 * time.Second

// ReadyOptions configure [WithReadiness].
type ReadyOptions struct {
	// Strict makes GET /health answer 503 {"status":"degraded","checks":…}
	// when a check fails (HEALTH_STRICT=1). Off, /health is untouched.
	Strict bool
	// Checks run besides the tenant's own (DATA_DIR and UPLOADS_DIR
	// writable), e.g. the server's config store.
	Checks []Check
}

// DirChecks are the tenant's own checks: its DATA_DIR ("data_dir") and
// UPLOADS_DIR ("uploads_dir") are writable.
func (a *App) DirChecks() []Check {
	return []Check{
		{Name: "data_dir", Run: func(context.Context) error { return DirWritable(a.settings.DataDir) }},
		{Name: "uploads_dir", Run: func(context.Context) error { return DirWritable(a.settings.UploadsDir) }},
	}
}

// DirWritable creates and removes a temporary file in dir; it leaves
// nothing behind. A directory not made yet (a tenant's directories are
// made by their first write) is writable when it can be made.
func DirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".lectern-ready-*")
	if errors.Is(err, fs.ErrNotExist) {
		return creatable(dir)
	}
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// WithReadiness serves GET /ready in front of app: 200 {"status":"ready"}
// when every check passes, else 503 {"status":"not_ready","checks":{name:
// "ok" or the error}}. With o.Strict, GET /health answers 503
// {"status":"degraded","checks":…} when a check fails, and is app's own
// answer otherwise. Every other request goes to app unchanged. Concurrent
// requests share one round of checks, so a hung disk costs one round at a
// time, not one per request.
func WithReadiness(app *App, o ReadyOptions) http.Handler {
	return &readiness{app: app, checks: append(app.DirChecks(), o.Checks...), strict: o.Strict}
}

type readiness struct {
	app    *App
	checks []Check
	strict bool

	mu  sync.Mutex
	cur *checkRound // the round running, nil when none
}

type checkRound struct {
	done    chan struct{}
	results map[string]string
	ok      bool
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		switch r.URL.Path {
		case "/ready":
			if res, ok := rd.check(r.Context()); !ok {
				httpjson.Write(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "checks": res})
				return
			}
			httpjson.WriteRaw(w, http.StatusOK, readyBody)
			return
		case "/health":
			if rd.strict {
				if res, ok := rd.check(r.Context()); !ok {
					httpjson.Write(w, http.StatusServiceUnavailable, map[string]any{"status": "degraded", "checks": res})
					return
				}
			}
		}
	}
	rd.app.ServeHTTP(w, r)
}

var readyBody = []byte(`{"status":"ready"}`)

// check joins the round running or starts one, and waits for it (or for
// ctx: the request's client left).
func (rd *readiness) check(ctx context.Context) (map[string]string, bool) {
	rd.mu.Lock()
	c := rd.cur
	if c == nil {
		c = &checkRound{done: make(chan struct{})}
		rd.cur = c
		go rd.run(c)
	}
	rd.mu.Unlock()
	select {
	case <-c.done:
		return c.results, c.ok
	case <-ctx.Done():
		return map[string]string{"request": ctx.Err().Error()}, false
	}
}

// run runs every check at once, each bounded by CheckTimeout.
func (rd *readiness) run(c *checkRound) {
	ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	out := make(chan result, len(rd.checks))
	for _, ch := range rd.checks {
		go func() {
			var err error
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("check panicked: %v", p)
				}
				out <- result{ch.Name, err}
			}()
			err = ch.Run(ctx)
		}()
	}
	c.results = make(map[string]string, len(rd.checks))
	c.ok = true
	for _, ch := range rd.checks {
		c.results[ch.Name] = "timeout"
	}
	for range rd.checks {
		select {
		case res := <-out:
			if res.err != nil {
				c.results[res.name] = res.err.Error()
				c.ok = false
			} else {
				c.results[res.name] = "ok"
			}
		case <-ctx.Done():
			c.ok = false
			goto finished
		}
	}
finished:
	rd.mu.Lock()
	rd.cur = nil
	rd.mu.Unlock()
	close(c.done)
}
