package skills

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/caller"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSkill writes DATA_DIR/skills/<id>/skill.yaml.
func writeSkill(t *testing.T, data, id, manifest string) string {
	t.Helper()
	p := filepath.Join(data, "skills", id, "skill.yaml")
	writeFile(t, p, manifest)
	return p
}

var builtinIDs = []string{"physics-core-examples", "physics-homework-generator", "physics-lesson-capture", "physics-llm-routing",
	"physics-student-coach", "physics-student-focus", "physics-teacher-ops"}

func ids(list []*Skill) []string {
	var out []string
	for _, sk := range list {
		out = append(out, sk.ID)
	}
	return out
}

func TestBuiltins(t *testing.T) {
	s := builtinSet(t)
	list, errs := s.List()
	if len(errs) != 0 {
		t.Fatalf("built-in load errors: %+v", errs)
	}
	if got := ids(list); !slices.Equal(got, builtinIDs) {
		t.Fatalf("built-ins %v", got)
	}
	for _, sk := range list {
		if sk.SchemaVersion != 2 || sk.Source != SourceBuiltin || sk.Title == "" || !utf8.ValidString(sk.Title) ||
			sk.Desc == "" || len(sk.Routing.Keywords) == 0 || len(sk.Agent.PromptModules) != 1 || sk.Agent.Allow == nil {
			t.Errorf("%s: %+v", sk.ID, sk)
		}
		rounds, calls := sk.Budgets()
		if rounds < 1 || rounds > 5 || calls < 1 || calls > 12 {
			t.Errorf("%s budgets %d/%d", sk.ID, rounds, calls)
		}
		// The prompt: the header, the description, the module (Chinese).
		want := fmt.Sprintf("激活技能：%s（%s）\n%s\n\n# 技能：%s", sk.ID, sk.Title, sk.Desc, sk.Title)
		if p := sk.Prompt(); !strings.HasPrefix(p, want) || utf8.RuneCountInString(p) > MaxPromptChars+1 {
			t.Errorf("%s prompt %q", sk.ID, p)
		}
		if sk.Routing.MinScore != 3 || sk.Routing.MinMargin != 1 || sk.Routing.ConfidenceFloor != 0.28 {
			t.Errorf("%s thresholds %+v", sk.ID, sk.Routing)
		}
	}
	coach, _ := s.Get("physics-student-coach")
	ops, _ := s.Get("physics-teacher-ops")
	if !coach.AllowsRole(caller.RoleStudent) || !coach.AllowsRole(caller.RoleTeacher) ||
		ops.AllowsRole(caller.RoleStudent) || !ops.AllowsRole(caller.RoleTeacher) {
		t.Error("allowed roles")
	}
	if !ops.AllowsTool("exam.analysis.get") || !ops.AllowsTool("teacher.memory.search") ||
		ops.AllowsTool("assignment.generate") || ops.AllowsTool("chart.exec") {
		t.Error("teacher-ops tools")
	}
	ex, _ := s.Get("physics-core-examples")
	if ex.Routing.MatchMode != "word_boundary" || ex.Routing.RegexKeywords[`\bCE\d+\b`] != 5 {
		t.Errorf("core examples routing %+v", ex.Routing)
	}
	var nilSkill *Skill
	if !nilSkill.AllowsTool("x") || nilSkill.Prompt() != "" || nilSkill.AllowsRole(caller.RoleTeacher) {
		t.Error("nil skill")
	}
}

func TestAllowsTool(t *testing.T) {
	sk := &Skill{Agent: AgentSpec{Allow: []string{"exam.*", "student.search", "nope"}, Deny: []string{"exam.students.list"}}}
	for name, want := range map[string]bool{
		"exam.get": true, "exam.analysis.charts.generate": true, "student.search": true,
		"exam.students.list":  false, // deny wins
		"student.profile.get": false, "examx": false, "exam": false,
	} {
		if sk.AllowsTool(name) != want {
			t.Errorf("%s: %v", name, !want)
		}
	}
	all := &Skill{Agent: AgentSpec{Deny: []string{"*"}}}
	if all.AllowsTool("exam.get") {
		t.Error("deny * allows")
	}
	inherit := &Skill{Agent: AgentSpec{Deny: []string{"teacher.llm_routing.*"}}}
	if !inherit.AllowsTool("exam.get") || inherit.AllowsTool("teacher.llm_routing.get") {
		t.Error("inherit with deny")
	}
}

