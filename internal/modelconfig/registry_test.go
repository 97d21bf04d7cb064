package modelconfig

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

const secretKey = "sk-live-7Qw9ZpL2xV4mN8rT1yU6"

// The round trip: a teacher adds a provider, sees only its masked key
// (also on disk), chooses it for conversations, sees that through the
// routing view, and their chat goes to it with their key, while another
// teacher's and a student's go to the tenant's provider.
func TestPrivateProviderRoundTrip(t *testing.T) {
	e := newEnv(t)
	s := e.service(func(c *Config) { c.AllowPrivateProbe = true }) // the fake provider listens on 127.0.0.1
	srv := api(t, s)
	own := llmtest.NewServer(t)
	own.Respond(func(llmtest.Recorded) llmtest.Step { return llmtest.Step{Reply: "来自私有模型"} })

	r := must(t, call(t, srv, "t_alpha", "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "my_llm", "display_name": "我的模型", "base_url": own.URL + "/v1/", "api_key": secretKey,
		"default_model": "own-model"}), 200)
	if strings.Contains(r.raw, secretKey) {
		t.Fatalf("create answered the key: %s", r.raw)
	}
	if got := get(r.body, "provider", "api_key_masked"); got != "sk-l****1yU6" {
		t.Errorf("masked key %v", got)
	}
	if got := get(r.body, "provider", "base_url"); got != own.URL+"/v1" {
		t.Errorf("base_url %v: the trailing slash should be stripped", got)
	}

	r = must(t, call(t, srv, "t_alpha", "GET", "/teacher/provider-registry", nil), 200)
	if strings.Contains(r.raw, secretKey) {
		t.Fatalf("the list answered the key: %s", r.raw)
	}
	if get(r.body, "providers", 0, "id") != "my_llm" || get(r.body, "providers", 0, "api_key_status") != "ok" ||
		get(r.body, "providers", 0, "source") != "private" || get(r.body, "providers", 0, "default_mode") != ModeChat {
		t.Errorf("providers: %s", r.raw)
	}
	if get(r.body, "catalog", "defaults", "provider") != "school" || len(get(r.body, "catalog", "providers").([]any)) != 2 {
		t.Errorf("catalog: %v", get(r.body, "catalog"))
	}
	if get(r.body, "config_path") != "teacher_workspaces/t_alpha/provider_registry.json" {
		t.Errorf("config_path %v", get(r.body, "config_path"))
	}
	if files := filesContaining(t, e.dir, secretKey); len(files) > 0 {
		t.Fatalf("the key is stored in clear in %v", files)
	}
	if files := filesContaining(t, e.dir, "sk-l****"); len(files) == 0 {
		t.Fatal("no file holds the masked key: is the registry where the predecessor kept it?")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "teacher_workspaces", "t_alpha", "provider_registry_audit.jsonl")); err != nil {
		t.Errorf("audit log: %v", err)
	}

	r = must(t, call(t, srv, "t_alpha", "PUT", "/teacher/model-config", map[string]any{
		"models": map[string]any{"conversation": map[string]any{"provider": "my_llm"}}}), 200)
	want := map[string]any{"provider": "my_llm", "mode": ModeChat, "model": "own-model"}
	if got := get(r.body, "config", "models", "conversation"); !sameJSON(got, want) {
		t.Fatalf("conversation after PUT: %v", got)
	}
	r = must(t, call(t, srv, "t_alpha", "GET", "/teacher/model-config", nil), 200)
	if got := get(r.body, "config", "models", "conversation"); !sameJSON(got, want) {
		t.Fatalf("conversation after GET: %v", got)
	}
	if get(r.body, "config", "models", "ocr", "provider") != "school" {
		t.Errorf("ocr should stay on the default: %v", get(r.body, "config", "models"))
	}

	r = must(t, call(t, srv, "t_alpha", "GET", "/teacher/llm-routing", nil), 200)
	if get(r.body, "routing", "enabled") != true || get(r.body, "routing", "channels", 0, "target", "provider") != "my_llm" ||
		get(r.body, "routing", "rules", 0, "match", "roles", 0) != "teacher" || get(r.body, "routing", "version") != float64(1) {
		t.Fatalf("routing view: %s", r.raw)
	}
	if get(r.body, "history", 0, "version") != float64(1) || get(r.body, "history", 0, "source") != "model_config" {
		t.Errorf("history: %v", get(r.body, "history"))
	}

	// The teacher's chat goes to their provider with their key, within the
	// tenant's meter.
	c := s.ClientFor("t_alpha", e.base)
	if c == e.base || c.Tenant != e.base.Tenant || c.Global != e.base.Global || c.Meter != e.base.Meter {
		t.Fatal("ClientFor must keep the tenant's limits and meter on a new gateway")
	}
	if resp := chat(t, c); resp.Content != "来自私有模型" || resp.Provider != "my_llm" {
		t.Fatalf("answered by %s: %q", resp.Provider, resp.Content)
	}
	reqs := own.Requests()
	if len(reqs) != 1 || reqs[0].Authorization != "Bearer "+secretKey || reqs[0].Model != "own-model" || reqs[0].Path != "/v1/chat/completions" {
		t.Fatalf("the private provider got %+v", reqs)
	}
	if n := e.base.Meter.Snapshot().Calls; n != 1 {
		t.Errorf("tenant meter counted %d calls, want 1", n)
	}
	if s.ClientFor("t_alpha", e.base).Gateway != c.Gateway {
		t.Error("the teacher's gateway should be cached while the settings do not change")
	}

	// Another teacher, and a student naming the teacher, get the tenant's.
	if s.ClientFor("t_beta", e.base) != e.base {
		t.Fatal("another teacher must get the tenant's client")
	}
	student := caller.Principal{Role: caller.RoleStudent, TeacherID: "t_alpha", StudentID: "S001", Via: caller.Token}
	if s.ClientForCaller(student, e.base) != e.base {
		t.Fatal("a student must never get a teacher's provider")
	}
	chat(t, s.ClientFor("t_beta", e.base))
	if got := e.school.Requests(); len(got) != 1 || strings.Contains(got[0].Authorization, secretKey) {
		t.Fatalf("the school's provider got %+v", got)
	}
	if len(own.Requests()) != 1 {
		t.Fatal("another teacher's chat reached the private provider")
	}
	r = must(t, call(t, srv, "t_beta", "GET", "/teacher/provider-registry", nil), 200)
	if n := len(get(r.body, "providers").([]any)); n != 0 {
		t.Fatalf("t_beta sees %d providers of t_alpha's", n)
	}
	r = must(t, call(t, srv, "t_beta", "PUT", "/teacher/model-config", map[string]any{
		"models": map[string]any{"conversation": map[string]any{"provider": "my_llm"}}}), 400)
	if !strings.Contains(r.raw, "my_llm") {
		t.Errorf("refusal should name the provider: %s", r.raw)
	}

	// A new key is used at once (the gateway is rebuilt).
	const rotated = "sk-rotated-0000111122223333"
	must(t, call(t, srv, "t_alpha", "PATCH", "/teacher/provider-registry/providers/my_llm", map[string]any{"api_key": rotated}), 200)
	chat(t, s.ClientFor("t_alpha", e.base))
	if reqs := own.Requests(); reqs[len(reqs)-1].Authorization != "Bearer "+rotated {
		t.Fatalf("after rotation the provider got %q", reqs[len(reqs)-1].Authorization)
	}

	// Deleted: the teacher is back on the tenant's provider, and told why.
	must(t, call(t, srv, "t_alpha", "DELETE", "/teacher/provider-registry/providers/my_llm", map[string]any{}), 200)
	if s.ClientFor("t_alpha", e.base) != e.base {
		t.Fatal("a deleted provider must not be used")
	}
	r = must(t, call(t, srv, "t_alpha", "GET", "/teacher/model-config", nil), 200)
	if get(r.body, "config", "models", "conversation", "provider") != "school" || len(get(r.body, "warnings").([]any)) == 0 {
		t.Fatalf("after delete: %s", r.raw)
	}
	r = must(t, call(t, srv, "t_alpha", "GET", "/teacher/provider-registry", nil), 200)
	if get(r.body, "providers", 0, "enabled") != false || get(r.body, "providers", 0, "deleted_at") == nil {
		t.Errorf("delete is a soft disable: %s", r.raw)
	}
	must(t, call(t, srv, "t_alpha", "DELETE", "/teacher/provider-registry/providers/nope", nil), 404)
}

