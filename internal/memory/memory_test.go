package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/caller"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedTeachers is how many teachers' locks are held or waited for.
func (s *Service) lockedTeachers() int { return s.locks.Len() }

// clock is a settable test clock (local time, as the service writes).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	svc   *Service
	clock *clock
	data  string
	srv   *httptest.Server
}

// setup is a Service over a fresh DATA_DIR with a fixed clock, and a real
// HTTP server mapping the four routes as the tenant does. The principal
// of a request is the teacher named by the X-Test-Teacher header (a
// verified teacher), or a verified student with X-Test-Student: the tiny
// stand-in for the authenticate middleware.
func setup(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.Local)}, data: t.TempDir()}
	cfg.DataDir, cfg.Now = f.data, f.clock.now
	f.svc = New(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /teacher/memory/proposals", f.svc.ServeProposals)
	mux.HandleFunc("GET /teacher/memory/insights", f.svc.ServeInsights)
	mux.HandleFunc("POST /teacher/memory/proposals/{proposal_id}/review", f.svc.ServeReview)
	mux.HandleFunc("DELETE /teacher/memory/proposals/{proposal_id}", f.svc.ServeDelete)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := caller.Principal{Role: caller.RoleTeacher, TeacherID: r.Header.Get("X-Test-Teacher"), Via: caller.Token}
		if sid := r.Header.Get("X-Test-Student"); sid != "" {
			p = caller.Principal{Role: caller.RoleStudent, StudentID: sid, TeacherID: "teacher", Via: caller.Token}
		}
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// call makes a request as teacher and decodes the JSON answer.
func (f *fixture) call(t *testing.T, method, path, teacher, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-Teacher", teacher)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

func (f *fixture) propose(t *testing.T, teacher string, in Input) Proposal {
	t.Helper()
	res, err := f.svc.Propose(teacher, in)
	if err != nil {
		t.Fatalf("propose %q: %v", in.Content, err)
	}
	if !res.Created {
		t.Fatalf("propose %q: not created", in.Content)
	}
	return res.Proposal
}

func (f *fixture) review(t *testing.T, teacher, id string, approve bool) map[string]any {
	t.Helper()
	code, body := f.call(t, "POST", "/teacher/memory/proposals/"+id+"/review", teacher, fmt.Sprintf(`{"approve":%v}`, approve))
	if code != 200 {
		t.Fatalf("review %s: %d %v", id, code, body)
	}
	return body
}

func (f *fixture) readFile(t *testing.T, teacher, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.data, "teacher_workspaces", teacher, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func (f *fixture) record(t *testing.T, teacher, id string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(f.readFile(t, teacher, "proposals/"+id+".json")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func proposalIDs(t *testing.T, body map[string]any) []string {
	t.Helper()
	list, ok := body["proposals"].([]any)
	if !ok {
		t.Fatalf("no proposals list: %v", body)
	}
	var ids []string
	for _, x := range list {
		ids = append(ids, x.(map[string]any)["proposal_id"].(string))
	}
	return ids
}

func TestProposalLifecycle(t *testing.T) {
	f := setup(t, Config{})
	p := f.propose(t, "t_alpha", Input{Title: "讲评格式", Content: "以后讲评试卷都先给结论，再分点列出行动项"})
	if p.Status != StatusProposed || !strings.HasPrefix(p.ID, "tmem_") || len(p.ID) != 17 || p.Target != TargetMemory ||
		p.Source != SourceManual || p.TeacherID != "t_alpha" || p.CreatedAt != "2026-03-01T10:00:00" {
		t.Fatalf("proposal %+v", p)
	}
	// manual 70 + MEMORY 12 + preference 10 + 先…后 6 + 格式 6 = 104 → 100.
	if *p.PriorityScore != 100 || *p.TTLDays != 180 || p.ExpiresAt != "2026-08-28T10:00:00" {
		t.Errorf("priority %d ttl %d expires %s", *p.PriorityScore, *p.TTLDays, p.ExpiresAt)
	}
	if p.Provenance["origin"] != "manual_input" || p.Provenance["layer"] != "memory_proposal" {
		t.Errorf("provenance %v", p.Provenance)
	}
	// Seeded workspace, untouched MEMORY.md.
	if got := f.readFile(t, "t_alpha", "MEMORY.md"); got != defaultContent("MEMORY.md") {
		t.Fatalf("MEMORY.md changed before review:\n%s", got)
	}

	code, body := f.call(t, "GET", "/teacher/memory/proposals?status=proposed", "t_alpha", "")
	if code != 200 || body["ok"] != true || body["teacher_id"] != "t_alpha" {
		t.Fatalf("list: %d %v", code, body)
	}
	if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] != p.ID {
		t.Fatalf("listed %v", ids)
	}
	rec := body["proposals"].([]any)[0].(map[string]any)
	if rec["content"] != p.Content || rec["status"] != "proposed" || rec["priority_score"] != 100.0 {
		t.Errorf("listed record %v", rec)
	}

	f.clock.advance(time.Hour)
	res := f.review(t, "t_alpha", p.ID, true)
	if res["ok"] != true || res["status"] != "applied" || res["applied_to"] != "MEMORY.md" || res["proposal_id"] != p.ID {
		t.Fatalf("review %v", res)
	}
	mem := f.readFile(t, "t_alpha", "MEMORY.md")
	wantBlock := "## 讲评格式\n- ts: 2026-03-01T11:00:00\n- entry_id: " + p.ID + "\n- source: manual\n" +
		"- provenance: manual_input:manual\n\n以后讲评试卷都先给结论，再分点列出行动项\n\n"
	if !strings.HasPrefix(mem, defaultContent("MEMORY.md")) || !strings.HasSuffix(mem, wantBlock) {
		t.Fatalf("MEMORY.md:\n%s", mem)
	}
	r := f.record(t, "t_alpha", p.ID)
	if r["status"] != "applied" || r["applied_at"] != "2026-03-01T11:00:00" || r["applied_to"] != "MEMORY.md" ||
		r["expires_at"] != "2026-08-28T11:00:00" {
		t.Errorf("record after apply %v", r)
	}

	// A second review answers the decision already taken.
	res = f.review(t, "t_alpha", p.ID, false)
	if res["status"] != "applied" || res["detail"] != "already processed" {
		t.Errorf("second review %v", res)
	}
	_, body = f.call(t, "GET", "/teacher/memory/proposals?status=applied&limit=5", "t_alpha", "")
	if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] != p.ID {
		t.Fatalf("applied list %v", ids)
	}

	code, ins := f.call(t, "GET", "/teacher/memory/insights?days=7", "t_alpha", "")
	if code != 200 || ins["ok"] != true || ins["window_days"] != 7.0 {
		t.Fatalf("insights %d %v", code, ins)
	}
	sum := ins["summary"].(map[string]any)
	if sum["applied_total"] != 1.0 || sum["active_total"] != 1.0 || sum["avg_priority_active"] != 100.0 ||
		sum["by_source"].(map[string]any)["manual"] != 1.0 || sum["by_target"].(map[string]any)["MEMORY"] != 1.0 {
		t.Errorf("summary %v", sum)
	}
	top := ins["top_active"].([]any)
	if len(top) != 1 || top[0].(map[string]any)["proposal_id"] != p.ID || top[0].(map[string]any)["rank_score"] != 100.0 {
		t.Errorf("top_active %v", top)
	}
	// The review and the listing wrote no search event; the prompt context does.
	f.svc.PromptContext("t_alpha", 0)
	if _, err := f.svc.Search("t_alpha", "行动项", 5); err != nil {
		t.Fatal(err)
	}
	_, ins = f.call(t, "GET", "/teacher/memory/insights", "t_alpha", "")
	ret := ins["retrieval"].(map[string]any)
	if ret["context_injected"] != 1.0 || ret["search_calls"] != 1.0 || ret["search_hit_calls"] != 1.0 ||
		ret["search_hit_rate"] != 1.0 || ret["search_mode_breakdown"].(map[string]any)["keyword"] != 1.0 {
		t.Errorf("retrieval %v", ret)
	}
	if q := ins["top_queries"].([]any); len(q) != 1 || q[0].(map[string]any)["query"] != "行动项" {
		t.Errorf("top_queries %v", q)
	}
}

func TestReject(t *testing.T) {
	f := setup(t, Config{})
	p := f.propose(t, "t_alpha", Input{Content: "默认用英文写评语"})
	res := f.review(t, "t_alpha", p.ID, false)
	if res["status"] != "rejected" || res["ok"] != true {
		t.Fatalf("reject %v", res)
	}
	if got := f.readFile(t, "t_alpha", "MEMORY.md"); got != defaultContent("MEMORY.md") {
		t.Errorf("MEMORY.md changed by a rejection:\n%s", got)
	}
	r := f.record(t, "t_alpha", p.ID)
	if r["status"] != "rejected" || r["rejected_at"] != "2026-03-01T10:00:00" || r["reject_reason"] != "manual_reject" {
		t.Errorf("record %v", r)
	}
	// Approving afterwards changes nothing.
	if res := f.review(t, "t_alpha", p.ID, true); res["status"] != "rejected" || res["detail"] != "already processed" {
		t.Errorf("approve after reject %v", res)
	}
	_, body := f.call(t, "GET", "/teacher/memory/proposals?status=rejected", "t_alpha", "")
	if ids := proposalIDs(t, body); len(ids) != 1 {
		t.Errorf("rejected list %v", ids)
	}
	_, ins := f.call(t, "GET", "/teacher/memory/insights", "t_alpha", "")
	sum := ins["summary"].(map[string]any)
	if sum["rejected_total"] != 1.0 || sum["rejected_reasons"].(map[string]any)["manual_reject"] != 1.0 || sum["active_total"] != 0.0 {
		t.Errorf("summary %v", sum)
	}
}

func TestReviewAndListErrors(t *testing.T) {
	f := setup(t, Config{})
	code, body := f.call(t, "GET", "/teacher/memory/proposals?status=bogus", "t_alpha", "")
	if code != 400 || body["detail"] != "invalid_status" {
		t.Errorf("bad status: %d %v", code, body)
	}
	code, body = f.call(t, "GET", "/teacher/memory/proposals?status=deleted", "t_alpha", "")
	if code != 400 || body["detail"] != "invalid_status" {
		t.Errorf("status deleted: %d %v", code, body)
	}
	code, body = f.call(t, "GET", "/teacher/memory/proposals?limit=x", "t_alpha", "")
	if code != 400 {
		t.Errorf("bad limit: %d %v", code, body)
	}
	code, body = f.call(t, "POST", "/teacher/memory/proposals/tmem_000000000000/review", "t_alpha", `{"approve":true}`)
	if code != 404 || body["detail"] != "proposal not found" {
		t.Errorf("missing: %d %v", code, body)
	}
	code, body = f.call(t, "POST", "/teacher/memory/proposals/x/review", "t_alpha", `{"approve":"yes"}`)
	if code != 400 {
		t.Errorf("bad body: %d %v", code, body)
	}
	// A teacher without a workspace lists nothing, and the GETs wrote nothing.
	code, body = f.call(t, "GET", "/teacher/memory/proposals", "t_new", "")
	if code != 200 || len(body["proposals"].([]any)) != 0 {
		t.Errorf("empty list %d %v", code, body)
	}
	if code, _ := f.call(t, "GET", "/teacher/memory/insights", "t_new", ""); code != 200 {
		t.Errorf("insights %d", code)
	}
	if _, err := os.Stat(filepath.Join(f.data, "teacher_workspaces")); !os.IsNotExist(err) {
		t.Errorf("a GET created the workspace: %v", err)
	}
	// An empty body approves; traversal in the id stays in the folder.
	p := f.propose(t, "t_alpha", Input{Content: "作业题量默认每次十道题"})
	code, body = f.call(t, "POST", "/teacher/memory/proposals/"+p.ID+"/review", "t_alpha", "")
	if code != 200 || body["status"] != "applied" {
		t.Errorf("empty body review: %d %v", code, body)
	}
	code, _ = f.call(t, "POST", "/teacher/memory/proposals/..%2F..%2Fx/review", "t_alpha", "")
	if code != 404 {
		t.Errorf("traversal id: %d", code)
	}
	// An empty stored content cannot be applied.
	dir := filepath.Join(f.data, "teacher_workspaces", "t_alpha", "proposals")
	os.WriteFile(filepath.Join(dir, "tmem_empty00000.json"), []byte(`{"proposal_id":"tmem_empty00000","status":"proposed","content":"  "}`), 0o644)
	code, body = f.call(t, "POST", "/teacher/memory/proposals/tmem_empty00000/review", "t_alpha", "")
	if code != 400 || body["detail"] != "empty content" {
		t.Errorf("empty content: %d %v", code, body)
	}
}

func TestDelete(t *testing.T) {
	f := setup(t, Config{})
	keep := f.propose(t, "t_alpha", Input{Title: "语言", Content: "讲解默认用中文，术语附英文"})
	gone := f.propose(t, "t_alpha", Input{Title: "模板", Content: "## 不是标题\n批改反馈固定用三段式模板"})
	pending := f.propose(t, "t_alpha", Input{Content: "这条还没审核的记忆要删除"})
	f.review(t, "t_alpha", keep.ID, true)
	f.review(t, "t_alpha", gone.ID, true)
	mem := f.readFile(t, "t_alpha", "MEMORY.md")
	if !strings.Contains(mem, "\n### 不是标题\n") {
		t.Fatalf("a content heading was not demoted:\n%s", mem)
	}

	code, body := f.call(t, "DELETE", "/teacher/memory/proposals/"+gone.ID, "t_alpha", "")
	if code != 200 || body["status"] != "deleted" || body["ok"] != true || body["detail"] != nil {
		t.Fatalf("delete: %d %v", code, body)
	}
	after := f.readFile(t, "t_alpha", "MEMORY.md")
	if strings.Contains(after, gone.ID) || strings.Contains(after, "三段式") || !strings.Contains(after, keep.ID) ||
		!strings.HasPrefix(after, defaultContent("MEMORY.md")) {
		t.Fatalf("MEMORY.md after delete:\n%s", after)
	}
	r := f.record(t, "t_alpha", gone.ID)
	if r["status"] != "deleted" || r["deleted_from_status"] != "applied" || r["deleted_from_path"] != "MEMORY.md" ||
		r["deleted_at"] != "2026-03-01T10:00:00" || r["content"] == nil {
		t.Errorf("record %v", r)
	}
	code, body = f.call(t, "DELETE", "/teacher/memory/proposals/"+gone.ID, "t_alpha", "")
	if code != 200 || body["detail"] != "already_deleted" || body["status"] != "deleted" {
		t.Errorf("second delete: %d %v", code, body)
	}
	code, _ = f.call(t, "DELETE", "/teacher/memory/proposals/"+pending.ID, "t_alpha", "")
	if code != 200 || f.record(t, "t_alpha", pending.ID)["deleted_from_status"] != "proposed" {
		t.Errorf("delete pending: %d", code)
	}
	code, body = f.call(t, "DELETE", "/teacher/memory/proposals/tmem_nothere0000", "t_alpha", "")
	if code != 404 || body["detail"] != "proposal not found" {
		t.Errorf("delete missing: %d %v", code, body)
	}
	code, body = f.call(t, "DELETE", "/teacher/memory/proposals/%20", "t_alpha", "")
	if code != 400 || body["detail"] != "proposal_id_required" {
		t.Errorf("delete blank: %d %v", code, body)
	}
	// Deleted proposals are hidden from the list and from insights.
	_, body = f.call(t, "GET", "/teacher/memory/proposals", "t_alpha", "")
	if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] != keep.ID {
		t.Errorf("list after delete %v", ids)
	}
	_, ins := f.call(t, "GET", "/teacher/memory/insights", "t_alpha", "")
	if sum := ins["summary"].(map[string]any); sum["applied_total"] != 1.0 || sum["active_total"] != 1.0 {
		t.Errorf("summary %v", sum)
	}
}

// A record the predecessor applied (absolute applied_to under another
// DATA_DIR, daily target) is found and removed.
func TestDeleteLegacyAppliedEntry(t *testing.T) {
	f := setup(t, Config{})
	ws := filepath.Join(f.data, "teacher_workspaces", "teacher")
	os.MkdirAll(filepath.Join(ws, "proposals"), 0o755)
	os.MkdirAll(filepath.Join(ws, "memory"), 0o755)
	daily := "## 今天\n- ts: 2026-02-20T09:00:00\n- entry_id: tmem_aaaaaaaaaaaa\n- source: auto_intent\n\n今天先按旧版讲义上课\n\n" +
		"## Other\n- ts: 2026-02-20T09:05:00\n- entry_id: tmem_bbbbbbbbbbbb\n- source: manual\n\n另一条\n"
	os.WriteFile(filepath.Join(ws, "memory", "2026-02-20.md"), []byte(daily), 0o644)
	os.WriteFile(filepath.Join(ws, "proposals", "tmem_aaaaaaaaaaaa.json"), []byte(`{
  "proposal_id": "tmem_aaaaaaaaaaaa", "teacher_id": "teacher", "target": "DAILY", "title": "今天",
  "content": "今天先按旧版讲义上课", "source": "auto_intent", "priority_score": 42, "ttl_days": 14,
  "status": "applied", "created_at": "2026-02-20T09:00:00", "applied_at": "2026-02-20T09:00:00",
  "applied_to": "/app/data/teacher_workspaces/teacher/memory/2026-02-20.md", "mem0": {"ok": false}}`), 0o644)
	code, body := f.call(t, "DELETE", "/teacher/memory/proposals/tmem_aaaaaaaaaaaa", "teacher", "")
	if code != 200 || body["status"] != "deleted" {
		t.Fatalf("delete %d %v", code, body)
	}
	got := f.readFile(t, "teacher", "memory/2026-02-20.md")
	if got != "## Other\n- ts: 2026-02-20T09:05:00\n- entry_id: tmem_bbbbbbbbbbbb\n- source: manual\n\n另一条\n" {
		t.Errorf("daily file:\n%s", got)
	}
	r := f.record(t, "teacher", "tmem_aaaaaaaaaaaa")
	if r["deleted_from_path"] != "memory/2026-02-20.md" || r["mem0"] == nil || r["priority_score"] != 42.0 {
		t.Errorf("record lost fields: %v", r)
	}
}

func TestSecretFilter(t *testing.T) {
	f := setup(t, Config{AutoApply: true})
	for _, content := range []string{
		"我的 OpenAI key 是 sk-abcdefghijklmnopqrstuvwx",
		"api_key = abcdef123456",
		"password: hunter22",
		"邮箱密码是 qwer1234",
		"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0MSJ9.c2lnbmF0dXJlLXZhbHVl",
		"家长电话 13812345678 记一下",
		"学生身份证 11010519491231002X",
		"AKIAIOSFODNN7EXAMPLE 是 AWS 的",
	} {
		_, err := f.svc.Propose("t_alpha", Input{Content: content})
		if err != ErrSensitive {
			t.Errorf("%q: err %v, want sensitive_content_blocked", content, err)
		}
	}
	// Nothing was stored, and no file anywhere holds the key.
	list, _ := f.svc.List("t_alpha", "", 200)
	if len(list) != 0 {
		t.Fatalf("stored %d proposals", len(list))
	}
	filepath.Walk(f.data, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if data, _ := os.ReadFile(path); strings.Contains(string(data), "sk-abcdefghij") || strings.Contains(string(data), "hunter22") {
				t.Errorf("%s holds a secret", path)
			}
		}
		return nil
	})
	// Through the tool the model sees the refusal.
	out := dispatch(t, registry(t, f.svc), teacherP("t_alpha"), "teacher_memory_propose", `{"content":"记住我的 token: ghp_abcdefghijklmnopqrstuvwxyz0123"}`)
	if out["error"] != "sensitive_content_blocked" {
		t.Errorf("tool: %v", out)
	}
	// Ordinary numbers and words pass.
	if _, err := f.svc.Propose("t_alpha", Input{Content: "作业 20 道题，满分 100 分，时长 45 分钟"}); err != nil {
		t.Errorf("plain text refused: %v", err)
	}

	// A record stored before the filter is refused at review and its
	// secret redacted.
	dir := filepath.Join(f.data, "teacher_workspaces", "t_alpha", "proposals")
	os.WriteFile(filepath.Join(dir, "tmem_legacy00000.json"), []byte(`{"proposal_id":"tmem_legacy00000","target":"MEMORY",`+
		`"content":"key sk-ABCDEFGHIJKLMNOPQRSTUV here","status":"proposed","created_at":"2026-02-01T08:00:00"}`), 0o644)
	code, body := f.call(t, "POST", "/teacher/memory/proposals/tmem_legacy00000/review", "t_alpha", `{"approve":true}`)
	if code != 400 || body["detail"] != "sensitive_content_blocked" {
		t.Fatalf("legacy review: %d %v", code, body)
	}
	r := f.record(t, "t_alpha", "tmem_legacy00000")
	if r["status"] != "rejected" || r["reject_reason"] != "sensitive_content_blocked" || r["content"] != "key [REDACTED] here" {
		t.Errorf("legacy record %v", r)
	}
	if strings.Contains(f.readFile(t, "t_alpha", "MEMORY.md"), "sk-") {
		t.Error("secret reached MEMORY.md")
	}
}

