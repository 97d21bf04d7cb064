package chat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/attachments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/tools"
	"github.com/lectern/lectern/internal/upload"
)

// agentReplier replies through a real agent (observed as the tenant
// builds it) and a real LLM client, with the attachment text as system
// context.
type agentReplier struct{ a *agent.Agent }

func (r agentReplier) Reply(ctx context.Context, c caller.Principal, session string, msgs []Message, agentID string) (string, error) {
	return r.ReplyWithContext(ctx, c, session, msgs, agentID, "")
}

func (r agentReplier) ReplyWithContext(ctx context.Context, c caller.Principal, _ string, msgs []Message, agentID, extra string) (string, error) {
	in := agent.Input{Caller: c, AgentID: agentID, ExtraSystem: extra}
	for _, m := range msgs {
		in.Messages = append(in.Messages, llm.Message{Role: m.Role, Content: m.Content})
	}
	res, err := r.a.Run(ctx, in)
	if errors.Is(err, llm.ErrNotConfigured) {
		return "", ErrNotConfigured
	}
	return res.Reply, err
}

// lookupTool is the one tool of the test agent: it reports a fixed fact.
var lookupTool = tools.Tool{
	Name: "demo.lookup", Description: "look a fact up",
	Parameters: map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}},
		"additionalProperties": false},
	Run: func(_ context.Context, _ caller.Principal, args map[string]any) (any, error) {
		return map[string]any{"fact": "光速约为 3×10^8 m/s"}, nil
	},
}

type env struct {
	t    testing.TB
	dir  string
	fake *llmtest.Server
	svc  *Service
	att  *attachments.Service
	srv  *httptest.Server
}

type envOption func(*Config)

// newEnv is a tenant's chat (and attachments) over real HTTP: the agent
// with one tool, a real LLM client to the fake server, real files. The
// caller is taken from test headers (X-Role, X-Teacher, X-Student: a
// verified principal), else open mode.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), nil, opts...)
}

func newEnvIn(t testing.TB, dir string, x upload.Extractor, opts ...envOption) *env {
	t.Helper()
	fake := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "fake", BaseURL: fake.URL, Model: "m",
		Timeout: 10 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	client := &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()), Global: limits.NewSet(limits.TenantDefaults())}
	reg, err := tools.NewRegistry(agent.ObserveTools(lookupTool)...)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent.Agent{LLM: agent.ObserveLLM(client, reg), Tools: reg, Prompts: agent.NewPrompts(dir)}
	res := caller.Resolver{Tenant: "t1", DefaultTeacherID: "teacher"}
	att := attachments.New(attachments.Config{UploadsDir: dir, Extractor: x, Resolver: res})
	cfg := Config{UploadsDir: dir, History: history.NewStore(dir, 0), Replier: agentReplier{a}, Resolver: res,
		Workers: 2, Attachments: att, AttachmentWait: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	svc := New(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /chat/start", svc.HandleStart)
	mux.HandleFunc("POST /chat", svc.HandleChat)
	mux.HandleFunc("GET /chat/status", svc.HandleStatus)
	mux.HandleFunc("GET /chat/stream", svc.HandleStream)
	mux.HandleFunc("POST /chat/attachments", att.HandleUpload)
	mux.HandleFunc("GET /chat/attachments/status", att.HandleStatus)
	mux.HandleFunc("DELETE /chat/attachments/{attachment_id}", att.HandleDelete)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := res.Resolve(caller.Claims{Role: r.URL.Query().Get("role"), TeacherID: r.URL.Query().Get("teacher_id"),
			StudentID: r.URL.Query().Get("student_id")})
		if role := r.Header.Get("X-Role"); role != "" {
			p = caller.Principal{Tenant: "t1", Role: caller.Role(role), TeacherID: r.Header.Get("X-Teacher"),
				StudentID: r.Header.Get("X-Student"), Via: caller.Token}
			if p.TeacherID == "" {
				p.TeacherID = "teacher"
			}
		}
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	for _, r := range []interface{ Start(context.Context) error }{svc.Runner(), att.Runner()} {
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, dir: dir, fake: fake, svc: svc, att: att, srv: srv}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	e.svc.Close()
	e.srv.CloseClientConnections()
	e.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.svc.Runner().Stop(ctx)
	e.att.Runner().Stop(ctx)
}

// who is a test caller: a verified teacher or student.
type who struct{ role, teacher, student string }

var (
	teacherA = who{"teacher", "t_zhang", ""}
	teacherB = who{"teacher", "t_li", ""}
	studentA = who{"student", "", "S001"}
)

func (w who) set(r *http.Request) {
	if w.role != "" {
		r.Header.Set("X-Role", w.role)
		r.Header.Set("X-Teacher", w.teacher)
		r.Header.Set("X-Student", w.student)
	}
}

// postJSON posts body and decodes the answer.
func (e *env) postJSON(as who, path string, body any) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	as.set(req)
	return e.do(req)
}

