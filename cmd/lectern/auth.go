package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/layout"
)

// authSettings is what the environment says about authentication.
type authSettings struct {
	// Enabled: AUTH_REQUIRED truthy, or (unset) a token secret is set.
	Enabled bool
	// Explicit: AUTH_REQUIRED was set (to either value).
	Explicit bool
	Secret   []byte
	TTL      time.Duration
}

// loadAuth reads AUTH_REQUIRED, AUTH_TOKEN_SECRET, AUTH_TOKEN_SECRET_FILE
// and AUTH_ACCESS_TOKEN_TTL_SEC as the predecessor did: with
// AUTH_REQUIRED=1 and no secret anywhere, one is generated into the secret
// file (mode 0600). dataDir is where the default secret file lives.
func loadAuth(getenv func(string) string, dataDir string) (authSettings, error) {
	var s authSettings
	req := strings.ToLower(strings.TrimSpace(getenv("AUTH_REQUIRED")))
	s.Explicit = req != ""
	truthy := req == "1" || req == "true" || req == "yes" || req == "on"

	secret := strings.TrimSpace(getenv("AUTH_TOKEN_SECRET"))
	file := strings.TrimSpace(getenv("AUTH_TOKEN_SECRET_FILE"))
	if file == "" {
		file = layout.Tenant{DataDir: dataDir}.AuthTokenSecret()
	}
	if secret == "" {
		if b, err := os.ReadFile(file); err == nil {
			secret = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return s, fmt.Errorf("AUTH_TOKEN_SECRET_FILE: %w", err)
		}
	}
	if secret == "" && truthy {
		b := make([]byte, 48)
		rand.Read(b)
		secret = base64.RawURLEncoding.EncodeToString(b)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return s, fmt.Errorf("AUTH_TOKEN_SECRET_FILE: %w", err)
		}
		if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
			return s, fmt.Errorf("AUTH_TOKEN_SECRET_FILE: %w", err)
		}
	}
	s.Enabled = truthy || (!s.Explicit && secret != "")
	if s.Enabled {
		if len(secret) < 32 {
			return s, errors.New("AUTH_TOKEN_SECRET: must be at least 32 characters")
		}
		s.Secret = []byte(secret)
	}
	s.TTL = 8 * time.Hour
	if v := strings.TrimSpace(getenv("AUTH_ACCESS_TOKEN_TTL_SEC")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 300 {
			return s, fmt.Errorf("AUTH_ACCESS_TOKEN_TTL_SEC: must be a whole number of seconds, at least 300, got %q", v)
		}
		s.TTL = time.Duration(n) * time.Second
	}
	return s, nil
}

// checkOpenMode refuses to serve without authentication on an address
// other machines can reach, unless AUTH_REQUIRED=0 says so explicitly.
func checkOpenMode(a authSettings, addr string) error {
	if a.Enabled || a.Explicit {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to serve %s without authentication: set AUTH_TOKEN_SECRET (or AUTH_REQUIRED=1), "+
		"or AUTH_REQUIRED=0 to serve it open on purpose", addr)
}