func TestSensitiveKinds(t *testing.T) {
	for text, want := range map[string]string{
		"sk-abcdefghijklmnop1234":                  "api_key",
		"AIzaSyA1234567890abcdefghij":              "api_key",
		"refresh_token: abcdefgh":                  "token",
		"-----BEGIN RSA PRIVATE KEY-----":          "private_key",
		"PASSWORD=abcd":                            "password",
		"3f786850e387550fdab836ed7e6dc881de23001b": "secret_hex",
		"电话：15900001111":                           "phone_number",
		"身份证号 440301199001011234":                  "id_number",
	} {
		if got := SensitiveKinds(text); len(got) != 1 || got[0] != want {
			t.Errorf("%q: %v, want %s", text, got, want)
		}
	}
	for _, text := range []string{"", "高二2403班 第 3 题 12 分", "学号 20260101", "password", "sk-short", "1381234567", "比例 1:2"} {
		if Sensitive(text) {
			t.Errorf("%q flagged as %v", text, SensitiveKinds(text))
		}
	}
	if got := Redact("电话 13812345678，key sk-abcdefghijklmnopqrstu。"); got != "电话 [REDACTED]，key [REDACTED]。" {
		t.Errorf("redact: %q", got)
	}
}

func TestAutoApply(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		f := setup(t, Config{})
		res, err := f.svc.Propose("t_alpha", Input{Target: "daily", Content: "今天临时改成先讲实验题"})
		if err != nil || res.Applied != nil || res.Proposal.Status != StatusProposed || res.Proposal.Target != TargetDaily {
			t.Fatalf("%+v %v", res, err)
		}
		if _, err := os.Stat(filepath.Join(f.data, "teacher_workspaces", "t_alpha", "memory", "2026-03-01.md")); !os.IsNotExist(err) {
			t.Errorf("daily file written without review: %v", err)
		}
		if got := f.readFile(t, "t_alpha", "MEMORY.md"); got != defaultContent("MEMORY.md") {
			t.Errorf("MEMORY.md changed")
		}
	})
	t.Run("on when configured", func(t *testing.T) {
		f := setup(t, Config{AutoApply: true})
		res, err := f.svc.Propose("t_alpha", Input{Content: "以后都用简洁的要点式回复"})
		if err != nil || res.Applied == nil || res.Proposal.Status != StatusApplied || res.Applied.AppliedTo != "MEMORY.md" {
			t.Fatalf("%+v %v", res, err)
		}
		if b := res.Body(); b["auto_applied"] != true || b["status"] != "applied" {
			t.Errorf("body %v", b)
		}
		if !strings.Contains(f.readFile(t, "t_alpha", "MEMORY.md"), "- entry_id: "+res.Proposal.ID) {
			t.Error("MEMORY.md lacks the entry")
		}
		res, err = f.svc.Propose("t_alpha", Input{Target: "DAILY", Content: "今天先讲第三章的实验"})
		if err != nil || res.Proposal.Status != StatusApplied ||
			!strings.Contains(f.readFile(t, "t_alpha", "memory/2026-03-01.md"), "今天先讲第三章的实验") {
			t.Fatalf("daily auto-apply %+v %v", res, err)
		}
		// Targets outside DAILY and MEMORY wait for review.
		res, err = f.svc.Propose("t_alpha", Input{Target: "USER", Content: "- school/class: 高二 3 班"})
		if err != nil || res.Applied != nil || res.Proposal.Status != StatusProposed {
			t.Fatalf("USER target %+v %v", res, err)
		}
		if got := f.review(t, "t_alpha", res.Proposal.ID, true); got["applied_to"] != "USER.md" ||
			!strings.Contains(f.readFile(t, "t_alpha", "USER.md"), "高二 3 班") {
			t.Errorf("USER review %v", got)
		}
	})
}

