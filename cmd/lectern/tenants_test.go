package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/tenancy"
)

// tenantsEnv is a getenv whose config store is a fresh file under a temp
// directory (DATA_DIR too, so nothing is read from the working directory).
func tenantsEnv(t *testing.T) (getenv func(string) string, dir, dbPath string) {
	t.Helper()
	dir = t.TempDir()
	dbPath = filepath.Join(dir, "data", "_system", "tenants.sqlite3")
	return envFrom(map[string]string{
		"DATA_DIR":       filepath.Join(dir, "data"),
		"UPLOADS_DIR":    filepath.Join(dir, "uploads"),
		"TENANT_DB_PATH": dbPath,
	}), dir, dbPath
}

// runTenants runs "lectern tenants args…" and returns stdout, stderr and
// the error.
func runTenants(t *testing.T, getenv func(string) string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut strings.Builder
	err := run(context.Background(), append([]string{"lectern", "tenants"}, args...), getenv, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestTenantsPutListGetDelete(t *testing.T) {
	getenv, dir, dbPath := tenantsEnv(t)
	data, uploads := filepath.Join(dir, "t", "school1", "data"), filepath.Join(dir, "t", "school1", "uploads")

	out, _, err := runTenants(t, getenv, "put", "school1", "--data-dir", data, "--uploads-dir", uploads,
		"--extra", `{"limits":{"llm_total":3}}`)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	var put tenancy.Record
	if err := json.Unmarshal([]byte(out), &put); err != nil {
		t.Fatalf("put output %q: %v", out, err)
	}
	wantData, _ := tenancy.ResolveDir(data)
	if put.TenantID != "school1" || !put.Enabled || put.DataDir != wantData || put.UpdatedAt == "" {
		t.Fatalf("put answered %+v", put)
	}
	// Flags before the id work too; a second tenant, disabled.
	if _, _, err := runTenants(t, getenv, "put", "--data-dir", filepath.Join(dir, "t2", "d"),
		"--uploads-dir", filepath.Join(dir, "t2", "u"), "--enabled=false", "school2"); err != nil {
		t.Fatalf("put school2: %v", err)
	}

	out, _, err = runTenants(t, getenv, "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var list []tenancy.Record
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list output %q: %v", out, err)
	}
	if len(list) != 2 || list[0].TenantID != "school1" || list[1].TenantID != "school2" || list[1].Enabled {
		t.Fatalf("list = %+v", list)
	}

	out, _, err = runTenants(t, getenv, "get", "school1")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	var got tenancy.Record
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("get output %q: %v", out, err)
	}
	if lim, err := tenancy.Limits(got.Extra); err != nil || lim.LLMTotal != 3 {
		t.Fatalf("get: extra %v gives limits %+v, %v", got.Extra, lim, err)
	}

	// What the server reads: the same file through its own Store.
	store, err := tenancy.OpenStore(context.Background(), dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if r, err := store.Get(context.Background(), "school1"); err != nil || r.UploadsDir == "" {
		t.Fatalf("store.Get = %+v, %v", r, err)
	}

	out, _, err = runTenants(t, getenv, "delete", "school1")
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	var del map[string]any
	if err := json.Unmarshal([]byte(out), &del); err != nil || del["tenant_id"] != "school1" || del["deleted"] != true {
		t.Fatalf("delete output %q: %v", out, err)
	}
	if _, err := store.Get(context.Background(), "school1"); !errors.Is(err, tenancy.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, _, err := runTenants(t, getenv, "get", "school1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("get after delete: %v", err)
	}
	if _, _, err := runTenants(t, getenv, "delete", "school1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestTenantsRefusals(t *testing.T) {
	getenv, dir, dbPath := tenantsEnv(t)
	d, u := filepath.Join(dir, "d"), filepath.Join(dir, "u")
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"bad id put":       {[]string{"put", "../evil", "--data-dir", d, "--uploads-dir", u}, "invalid tenant id"},
		"bad id get":       {[]string{"get", "-x"}, "invalid tenant id"},
		"bad id delete":    {[]string{"delete", "a b"}, "invalid tenant id"},
		"relative dir":     {[]string{"put", "s1", "--data-dir", "rel/data", "--uploads-dir", u}, "--data-dir"},
		"empty uploads":    {[]string{"put", "s1", "--data-dir", d}, "--uploads-dir is empty"},
		"extra not object": {[]string{"put", "s1", "--data-dir", d, "--uploads-dir", u, "--extra", "[1]"}, "--extra"},
		"extra trailing":   {[]string{"put", "s1", "--data-dir", d, "--uploads-dir", u, "--extra", "{} {}"}, "--extra"},
		"bad limit":        {[]string{"put", "s1", "--data-dir", d, "--uploads-dir", u, "--extra", `{"ocr":0}`}, "ocr"},
		"no id":            {[]string{"get"}, "one tenant id"},
		"two ids":          {[]string{"put", "a", "b", "--data-dir", d, "--uploads-dir", u}, "unexpected"},
		"unknown sub":      {[]string{"frob"}, "unknown"},
		"none":             {nil, "no subcommand"},
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := runTenants(t, getenv, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if out != "" {
				t.Fatalf("stdout on error: %q", out)
			}
		})
	}
	// Refusals stored nothing (a refused put never opened the store).
	if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("store created by refused commands: %v", err)
	}
	out, _, err := runTenants(t, getenv, "list")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list = %q, %v", out, err)
	}
}

func TestTenantsHelp(t *testing.T) {
	getenv, _, _ := tenantsEnv(t)
	out, _, err := runTenants(t, getenv, "help")
	if err != nil || !strings.Contains(out, "within a second") {
		t.Fatalf("help = %q, %v", out, err)
	}
	if err := run(context.Background(), []string{"lectern", "help"}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// put applies the admin API's directory rules: never inside the server's
// own directories, never overlapping another tenant's, data and uploads
// apart.
func TestTenantsPutDirectoryRules(t *testing.T) {
	getenv, dir, _ := tenantsEnv(t)
	a := filepath.Join(dir, "t", "a")
	if _, _, err := runTenants(t, getenv, "put", "a", "--data-dir", a+"/data", "--uploads-dir", a+"/uploads"); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		data, uploads, want string
	}{
		"inside a's data":      {a + "/data/b", dir + "/t/b/uploads", "overlaps a directory of tenant a"},
		"the server's data":    {dir + "/data/b", dir + "/t/b/uploads", "belongs to the server"},
		"uploads inside data":  {dir + "/t/b/data", dir + "/t/b/data/up", "two separate directories"},
		"the server's uploads": {dir + "/t/b/data", dir + "/uploads", "belongs to the server"},
	} {
		if _, _, err := runTenants(t, getenv, "put", "b", "--data-dir", c.data, "--uploads-dir", c.uploads); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
	if out, _, _ := runTenants(t, getenv, "list"); strings.Contains(out, `"b"`) {
		t.Fatalf("a refused put was stored: %s", out)
	}
}