// serve is GET /skills over real HTTP, as a teacher.
func serve(t *testing.T, s *Set) map[string]any {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.HandleSkills(w, r.WithContext(caller.With(r.Context(), caller.Principal{Role: caller.RoleTeacher, TeacherID: "t1"})))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/skills")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body
}

func TestHTTPSkills(t *testing.T) {
	body := serve(t, builtinSet(t))
	if _, ok := body["errors"]; ok {
		t.Errorf("errors without a bad file: %v", body["errors"])
	}
	list := body["skills"].([]any)
	var got []string
	for _, v := range list {
		got = append(got, v.(map[string]any)["id"].(string))
	}
	if !slices.Equal(got, builtinIDs) {
		t.Fatalf("ids %v", got)
	}
	ex := list[0].(map[string]any)
	for _, k := range []string{"id", "schema_version", "title", "desc", "allowed_roles", "prompts", "examples", "routing", "agent"} {
		if _, ok := ex[k]; !ok {
			t.Errorf("skill lacks %s", k)
		}
	}
	if ex["schema_version"] != 2.0 || ex["title"] != "核心例题库" {
		t.Errorf("core examples %v %v", ex["schema_version"], ex["title"])
	}
	routing := ex["routing"].(map[string]any)
	for _, k := range []string{"keywords", "negative_keywords", "intents", "keyword_weights", "min_score", "min_margin",
		"confidence_floor", "match_mode", "regex_keywords"} {
		if _, ok := routing[k]; !ok {
			t.Errorf("routing lacks %s", k)
		}
	}
	agent := ex["agent"].(map[string]any)
	tools := agent["tools"].(map[string]any)
	budgets := agent["budgets"].(map[string]any)
	mp := agent["model_policy"].(map[string]any)
	if _, ok := agent["prompt_modules"].([]any); !ok || tools["allow"] == nil || tools["deny"] == nil ||
		budgets["max_tool_rounds"] != 4.0 || budgets["max_tool_calls"] != 10.0 || mp["enabled"] != false || mp["routes"] == nil {
		t.Errorf("agent %v", agent)
	}
	if _, ok := agent["context_providers"].([]any); !ok {
		t.Errorf("context_providers %v", agent["context_providers"])
	}
}