func TestDuplicatesAndBounds(t *testing.T) {
	f := setup(t, Config{})
	p := f.propose(t, "t_alpha", Input{Content: "批改时，先指出错误再给正确答案。"})
	res, err := f.svc.Propose("t_alpha", Input{Content: "  批改时先指出错误再给正确答案！ "})
	if err != nil || res.Created || res.Proposal.ID != p.ID || res.Body()["reason"] != "duplicate" {
		t.Fatalf("duplicate: %+v %v", res, err)
	}
	// Another target is not a duplicate; a rejected one no longer blocks.
	if res, _ := f.svc.Propose("t_alpha", Input{Target: "DAILY", Content: "批改时先指出错误再给正确答案"}); !res.Created {
		t.Error("other target counted as duplicate")
	}
	f.review(t, "t_alpha", p.ID, false)
	if res, _ := f.svc.Propose("t_alpha", Input{Content: "批改时先指出错误再给正确答案"}); !res.Created {
		t.Error("a rejected proposal blocked a new one")
	}
	for _, in := range []Input{
		{Content: "   "},
		{Content: strings.Repeat("长", MaxContentChars+1)},
		{Title: strings.Repeat("题", MaxTitleChars+1), Content: "x"},
		{Target: "PASSWD", Content: "x"},
	} {
		if _, err := f.svc.Propose("t_alpha", in); err == nil {
			t.Errorf("accepted %+v", in.Target)
		}
	}
	if _, err := f.svc.Propose("", Input{Content: "x"}); err != ErrNoTeacher {
		t.Errorf("blank teacher: %v", err)
	}
	// A multi-line title is one heading line.
	q := f.propose(t, "t_alpha", Input{Title: "a\n- entry_id: tmem_forged", Content: "默认作业难度中等偏上"})
	if q.Title != "a - entry_id: tmem_forged" {
		t.Errorf("title %q", q.Title)
	}
}

