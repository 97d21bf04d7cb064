package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAuth(t *testing.T) {
	long := strings.Repeat("s", 40)
	for _, c := range []struct {
		name    string
		env     map[string]string
		enabled bool
		err     string
	}{
		{"nothing: open", nil, false, ""},
		{"a secret turns it on", map[string]string{"AUTH_TOKEN_SECRET": long}, true, ""},
		{"explicitly off despite a secret", map[string]string{"AUTH_TOKEN_SECRET": long, "AUTH_REQUIRED": "0"}, false, ""},
		{"required generates a secret", map[string]string{"AUTH_REQUIRED": "yes"}, true, ""},
		{"short secret", map[string]string{"AUTH_TOKEN_SECRET": "short"}, false, "at least 32"},
		{"bad ttl", map[string]string{"AUTH_TOKEN_SECRET": long, "AUTH_ACCESS_TOKEN_TTL_SEC": "60"}, true, "AUTH_ACCESS_TOKEN_TTL_SEC"},
	} {
		dir := t.TempDir()
		a, err := loadAuth(func(k string) string { return c.env[k] }, dir)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || a.Enabled != c.enabled {
			t.Errorf("%s: %+v %v", c.name, a, err)
		}
		if c.name == "required generates a secret" {
			info, err := os.Stat(filepath.Join(dir, "_system", "auth_token_secret"))
			if err != nil || info.Mode().Perm() != 0o600 || len(a.Secret) < 32 {
				t.Errorf("generated secret: %v %v", info, err)
			}
			again, _ := loadAuth(func(k string) string { return c.env[k] }, dir)
			if string(again.Secret) != string(a.Secret) {
				t.Error("the generated secret is not read back")
			}
		}
	}
}

func TestCheckOpenMode(t *testing.T) {
	open := authSettings{}
	for addr, ok := range map[string]bool{"127.0.0.1:8000": true, "[::1]:8000": true, "localhost:8000": true, "0.0.0.0:8000": false, ":8000": false, "10.1.2.3:80": false} {
		if err := checkOpenMode(open, addr); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if checkOpenMode(authSettings{Explicit: true}, "0.0.0.0:8000") != nil || checkOpenMode(authSettings{Enabled: true}, ":8000") != nil {
		t.Error("AUTH_REQUIRED=0 or auth on must allow any address")
	}
}
