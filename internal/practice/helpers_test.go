package practice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// testNow is the tests' clock: 2026-12-01 10:00 local.
var testNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.Local)

const testDay = "2026-12-01"

func newService(t *testing.T, data string, tune ...func(*Config)) *Service {
	t.Helper()
	c := Config{DataDir: data, Assignments: assignments.NewService(data), Now: func() time.Time { return testNow }}
	for _, f := range tune {
		f(&c)
	}
	s := New(c)
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// fakeLLM is a client to an in-process fake provider.
func fakeLLM(t *testing.T) (*llm.Client, *llmtest.Server) {
	t.Helper()
	srv := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "test", BaseURL: srv.URL, Model: "m",
		Timeout: 10 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	return &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}, srv
}

func writeFile(t *testing.T, data, rel, content string) {
	t.Helper()
	p := filepath.Join(data, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, data, rel string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, data, rel, string(b))
}

// bankRow is id,kp,difficulty; its stem file holds stem when not "".
type bankRow struct{ id, kp, difficulty, stem string }

// writeBank writes DATA_DIR/question_bank/questions.csv and the stems.
func writeBank(t *testing.T, data string, rows ...bankRow) {
	t.Helper()
	var out []Row
	for _, r := range rows {
		ref := ""
		if r.stem != "" {
			ref = "question_bank/stems/" + r.id + ".md"
			writeFile(t, data, ref, r.stem)
		}
		out = append(out, Row{QuestionID: r.id, KPID: r.kp, Difficulty: r.difficulty, Type: "bank", StemRef: ref, Source: "bank"})
	}
	writeFile(t, data, "question_bank/questions.csv", string(encodeRows(out)))
}

// validRequirements is a checklist that passes the eight-item validation
// (as decoded from JSON).
func validRequirements() map[string]any {
	var m map[string]any
	json.Unmarshal([]byte(mustJSON(requirementsSource())), &m)
	return m
}

func requirementsSource() map[string]any {
	return map[string]any{
		"subject": "物理", "topic": "牛顿第二定律", "grade_level": "高二", "class_level": "中等",
		"core_concepts": "受力分析, 加速度, 合力", "typical_problem": "斜面上的物块",
		"misconceptions":   []string{"质量与重量混淆", "忽略摩擦", "方向弄反", "单位错误"},
		"duration_minutes": 40, "preferences": []string{"A基础", "E小测验"},
	}
}

func saveRequirements(t *testing.T, data, id string) {
	t.Helper()
	if _, err := assignments.NewService(data).SaveRequirements(assignments.SaveRequest{AssignmentID: id,
		Requirements: validRequirements()}); err != nil {
		t.Fatal(err)
	}
}

func questions(t *testing.T, data, id string) []Row {
	t.Helper()
	rows, err := readRows(filepath.Join(data, "assignments", id, "questions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func idsOf(rows []Row) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.QuestionID)
	}
	return out
}

func readText(t *testing.T, data, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// treeState lists every file under root with its size and mtime.
func treeState(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() { // its entries tell what changed
			lines = append(lines, rel+"/")
			return nil
		}
		lines = append(lines, fmt.Sprintf("%s %d %d", rel, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// server is the practice handlers and the assignment routes they meet,
// with the principal taken from the X-Student header (a student) or a
// teacher otherwise.
type server struct {
	*httptest.Server
	svc *Service
}

func newServer(t *testing.T, svc *Service) *server {
	t.Helper()
	api := assignments.NewAPI(svc.asg, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /assignment/generate", svc.GenerateHandler)
	mux.HandleFunc("GET /assignment/{assignment_id}/generate/status", svc.GenerateStatusHandler)
	mux.HandleFunc("POST /assignment/render", svc.RenderHandler)
	mux.HandleFunc("GET /assignment/{assignment_id}/pdf", svc.PDFHandler)
	mux.HandleFunc("GET /assignment/today", api.TodayWith(svc))
	mux.HandleFunc("GET /assignment/{assignment_id}", api.Get)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := caller.Principal{Role: caller.RoleTeacher, TeacherID: "t1", Via: caller.Claimed}
		if sid := r.Header.Get("X-Student"); sid != "" {
			p = caller.Principal{Role: caller.RoleStudent, StudentID: sid, Via: caller.Claimed}
		}
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	return &server{Server: srv, svc: svc}
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return m
}

func (s *server) do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b, resp.Header}
}

// postForm sends an urlencoded form.
func (s *server) postForm(t *testing.T, path string, form url.Values) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return s.do(t, req)
}

// postMultipart sends a multipart form.
func (s *server) postMultipart(t *testing.T, path string, form map[string]string) reply {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range form {
		mw.WriteField(k, v)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", s.URL+path, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return s.do(t, req)
}

func (s *server) get(t *testing.T, path, student string) reply {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	if student != "" {
		req.Header.Set("X-Student", student)
	}
	return s.do(t, req)
}

// waitStatus polls a background generation until it ends.
func (s *server) waitStatus(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r := s.get(t, "/assignment/"+id+"/generate/status", "")
		if r.status == 200 {
			st := r.json(t)
			if st["status"] == StatusDone || st["status"] == StatusFailed {
				return st
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("generation of %s did not end", id)
	return nil
}