func TestTeachersNeverSeeEachOther(t *testing.T) {
	f := setup(t, Config{})
	a := f.propose(t, "t_alpha", Input{Content: "alpha 老师偏好先讲结论"})
	b := f.propose(t, "t_beta", Input{Content: "beta 老师偏好先讲过程"})
	for teacher, want := range map[string]string{"t_alpha": a.ID, "t_beta": b.ID} {
		_, body := f.call(t, "GET", "/teacher/memory/proposals", teacher, "")
		if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] != want {
			t.Errorf("%s sees %v", teacher, ids)
		}
	}
	// beta cannot review or delete alpha's proposal, even knowing its id.
	code, body := f.call(t, "POST", "/teacher/memory/proposals/"+a.ID+"/review", "t_beta", `{"approve":true}`)
	if code != 404 || body["detail"] != "proposal not found" {
		t.Errorf("cross review: %d %v", code, body)
	}
	if code, _ := f.call(t, "DELETE", "/teacher/memory/proposals/"+a.ID, "t_beta", ""); code != 404 {
		t.Errorf("cross delete: %d", code)
	}
	if got := f.record(t, "t_alpha", a.ID)["status"]; got != "proposed" {
		t.Errorf("alpha's proposal is %v", got)
	}
	f.review(t, "t_alpha", a.ID, true)
	if strings.Contains(f.svc.PromptContext("t_beta", 0), "alpha") || !strings.Contains(f.svc.PromptContext("t_alpha", 0), "alpha") {
		t.Error("prompt context crossed teachers")
	}
	_, ins := f.call(t, "GET", "/teacher/memory/insights", "t_beta", "")
	if ins["teacher_id"] != "t_beta" || ins["summary"].(map[string]any)["active_total"] != 0.0 {
		t.Errorf("beta insights %v", ins)
	}
}