func sameJSON(got any, want map[string]any) bool {
	m, ok := got.(map[string]any)
	if !ok || len(m) != len(want) {
		return false
	}
	for k, v := range want {
		if m[k] != v {
			return false
		}
	}
	return true
}

func TestProviderValidation(t *testing.T) {
	e := newEnv(t)
	srv := api(t, e.service(nil))
	for _, c := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"no key", map[string]any{"base_url": "https://api.example.com/v1"}, "api_key_required"},
		{"ftp", map[string]any{"base_url": "ftp://api.example.com", "api_key": secretKey}, "invalid_base_url"},
		{"query", map[string]any{"base_url": "https://api.example.com/v1?x=1", "api_key": secretKey}, "invalid_base_url"},
		{"credentials", map[string]any{"base_url": "https://u:p@api.example.com/v1", "api_key": secretKey}, "invalid_base_url"},
		{"loopback", map[string]any{"base_url": "http://127.0.0.1:11434/v1", "api_key": secretKey}, "unsafe_base_url"},
		{"localhost", map[string]any{"base_url": "http://localhost:8000/v1", "api_key": secretKey}, "unsafe_base_url"},
		{"metadata", map[string]any{"base_url": "http://169.254.169.254/latest", "api_key": secretKey}, "unsafe_base_url"},
		{"bad id", map[string]any{"provider_id": "../x", "base_url": "https://api.example.com", "api_key": secretKey}, "invalid_provider_id"},
		{"shared id", map[string]any{"provider_id": "school", "base_url": "https://api.example.com", "api_key": secretKey}, "provider_id_conflicts_shared"},
		{"key with newline", map[string]any{"base_url": "https://api.example.com", "api_key": "sk-a\nX-Evil: 1"}, "invalid_api_key"},
	} {
		r := must(t, call(t, srv, "t1_teacher", "POST", "/teacher/provider-registry/providers", c.body), 400)
		if r.detail()["error"] != c.code {
			t.Errorf("%s: %s, want %s", c.name, r.raw, c.code)
		}
	}
	r := must(t, call(t, srv, "t1_teacher", "POST", "/teacher/provider-registry/providers", map[string]any{
		"display_name": "DeepSeek 中转", "base_url": "https://api.example.com/v1", "api_key": "short"}), 200)
	id, _ := get(r.body, "provider", "id").(string)
	if !strings.HasPrefix(id, "tprv_deepseek_") || get(r.body, "provider", "api_key_masked") != "*****" {
		t.Errorf("generated provider: %s", r.raw)
	}
	r = must(t, call(t, srv, "t1_teacher", "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": id, "base_url": "https://api.example.com/v1", "api_key": secretKey}), 400)
	if r.detail()["error"] != "provider_id_exists" {
		t.Errorf("duplicate: %s", r.raw)
	}
	must(t, call(t, srv, "t1_teacher", "PATCH", "/teacher/provider-registry/providers/nope", map[string]any{"display_name": "x"}), 404)
	must(t, call(t, srv, "t1_teacher", "POST", "/teacher/provider-registry/providers", map[string]any{"unknown": 1}), 400)
	// PATCH with an empty base_url and api_key keeps both.
	r = must(t, call(t, srv, "t1_teacher", "PATCH", "/teacher/provider-registry/providers/"+id,
		map[string]any{"base_url": "", "api_key": "", "default_model": "deepseek-chat"}), 200)
	if get(r.body, "provider", "base_url") != "https://api.example.com/v1" || get(r.body, "provider", "api_key_masked") != "*****" ||
		get(r.body, "provider", "default_model") != "deepseek-chat" {
		t.Errorf("patch: %s", r.raw)
	}
}