func TestTenantOverrideAndErrors(t *testing.T) {
	data := t.TempDir()
	// An override of a built-in, with camelCase spellings and a module.
	writeSkill(t, data, "physics-teacher-ops", `
schemaVersion: 3
title: 本校教研
desc: 本校的教研流程。
allowedRoles: [teacher]
routing:
  keywords: [教研]
  keywordWeights: {教研: 9}
  minScore: 4
  confidenceFloor: 2
agent:
  promptModules: [prompts/school.md]
  tools: {allow: [exam.get], deny: []}
  budgets: {maxToolRounds: 2, maxToolCalls: -5}
  modelPolicy:
    default: {provider: p, model: m}
`)
	writeFile(t, filepath.Join(data, "skills", "physics-teacher-ops", "prompts", "school.md"), "先看教研组的安排。")
	// A bad override: the built-in stays.
	writeSkill(t, data, "physics-core-examples", "title: [unclosed\n")
	// Bad files never hide the others.
	writeSkill(t, data, "not-a-map", "- a\n- b\n")
	writeSkill(t, data, "big", "title: x\ndesc: "+strings.Repeat("长", MaxManifestBytes)+"\n")
	writeSkill(t, data, "escape", "agent:\n  prompt_modules: [../../secret.md]\n")
	writeSkill(t, data, "bad-i", "schema_version: [1]\n")
	writeSkill(t, data, "bad id", "title: x\n")
	writeSkill(t, data, "warned", `
routing:
  regex_keywords: {'(unclosed': 5, 'ok\d': 60}
  intents: [no_such_intent]
  rules:
    teacher:
      - {any: [x], score: 2, signals: [no_such_signal]}
      - {any: [好], score: 3}
agent:
  prompt_modules: [missing.md, link.md]
`)
	if err := os.Symlink("/etc/hostname", filepath.Join(data, "skills", "warned", "link.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(data, "skills", "warned"), filepath.Join(data, "skills", "linked")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(data, "skills", "no-manifest", "README.md"), "not a skill")

	s, err := New(Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	list, errs := s.List()
	wantIDs := append(slices.Clone(builtinIDs), "warned")
	slices.Sort(wantIDs)
	if got := ids(list); !slices.Equal(got, wantIDs) {
		t.Fatalf("ids %v", got)
	}
	ops, _ := s.Get("physics-teacher-ops")
	if ops.Source != SourceTenant || ops.Title != "本校教研" || ops.SchemaVersion != 3 || ops.Routing.MinScore != 4 ||
		ops.Routing.ConfidenceFloor != 0.95 || ops.Routing.KeywordWeights["教研"] != 9 ||
		!slices.Equal(ops.Agent.Allow, []string{"exam.get"}) || ops.Agent.MaxToolRounds != 2 || ops.Agent.MaxToolCalls != 1 ||
		!ops.Agent.ModelPolicy.Enabled || ops.Agent.ModelPolicy.Default["model"] != "m" {
		t.Errorf("override %+v", ops)
	}
	if !strings.HasSuffix(ops.Prompt(), "\n\n先看教研组的安排。") {
		t.Errorf("override prompt %q", ops.Prompt())
	}
	if ce, _ := s.Get("physics-core-examples"); ce.Source != SourceBuiltin {
		t.Error("a bad override removed the built-in")
	}
	if d := s.Route(caller.RoleTeacher, "", "教研安排"); d.Effective != "physics-teacher-ops" || d.Reason != ReasonAutoRule {
		t.Errorf("override routing %+v", d)
	}
	warned, _ := s.Get("warned")
	if len(warned.Routing.Rules["teacher"]) != 1 || warned.Routing.RegexKeywords[`ok\d`] != 50 {
		t.Errorf("warned routing %+v", warned.Routing)
	}

	byID := map[string][]LoadError{}
	for _, e := range errs {
		byID[e.SkillID] = append(byID[e.SkillID], e)
		if strings.Contains(e.Path, data) || strings.Contains(e.Message, data) {
			t.Errorf("server path in %+v", e)
		}
	}
	expect := map[string][]string{
		"physics-core-examples": {"invalid YAML"},
		"not-a-map":             {"must be a mapping"},
		"big":                   {"larger than"},
		"escape":                {"not a relative path inside"},
		"bad-i":                 {"schema_version: must be a number"},
		"bad id":                {"invalid skill id"},
		"linked":                {"symbolic link"},
		"warned": {"unknown intent", "invalid pattern \"(unclosed\"", "unknown signal", "missing.md: file not found",
			"link.md: not a regular file"},
	}
	for id, msgs := range expect {
		got := byID[id]
		if len(got) != len(msgs) {
			t.Errorf("%s errors %+v", id, got)
			continue
		}
		for i, m := range msgs {
			if !strings.Contains(got[i].Message, m) || !strings.HasPrefix(got[i].Path, "skills/"+id) {
				t.Errorf("%s error %d: %+v, want %q", id, i, got[i], m)
			}
		}
	}
	if len(byID) != len(expect) {
		t.Errorf("errors %+v", errs)
	}

	body := serve(t, s)
	if n := len(body["errors"].([]any)); n != len(errs) {
		t.Errorf("GET /skills lists %d errors, want %d", n, len(errs))
	}
	first := body["errors"].([]any)[0].(map[string]any)
	if _, ok := first["skill_id"]; !ok || first["path"] == nil || first["message"] == nil {
		t.Errorf("error shape %v", first)
	}
}

func TestTooManySkills(t *testing.T) {
	data := t.TempDir()
	for i := range MaxTenantSkills + 2 {
		writeSkill(t, data, fmt.Sprintf("s%03d", i), "title: x\n")
	}
	s, err := New(Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	list, errs := s.List()
	if len(list) != len(builtinIDs)+MaxTenantSkills || len(errs) != 2 || !strings.Contains(errs[0].Message, "more than") {
		t.Errorf("%d skills, errors %+v", len(list), errs)
	}
}

func TestReload(t *testing.T) {
	data := t.TempDir()
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	s, err := New(Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	tick := func() { now = now.Add(DefaultCheckEvery) }

	if _, ok := s.Get("lab"); ok {
		t.Fatal("lab before it exists")
	}
	p := writeSkill(t, data, "lab", "title: 实验\nagent:\n  prompt_modules: [p.md]\n")
	mod := filepath.Join(data, "skills", "lab", "p.md")
	writeFile(t, mod, "第一版")
	// Within CheckEvery the view is not looked at again.
	if _, ok := s.Get("lab"); ok {
		t.Fatal("looked at the files again within a second")
	}
	tick()
	lab, ok := s.Get("lab")
	if !ok || lab.Title != "实验" || !strings.HasSuffix(lab.Prompt(), "第一版") {
		t.Fatalf("lab %+v", lab)
	}
	// Unchanged files are not parsed again.
	tick()
	if again, _ := s.Get("lab"); again != lab {
		t.Error("unchanged skill re-parsed")
	}

	// A changed manifest, then a changed module, then a broken manifest.
	writeFile(t, p, "title: 实验课\nagent:\n  prompt_modules: [p.md]\n")
	tick()
	if lab, _ = s.Get("lab"); lab.Title != "实验课" {
		t.Errorf("manifest change not seen: %s", lab.Title)
	}
	writeFile(t, mod, "第二版：更长一些")
	tick()
	if lab, _ = s.Get("lab"); !strings.HasSuffix(lab.Prompt(), "第二版：更长一些") {
		t.Errorf("module change not seen: %q", lab.Prompt())
	}
	writeFile(t, p, "title: [\n")
	tick()
	if _, ok := s.Get("lab"); ok {
		t.Error("broken manifest still loaded")
	}
	if _, errs := s.List(); len(errs) != 1 || errs[0].SkillID != "lab" {
		t.Errorf("errors %+v", errs)
	}
	// Fixed again, then removed.
	writeFile(t, p, "title: 修好了\n")
	tick()
	if lab, _ = s.Get("lab"); lab == nil || lab.Title != "修好了" {
		t.Errorf("fixed manifest: %+v", lab)
	}
	if _, errs := s.List(); len(errs) != 0 {
		t.Errorf("errors after the fix %+v", errs)
	}
	if err := os.RemoveAll(filepath.Join(data, "skills", "lab")); err != nil {
		t.Fatal(err)
	}
	tick()
	if _, ok := s.Get("lab"); ok {
		t.Error("removed skill still loaded")
	}

	// An override appears and disappears over the built-in.
	writeSkill(t, data, "physics-student-coach", "title: 本校教练\nallowed_roles: [student]\n")
	tick()
	if c, _ := s.Get("physics-student-coach"); c.Source != SourceTenant || c.AllowsRole(caller.RoleTeacher) {
		t.Errorf("override %+v", c)
	}
	os.RemoveAll(filepath.Join(data, "skills", "physics-student-coach"))
	tick()
	if c, _ := s.Get("physics-student-coach"); c.Source != SourceBuiltin {
		t.Errorf("built-in not back: %+v", c)
	}
}

func TestConcurrentAccess(t *testing.T) {
	data := t.TempDir()
	writeSkill(t, data, "lab", "title: 实验\nrouting:\n  keywords: [实验]\n")
	s, err := New(Config{DataDir: data, CheckEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			// Not atomic on purpose: a half-written file is a load error.
			os.WriteFile(filepath.Join(data, "skills", "lab", "skill.yaml"),
				fmt.Appendf(nil, "title: 实验%d\nrouting:\n  keywords: [实验]\n", i), 0o644)
		}
	}()
	for range 200 {
		if d := s.Route(caller.RoleTeacher, "", "做实验"); d.Effective == "" {
			t.Fatal("no skill")
		}
		s.List()
	}
	<-done
}
