package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultTimeout is the per-attempt timeout when none is configured.
	DefaultTimeout = 120 * time.Second
	// MaxTimeout is the largest per-attempt timeout. LLM_TIMEOUT_SEC and
	// timeout_sec above it are rejected; a programmatic Provider.Timeout
	// above it is clamped to it.
	MaxTimeout = 600 * time.Second
	// DefaultMaxAttempts is the number of attempts per target (including the
	// first) when none is configured.
	DefaultMaxAttempts = 3
	// MaxMaxAttempts is the most attempts per target; larger values are
	// rejected by ConfigFromEnv and clamped by NewGateway.
	MaxMaxAttempts = 10
	// DefaultProviderName names the provider that LLM_BASE_URL gives.
	DefaultProviderName = "default"
)

// Provider is one OpenAI-compatible endpoint.
type Provider struct {
	Name    string
	BaseURL string // e.g. https://api.deepseek.com/v1; /chat/completions is appended
	APIKey  string // sent only to this provider, as "Authorization: Bearer <key>"; empty → no header
	Model   string
	// Timeout bounds one HTTP attempt (<= 0 → DefaultTimeout, clamped to
	// MaxTimeout).
	Timeout time.Duration
	// MaxAttempts is the number of attempts on this provider, including the
	// first (<= 0 → DefaultMaxAttempts, clamped to MaxMaxAttempts).
	MaxAttempts int
	// Headers are extra request headers. Content-Type is always
	// application/json, and Authorization is replaced when APIKey is set.
	Headers map[string]string
}

// String describes the provider without its key, so that printing a Config
// (with %v or %+v) never leaks a secret.
func (p Provider) String() string {
	key := "none"
	if p.APIKey != "" {
		key = "set"
	}
	return fmt.Sprintf("{%s %s model=%s key=%s timeout=%s attempts=%d}",
		p.Name, p.BaseURL, p.Model, key, p.Timeout, p.MaxAttempts)
}

// GoString is String, for %#v.
func (p Provider) GoString() string { return "llm.Provider" + p.String() }

// Config is the provider chain: the first provider is the default target and
// the rest are fallbacks, tried in order.
type Config struct {
	Providers []Provider
}

// Configured reports whether there is at least one provider.
func (c Config) Configured() bool { return len(c.Providers) > 0 }

// Environment variables read by ConfigFromEnv.
const (
	EnvBaseURL       = "LLM_BASE_URL"
	EnvAPIKey        = "LLM_API_KEY"
	EnvModel         = "LLM_MODEL"
	EnvTimeoutSec    = "LLM_TIMEOUT_SEC"
	EnvRetry         = "LLM_RETRY"
	EnvProvidersFile = "LLM_PROVIDERS_FILE"
)

// maxProvidersFile bounds the size of LLM_PROVIDERS_FILE.
const maxProvidersFile = 1 << 20

// ConfigFromEnv builds the provider chain from the environment (see the
// package documentation for the rules). getenv is usually os.Getenv. Every
// error names the variable at fault. An environment with neither
// LLM_BASE_URL nor LLM_PROVIDERS_FILE gives an empty Config and no error.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }

	timeout := DefaultTimeout
	if v := get(EnvTimeoutSec); v != "" {
		d, err := parseTimeoutSec(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", EnvTimeoutSec, err)
		}
		timeout = d
	}
	attempts := DefaultMaxAttempts
	if v := get(EnvRetry); v != "" {
		n, err := parseAttempts(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", EnvRetry, err)
		}
		attempts = n
	}

	baseURL, file := get(EnvBaseURL), get(EnvProvidersFile)
	var cfg Config
	if baseURL != "" {
		u, err := normalizeBaseURL(baseURL)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", EnvBaseURL, err)
		}
		model := get(EnvModel)
		if model == "" {
			return Config{}, fmt.Errorf("%s: required when %s is set", EnvModel, EnvBaseURL)
		}
		cfg.Providers = append(cfg.Providers, Provider{
			Name:        DefaultProviderName,
			BaseURL:     u,
			APIKey:      get(EnvAPIKey),
			Model:       model,
			Timeout:     timeout,
			MaxAttempts: attempts,
		})
	}
	switch {
	case file != "":
		if baseURL == "" && get(EnvModel) != "" {
			return Config{}, fmt.Errorf("%s: applies only to %s; set \"model\" per provider in %s", EnvModel, EnvBaseURL, EnvProvidersFile)
		}
		ps, err := loadProvidersFile(file, getenv, timeout, attempts, baseURL != "")
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", EnvProvidersFile, err)
		}
		cfg.Providers = append(cfg.Providers, ps...)
	case baseURL == "":
		// A key or model with nowhere to send it is a mistake worth
		// reporting at startup rather than a silently disabled gateway.
		for _, k := range []string{EnvAPIKey, EnvModel} {
			if get(k) != "" {
				return Config{}, fmt.Errorf("%s: required because %s is set (or set %s)", EnvBaseURL, k, EnvProvidersFile)
			}
		}
	}
	return cfg, nil
}

var noTimeoutWords = map[string]bool{
	"0": true, "none": true, "inf": true, "+inf": true, "infinity": true,
	"null": true, "unlimited": true, "never": true, "off": true,
}

func parseTimeoutSec(v string) (time.Duration, error) {
	if noTimeoutWords[strings.ToLower(v)] {
		return 0, fmt.Errorf("%q would mean no timeout; every LLM call needs a finite timeout: use a number of seconds in (0, %d]", v, int(MaxTimeout/time.Second))
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("must be a number of seconds in (0, %d], got %q", int(MaxTimeout/time.Second), v)
	}
	return timeoutFromSeconds(f, v)
}