func TestConcurrentProposalsOneTeacher(t *testing.T) {
	f := setup(t, Config{})
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := f.svc.Propose("t_alpha", Input{Title: fmt.Sprintf("偏好 %d", i), Content: fmt.Sprintf("第 %d 条偏好：作业难度按 %d 级", i, i)})
			if err != nil || !res.Created {
				t.Errorf("propose %d: %v", i, err)
			}
			ids[i] = res.Proposal.ID
		})
	}
	wg.Wait()
	_, body := f.call(t, "GET", "/teacher/memory/proposals?status=proposed&limit=200", "t_alpha", "")
	if got := proposalIDs(t, body); len(got) != n {
		t.Fatalf("listed %d of %d", len(got), n)
	}
	// Approve them all at once over HTTP: every block lands in MEMORY.md.
	for _, id := range ids {
		wg.Go(func() {
			code, body := f.call(t, "POST", "/teacher/memory/proposals/"+id+"/review", "t_alpha", `{}`)
			if code != 200 || body["status"] != "applied" {
				t.Errorf("review %s: %d %v", id, code, body)
			}
		})
	}
	wg.Wait()
	mem := f.readFile(t, "t_alpha", "MEMORY.md")
	for _, id := range ids {
		if strings.Count(mem, "- entry_id: "+id+"\n") != 1 {
			t.Errorf("MEMORY.md has %d blocks of %s", strings.Count(mem, id), id)
		}
	}
	if !strings.HasPrefix(mem, defaultContent("MEMORY.md")) {
		t.Error("MEMORY.md lost its head")
	}
	if n := f.svc.lockedTeachers(); n != 0 {
		t.Errorf("%d teacher locks left in the map", n)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Join(f.data, "teacher_workspaces", "t_alpha"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left %s", e.Name())
		}
	}
}

