package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/lectern/lectern/internal/tenancy"
)

const tenantsUsage = `Usage:
  lectern tenants list                      every tenant record, as a JSON array
  lectern tenants get ID                    one record, as a JSON object
  lectern tenants put ID --data-dir D --uploads-dir U [--extra JSON] [--enabled=false]
                                            create or replace a record; prints the stored record
  lectern tenants delete ID                 remove a record

They work on the config store the server uses (TENANT_DB_PATH, default
./data/_system/tenants.sqlite3) and are safe while the server runs (SQLite in
WAL mode). Every running server on the store notices a changed, disabled or
deleted record within a second: a tenant it has loaded is rebuilt with the new
record (or unloaded), as after a PUT or DELETE through its admin API; a new
record that does not build leaves the loaded tenant serving as it was.
put checks the id, the two directories (non-empty absolute paths, resolved
through symbolic links, as the admin API stores them) and extra's limits as the
admin API does, TENANT_DATA_ROOT and overlaps with the server's and other
tenants' directories included; it does not build the tenant (the admin API does).
`

// tenantsCmd runs "lectern tenants …": one JSON value to stdout, errors as
// the returned error (main writes them to stderr and exits non-zero).
func tenantsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tenantsUsage)
		return errors.New("tenants: no subcommand given")
	}
	sub, args := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, tenantsUsage)
		return nil
	}
	var (
		id    string // the tenant named, for get, put and delete
		do    func(context.Context, *tenancy.Store) (any, error)
		rules tenancy.DirRules
	)
	switch sub {
	case "list":
		if len(args) != 0 {
			return usageErr(stderr, "tenants list takes no arguments")
		}
		do = func(ctx context.Context, s *tenancy.Store) (any, error) { return s.List(ctx, false) }
	case "get", "delete":
		if len(args) != 1 {
			return usageErr(stderr, fmt.Sprintf("tenants %s takes one tenant id", sub))
		}
		id = args[0]
		if !tenancy.ValidTenantID(id) {
			return badID(id)
		}
		do = func(ctx context.Context, s *tenancy.Store) (any, error) {
			if sub == "get" {
				return s.Get(ctx, id)
			}
			if err := s.Delete(ctx, id); err != nil {
				return nil, err
			}
			return map[string]any{"tenant_id": id, "deleted": true}, nil
		}
	case "put":
		rec, err := parsePut(args, stderr)
		if err != nil {
			return err
		}
		id = rec.TenantID
		do = func(ctx context.Context, s *tenancy.Store) (any, error) {
			var err error
			rec.DataDir, rec.UploadsDir, err = tenancy.CheckDirs(ctx, s, rules, id, rec.DataDir, rec.UploadsDir)
			if err != nil {
				return nil, err
			}
			return s.Upsert(ctx, rec)
		}
	default:
		return usageErr(stderr, fmt.Sprintf("unknown tenants subcommand %q", sub))
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	// The admin API's rules: inside TENANT_DATA_ROOT, clear of the server's
	// own directories and of every other tenant's.
	rules = tenancy.DirRules{DataRoot: cfg.Server.DataRoot,
		Reserved: []string{cfg.Server.DataDir, cfg.Server.UploadsDir, filepath.Dir(cfg.Server.TenantDBPath)}}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := tenancy.OpenStore(ctx, cfg.Server.TenantDBPath, log)
	if err != nil {
		return err
	}
	defer store.Close()
	out, err := do(ctx, store)
	if errors.Is(err, tenancy.ErrNotFound) {
		return fmt.Errorf("tenant %s: %w", id, err)
	}
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// parsePut reads "ID --data-dir D --uploads-dir U [--extra JSON]
// [--enabled=BOOL]" (the id before or after the flags) and validates the
// record with the admin API's exported checks.
func parsePut(args []string, stderr io.Writer) (tenancy.Record, error) {
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("tenants put", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the tenant's data directory (absolute)")
	uploadsDir := fs.String("uploads-dir", "", "the tenant's uploads directory (absolute)")
	extra := fs.String("extra", "{}", "the tenant's extra config, a JSON object (limits, …)")
	enabled := fs.Bool("enabled", true, "whether the tenant is served")
	if err := fs.Parse(args); err != nil {
		return tenancy.Record{}, err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() != 0 {
		return tenancy.Record{}, usageErr(stderr, fmt.Sprintf("tenants put: unexpected arguments %q", fs.Args()))
	}
	if id == "" {
		return tenancy.Record{}, usageErr(stderr, "tenants put takes one tenant id")
	}
	if !tenancy.ValidTenantID(id) {
		return tenancy.Record{}, badID(id)
	}
	rec := tenancy.Record{TenantID: id, Enabled: *enabled}
	dec := json.NewDecoder(strings.NewReader(*extra))
	if err := dec.Decode(&rec.Extra); err != nil || rec.Extra == nil || !onlySpace(*extra, dec) {
		return tenancy.Record{}, fmt.Errorf("--extra must be one JSON object, got %q", *extra)
	}
	if _, err := tenancy.Limits(rec.Extra); err != nil {
		return tenancy.Record{}, fmt.Errorf("--extra: %w", err)
	}
	// Each directory on its own first, before the store opens; against
	// the server's and the other tenants' with it (CheckDirs).
	for _, d := range []struct {
		flag, value string
		dst         *string
	}{{"--data-dir", *dataDir, &rec.DataDir}, {"--uploads-dir", *uploadsDir, &rec.UploadsDir}} {
		p, err := tenancy.ResolveDir(d.value)
		if err != nil {
			return tenancy.Record{}, fmt.Errorf("%s %v", d.flag, err)
		}
		*d.dst = p
	}
	return rec, nil
}

// onlySpace reports whether nothing but white space follows what dec read.
func onlySpace(s string, dec *json.Decoder) bool {
	return len(bytes.TrimSpace([]byte(s[dec.InputOffset():]))) == 0
}

func badID(id string) error {
	return fmt.Errorf("invalid tenant id %q: must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", id)
}

func usageErr(stderr io.Writer, msg string) error {
	fmt.Fprint(stderr, tenantsUsage)
	return errors.New(msg)
}
