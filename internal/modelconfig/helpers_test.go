package modelconfig

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// testKey is a master key for tests.
func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// env is a tenant: its DATA_DIR, its provider chain (a fake LLM) and the
// client its own calls use.
type env struct {
	t      *testing.T
	dir    string
	school *llmtest.Server
	shared llm.Config
	base   *llm.Client
	key    []byte
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), school: llmtest.NewServer(t), key: testKey(t)}
	e.shared = llm.Config{Providers: []llm.Provider{{Name: "school", BaseURL: e.school.URL, Model: "school-model",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}
	e.base = &llm.Client{Gateway: llm.NewGateway(e.shared, llm.Options{}), Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
	return e
}

// service builds a Service over the env's data; mutate adjusts its Config.
func (e *env) service(mutate func(*Config)) *Service {
	e.t.Helper()
	c := Config{DataDir: e.dir, MasterKey: e.key, Shared: e.shared, ProbeTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&c)
	}
	s, err := New(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// api serves s's routes over real HTTP; the caller is the X-Teacher and
// X-Role (default teacher) of each request, as a verified principal.
func api(t *testing.T, s *Service) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /teacher/provider-registry", s.GetProviderRegistry)
	mux.HandleFunc("POST /teacher/provider-registry/providers", s.CreateProvider)
	mux.HandleFunc("PATCH /teacher/provider-registry/providers/{provider_id}", s.UpdateProvider)
	mux.HandleFunc("DELETE /teacher/provider-registry/providers/{provider_id}", s.DeleteProvider)
	mux.HandleFunc("POST /teacher/provider-registry/providers/{provider_id}/probe-models", s.ProbeProvider)
	mux.HandleFunc("GET /teacher/model-config", s.GetModelConfig)
	mux.HandleFunc("PUT /teacher/model-config", s.PutModelConfig)
	mux.HandleFunc("GET /teacher/llm-routing", s.GetRouting)
	mux.HandleFunc("POST /teacher/llm-routing/simulate", s.PostRoutingSimulate)
	mux.HandleFunc("POST /teacher/llm-routing/proposals", s.PostRoutingProposal)
	mux.HandleFunc("GET /teacher/llm-routing/proposals/{proposal_id}", s.GetRoutingProposal)
	mux.HandleFunc("POST /teacher/llm-routing/proposals/{proposal_id}/review", s.PostRoutingProposalReview)
	mux.HandleFunc("POST /teacher/llm-routing/rollback", s.PostRoutingRollback)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := r.Header.Get("X-Role")
		if role == "" {
			role = "teacher"
		}
		p := caller.Principal{Tenant: "t1", Role: caller.Role(role), TeacherID: r.Header.Get("X-Teacher"), Via: caller.Token}
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// reply is one answer of the API.
type reply struct {
	status int
	raw    string
	body   map[string]any
}

// detail is the {"detail": {...}} object of a refusal.
func (r reply) detail() map[string]any {
	d, _ := r.body["detail"].(map[string]any)
	return d
}

func call(t *testing.T, srv *httptest.Server, teacher, method, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Teacher", teacher)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, raw: string(raw)}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, raw)
	}
	return out
}

func must(t *testing.T, r reply, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// get walks a decoded JSON value: get(v, "a", 0, "b").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// filesContaining lists the files under dir whose bytes contain s.
func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte(s)) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func chat(t *testing.T, c *llm.Client) *llm.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Chat(ctx, llm.Request{Messages: []llm.Message{{Role: "user", Content: "你好"}}, Role: limits.RoleTeacher, Kind: "chat.agent"})
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	return resp
}

// legacySeal is the predecessor's tprv-v1 sealing (its encrypt_secret).
func legacySeal(passphrase, plain string) string {
	key := sha256.Sum256([]byte(passphrase))
	nonce := make([]byte, 12)
	rand.Read(nonce)
	ct := make([]byte, len(plain))
	var block []byte
	for i := range ct {
		if i%32 == 0 {
			m := hmac.New(sha256.New, key[:])
			m.Write(nonce)
			var c [4]byte
			binary.BigEndian.PutUint32(c[:], uint32(i/32))
			m.Write(c[:])
			block = m.Sum(nil)
		}
		ct[i] = plain[i] ^ block[i%32]
	}
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("tprv-v1:"))
	m.Write(nonce)
	m.Write(ct)
	raw := append([]byte{1}, nonce...)
	raw = append(raw, m.Sum(nil)[:16]...)
	raw = append(raw, ct...)
	return strings.TrimRight(base64.URLEncoding.EncodeToString(raw), "=")
}
