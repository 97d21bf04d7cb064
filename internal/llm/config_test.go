package llm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "providers.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigEmptyEnv(t *testing.T) {
	cfg, err := llm.ConfigFromEnv(envOf(nil))
	if err != nil || cfg.Configured() {
		t.Fatalf("cfg %v err %v", cfg, err)
	}
	// Timeout and retry alone are fine (and still validated).
	if _, err := llm.ConfigFromEnv(envOf(map[string]string{"LLM_TIMEOUT_SEC": "30", "LLM_RETRY": "2"})); err != nil {
		t.Fatal(err)
	}
}

func TestConfigSimpleEnv(t *testing.T) {
	cfg, err := llm.ConfigFromEnv(envOf(map[string]string{
		"LLM_BASE_URL": " https://api.deepseek.com/v1/ ", "LLM_API_KEY": "sk-1", "LLM_MODEL": "deepseek-chat",
		"LLM_TIMEOUT_SEC": "45.5", "LLM_RETRY": "2",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []llm.Provider{{Name: "default", BaseURL: "https://api.deepseek.com/v1", APIKey: "sk-1", Model: "deepseek-chat",
		Timeout: 45500 * time.Millisecond, MaxAttempts: 2}}
	if !reflect.DeepEqual(cfg.Providers, want) || !cfg.Configured() {
		t.Fatalf("providers %v", cfg.Providers)
	}

	cfg, err = llm.ConfigFromEnv(envOf(map[string]string{"LLM_BASE_URL": "http://127.0.0.1:11434/v1", "LLM_MODEL": "qwen"}))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers[0]
	if p.APIKey != "" || p.Timeout != 120*time.Second || p.MaxAttempts != 3 {
		t.Fatalf("defaults: %v", p)
	}
}

func TestConfigBadValuesNameTheVariable(t *testing.T) {
	base := map[string]string{"LLM_BASE_URL": "https://x.test/v1", "LLM_MODEL": "m"}
	cases := []struct {
		key, value, wantPrefix string
	}{
		{"LLM_TIMEOUT_SEC", "0", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "none", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "inf", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "Infinity", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "null", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "-5", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "NaN", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "601", "LLM_TIMEOUT_SEC: "},
		{"LLM_TIMEOUT_SEC", "2m", "LLM_TIMEOUT_SEC: "},
		{"LLM_RETRY", "0", "LLM_RETRY: "},
		{"LLM_RETRY", "11", "LLM_RETRY: "},
		{"LLM_RETRY", "1.5", "LLM_RETRY: "},
		{"LLM_RETRY", "many", "LLM_RETRY: "},
		{"LLM_BASE_URL", "ftp://x.test", "LLM_BASE_URL: "},
		{"LLM_BASE_URL", "api.openai.com/v1", "LLM_BASE_URL: "},
		{"LLM_BASE_URL", "https://", "LLM_BASE_URL: "},
		{"LLM_BASE_URL", "https://x.test/v1?key=1", "LLM_BASE_URL: "},
		{"LLM_MODEL", "", "LLM_MODEL: "},
		{"LLM_PROVIDERS_FILE", "/does/not/exist.json", "LLM_PROVIDERS_FILE: "},
	}
	for _, c := range cases {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			env[c.key] = c.value
			_, err := llm.ConfigFromEnv(envOf(env))
			if err == nil || !strings.HasPrefix(err.Error(), c.wantPrefix) {
				t.Fatalf("err = %v, want prefix %q", err, c.wantPrefix)
			}
		})
	}
	// The largest timeout is accepted.
	env := map[string]string{"LLM_BASE_URL": "https://x.test", "LLM_MODEL": "m", "LLM_TIMEOUT_SEC": "600"}
	if cfg, err := llm.ConfigFromEnv(envOf(env)); err != nil || cfg.Providers[0].Timeout != 600*time.Second {
		t.Fatalf("600: %v %v", cfg, err)
	}
}

func TestConfigKeyWithoutTarget(t *testing.T) {
	for _, k := range []string{"LLM_API_KEY", "LLM_MODEL"} {
		_, err := llm.ConfigFromEnv(envOf(map[string]string{k: "x"}))
		if err == nil || !strings.HasPrefix(err.Error(), "LLM_BASE_URL: ") {
			t.Fatalf("%s alone: err = %v", k, err)
		}
	}
}

const chainFile = `{
  "providers": [
    {"name": "deepseek", "base_url": "https://api.deepseek.com/v1", "api_key_env": "DEEPSEEK_API_KEY", "model": "deepseek-chat", "timeout_sec": 60, "max_attempts": 2},
    {"name": "local", "base_url": "http://127.0.0.1:11434/v1/", "model": "qwen2.5:7b", "headers": {"X-Client": "lectern"}},
    {"name": "kimi", "base_url": "https://api.moonshot.ai/v1", "api_key_env": "MOONSHOT_API_KEY", "model": "moonshot-v1-8k"},
    {"name": "shared", "base_url": "https://llm.example.org/v1", "api_key_env": "LLM_API_KEY", "model": "m"}
  ],
  "fallback_chain": ["kimi", "deepseek", "local", "shared"]
}`

func TestConfigFileWithChain(t *testing.T) {
	path := writeFile(t, chainFile)
	cfg, err := llm.ConfigFromEnv(envOf(map[string]string{
		"LLM_PROVIDERS_FILE": path, "LLM_TIMEOUT_SEC": "90", "LLM_RETRY": "4",
		"DEEPSEEK_API_KEY": "sk-deepseek", "MOONSHOT_API_KEY": "sk-kimi", "LLM_API_KEY": "sk-shared", "OPENAI_API_KEY": "sk-openai",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []llm.Provider{
		{Name: "kimi", BaseURL: "https://api.moonshot.ai/v1", APIKey: "sk-kimi", Model: "moonshot-v1-8k", Timeout: 90 * time.Second, MaxAttempts: 4},
		{Name: "deepseek", BaseURL: "https://api.deepseek.com/v1", APIKey: "sk-deepseek", Model: "deepseek-chat", Timeout: 60 * time.Second, MaxAttempts: 2},
		{Name: "local", BaseURL: "http://127.0.0.1:11434/v1", Model: "qwen2.5:7b", Timeout: 90 * time.Second, MaxAttempts: 4,
			Headers: map[string]string{"X-Client": "lectern"}},
		{Name: "shared", BaseURL: "https://llm.example.org/v1", APIKey: "sk-shared", Model: "m", Timeout: 90 * time.Second, MaxAttempts: 4},
	}
	if !reflect.DeepEqual(cfg.Providers, want) {
		t.Fatalf("providers\n got %v\nwant %v", cfg.Providers, want)
	}
}

func TestConfigFileOrderWithoutChain(t *testing.T) {
	path := writeFile(t, `{"providers":[{"name":"b","base_url":"http://b.test","model":"m"},{"name":"a","base_url":"http://a.test","model":"m"}]}`)
	cfg, err := llm.ConfigFromEnv(envOf(map[string]string{"LLM_PROVIDERS_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Providers) != 2 || cfg.Providers[0].Name != "b" || cfg.Providers[1].Name != "a" {
		t.Fatalf("providers %v", cfg.Providers)
	}
}

func TestConfigEnvAndFile(t *testing.T) {
	path := writeFile(t, `{"providers":[{"name":"backup","base_url":"http://backup.test/v1","model":"small"}]}`)
	cfg, err := llm.ConfigFromEnv(envOf(map[string]string{
		"LLM_PROVIDERS_FILE": path, "LLM_BASE_URL": "https://main.test/v1", "LLM_API_KEY": "sk-main", "LLM_MODEL": "big",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Providers) != 2 {
		t.Fatalf("providers %v", cfg.Providers)
	}
	main, backup := cfg.Providers[0], cfg.Providers[1]
	if main.Name != "default" || main.APIKey != "sk-main" || main.Model != "big" {
		t.Fatalf("main %v", main)
	}
	// Neither LLM_API_KEY nor LLM_MODEL leaks into the fallback.
	if backup.Name != "backup" || backup.APIKey != "" || backup.Model != "small" {
		t.Fatalf("backup %v", backup)
	}

	// "default" is taken by the env provider.
	path = writeFile(t, `{"providers":[{"name":"default","base_url":"http://x.test","model":"m"}]}`)
	_, err = llm.ConfigFromEnv(envOf(map[string]string{"LLM_PROVIDERS_FILE": path, "LLM_BASE_URL": "https://main.test", "LLM_MODEL": "m"}))
	if err == nil || !strings.HasPrefix(err.Error(), "LLM_PROVIDERS_FILE: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigFileErrors(t *testing.T) {
	p := func(extra string) string {
		return `{"name":"a","base_url":"http://a.test","model":"m"` + extra + `}`
	}
	cases := map[string]string{
		"not json":             `{"providers":`,
		"no providers":         `{"providers":[]}`,
		"inline key rejected":  `{"providers":[` + p(`,"api_key":"sk-x"`) + `]}`,
		"unknown top field":    `{"providers":[` + p("") + `],"fallback":["a"]}`,
		"unknown chain name":   `{"providers":[` + p("") + `],"fallback_chain":["a","b"]}`,
		"chain duplicate":      `{"providers":[` + p("") + `],"fallback_chain":["a","a"]}`,
		"duplicate name":       `{"providers":[` + p("") + `,` + p("") + `]}`,
		"empty name":           `{"providers":[{"base_url":"http://a.test","model":"m"}]}`,
		"no model":             `{"providers":[{"name":"a","base_url":"http://a.test"}]}`,
		"bad url":              `{"providers":[{"name":"a","base_url":"a.test","model":"m"}]}`,
		"key env unset":        `{"providers":[` + p(`,"api_key_env":"UNSET_KEY"`) + `]}`,
		"key env invalid name": `{"providers":[` + p(`,"api_key_env":"not a name"`) + `]}`,
		"timeout zero":         `{"providers":[` + p(`,"timeout_sec":0`) + `]}`,
		"timeout too big":      `{"providers":[` + p(`,"timeout_sec":3600`) + `]}`,
		"timeout string":       `{"providers":[` + p(`,"timeout_sec":"none"`) + `]}`,
		"attempts zero":        `{"providers":[` + p(`,"max_attempts":0`) + `]}`,
		"bad header name":      `{"providers":[` + p(`,"headers":{"X Bad":"1"}`) + `]}`,
		"bad header value":     `{"providers":[` + p(`,"headers":{"X-Ok":"a\nb"}`) + `]}`,
		"trailing data":        `{"providers":[` + p("") + `]} {}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := llm.ConfigFromEnv(envOf(map[string]string{"LLM_PROVIDERS_FILE": writeFile(t, content)}))
			if err == nil || !strings.HasPrefix(err.Error(), "LLM_PROVIDERS_FILE: ") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// LLM_MODEL with only a file would silently do nothing: an error.
	_, err := llm.ConfigFromEnv(envOf(map[string]string{"LLM_PROVIDERS_FILE": writeFile(t, `{"providers":[`+p("")+`]}`), "LLM_MODEL": "x"}))
	if err == nil || !strings.HasPrefix(err.Error(), "LLM_MODEL: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigPrintingHidesKeys(t *testing.T) {
	cfg := llm.Config{Providers: []llm.Provider{{Name: "a", BaseURL: "http://a.test", APIKey: "sk-secret-123", Model: "m"}}}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, cfg); strings.Contains(s, "sk-secret-123") {
			t.Fatalf("%s prints the key: %s", f, s)
		}
	}
}

// TestConfigKeysReachOnlyTheirProvider runs a file-configured chain end to
// end: LLM_API_KEY is set, but only the provider that names it gets it.
func TestConfigKeysReachOnlyTheirProvider(t *testing.T) {
	a, b, c := llmtest.NewServer(t), llmtest.NewServer(t), llmtest.NewServer(t)
	a.Script(llmtest.Step{Status: 500})
	b.Script(llmtest.Step{Status: 404})
	file := fmt.Sprintf(`{"providers":[
		{"name":"a","base_url":%q,"api_key_env":"A_KEY","model":"ma","max_attempts":2},
		{"name":"b","base_url":%q,"model":"mb"},
		{"name":"c","base_url":%q,"api_key_env":"LLM_API_KEY","model":"mc"}]}`, a.URL, b.URL, c.URL)
	cfg, err := llm.ConfigFromEnv(envOf(map[string]string{
		"LLM_PROVIDERS_FILE": writeFile(t, file), "A_KEY": "sk-a", "LLM_API_KEY": "sk-global",
	}))
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway(&sleeper{}, cfg.Providers...)
	resp, err := gw.Chat(context.Background(), llm.Request{Messages: userMsg("x")}, nil)
	if err != nil || resp.Provider != "c" {
		t.Fatalf("err %v resp %+v", err, resp)
	}
	check := func(srv *llmtest.Server, n int, auth, model string) {
		t.Helper()
		reqs := srv.Requests()
		if len(reqs) != n {
			t.Fatalf("%d requests, want %d", len(reqs), n)
		}
		for _, r := range reqs {
			if r.Authorization != auth || r.Model != model {
				t.Fatalf("auth %q model %q, want %q %q", r.Authorization, r.Model, auth, model)
			}
		}
	}
	check(a, 2, "Bearer sk-a", "ma")
	check(b, 1, "", "mb")
	check(c, 1, "Bearer sk-global", "mc")
}