func TestPromptContextBoundedAndRanked(t *testing.T) {
	f := setup(t, Config{})
	apply := func(in Input) Proposal {
		p := f.propose(t, "t_alpha", in)
		f.review(t, "t_alpha", p.ID, true)
		return p
	}
	low := apply(Input{Source: SourceAutoFlush, Content: "低优先级的会话摘录内容比较长一些"})
	high := apply(Input{Title: "讲评", Content: "记住：讲评先给结论再分点给行动项，使用固定模板"})
	expiring := apply(Input{Content: "短期有效的安排：周测改到周五进行", Meta: map[string]any{"ttl_days": 1}})
	daily := apply(Input{Target: "DAILY", Content: "今日日记不进长期记忆上下文"})

	ctx := f.svc.PromptContext("t_alpha", 0)
	if !strings.HasPrefix(ctx, "【Teacher Profile】\n# Teacher Profile\n- name: (unknown)") {
		t.Fatalf("context head:\n%s", ctx)
	}
	mem := ctx[strings.Index(ctx, "【Long-Term Memory】\n")+len("【Long-Term Memory】\n"):]
	lines := strings.Split(mem, "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "- [manual|100] 记住：讲评先给结论") ||
		!strings.Contains(lines[1], "周测改到周五") || !strings.HasPrefix(lines[2], "- [auto_flush|") {
		t.Fatalf("memory lines:\n%s", mem)
	}
	if strings.Contains(ctx, "今日日记") || strings.Contains(ctx, daily.ID) {
		t.Error("a DAILY entry reached the context")
	}

	// Two days later the one-day entry has expired and is left out.
	f.clock.advance(48 * time.Hour)
	ctx = f.svc.PromptContext("t_alpha", 0)
	if strings.Contains(ctx, "周测改到周五") || !strings.Contains(ctx, "讲评先给结论") || !strings.Contains(ctx, "会话摘录") {
		t.Fatalf("after expiry:\n%s", ctx)
	}
	_ = expiring

	// Many long entries: the context stays within its bound and keeps
	// whole lines, at most 18 of them.
	for i := range 30 {
		apply(Input{Content: fmt.Sprintf("第%02d条：%s", i, strings.Repeat("作业讲评的格式细节，", 30))})
	}
	for _, limit := range []int{0, 1500, 600, 100} {
		ctx := f.svc.PromptContext("t_alpha", limit)
		want := limit
		if limit == 0 {
			want = DefaultPromptChars
		}
		if n := utf8.RuneCountInString(ctx); n > want || n == 0 {
			t.Errorf("limit %d: %d characters", limit, n)
		}
		if i := strings.Index(ctx, "【Long-Term Memory】\n"); i >= 0 {
			entries := strings.Split(ctx[i+len("【Long-Term Memory】\n"):], "\n")
			if len(entries) > contextMaxEntries {
				t.Errorf("limit %d: %d entries", limit, len(entries))
			}
			for _, e := range entries {
				if !strings.HasPrefix(e, "- [") || utf8.RuneCountInString(e) > 260 {
					t.Errorf("limit %d: entry %q", limit, e)
				}
			}
		}
	}
	// The highest-ranked entry comes first however small the budget.
	if ctx := f.svc.PromptContext("t_alpha", 600); !strings.Contains(ctx, "讲评先给结论") {
		t.Errorf("600-char context lacks the top entry:\n%s", ctx)
	}
	_ = low
	_ = high
}

func TestPromptContextFallsBackToMemoryFile(t *testing.T) {
	f := setup(t, Config{})
	if ctx := f.svc.PromptContext("t_alpha", 0); !strings.Contains(ctx, "【Long-Term Memory】\n# Long-Term Memory (Curated)") {
		t.Fatalf("no workspace: %q", ctx)
	}
	if _, err := os.Stat(filepath.Join(f.data, "teacher_workspaces")); !os.IsNotExist(err) {
		t.Error("PromptContext created the workspace")
	}
	// An expired entry's block stays in MEMORY.md but not in the context.
	p := f.propose(t, "t_alpha", Input{Content: "只保留一天的偏好：回复用英文", Meta: map[string]any{"ttl_days": 1}})
	f.review(t, "t_alpha", p.ID, true)
	os.WriteFile(filepath.Join(f.data, "teacher_workspaces", "t_alpha", "USER.md"), []byte("# Teacher Profile\n- name: 王老师\n"), 0o644)
	f.clock.advance(72 * time.Hour)
	ctx := f.svc.PromptContext("t_alpha", 0)
	if strings.Contains(ctx, "回复用英文") || !strings.Contains(ctx, "Confirmed Preferences") || !strings.Contains(ctx, "王老师") {
		t.Errorf("fallback context:\n%s", ctx)
	}
}

func TestConflictSupersedes(t *testing.T) {
	f := setup(t, Config{})
	old := f.propose(t, "t_alpha", Input{Content: "回复要简洁，控制在三行以内"})
	f.review(t, "t_alpha", old.ID, true)
	f.clock.advance(time.Minute)
	nu := f.propose(t, "t_alpha", Input{Content: "回复要详细展开，给出完整推导"})
	res := f.review(t, "t_alpha", nu.ID, true)
	sup, _ := res["supersedes"].([]any)
	if len(sup) != 1 || sup[0] != old.ID {
		t.Fatalf("supersedes %v", res)
	}
	if r := f.record(t, "t_alpha", old.ID); r["superseded_by"] != nu.ID || r["superseded_at"] != "2026-03-01T10:01:00" {
		t.Errorf("old record %v", r)
	}
	if !strings.Contains(f.readFile(t, "t_alpha", "MEMORY.md"), "- supersedes: "+old.ID+"\n") {
		t.Error("block lacks the supersedes line")
	}
	ctx := f.svc.PromptContext("t_alpha", 0)
	if strings.Contains(ctx, "简洁") || !strings.Contains(ctx, "详细展开") {
		t.Errorf("context:\n%s", ctx)
	}
	ins, _ := f.svc.Insights("t_alpha", 14)
	if ins.Summary.SupersededTotal != 1 || ins.Summary.ActiveTotal != 1 {
		t.Errorf("summary %+v", ins.Summary)
	}
	// Search skips the superseded entry's lines.
	matches, _ := f.svc.Search("t_alpha", "回复要", 10)
	if len(matches) != 1 || !strings.Contains(matches[0].Snippet, "详细展开") || matches[0].File != "MEMORY.md" {
		t.Errorf("matches %+v", matches)
	}
}

func TestObserveTurn(t *testing.T) {
	f := setup(t, Config{})
	res, err := f.svc.ObserveTurn("t_alpha", "main", "请记住：以后批改作业都用红色标注关键步骤", "好的", nil)
	if err != nil || !res.Created || res.Proposal.Source != SourceAutoIntent || res.Proposal.Target != TargetMemory ||
		res.Proposal.Status != StatusProposed || res.Proposal.Title != "自动记忆：老师长期偏好" ||
		res.Proposal.Provenance["origin"] != "session_context" || res.Proposal.Provenance["session_id"] != "main" {
		t.Fatalf("intent: %+v %v", res.Proposal, err)
	}
	again, _ := f.svc.ObserveTurn("t_alpha", "main", "请记住：以后批改作业都用红色标注关键步骤", "", nil)
	if again.Created || again.Reason != "duplicate" {
		t.Errorf("repeat: %+v", again)
	}
	tmp, _ := f.svc.ObserveTurn("t_alpha", "main", "记住今天的课先按第二版讲义来上", "", nil)
	if !tmp.Created || tmp.Proposal.Target != TargetDaily || *tmp.Proposal.TTLDays != 14 {
		t.Errorf("temporary: %+v", tmp.Proposal)
	}
	if r, _ := f.svc.ObserveTurn("t_alpha", "main", "你好", "", nil); r.Reason != "too_short" {
		t.Errorf("short: %+v", r)
	}
	if r, _ := f.svc.ObserveTurn("t_alpha", "main", "帮我看看这道题第二问怎么算比较好", "", nil); r.Created {
		t.Errorf("plain question proposed: %+v", r)
	}
	// A repeated formatting preference is inferred.
	pref := "反馈总结请用 markdown 分点，先结论再细节"
	turns := []string{"先看一下第三题", "反馈总结请用markdown分点，先结论再细节", pref}
	inf, err := f.svc.ObserveTurn("t_alpha", "s2", pref, "", turns)
	if err != nil || !inf.Created || inf.Proposal.Source != SourceAutoInfer || inf.Proposal.Meta["similar_hits"] != 2.0 && inf.Proposal.Meta["similar_hits"] != 2 {
		t.Fatalf("infer: %+v %v", inf, err)
	}
	if r, _ := f.svc.ObserveTurn("t_alpha", "s2", pref+"呀", "", []string{pref + "呀"}); r.Created {
		t.Errorf("a single mention inferred: %+v", r)
	}
	if r, _ := f.svc.ObserveTurn("t_alpha", "main", "记住我的密码是 abc12345", "", nil); r.Created || r.Reason != "sensitive" {
		t.Errorf("secret: %+v", r)
	}
	// The daily quota.
	for i := range 10 {
		f.svc.ObserveTurn("t_alpha", "main", fmt.Sprintf("以后都默认布置第%d套练习题", i), "", nil)
	}
	list, _ := f.svc.List("t_alpha", "", 200)
	auto := 0
	for _, p := range list {
		if strings.HasPrefix(p.Source, "auto_") && strings.HasPrefix(p.CreatedAt, "2026-03-01") {
			auto++
		}
	}
	if auto != autoMaxPerDay {
		t.Errorf("%d auto proposals today, want %d", auto, autoMaxPerDay)
	}
}

func TestPriorityTTLAndRank(t *testing.T) {
	cases := []struct {
		target, title, content, source string
		meta                           map[string]any
		want                           int
	}{
		{"MEMORY", "", "以后都用简洁的格式回复", "manual", nil, 100}, // 70+12+15+10+6 (格式) = 113
		{"DAILY", "", "今天先讲实验", "auto_intent", nil, 40},   // 62+4-18-8 = 40
		{"MEMORY", "", "好的", "auto_flush", nil, 40},       // 36+12-8
		{"USER", "", "学校是第一中学，任教高二物理", "other", nil, 44},  // 44
		{"MEMORY", "", "sk-abcdefghijklmnopqrstu 存一下", "manual", nil, 0},
		{"MEMORY", "", "作业难度按中等偏上来安排布置", "auto_infer", map[string]any{"similar_hits": 3.0}, 88}, // 54+12+10+12
	}
	for _, c := range cases {
		if got := PriorityScore(c.target, c.title, c.content, c.source, c.meta); got != c.want {
			t.Errorf("%q: %d, want %d", c.content, got, c.want)
		}
	}
	ru := rules{ttlMemory: 180, ttlDaily: 14, decay: true}
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.Local)
	score := 80
	p := &Proposal{Target: "MEMORY", Source: "manual", PriorityScore: &score, Status: StatusApplied, AppliedAt: "2026-01-30T10:00:00"}
	if ru.ttlDays(p) != 180 || ageDays(p, now) != 30 {
		t.Fatalf("ttl %d age %d", ru.ttlDays(p), ageDays(p, now))
	}
	if r := ru.rankScore(p, now); r < 66.66 || r > 66.67 { // 80 × (1 − 30/180)
		t.Errorf("rank %v", r)
	}
	old := &Proposal{Target: "DAILY", PriorityScore: &score, Status: StatusApplied, AppliedAt: "2026-02-10T10:00:00"}
	if !ru.expired(old, now) || ru.active(old, now) || ru.rankScore(old, now) != 16 { // floor 0.2
		t.Errorf("daily entry: expired %v rank %v", ru.expired(old, now), ru.rankScore(old, now))
	}
	if (rules{ttlMemory: 180, ttlDaily: 14}).expired(old, now) {
		t.Error("expired with decay off")
	}
	never := 0
	forever := &Proposal{TTLDays: &never, Status: StatusApplied, AppliedAt: "2020-01-01T00:00:00", PriorityScore: &score}
	if ru.expired(forever, now) || ru.rankScore(forever, now) != 80 {
		t.Error("ttl 0 expired")
	}
	withZone := &Proposal{Status: StatusApplied, ExpiresAt: "2026-03-01T01:00:00Z", PriorityScore: &score}
	if ru.expired(withZone, now) != !now.Before(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)) {
		t.Error("zoned expires_at")
	}
	if !looseMatch("先结论，再细节！", "先结论再细节") || !looseMatch("请把作业难度定为中等偏上", "作业难度定为中等偏上") ||
		looseMatch("讲解要简洁", "批改要详细") {
		t.Error("looseMatch")
	}
	if !conflicts("回复用英文", "回复用中文") || conflicts("回复用中文", "回复用中文") || conflicts("先结论", "要点") {
		t.Error("conflicts")
	}
	if h := stableHash("auto_intent", "t", "MEMORY", "x"); len(h) != 20 {
		t.Errorf("hash %q", h)
	}
}