func timeoutFromSeconds(f float64, raw string) (time.Duration, error) {
	d := time.Duration(f * float64(time.Second))
	if f <= 0 || d <= 0 || f > MaxTimeout.Seconds() {
		return 0, fmt.Errorf("must be a number of seconds in (0, %d], got %s", int(MaxTimeout/time.Second), raw)
	}
	return d, nil
}

func parseAttempts(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxMaxAttempts {
		return 0, fmt.Errorf("must be the number of attempts per target, an integer in [1, %d], got %q", MaxMaxAttempts, v)
	}
	return n, nil
}

// normalizeBaseURL checks that s is an absolute http(s) URL without query or
// fragment and strips trailing slashes.
func normalizeBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("must be an http:// or https:// URL, got %q", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("has no host: %q", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("must not carry a query, fragment or user info: %q", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// providersFile is the JSON shape of LLM_PROVIDERS_FILE.
type providersFile struct {
	Providers     []fileProvider `json:"providers"`
	FallbackChain []string       `json:"fallback_chain"`
}

type fileProvider struct {
	Name        string            `json:"name"`
	BaseURL     string            `json:"base_url"`
	APIKeyEnv   string            `json:"api_key_env"`
	Model       string            `json:"model"`
	TimeoutSec  *float64          `json:"timeout_sec"`
	MaxAttempts *int              `json:"max_attempts"`
	Headers     map[string]string `json:"headers"`
}

var (
	providerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerNameRE   = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func loadProvidersFile(path string, getenv func(string) string, timeout time.Duration, attempts int, haveEnvProvider bool) ([]Provider, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProvidersFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxProvidersFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxProvidersFile)
	}
	var pf providersFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", path)
	}
	if len(pf.Providers) == 0 {
		return nil, fmt.Errorf("%s: no providers", path)
	}

	byName := make(map[string]Provider, len(pf.Providers))
	order := make([]string, 0, len(pf.Providers))
	for i, fp := range pf.Providers {
		p, err := fp.provider(getenv, timeout, attempts)
		if err != nil {
			if fp.Name != "" {
				return nil, fmt.Errorf("providers[%d] (%q): %w", i, fp.Name, err)
			}
			return nil, fmt.Errorf("providers[%d]: %w", i, err)
		}
		if _, dup := byName[p.Name]; dup {
			return nil, fmt.Errorf("providers[%d]: duplicate name %q", i, p.Name)
		}
		if haveEnvProvider && p.Name == DefaultProviderName {
			return nil, fmt.Errorf("providers[%d]: the name %q is taken by %s", i, DefaultProviderName, EnvBaseURL)
		}
		byName[p.Name] = p
		order = append(order, p.Name)
	}
	if len(pf.FallbackChain) > 0 {
		seen := make(map[string]bool, len(pf.FallbackChain))
		for i, name := range pf.FallbackChain {
			if _, ok := byName[name]; !ok {
				return nil, fmt.Errorf("fallback_chain[%d]: unknown provider %q", i, name)
			}
			if seen[name] {
				return nil, fmt.Errorf("fallback_chain[%d]: %q listed twice", i, name)
			}
			seen[name] = true
		}
		order = pf.FallbackChain
	}
	out := make([]Provider, 0, len(order))
	for _, name := range order {
		out = append(out, byName[name])
	}
	return out, nil
}

func (fp fileProvider) provider(getenv func(string) string, timeout time.Duration, attempts int) (Provider, error) {
	p := Provider{Name: strings.TrimSpace(fp.Name), Model: strings.TrimSpace(fp.Model), Timeout: timeout, MaxAttempts: attempts}
	if !providerNameRE.MatchString(p.Name) {
		return Provider{}, fmt.Errorf("name: must match %s, got %q", providerNameRE, fp.Name)
	}
	u, err := normalizeBaseURL(strings.TrimSpace(fp.BaseURL))
	if err != nil {
		return Provider{}, fmt.Errorf("base_url: %w", err)
	}
	p.BaseURL = u
	if p.Model == "" {
		return Provider{}, errors.New("model: required")
	}
	if env := strings.TrimSpace(fp.APIKeyEnv); env != "" {
		if !envNameRE.MatchString(env) {
			return Provider{}, fmt.Errorf("api_key_env: not a variable name: %q", env)
		}
		p.APIKey = strings.TrimSpace(getenv(env))
		if p.APIKey == "" {
			return Provider{}, fmt.Errorf("api_key_env: %s is empty or not set", env)
		}
	}
	if fp.TimeoutSec != nil {
		d, err := timeoutFromSeconds(*fp.TimeoutSec, strconv.FormatFloat(*fp.TimeoutSec, 'g', -1, 64))
		if err != nil {
			return Provider{}, fmt.Errorf("timeout_sec: %w", err)
		}
		p.Timeout = d
	}
	if fp.MaxAttempts != nil {
		n := *fp.MaxAttempts
		if n < 1 || n > MaxMaxAttempts {
			return Provider{}, fmt.Errorf("max_attempts: must be an integer in [1, %d], got %d", MaxMaxAttempts, n)
		}
		p.MaxAttempts = n
	}
	if len(fp.Headers) > 0 {
		p.Headers = make(map[string]string, len(fp.Headers))
		for k, v := range fp.Headers {
			if !headerNameRE.MatchString(k) {
				return Provider{}, fmt.Errorf("headers: invalid header name %q", k)
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				return Provider{}, fmt.Errorf("headers: invalid value for %q", k)
			}
			p.Headers[k] = v
		}
	}
	return p, nil
}
