package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lectern/lectern/internal/logcap"
	"github.com/lectern/lectern/internal/server"
)

// shutdownTimeout bounds how long in-flight requests and workers get to
// finish after SIGINT/SIGTERM.
const shutdownTimeout = 20 * time.Second

const usage = `Lectern: a multi-tenant teaching-assistant server.

Usage:
  lectern serve [--addr HOST:PORT] [--demo]   start the server
  lectern tenants list|get|put|delete …       the tenant config store (lectern tenants help)
  lectern version                             module version and VCS revision of this binary
  lectern help                                this text

Environment: LECTERN_ADDR, DATA_DIR, UPLOADS_DIR, TENANT_DB_PATH, TENANT_ADMIN_KEY,
TENANT_DATA_ROOT, LLM_MAX_CONCURRENCY(_STUDENT|_TEACHER), OCR_MAX_CONCURRENCY,
CHAT_WORKER_POOL_SIZE, UPLOAD_MAX_MB, UPLOAD_MAX_FILES, JOB_QUEUE_MAX, SHEET_PARSE_MAX_CONCURRENCY,
BODY_IDLE_TIMEOUT_SEC, BODY_MIN_RATE_KB, CORS_ORIGINS, RATE_LIMIT_*, AUTH_REQUIRED,
AUTH_TOKEN_SECRET(_FILE), AUTH_ACCESS_TOKEN_TTL_SEC, ADMIN_USERNAME, ADMIN_PASSWORD, LOG_LEVEL. See README.md.
`

// run is the whole program: main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[1] {
	case "serve":
		return serve(ctx, args[2:], getenv, stdout, stderr)
	case "tenants":
		return tenantsCmd(ctx, args[2:], getenv, stdout, stderr)
	case "version", "--version":
		return versionCmd(args[2:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[1])
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (env LECTERN_ADDR)")
	withDemo := fs.Bool("demo", false, "create demo tenants with sample exams")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkAddr(cfg.Addr); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if err := checkOpenMode(cfg.Auth, cfg.Addr); err != nil {
		return err
	}
	// Every attribute is bounded: user strings reach logs through errors.
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var handler slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.LogFormat == "json" {
		handler = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(logcap.Wrap(handler, logcap.DefaultMax))

	if !cfg.Auth.Enabled {
		log.Warn("authentication is off (open mode): every caller is who it claims to be; set AUTH_TOKEN_SECRET or AUTH_REQUIRED=1 to require tokens")
	}
	srv, err := server.New(ctx, cfg.Server, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Close(cctx); err != nil {
			log.Error("shutdown", "err", err)
		}
	}()
	if *withDemo {
		ids, logins, err := srv.SeedDemo(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			fmt.Fprintf(stdout, "demo tenant %s: /t/%s/exams\n", id, id)
		}
		for _, l := range logins { // shown this once: they are not stored in clear
			fmt.Fprintf(stdout, "demo login (%s) %s %s, password %s\n", l.Tenant, l.Role, l.ID, l.Password)
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "lectern listening on http://%s\n", ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at shutdown", "err", err)
	}
	return nil
}