// Records written by the predecessor (no priority, odd types, extra
// fields) list and apply without loss.
func TestLegacyRecords(t *testing.T) {
	f := setup(t, Config{})
	dir := filepath.Join(f.data, "teacher_workspaces", "t_alpha", "proposals")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "tmem_old000000001.json"), []byte(`{"teacher_id":"t_alpha","target":"memory",
		"title":"旧","content":"默认按 A4 纸排版输出讲义","priority_score":"61","ttl_days":null,"created_at":"2026-02-27T08:00:00",
		"status":"Proposed","mem0":{"ok":true,"id":"m1"},"custom":[1,2]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{not json`), 0o644)
	list, err := f.svc.List("t_alpha", "proposed", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	p := list[0]
	if p.ID != "tmem_old000000001" || p.Target != "MEMORY" || *p.PriorityScore != 61 || p.TTLDays != nil ||
		p.Provenance["origin"] != "manual_input" {
		t.Errorf("legacy %+v", p)
	}
	if _, err := f.svc.Review("t_alpha", p.ID, true); err != nil {
		t.Fatal(err)
	}
	r := f.record(t, "t_alpha", p.ID)
	if r["mem0"].(map[string]any)["id"] != "m1" || r["custom"] == nil || r["ttl_days"] != 180.0 || r["status"] != "applied" ||
		r["proposal_id"] != p.ID {
		t.Errorf("record after apply %v", r)
	}
}

func TestReadFileAndSearch(t *testing.T) {
	f := setup(t, Config{})
	// Reading a workspace that does not exist yet gives the defaults and writes nothing.
	if name, text, err := f.svc.ReadFile("t_alpha", "soul", "", 0); err != nil || name != "SOUL.md" || text != defaultContent("SOUL.md") {
		t.Fatalf("read SOUL: %q %q %v", name, text, err)
	}
	if _, err := os.Stat(filepath.Join(f.data, "teacher_workspaces")); !os.IsNotExist(err) {
		t.Error("ReadFile created the workspace")
	}
	if name, _, _ := f.svc.ReadFile("t_alpha", "../../etc/passwd", "", 0); name != "MEMORY.md" {
		t.Errorf("unknown file read %s", name)
	}
	if name, text, _ := f.svc.ReadFile("t_alpha", "MEMORY.md", "", 10); name != "MEMORY.md" || text != "# Long-Ter…" {
		t.Errorf("max_chars: %q", text)
	}
	p := f.propose(t, "t_alpha", Input{Target: "DAILY", Content: "第二节课讲了动量守恒"})
	f.review(t, "t_alpha", p.ID, true)
	if name, text, _ := f.svc.ReadFile("t_alpha", "daily", "2026-03-01", 0); name != "memory/2026-03-01.md" || !strings.Contains(text, "动量守恒") {
		t.Errorf("daily: %s %q", name, text)
	}
	if name, text, _ := f.svc.ReadFile("t_alpha", "DAILY", "2025-01-01", 0); name != "memory/2025-01-01.md" || text != "" {
		t.Errorf("missing daily: %s %q", name, text)
	}
	if name, _, _ := f.svc.ReadFile("t_alpha", "DAILY", "../x", 0); name != "memory/2026-03-01.md" {
		t.Errorf("bad date: %s", name)
	}
	matches, err := f.svc.Search("t_alpha", "动量", 5)
	if err != nil || len(matches) != 1 || matches[0].File != "memory/2026-03-01.md" || matches[0].Source != "keyword" ||
		!strings.Contains(matches[0].Snippet, "动量守恒") {
		t.Fatalf("search %+v %v", matches, err)
	}
	if m, _ := f.svc.Search("t_alpha", "PROACTIVE", 5); len(m) != 1 || m[0].File != "SOUL.md" || m[0].Line != 2 {
		t.Errorf("case-insensitive search %+v", m)
	}
	if m, _ := f.svc.Search("t_alpha", "  ", 5); len(m) != 0 {
		t.Errorf("blank query %+v", m)
	}
}

func TestToolsThroughRegistry(t *testing.T) {
	f := setup(t, Config{})
	reg := registry(t, f.svc)
	tch := teacherP("t_alpha")
	out := dispatch(t, reg, tch, "teacher_workspace_init", `{}`)
	if out["ok"] != true || out["teacher_id"] != "t_alpha" || out["workspace"] != "teacher_workspaces/t_alpha" {
		t.Fatalf("init %v", out)
	}
	if got := f.readFile(t, "t_alpha", "HEARTBEAT.md"); got != defaultContent("HEARTBEAT.md") {
		t.Errorf("HEARTBEAT.md %q", got)
	}
	out = dispatch(t, reg, tch, "teacher.memory.propose", `{"target":"memory","title":"语气","content":"讲解语气亲切，多用鼓励"}`)
	id, _ := out["proposal_id"].(string)
	if out["ok"] != true || out["status"] != "proposed" || out["created"] != true || id == "" {
		t.Fatalf("propose %v", out)
	}
	out = dispatch(t, reg, tch, "teacher_memory_apply", fmt.Sprintf(`{"proposal_id":%q}`, id))
	if out["status"] != "applied" || out["applied_to"] != "MEMORY.md" {
		t.Fatalf("apply %v", out)
	}
	out = dispatch(t, reg, tch, "teacher_memory_get", `{"file":"MEMORY"}`)
	if out["file"] != "MEMORY.md" || !strings.Contains(out["content"].(string), "多用鼓励") {
		t.Errorf("get %v", out)
	}
	out = dispatch(t, reg, tch, "teacher_memory_search", `{"query":"鼓励","limit":3}`)
	if ms, _ := out["matches"].([]any); out["query"] != "鼓励" || len(ms) != 1 || out["mode"] != "keyword" {
		t.Errorf("search %v", out)
	}
	// The model cannot name another teacher, and students get no memory tools.
	out = dispatch(t, reg, tch, "teacher_memory_get", `{"teacher_id":"t_beta"}`)
	if out["error"] != "invalid_arguments" {
		t.Errorf("teacher_id argument: %v", out)
	}
	student := caller.Principal{Role: caller.RoleStudent, StudentID: "S01", TeacherID: "t_alpha", Via: caller.Token}
	if out := dispatch(t, reg, student, "teacher_memory_get", `{}`); out["error"] != "permission denied" {
		t.Errorf("student: %v", out)
	}
	if len(reg.Allowed(caller.RoleStudent)) != 0 || len(reg.Allowed(caller.RoleTeacher)) != 5 {
		t.Errorf("allowed: student %d teacher %d", len(reg.Allowed(caller.RoleStudent)), len(reg.Allowed(caller.RoleTeacher)))
	}
	// Another teacher's tools see their own workspace only.
	beta := teacherP("t_beta")
	out = dispatch(t, reg, beta, "teacher_memory_apply", fmt.Sprintf(`{"proposal_id":%q,"approve":false}`, id))
	if out["error"] != "proposal not found" {
		t.Errorf("beta apply: %v", out)
	}
	if out := dispatch(t, reg, beta, "teacher_memory_search", `{"query":"鼓励"}`); len(out["matches"].([]any)) != 0 {
		t.Errorf("beta search: %v", out)
	}
	if out := dispatch(t, reg, tch, "teacher_memory_propose", `{"target":"PASSWD","content":"x"}`); !strings.Contains(fmt.Sprint(out["error"]), "invalid target") {
		t.Errorf("bad target: %v", out)
	}
	if out := dispatch(t, reg, tch, "teacher_memory_propose", `{"title":"x"}`); out["error"] != "invalid_arguments" {
		t.Errorf("missing content: %v", out)
	}
	_ = context.Background
}