func (e *env) get(as who, path string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	as.set(req)
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("%s %s: %d %q", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

// start starts a chat job as who and returns its id.
func (e *env) start(as who, requestID, text string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{"request_id": requestID, "messages": []map[string]any{{"role": "user", "content": text}}}
	for k, v := range extra {
		body[k] = v
	}
	code, res := e.postJSON(as, "/chat/start", body)
	if code != 200 || res["job_id"] == nil {
		e.t.Fatalf("start: %d %v", code, res)
	}
	return res["job_id"].(string)
}

// waitJob waits until job id is done or failed and returns its record.
func (e *env) waitJob(as who, id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		code, rec := e.get(as, "/chat/status?job_id="+id)
		if code != 200 {
			e.t.Fatalf("status %d %v", code, rec)
		}
		if s := rec["status"]; s == StatusDone || s == StatusFailed {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("job %s did not end", id)
	return nil
}

// sse is a Server-Sent Events client over one GET /chat/stream.
type sse struct {
	resp     *http.Response
	br       *bufio.Reader
	cancel   context.CancelFunc
	comments int
	retry    string
}

// sseEvent is one event as the client reads it.
type sseEvent struct {
	id    int64
	name  string
	data  Event
	rawID string
}

// openStream opens the stream of job id as who, from lastID (query) and
// lastHeader (Last-Event-ID, "" for none).
func (e *env) openStream(as who, id string, lastID int64, lastHeader string) (*sse, int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	url := e.srv.URL + "/chat/stream?job_id=" + id
	if lastID > 0 {
		url += "&last_event_id=" + strconv.FormatInt(lastID, 10)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastHeader != "" {
		req.Header.Set("Last-Event-ID", lastHeader)
	}
	as.set(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	s := &sse{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}
	if resp.StatusCode != 200 {
		defer s.close()
	}
	return s, resp.StatusCode
}

func (s *sse) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next reads the next event; io.EOF when the server ended the stream.
func (s *sse) next() (sseEvent, error) {
	var ev sseEvent
	var data strings.Builder
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data.Len() == 0 && ev.name == "" {
				continue
			}
			if err := json.Unmarshal([]byte(data.String()), &ev.data); err != nil {
				return ev, err
			}
			return ev, nil
		case strings.HasPrefix(line, ":"):
			s.comments++
		case strings.HasPrefix(line, "retry:"):
			s.retry = strings.TrimSpace(strings.TrimPrefix(line, "retry:"))
		case strings.HasPrefix(line, "id:"):
			ev.rawID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
			ev.id, _ = strconv.ParseInt(ev.rawID, 10, 64)
		case strings.HasPrefix(line, "event:"):
			ev.name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

// readAll reads events until the server ends the stream.
func (s *sse) readAll(t testing.TB) []sseEvent {
	t.Helper()
	var out []sseEvent
	for {
		ev, err := s.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}
