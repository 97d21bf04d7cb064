package tenantapp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// recorder is an Observer that keeps what it hears.
type recorder struct {
	mu    sync.Mutex
	jobs  []jobs.JobEvent
	calls []llm.CallEvent
	waits []limits.WaitEvent
	other []string // tenants other than t1
}

func (r *recorder) note(tenant string) {
	if tenant != "t1" {
		r.other = append(r.other, tenant)
	}
}

func (r *recorder) ObserveJob(tenant string, e jobs.JobEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note(tenant)
	r.jobs = append(r.jobs, e)
}

func (r *recorder) ObserveLLMCall(tenant string, e llm.CallEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note(tenant)
	r.calls = append(r.calls, e)
}

func (r *recorder) ObserveLimitWait(tenant string, e limits.WaitEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note(tenant)
	r.waits = append(r.waits, e)
}

// Shared.Observer reaches the tenant's runners (with the tenant's worker
// kind), its LLM calls and its limiter waits: two chat turns of two
// teachers against llm_teacher = 1 (the second waits for the first's
// slot), then an exam upload.
func TestObserverWiring(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(llmtest.Recorded) llmtest.Step {
		return llmtest.Step{Reply: "好的", Delay: 150 * time.Millisecond}
	})
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "fake", BaseURL: fake.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	rec := &recorder{}
	dir := t.TempDir()
	lim := limits.TenantDefaults()
	lim.LLMTeacher = 1
	a, err := New(Settings{TenantID: "t1", DataDir: filepath.Join(dir, "d"), UploadsDir: filepath.Join(dir, "u"),
		Prefix: "/t/t1", Limits: lim, ChatWorkers: 2},
		Shared{Global: limits.NewGlobalSet(limits.TenantDefaults()), LLM: gw, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)
	srv := httptest.NewServer(a)
	defer srv.Close()

	post := func(path, ctype string, body io.Reader) map[string]any {
		t.Helper()
		resp, err := http.Post(srv.URL+path, ctype, body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	for _, teacher := range []string{"t_a", "t_b"} {
		b, _ := json.Marshal(map[string]any{"request_id": "r_" + teacher, "role": "teacher", "teacher_id": teacher,
			"messages": []map[string]any{{"role": "user", "content": "你好"}}})
		post("/chat/start", "application/json", bytes.NewReader(b))
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("exam_id", "EX1")
	mw.WriteField("max_scores", `{"1":4}`)
	fw, _ := mw.CreateFormFile("score_files", "s.csv")
	io.WriteString(fw, "姓名,班级,1,总分\n张三,一班,4,4\n")
	mw.Close()
	post("/exam/upload/start", mw.FormDataContentType(), &body)

	kinds := func() map[string]int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := map[string]int{}
		for _, e := range rec.jobs {
			n[e.Kind+"/"+e.Outcome]++
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if k := kinds(); k[KindChat+"/done"] == 2 && k[KindExamUpload+"/done"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs heard: %v", kinds())
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.other) > 0 {
		t.Errorf("events under other tenants: %v", rec.other)
	}
	agent := 0
	for _, c := range rec.calls {
		if c.Provider != "fake" || c.Err != nil {
			t.Errorf("call %+v", c)
		}
		if c.Kind == "chat.agent" {
			agent++
		}
	}
	if agent < 2 {
		t.Errorf("%d chat.agent calls heard: %+v", agent, rec.calls)
	}
	waited := false
	for _, w := range rec.waits {
		waited = waited || w.Pool == limits.PoolLLMTeacher && !w.Global && w.Wait > 50*time.Millisecond
	}
	if !waited {
		t.Errorf("no wait on the tenant's llm_teacher pool: %+v", rec.waits)
	}
}