// Without a master key nothing can be sealed: a clear 503, and the rest
// still answers.
func TestNoMasterKey(t *testing.T) {
	e := newEnv(t)
	srv := api(t, e.service(func(c *Config) { c.MasterKey = nil }))
	r := must(t, call(t, srv, "t1_teacher", "POST", "/teacher/provider-registry/providers", map[string]any{
		"base_url": "https://api.example.com/v1", "api_key": secretKey}), 503)
	if r.detail()["error"] != "master_key_missing" || len(r.detail()["hints"].([]any)) == 0 {
		t.Fatalf("no master key: %s", r.raw)
	}
	r = must(t, call(t, srv, "t1_teacher", "GET", "/teacher/provider-registry", nil), 200)
	if r.body["master_key_configured"] != false {
		t.Errorf("GET: %s", r.raw)
	}
	must(t, call(t, srv, "t1_teacher", "GET", "/teacher/model-config", nil), 200)
	if _, err := os.Stat(filepath.Join(e.dir, "teacher_workspaces")); !os.IsNotExist(err) {
		t.Errorf("a refused write or a GET created files: %v", err)
	}
}

// A server restarted with another master key reports the stored keys as
// unreadable (and why), falls back to the tenant's provider, and takes a
// key entered again.
func TestWrongMasterKey(t *testing.T) {
	e := newEnv(t)
	own := llmtest.NewServer(t)
	first := e.service(func(c *Config) { c.AllowPrivateProbe = true })
	srv := api(t, first)
	must(t, call(t, srv, "t_alpha", "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "mine", "base_url": own.URL, "api_key": secretKey, "default_model": "m"}), 200)
	must(t, call(t, srv, "t_alpha", "PUT", "/teacher/model-config", map[string]any{
		"models": map[string]any{"conversation": map[string]any{"provider": "mine"}}}), 200)

	e.key = testKey(t)
	second := e.service(func(c *Config) { c.AllowPrivateProbe = true })
	srv2 := api(t, second)
	r := must(t, call(t, srv2, "t_alpha", "GET", "/teacher/provider-registry", nil), 200)
	if get(r.body, "providers", 0, "api_key_status") != "master_key_mismatch" || get(r.body, "providers", 0, "api_key_masked") != "sk-l****1yU6" {
		t.Fatalf("registry under another master key: %s", r.raw)
	}
	r = must(t, call(t, srv2, "t_alpha", "POST", "/teacher/provider-registry/providers/mine/probe-models", map[string]any{}), 503)
	if r.detail()["error"] != "provider_key_unreadable" || r.detail()["reason"] != "master_key_mismatch" {
		t.Fatalf("probe: %s", r.raw)
	}
	if second.ClientFor("t_alpha", e.base) != e.base {
		t.Fatal("an unreadable key must leave the teacher on the tenant's client")
	}
	must(t, call(t, srv2, "t_alpha", "PATCH", "/teacher/provider-registry/providers/mine", map[string]any{"api_key": secretKey}), 200)
	chat(t, second.ClientFor("t_alpha", e.base))
	if reqs := own.Requests(); len(reqs) != 1 || reqs[0].Authorization != "Bearer "+secretKey {
		t.Fatalf("after re-entering the key: %+v", reqs)
	}

	// Without any master key the key is reported missing, not a crash.
	none := e.service(func(c *Config) { c.MasterKey = nil })
	r = must(t, call(t, api(t, none), "t_alpha", "GET", "/teacher/provider-registry", nil), 200)
	if get(r.body, "providers", 0, "api_key_status") != "master_key_missing" {
		t.Errorf("no master key: %s", r.raw)
	}
	if none.ClientFor("t_alpha", e.base) != e.base {
		t.Error("no master key: the tenant's client")
	}
}

// The predecessor's sealed keys are read with LEGACY_MASTER_KEY and
// re-sealed on the next write.
func TestLegacySealedKey(t *testing.T) {
	e := newEnv(t)
	own := llmtest.NewServer(t)
	dir := filepath.Join(e.dir, "teacher_workspaces", "t_alpha")
	os.MkdirAll(dir, 0o755)
	blob := legacySeal("dev-master-key-unsafe-change-me", secretKey)
	os.WriteFile(filepath.Join(dir, "provider_registry.json"), []byte(`{"schema_version":1,"providers":[{"id":"old_one",
		"display_name":"旧","base_url":"`+own.URL+`","api_key_encrypted":"`+blob+`","api_key_masked":"sk-l****1yU6",
		"default_model":"legacy-model","enabled":true}]}`), 0o600)
	os.WriteFile(filepath.Join(dir, "model_config.json"), []byte(`{"schema_version":1,"models":{"conversation":{"provider":"old_one","mode":"openai-chat","model":""}}}`), 0o644)

	plain := e.service(func(c *Config) { c.AllowPrivateProbe = true })
	r := must(t, call(t, api(t, plain), "t_alpha", "GET", "/teacher/provider-registry", nil), 200)
	if get(r.body, "providers", 0, "api_key_status") != "legacy_master_key_missing" {
		t.Fatalf("without the legacy secret: %s", r.raw)
	}
	s := e.service(func(c *Config) { c.AllowPrivateProbe = true; c.LegacySecret = "dev-master-key-unsafe-change-me" })
	chat(t, s.ClientFor("t_alpha", e.base))
	if reqs := own.Requests(); len(reqs) != 1 || reqs[0].Authorization != "Bearer "+secretKey || reqs[0].Model != "legacy-model" {
		t.Fatalf("legacy key: %+v", reqs)
	}
	must(t, call(t, api(t, s), "t_alpha", "PATCH", "/teacher/provider-registry/providers/old_one", map[string]any{"display_name": "新"}), 200)
	data, _ := os.ReadFile(filepath.Join(dir, "provider_registry.json"))
	if strings.Contains(string(data), blob) {
		t.Fatal("the legacy blob should be re-sealed on write")
	}
	r = must(t, call(t, api(t, plain), "t_alpha", "GET", "/teacher/provider-registry", nil), 200)
	if get(r.body, "providers", 0, "api_key_status") != "ok" {
		t.Fatalf("re-sealed key unreadable without the legacy secret: %s", r.raw)
	}
}

// The probe refuses non-public destinations, literal or by name, before
// any connection; with the switch on it reaches a local provider.
func TestProbe(t *testing.T) {
	e := newEnv(t)
	own := llmtest.NewServer(t)
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host == "rebind.test" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}
	open := e.service(func(c *Config) { c.AllowPrivateProbe = true; c.LookupIP = lookup })
	openAPI := api(t, open)
	port := own.URL[strings.LastIndexByte(own.URL, ':'):]
	for id, base := range map[string]string{
		"p_loop": own.URL, "p_ten": "http://10.0.0.1/v1", "p_meta": "http://169.254.169.254/latest",
		"p_name": "http://rebind.test" + port + "/v1", "p_mapped": "http://[::ffff:127.0.0.1]" + port,
	} {
		must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers", map[string]any{
			"provider_id": id, "base_url": base, "api_key": secretKey, "default_model": "own-model"}), 200)
	}

	closed := api(t, e.service(func(c *Config) { c.LookupIP = lookup }))
	for _, id := range []string{"p_loop", "p_ten", "p_meta", "p_name", "p_mapped"} {
		r := must(t, call(t, closed, "t_alpha", "POST", "/teacher/provider-registry/providers/"+id+"/probe-models", map[string]any{}), 400)
		if r.detail()["error"] != "unsafe_probe_target" || !strings.Contains(r.raw, EnvAllowPrivate) {
			t.Errorf("%s: %s", id, r.raw)
		}
	}
	if n := len(own.Requests()); n != 0 {
		t.Fatalf("a refused probe reached the server %d times", n)
	}

	r := must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers/p_loop/probe-models", nil), 200)
	if get(r.body, "models", 0) != "own-model" || r.body["method"] != "chat" {
		t.Fatalf("probe of the fake provider: %s", r.raw)
	}
	if reqs := own.Requests(); len(reqs) != 1 || reqs[0].Authorization != "Bearer "+secretKey || reqs[0].Body["max_tokens"] != float64(1) {
		t.Fatalf("probe call: %+v", reqs)
	}

	// A server with /models: its ids, sorted and de-duplicated.
	var auth atomic.Value
	models := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"data":[{"id":"qwen"},{"id":"deepseek-chat"},{"id":"qwen"},{"id":""}]}`))
	}))
	t.Cleanup(models.Close)
	must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "p_models", "base_url": models.URL + "/v1", "api_key": secretKey}), 200)
	r = must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers/p_models/probe-models", map[string]any{}), 200)
	if got := get(r.body, "models"); len(got.([]any)) != 2 || get(got, 0) != "deepseek-chat" || get(got, 1) != "qwen" || auth.Load() != "Bearer "+secretKey {
		t.Fatalf("models probe: %s (auth %v)", r.raw, auth.Load())
	}

	// Failures are reported in the predecessor's shape.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		w.Write([]byte(`{"error":"bad key ` + r.Header.Get("Authorization") + `"}`))
	}))
	t.Cleanup(failing.Close)
	must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "p_fail", "base_url": failing.URL, "api_key": secretKey}), 200)
	r = must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers/p_fail/probe-models", nil), 400)
	if r.detail()["error"] != "probe_failed" || r.detail()["status_code"] != float64(401) || strings.Contains(r.raw, secretKey) {
		t.Fatalf("failed probe: %s", r.raw)
	}
	// A school provider is answered from its configuration, not called.
	r = must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers/school/probe-models", nil), 200)
	if get(r.body, "models", 0) != "school-model" || len(e.school.Requests()) != 0 {
		t.Fatalf("shared probe: %s", r.raw)
	}
	must(t, call(t, openAPI, "t_alpha", "POST", "/teacher/provider-registry/providers/nope/probe-models", nil), 404)
	must(t, call(t, openAPI, "t_beta", "POST", "/teacher/provider-registry/providers/p_loop/probe-models", nil), 404)
}

// A teacher whose private provider points at a private address (saved
// while the switch was on) is refused at chat time too, and served by the
// tenant's provider.
func TestChatRefusesPrivateAddress(t *testing.T) {
	e := newEnv(t)
	own := llmtest.NewServer(t)
	srv := api(t, e.service(func(c *Config) { c.AllowPrivateProbe = true }))
	must(t, call(t, srv, "t_alpha", "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "mine", "base_url": own.URL, "api_key": secretKey, "default_model": "m"}), 200)
	must(t, call(t, srv, "t_alpha", "PUT", "/teacher/model-config", map[string]any{
		"models": map[string]any{"conversation": map[string]any{"provider": "mine"}}}), 200)
	closed := e.service(nil)
	c := closed.ClientFor("t_alpha", e.base)
	if c != e.base {
		t.Fatal("a private address must not be used with the switch off")
	}
	chat(t, c)
	if len(own.Requests()) != 0 || len(e.school.Requests()) != 1 {
		t.Fatalf("own %d, school %d requests", len(own.Requests()), len(e.school.Requests()))
	}
}

func TestLoadMasterKey(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	b64File := filepath.Join(dir, "key.txt")
	os.WriteFile(b64File, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	rawFile := filepath.Join(dir, "key.bin")
	raw := append([]byte{0x01, 0xff}, key[2:]...)
	os.WriteFile(rawFile, raw, 0o600)
	for _, c := range []struct {
		name string
		env  map[string]string
		want []byte
		err  string
	}{
		{"none", nil, nil, ""},
		{"hex", map[string]string{EnvMasterKey: hex.EncodeToString(key)}, key, ""},
		{"base64", map[string]string{EnvMasterKey: base64.StdEncoding.EncodeToString(key)}, key, ""},
		{"base64url raw", map[string]string{EnvMasterKeyCompat: base64.RawURLEncoding.EncodeToString(key)}, key, ""},
		{"file", map[string]string{EnvMasterKeyFile: b64File}, key, ""},
		{"raw file", map[string]string{EnvMasterKeyCompatFile: rawFile}, raw, ""},
		{"precedence", map[string]string{EnvMasterKey: hex.EncodeToString(key), EnvMasterKeyCompat: "whatever"}, key, ""},
		{"passphrase", map[string]string{EnvMasterKeyCompat: "dev-master-key-unsafe-change-me"}, nil, EnvLegacyMasterKey},
		{"32 characters of text", map[string]string{EnvMasterKey: "abcdefghijklmnopqrstuvwxyz012345"}, nil, EnvMasterKey},
		{"zeros", map[string]string{EnvMasterKey: strings.Repeat("00", 32)}, nil, "zeros"},
		{"missing file", map[string]string{EnvMasterKeyFile: filepath.Join(dir, "nope")}, nil, EnvMasterKeyFile},
	} {
		got, err := LoadMasterKey(func(k string) string { return c.env[k] })
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: err %v, want one mentioning %s", c.name, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err == "" && string(got) != string(c.want):
			t.Errorf("%s: wrong key", c.name)
		}
		if err != nil && c.env != nil {
			for _, v := range c.env {
				if len(v) > 8 && strings.Contains(err.Error(), v) && !strings.HasPrefix(v, dir) {
					t.Errorf("%s: the error echoes the value: %v", c.name, err)
				}
			}
		}
	}
	if !AllowPrivateFromEnv(func(string) string { return "true" }) || AllowPrivateFromEnv(func(string) string { return "" }) {
		t.Error("AllowPrivateFromEnv")
	}
}

func TestBlockedAddresses(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "10.0.0.1": true, "172.16.5.4": true, "192.168.1.1": true, "169.254.169.254": true,
		"0.0.0.0": true, "100.64.0.1": true, "224.0.0.1": true, "255.255.255.255": true, "::1": true, "::": true,
		"fe80::1": true, "fc00::1": true, "ff02::1": true, "::ffff:127.0.0.1": true, "::ffff:10.1.2.3": true,
		"64:ff9b::7f00:1": true, "2002:7f00:1::": true, "198.18.0.1": true,
		"93.184.216.34": false, "8.8.8.8": false, "2606:4700:4700::1111": false, "64:ff9b::808:808": false,
	} {
		if got := blockedReason(netip.MustParseAddr(addr)) != ""; got != blocked {
			t.Errorf("%s: blocked=%v, want %v", addr, got, blocked)
		}
	}
	g := newGuard(false, func(ctx context.Context, host string) ([]netip.Addr, error) {
		// a name whose answers mix a public and a loopback address
		return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")}, nil
	})
	if _, err := g.dialContext(context.Background(), "tcp", "mixed.test:80"); err == nil {
		t.Error("a name with one loopback answer must be refused")
	} else if _, ok := asBlocked(err); !ok {
		t.Errorf("refusal %v is not a blockedError", err)
	}
	// The socket-level check, whatever resolved the name.
	for _, a := range []string{"127.0.0.1:80", "[::1]:443", "[::ffff:169.254.169.254]:80", "10.0.0.1:8080"} {
		if err := g.control("tcp", a, nil); err == nil {
			t.Errorf("control let %s through", a)
		}
	}
	if err := g.control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control refused a public address: %v", err)
	}
	if err := newGuard(true, nil).control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("with the switch on: %v", err)
	}
}