func TestStudentMemoryProposals(t *testing.T) {
	f := setup(t, Config{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /teacher/student-memory/proposals", f.svc.ServeStudentProposals)
	mux.HandleFunc("POST /teacher/student-memory/proposals", f.svc.ServeStudentCreate)
	mux.HandleFunc("POST /teacher/student-memory/proposals/{proposal_id}/review", f.svc.ServeStudentReview)
	mux.HandleFunc("DELETE /teacher/student-memory/proposals/{proposal_id}", f.svc.ServeStudentDelete)
	mux.HandleFunc("GET /teacher/student-memory/insights", f.svc.ServeStudentInsights)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := teacherP(r.Header.Get("X-Test-Teacher"))
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	defer srv.Close()
	f.srv = srv

	code, body := f.call(t, "POST", "/teacher/student-memory/proposals", "t_alpha",
		`{"student_id":"S001","memory_type":"stable_misconception","content":"总是把加速度方向和速度方向混淆","evidence_refs":["EX1:Q3"]}`)
	if code != 200 || body["status"] != "proposed" || body["teacher_id"] != "t_alpha" {
		t.Fatalf("create %d %v", code, body)
	}
	id := body["proposal_id"].(string)
	if !strings.HasPrefix(id, "smem_") || len(id) != 17 {
		t.Errorf("id %s", id)
	}
	for _, c := range []struct{ body, detail string }{
		{`{"student_id":"S001","memory_type":"gossip","content":"总是把加速度方向和速度方向混淆"}`, "invalid_memory_type"},
		{`{"student_id":"S001","memory_type":"long_term_goal","content":"考好"}`, "content_too_short"},
		{`{"student_id":"","memory_type":"long_term_goal","content":"希望期末物理上九十"}`, "student_id_required"},
		{`{"student_id":"S001","memory_type":"long_term_goal","content":"这次考了 86 分，班级排名第 3 名"}`, "content_blocked"},
		{`{"student_id":"S001","memory_type":"learning_preference","content":"家长手机号 13900001111 方便联系"}`, "content_blocked"},
	} {
		code, body := f.call(t, "POST", "/teacher/student-memory/proposals", "t_alpha", c.body)
		if code != 400 || body["detail"] != c.detail {
			t.Errorf("%s: %d %v", c.body, code, body)
		}
	}
	var re *RiskError
	if _, err := f.svc.ProposeStudent("t_alpha", StudentInput{StudentID: "S001", MemoryType: "long_term_goal",
		Content: "期末成绩 95 分，排名前三"}); !errors.As(err, &re) || len(re.Flags) != 2 || re.Flags[0] != "score_detail" {
		t.Errorf("risk flags: %v", err)
	}
	if _, err := f.svc.ProposeStudent("t_alpha", StudentInput{StudentID: "S002", MemoryType: "long_term_goal",
		Content: "想考物理竞赛，每天练习 30 分钟"}); err != nil {
		t.Errorf("minutes flagged: %v", err)
	}

	_, body = f.call(t, "GET", "/teacher/student-memory/proposals?student_id=S001", "t_alpha", "")
	if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] != id {
		t.Errorf("list S001 %v", ids)
	}
	if _, body := f.call(t, "GET", "/teacher/student-memory/proposals", "t_beta", ""); len(proposalIDs(t, body)) != 0 {
		t.Error("beta sees alpha's student memory")
	}
	if code, _ := f.call(t, "POST", "/teacher/student-memory/proposals/"+id+"/review", "t_beta", `{}`); code != 404 {
		t.Errorf("beta review %d", code)
	}
	code, body = f.call(t, "POST", "/teacher/student-memory/proposals/"+id+"/review", "t_alpha", `{"approve":true}`)
	if code != 200 || body["status"] != "applied" {
		t.Fatalf("review %d %v", code, body)
	}
	var rec map[string]any
	json.Unmarshal([]byte(f.readFile(t, "t_alpha", "student_memory/proposals/"+id+".json")), &rec)
	if rec["reviewed_by"] != "t_alpha" || rec["reviewed_at"] != "2026-03-01T10:00:00" || rec["memory_type"] != "stable_misconception" {
		t.Errorf("record %v", rec)
	}
	_, ins := f.call(t, "GET", "/teacher/student-memory/insights", "t_alpha", "")
	if ins["total"] != 2.0 || ins["status_counts"].(map[string]any)["applied"] != 1.0 ||
		ins["type_counts"].(map[string]any)["long_term_goal"] != 1.0 || ins["days"] != 14.0 {
		t.Errorf("insights %v", ins)
	}
	code, body = f.call(t, "DELETE", "/teacher/student-memory/proposals/"+id, "t_alpha", "")
	if code != 200 || body["status"] != "deleted" {
		t.Fatalf("delete %d %v", code, body)
	}
	_, body = f.call(t, "GET", "/teacher/student-memory/proposals", "t_alpha", "")
	if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] == id {
		t.Errorf("after delete %v", ids)
	}
	_, body = f.call(t, "GET", "/teacher/student-memory/proposals?status=deleted", "t_alpha", "")
	if ids := proposalIDs(t, body); len(ids) != 1 || ids[0] != id {
		t.Errorf("deleted list %v", ids)
	}
	if code, body := f.call(t, "GET", "/teacher/student-memory/proposals?status=x", "t_alpha", ""); code != 400 || body["detail"] != "invalid_status" {
		t.Errorf("bad status %d %v", code, body)
	}
	if code, _ := f.call(t, "DELETE", "/teacher/student-memory/proposals/smem_nothere00000", "t_alpha", ""); code != 404 {
		t.Errorf("delete missing %d", code)
	}
}
