package modelconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// twoProviderEnv is a tenant whose chain is school, then backup.
func twoProviderEnv(t *testing.T) (*env, *llmtest.Server) {
	e := newEnv(t)
	backup := llmtest.NewServer(t)
	e.shared.Providers = append(e.shared.Providers, llm.Provider{Name: "backup", BaseURL: backup.URL, Model: "backup-model",
		Timeout: 5 * time.Second, MaxAttempts: 1})
	e.base = &llm.Client{Gateway: llm.NewGateway(e.shared, llm.Options{}), Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
	return e, backup
}

func channel(id, provider, model string) map[string]any {
	return map[string]any{"id": id, "title": id, "target": map[string]any{"provider": provider, "mode": ModeChat, "model": model}}
}

func rule(id, channelID string, match map[string]any) map[string]any {
	return map[string]any{"id": id, "priority": 100, "match": match, "route": map[string]any{"channel_id": channelID}}
}

// The older app's routing page, end to end over the model settings.
func TestRoutingView(t *testing.T) {
	e, _ := twoProviderEnv(t)
	own := llmtest.NewServer(t)
	s := e.service(func(c *Config) { c.AllowPrivateProbe = true })
	srv := api(t, s)
	const tid = "t_alpha"
	must(t, call(t, srv, tid, "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "mine", "base_url": own.URL, "api_key": secretKey, "default_model": "own-model"}), 200)

	r := must(t, call(t, srv, tid, "GET", "/teacher/llm-routing", nil), 200)
	if get(r.body, "routing", "enabled") != false || len(get(r.body, "routing", "channels").([]any)) != 0 ||
		len(get(r.body, "history").([]any)) != 0 || len(get(r.body, "catalog", "providers").([]any)) != 3 {
		t.Fatalf("initial view: %s", r.raw)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "teacher_workspaces", tid, "model_config.json")); !os.IsNotExist(err) {
		t.Fatal("a GET wrote the model config")
	}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/simulate", map[string]any{"kind": "chat.agent", "needs_tools": true}), 200)
	if get(r.body, "decision", "reason") != "routing_disabled" || get(r.body, "effective", "provider") != "school" {
		t.Fatalf("simulate disabled: %s", r.raw)
	}

	cfg := map[string]any{"enabled": true,
		"channels": []any{channel("fast", "mine", "own-model-2")},
		"rules":    []any{rule("r1", "fast", map[string]any{"roles": []any{"teacher"}, "kinds": []any{"chat.agent"}})}}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals", map[string]any{"note": "换成自己的模型", "config": cfg}), 200)
	id, _ := r.body["proposal_id"].(string)
	if !regexp.MustCompile(`^proposal_[0-9a-f]{12}$`).MatchString(id) || r.body["status"] != "pending" || get(r.body, "validation", "ok") != true {
		t.Fatalf("proposal: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "GET", "/teacher/llm-routing/proposals/"+id, nil), 200)
	if get(r.body, "proposal", "candidate", "channels", 0, "target", "model") != "own-model-2" || get(r.body, "proposal", "status") != "pending" {
		t.Fatalf("proposal detail: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "GET", "/teacher/llm-routing", nil), 200)
	if get(r.body, "proposals", 0, "proposal_id") != id || get(r.body, "proposals", 0, "validation_ok") != true {
		t.Fatalf("proposal list: %v", get(r.body, "proposals"))
	}

	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals/"+id+"/review", map[string]any{"approve": true}), 200)
	if r.body["status"] != "applied" || r.body["version"] != float64(1) {
		t.Fatalf("apply: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals/"+id+"/review", map[string]any{"approve": true}), 400)
	if r.detail()["error"] != "proposal_already_reviewed" {
		t.Errorf("second review: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "GET", "/teacher/model-config", nil), 200)
	if got := get(r.body, "config", "models", "conversation"); !sameJSON(got, map[string]any{"provider": "mine", "mode": ModeChat, "model": "own-model-2"}) {
		t.Fatalf("model config after apply: %v", got)
	}
	chat(t, s.ClientFor(tid, e.base))
	if reqs := own.Requests(); len(reqs) != 1 || reqs[0].Model != "own-model-2" {
		t.Fatalf("the applied model is not the one used: %+v", reqs)
	}

	view := must(t, call(t, srv, tid, "GET", "/teacher/llm-routing", nil), 200)
	if get(view.body, "routing", "enabled") != true || get(view.body, "history", 0, "source") != "proposal:"+id {
		t.Fatalf("view after apply: %s", view.raw)
	}
	// The view proposed back unchanged is valid and warns of nothing.
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals", map[string]any{"config": get(view.body, "routing")}), 200)
	if w := get(r.body, "validation", "warnings").([]any); len(w) != 0 {
		t.Errorf("the view does not round-trip cleanly: %v", w)
	}
	again, _ := r.body["proposal_id"].(string)
	must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals/"+again+"/review", map[string]any{"approve": false}), 200)

	for _, c := range []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"teacher agent", map[string]any{"role": "teacher", "kind": "chat.agent", "needs_tools": true}, "matched"},
		{"teacher agent with id", map[string]any{"kind": "chat.agent.helper"}, "matched"},
		{"final answer", map[string]any{"kind": "chat.agent_no_tools"}, "matched"},
		{"student", map[string]any{"role": "student", "kind": "chat.agent"}, "no_rule_matched"},
		{"upload", map[string]any{"kind": "upload.assignment_parse", "needs_json": true}, "no_rule_matched"},
	} {
		r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/simulate", c.ctx), 200)
		if get(r.body, "decision", "reason") != c.want {
			t.Errorf("simulate %s: %s", c.name, r.raw)
		}
		if c.want == "matched" && get(r.body, "decision", "candidates", 0, "provider") != "mine" {
			t.Errorf("simulate %s: candidates %v", c.name, get(r.body, "decision", "candidates"))
		}
	}
	bad := map[string]any{"channels": []any{channel("a", "mine", "x")},
		"rules": []any{rule("r", "a", map[string]any{"skills": []any{"physics-homework-generator"}})}}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/simulate", map[string]any{"kind": "chat.agent", "config": bad}), 200)
	if r.body["config_override"] != true || get(r.body, "override_validation", "ok") != false || get(r.body, "decision", "reason") != "routing_invalid" {
		t.Errorf("simulate override: %s", r.raw)
	}

	// What one model per teacher cannot mean is refused, with the reason.
	withFallback := channel("fast", "mine", "m")
	withFallback["fallback_channels"] = []any{"slow"}
	withTemp := channel("fast", "mine", "m")
	withTemp["params"] = map[string]any{"temperature": 0.5}
	for _, c := range []struct {
		name, mention string
		cfg           map[string]any
	}{
		{"per skill", "per-skill", bad},
		{"student rule", "always use the school", map[string]any{"channels": []any{channel("a", "mine", "x")},
			"rules": []any{rule("r", "a", map[string]any{"roles": []any{"student"}})}}},
		{"upload kind", "upload.assignment_parse", map[string]any{"channels": []any{channel("a", "mine", "x")},
			"rules": []any{rule("r", "a", map[string]any{"roles": []any{"teacher"}, "kinds": []any{"upload.assignment_parse"}})}}},
		{"needs_tools", "needs_tools", map[string]any{"channels": []any{channel("a", "mine", "x")},
			"rules": []any{rule("r", "a", map[string]any{"roles": []any{"teacher"}, "needs_tools": true})}}},
		{"fallback", "fallback_channels", map[string]any{"channels": []any{withFallback, channel("slow", "school", "school-model")},
			"rules": []any{rule("r", "fast", map[string]any{"roles": []any{"teacher"}})}}},
		{"temperature", "temperature", map[string]any{"channels": []any{withTemp},
			"rules": []any{rule("r", "fast", map[string]any{"roles": []any{"teacher"}})}}},
		{"two channels", "different channels", map[string]any{"channels": []any{channel("a", "mine", "x"), channel("b", "school", "school-model")},
			"rules": []any{rule("r1", "a", map[string]any{"roles": []any{"teacher"}}), rule("r2", "b", map[string]any{"roles": []any{"teacher"}})}}},
	} {
		r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals", map[string]any{"config": c.cfg}), 400)
		if r.detail()["error"] != "routing_not_expressible" || !strings.Contains(r.raw, c.mention) {
			t.Errorf("%s: %s", c.name, r.raw)
		}
	}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals", map[string]any{"config": map[string]any{
		"channels": []any{channel("a", "elsewhere", "x")}, "rules": []any{rule("r", "a", nil)}}}), 400)
	if r.detail()["error"] != "invalid_routing_config" || !strings.Contains(r.raw, "elsewhere") {
		t.Errorf("unknown provider: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals", map[string]any{"note": "x"}), 400)
	if r.detail()["error"] != "config_required" {
		t.Errorf("no config: %s", r.raw)
	}

	// Disabling routing puts the teacher back on the default, as version 2.
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals", map[string]any{"config": map[string]any{"enabled": false}}), 200)
	off, _ := r.body["proposal_id"].(string)
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals/"+off+"/review", nil), 200)
	if r.body["version"] != float64(2) || s.ClientFor(tid, e.base) != e.base {
		t.Fatalf("disable: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "GET", "/teacher/llm-routing?history_limit=1&proposal_status=rejected", nil), 200)
	if get(r.body, "routing", "enabled") != false || len(get(r.body, "history").([]any)) != 1 ||
		len(get(r.body, "proposals").([]any)) != 1 || get(r.body, "proposals", 0, "proposal_id") != again {
		t.Fatalf("view after disable: %s", r.raw)
	}

	// Rollback to version 1 restores the private model as version 3.
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/rollback", map[string]any{"target_version": 1}), 200)
	if r.body["version"] != float64(3) {
		t.Fatalf("rollback: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "GET", "/teacher/model-config", nil), 200)
	if get(r.body, "config", "models", "conversation", "model") != "own-model-2" {
		t.Fatalf("after rollback: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/rollback", map[string]any{"target_version": 99}), 404)
	if r.detail()["error"] != "target_version_not_found" {
		t.Errorf("rollback 99: %s", r.raw)
	}
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/rollback", map[string]any{"target_version": "0"}), 400)
	if r.detail()["error"] != "invalid_target_version" {
		t.Errorf("rollback 0: %s", r.raw)
	}
	r = must(t, call(t, srv, "t_beta", "POST", "/teacher/llm-routing/rollback", map[string]any{"target_version": 1}), 404)
	if r.detail()["error"] != "history_not_found" {
		t.Errorf("another teacher's rollback: %s", r.raw)
	}
	// The private provider gone, version 1 cannot be restored; said so.
	must(t, call(t, srv, tid, "DELETE", "/teacher/provider-registry/providers/mine", nil), 200)
	r = must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/rollback", map[string]any{"target_version": 1}), 400)
	if r.detail()["error"] != "rollback_not_applicable" || !strings.Contains(r.raw, "mine") {
		t.Errorf("rollback to a deleted provider: %s", r.raw)
	}

	for _, p := range []string{"proposal_000000000000", "..%2Fx", "other"} {
		r = must(t, call(t, srv, tid, "GET", "/teacher/llm-routing/proposals/"+p, nil), 404)
		if r.detail()["error"] != "proposal_not_found" {
			t.Errorf("%s: %s", p, r.raw)
		}
	}
	must(t, call(t, srv, "t_beta", "GET", "/teacher/llm-routing/proposals/"+id, nil), 404)
	must(t, call(t, srv, tid, "POST", "/teacher/llm-routing/proposals/proposal_000000000000/review", nil), 404)
}

func TestModelConfig(t *testing.T) {
	e, backup := twoProviderEnv(t)
	s := e.service(nil)
	srv := api(t, s)
	const tid = "t_alpha"
	r := must(t, call(t, srv, tid, "GET", "/teacher/model-config", nil), 200)
	for _, p := range []string{"conversation", "embedding", "ocr", "image_generation"} {
		if get(r.body, "config", "models", p, "provider") == nil {
			t.Errorf("no default for %s: %s", p, r.raw)
		}
	}
	if get(r.body, "config", "models", "conversation", "provider") != "school" || get(r.body, "config", "models", "conversation", "model") != "school-model" ||
		get(r.body, "config_path") != "teacher_workspaces/t_alpha/model_config.json" {
		t.Fatalf("defaults: %s", r.raw)
	}
	must(t, call(t, srv, tid, "GET", "/teacher/provider-registry", nil), 200)
	if _, err := os.Stat(filepath.Join(e.dir, "teacher_workspaces")); !os.IsNotExist(err) {
		t.Fatal("a GET wrote files")
	}

	for _, c := range []struct {
		name, code, mention string
		body                map[string]any
	}{
		{"no models", "models_required", "models", map[string]any{}},
		{"unknown purpose", "invalid_model_config", "tts", map[string]any{"models": map[string]any{"tts": map[string]any{}}}},
		{"unknown provider", "invalid_model_config", "nowhere", map[string]any{"models": map[string]any{"conversation": map[string]any{"provider": "nowhere"}}}},
		{"other model on a school provider", "invalid_model_config", "serves", map[string]any{"models": map[string]any{
			"conversation": map[string]any{"provider": "school", "model": "gpt-5"}}}},
		{"other mode", "invalid_model_config", "openai-response", map[string]any{"models": map[string]any{
			"conversation": map[string]any{"provider": "school", "mode": "openai-response"}}}},
	} {
		r = must(t, call(t, srv, tid, "PUT", "/teacher/model-config", c.body), 400)
		if r.detail()["error"] != c.code || !strings.Contains(r.raw, c.mention) {
			t.Errorf("%s: %s", c.name, r.raw)
		}
	}

	// Choosing the tenant's second provider puts it first for this teacher.
	r = must(t, call(t, srv, tid, "PUT", "/teacher/model-config", map[string]any{"models": map[string]any{
		"conversation": map[string]any{"provider": "backup"}}}), 200)
	if get(r.body, "config", "models", "conversation", "model") != "backup-model" || get(r.body, "config", "version") != float64(1) {
		t.Fatalf("backup: %s", r.raw)
	}
	if resp := chat(t, s.ClientFor(tid, e.base)); resp.Provider != "backup" {
		t.Fatalf("answered by %s", resp.Provider)
	}
	if len(backup.Requests()) != 1 || len(e.school.Requests()) != 0 {
		t.Fatalf("backup %d, school %d", len(backup.Requests()), len(e.school.Requests()))
	}
	if s.ClientFor("t_beta", e.base) != e.base {
		t.Fatal("another teacher is not affected")
	}
	// Back on the head of the chain: the tenant's own client.
	must(t, call(t, srv, tid, "PUT", "/teacher/model-config", map[string]any{"models": map[string]any{
		"conversation": map[string]any{"provider": "school"}}}), 200)
	if s.ClientFor(tid, e.base) != e.base {
		t.Fatal("the default provider needs no gateway of its own")
	}

	// A private provider without default_model needs a model.
	s2 := e.service(func(c *Config) { c.AllowPrivateProbe = true })
	srv2 := api(t, s2)
	must(t, call(t, srv2, tid, "POST", "/teacher/provider-registry/providers", map[string]any{
		"provider_id": "bare", "base_url": "https://api.example.com/v1", "api_key": secretKey}), 200)
	r = must(t, call(t, srv2, tid, "PUT", "/teacher/model-config", map[string]any{"models": map[string]any{
		"conversation": map[string]any{"provider": "bare"}}}), 400)
	if !strings.Contains(r.raw, "default_model") {
		t.Errorf("bare provider: %s", r.raw)
	}
	must(t, call(t, srv2, tid, "PUT", "/teacher/model-config", map[string]any{"models": map[string]any{
		"conversation": map[string]any{"provider": "bare", "model": "deepseek-chat"}, "ocr": nil}}), 200)

	// A damaged file is reported, never silently replaced.
	path := filepath.Join(e.dir, "teacher_workspaces", tid, "model_config.json")
	os.WriteFile(path, []byte("{not json"), 0o644)
	r = must(t, call(t, srv, tid, "GET", "/teacher/model-config", nil), 500)
	if !strings.Contains(r.raw, "model_config.json") {
		t.Errorf("damaged file: %s", r.raw)
	}
	must(t, call(t, srv, tid, "PUT", "/teacher/model-config", map[string]any{"models": map[string]any{}}), 500)
	if data, _ := os.ReadFile(path); string(data) != "{not json" {
		t.Fatal("a damaged file was overwritten")
	}
	if s.ClientFor(tid, e.base) != e.base {
		t.Fatal("damaged settings: the tenant's client")
	}
}
