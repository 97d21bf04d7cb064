package history

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fsid"
)

type testServer struct {
	*httptest.Server
	store *Store
	dir   string
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	s := NewStore(dir, 0)
	s.now = newClock().now
	auth := caller.Authenticator{Resolver: caller.Resolver{DefaultTeacherID: "teacher"}}
	api := NewAPI(s, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /student/history/sessions", api.StudentSessions)
	mux.HandleFunc("GET /student/history/session", api.StudentSession)
	mux.HandleFunc("GET /student/session/view-state", api.StudentViewState)
	mux.HandleFunc("PUT /student/session/view-state", api.PutStudentViewState)
	mux.HandleFunc("GET /teacher/history/sessions", api.TeacherSessions)
	mux.HandleFunc("GET /teacher/history/session", api.TeacherSession)
	mux.HandleFunc("GET /teacher/session/view-state", api.TeacherViewState)
	mux.HandleFunc("PUT /teacher/session/view-state", api.PutTeacherViewState)
	srv := httptest.NewServer(auth.Middleware(mux))
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: s, dir: dir}
}

// do sends a request and returns status, raw body and the decoded body.
func (ts *testServer) do(t *testing.T, method, path, body string) (int, string, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, ts.URL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
	}
	return resp.StatusCode, string(raw), m
}

func msgContents(v any) string {
	var parts []string
	for _, m := range v.([]any) {
		parts = append(parts, m.(map[string]any)["content"].(string))
	}
	return strings.Join(parts, ",")
}

func TestHTTPHistory(t *testing.T) {
	ts := newTestServer(t)
	writeSession(t, ts.dir, Student, "S001", "main", sevenLines)
	ts.store.Append(Student, "S001", "main", nil, map[string]any{"date": "2026-02-08"})
	ts.store.Append(Student, "S001", "second", []map[string]any{{"role": "user", "content": "hello"}}, nil)

	code, _, m := ts.do(t, "GET", "/student/history/sessions?student_id=S001&limit=1", "")
	if code != 200 || m["ok"] != true || m["student_id"] != "S001" || m["total"] != 2.0 || m["next_cursor"] != 1.0 {
		t.Fatalf("%d %v", code, m)
	}
	if s := m["sessions"].([]any); len(s) != 1 || s[0].(map[string]any)["session_id"] != "second" {
		t.Fatalf("sessions %v", s)
	}
	_, raw, m := ts.do(t, "GET", "/student/history/sessions?student_id=S001&cursor=1", "")
	if m["next_cursor"] != nil || !strings.Contains(raw, `"next_cursor":null`) {
		t.Fatalf("last page %s", raw)
	}
	_, raw, _ = ts.do(t, "GET", "/student/history/sessions?student_id=nobody", "")
	if !strings.Contains(raw, `"sessions":[]`) {
		t.Fatalf("empty %s", raw)
	}

	// Message paging over HTTP with the exact cursors.
	steps := []struct {
		query, want string
		next        float64
	}{
		{"limit=3", "m4,m5,m6", 4},
		{"cursor=4&limit=2", "m1,m3", 1},
		{"cursor=1&limit=2&direction=backward", "m0", 0},
		{"cursor=2&limit=2&direction=forward", "m3,m4", 5},
		{"cursor=5&direction=FORWARD", "m5,m6", 7},
		{"limit=0", "m6", 6},                       // an explicit 0 is 1, as before
		{"limit=2&direction=sideways", "m5,m6", 5}, // anything else is backward
		{"limit=", "m0,m1,m3,m4,m5,m6", 0},         // blank is the default
	}
	for _, st := range steps {
		code, _, m := ts.do(t, "GET", "/student/history/session?student_id=S001&session_id=main&"+st.query, "")
		if code != 200 || msgContents(m["messages"]) != st.want || m["next_cursor"] != st.next || m["session_id"] != "main" {
			t.Errorf("%s: %d %v", st.query, code, m)
		}
	}
	_, raw, m = ts.do(t, "GET", "/student/history/session?student_id=S001&session_id=missing", "")
	if m["next_cursor"] != -1.0 || !strings.Contains(raw, `"messages":[]`) {
		t.Errorf("missing session %s", raw)
	}

	for path, want := range map[string]string{
		"/student/history/sessions":                                           "student_id is required",
		"/student/history/sessions?student_id=%20%20":                         "student_id is required",
		"/student/history/session?student_id=S001":                            "student_id and session_id are required",
		"/student/history/session?session_id=main":                            "student_id and session_id are required",
		"/student/session/view-state":                                         "student_id is required",
		"/teacher/history/session":                                            "session_id is required",
		"/student/history/sessions?student_id=S001&limit=ten":                 `limit must be an integer, got "ten"`,
		"/student/history/sessions?student_id=S001&cursor=1.5":                `cursor must be an integer, got "1.5"`,
		"/student/history/session?student_id=S001&session_id=m&cursor=x":      `cursor must be an integer, got "x"`,
		"/teacher/history/session?session_id=main&limit=99999999999999999999": `limit must be an integer, got "99999999999999999999"`,
	} {
		code, _, m := ts.do(t, "GET", path, "")
		if code != 400 || m["detail"] != want {
			t.Errorf("%s: %d %v, want 400 %q", path, code, m, want)
		}
	}
}

func TestHTTPTeacher(t *testing.T) {
	ts := newTestServer(t)
	ts.store.Append(Teacher, "teacher", "main", []map[string]any{{"role": "user", "content": "默认老师"}}, nil)
	ts.store.Append(Teacher, "T_01_老师", "main", []map[string]any{{"role": "user", "content": "另一位"}}, nil)

	_, _, m := ts.do(t, "GET", "/teacher/history/sessions", "")
	if m["teacher_id"] != "teacher" || m["total"] != 1.0 {
		t.Fatalf("default teacher %v", m)
	}
	_, _, m = ts.do(t, "GET", "/teacher/history/session?session_id=main&teacher_id="+url.QueryEscape("T 01 老师"), "")
	if m["teacher_id"] != "T_01_老师" || msgContents(m["messages"]) != "另一位" {
		t.Fatalf("named teacher %v", m)
	}
	// A path-like teacher id is resolved by the middleware to a safe id.
	code, _, m := ts.do(t, "GET", "/teacher/history/sessions?teacher_id=..%2F..%2Fx", "")
	if code != 200 || m["teacher_id"] != fsid.Safe("../../x", "teacher") || m["total"] != 0.0 {
		t.Fatalf("%d %v", code, m)
	}
	code, _, m = ts.do(t, "PUT", "/teacher/session/view-state?teacher_id=..", `{"state":{"active_session_id":"main"}}`)
	if code != 200 || m["teacher_id"] != fsid.Safe("..", "teacher") {
		t.Fatalf("%d %v", code, m)
	}
	entries, _ := os.ReadDir(filepath.Join(ts.dir, "teacher_chat_sessions"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "T_01_老师,teacher,"+fsid.Safe("..", "teacher") {
		t.Fatalf("teacher folders %v", names)
	}
}

var millisRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$`)

func TestHTTPViewState(t *testing.T) {
	ts := newTestServer(t)
	const path = "/student/session/view-state"

	code, raw, m := ts.do(t, "GET", path+"?student_id=S001", "")
	if code != 200 || !strings.Contains(raw, `"state":{"title_map":{},"hidden_ids":[],"active_session_id":"","updated_at":""}`) || m["student_id"] != "S001" {
		t.Fatalf("default %d %s", code, raw)
	}

	// Normalisation.
	longKey := strings.Repeat("k", 250)
	body := map[string]any{"student_id": "S001", "state": map[string]any{
		"title_map":         map[string]any{" main ": " 主会话 ", longKey: strings.Repeat("题", 150), "empty": "  ", "": "x", "n": 7},
		"hidden_ids":        []any{"a", " a ", "", "b", strings.Repeat("h", 300), strings.Repeat("h", 201), nil},
		"active_session_id": strings.Repeat("s", 300),
		"updated_at":        "2026-02-08T14:00:00.000",
	}}
	b, _ := json.Marshal(body)
	code, _, m = ts.do(t, "PUT", path, string(b))
	st := m["state"].(map[string]any)
	tm := st["title_map"].(map[string]any)
	if code != 200 || m["stale"] != false || len(tm) != 3 || tm["main"] != "主会话" || tm[strings.Repeat("k", 200)] != strings.Repeat("题", 120) || tm["n"] != "7" {
		t.Fatalf("title_map %d %v", code, m)
	}
	hidden := st["hidden_ids"].([]any)
	if len(hidden) != 3 || hidden[0] != "a" || hidden[1] != "b" || hidden[2] != strings.Repeat("h", 200) {
		t.Fatalf("hidden_ids %v", hidden)
	}
	if st["active_session_id"] != strings.Repeat("s", 200) || st["updated_at"] != "2026-02-08T14:00:00.000" {
		t.Fatalf("state %v", st)
	}
	file, _ := os.ReadFile(filepath.Join(ts.dir, "student_chat_sessions", fsid.Safe("S001", "student"), "view_state.json"))
	if !strings.HasPrefix(string(file), "{\n  \"title_map\": {\n") || !strings.Contains(string(file), "\"主会话\"") {
		t.Fatalf("file %s", file)
	}

	put := func(state string) (bool, map[string]any) {
		t.Helper()
		code, raw, m := ts.do(t, "PUT", path, `{"student_id":"S001","state":`+state+`}`)
		if code != 200 {
			t.Fatalf("PUT %s: %d %s", state, code, raw)
		}
		return m["stale"].(bool), m["state"].(map[string]any)
	}
	// Older explicit timestamp: stale, the stored state comes back.
	stale, st := put(`{"active_session_id":"old","updated_at":"2026-02-08T13:59:59"}`)
	if !stale || st["active_session_id"] != strings.Repeat("s", 200) {
		t.Fatalf("older: %v %v", stale, st)
	}
	// Equal: saved.
	if stale, st = put(`{"active_session_id":"same","updated_at":"2026-02-08T14:00:00"}`); stale || st["active_session_id"] != "same" {
		t.Fatalf("equal: %v %v", stale, st)
	}

	// Zoned against naive (naive is local time): never a 500.
	base := time.Date(2026, 2, 8, 14, 0, 0, 0, time.Local)
	earlierZ := base.Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	if stale, _ = put(`{"active_session_id":"z-old","updated_at":"` + earlierZ + `"}`); !stale {
		t.Fatalf("%s must be stale against the naive 14:00 local", earlierZ)
	}
	laterPlus8 := base.Add(time.Hour).In(time.FixedZone("", 8*3600)).Format("2006-01-02T15:04:05-07:00")
	if stale, st = put(`{"active_session_id":"z-new","updated_at":"` + laterPlus8 + `"}`); stale || st["updated_at"] != laterPlus8 {
		t.Fatalf("later zoned: %v %v", stale, st)
	}
	naiveBetween := base.Add(30 * time.Minute).Format("2006-01-02T15:04:05")
	if stale, st = put(`{"active_session_id":"naive","updated_at":"` + naiveBetween + `"}`); !stale || st["active_session_id"] != "z-new" {
		t.Fatalf("naive %s vs zoned %s: %v %v", naiveBetween, laterPlus8, stale, st)
	}
	sameInstantZ := base.Add(time.Hour).UTC().Format(time.RFC3339)
	if stale, _ = put(`{"active_session_id":"z-same","updated_at":"` + sameInstantZ + `"}`); stale {
		t.Fatal("same instant in another zone must not be stale")
	}

	// No updated_at: not stale, stamped now (ms), saved — last writer wins.
	stale, st = put(`{"active_session_id":"no-ts","title_map":{"main":"新标题"}}`)
	if stale || st["active_session_id"] != "no-ts" || !millisRE.MatchString(st["updated_at"].(string)) {
		t.Fatalf("no updated_at: %v %v", stale, st)
	}
	// An invalid updated_at is dropped, so it counts as absent.
	if stale, st = put(`{"active_session_id":"bad-ts","updated_at":"yesterday"}`); stale || st["active_session_id"] != "bad-ts" {
		t.Fatalf("invalid updated_at: %v %v", stale, st)
	}
	_, _, m = ts.do(t, "GET", path+"?student_id=S001", "")
	if m["state"].(map[string]any)["active_session_id"] != "bad-ts" {
		t.Fatalf("GET after PUT %v", m)
	}

	// Identity: the body's student_id wins; the query's is used without one.
	_, _, m = ts.do(t, "PUT", path+"?student_id=S001", `{"student_id":"S002","state":{"active_session_id":"x"}}`)
	if m["student_id"] != "S002" {
		t.Fatalf("body id %v", m)
	}
	_, _, m = ts.do(t, "PUT", path+"?student_id=S003", `{"state":{"active_session_id":"x"}}`)
	if m["student_id"] != "S003" {
		t.Fatalf("query id %v", m)
	}
	_, _, m = ts.do(t, "PUT", "/teacher/session/view-state?teacher_id=T0001", `{"teacher_id":"T 01 老师","state":{}}`)
	if m["teacher_id"] != "T_01_老师" || m["stale"] != false {
		t.Fatalf("teacher body id %v", m)
	}
	_, _, m = ts.do(t, "GET", "/teacher/session/view-state?teacher_id="+url.QueryEscape("T 01 老师"), "")
	if m["teacher_id"] != "T_01_老师" || !millisRE.MatchString(m["state"].(map[string]any)["updated_at"].(string)) {
		t.Fatalf("teacher GET %v", m)
	}

	for body, want := range map[string]string{
		`{"state":{}}`:                           "student_id is required",
		`{"student_id":"S001"}`:                  "state is required",
		`{"student_id":"S001","state":null}`:     "state is required",
		`{"student_id":"S001","state":[1]}`:      "state must be an object",
		`{"student_id":"S001","state":{},"x":1}`: `invalid JSON body: json: unknown field "x"`,
		`{"student_id":5,"state":{}}`:            `invalid JSON body: field "student_id" must be string, not number`,
		``:                                       "invalid JSON body: empty body",
	} {
		code, _, m := ts.do(t, "PUT", path, body)
		if code != 400 || m["detail"] != want {
			t.Errorf("%s: %d %v, want %q", body, code, m, want)
		}
	}
}

// Files written by the predecessor (Python json.dump, indent=2,
// ensure_ascii=False; JSONL with json.dumps) are read as they are, and an
// append keeps the other items byte for byte.
func TestPredecessorFiles(t *testing.T) {
	ts := newTestServer(t)
	ts.store.now = func() time.Time { return time.Date(2026, 2, 8, 14, 46, 44, 0, time.Local) }
	student := "高二2403班_武熙语"
	owner := filepath.Join(ts.dir, "student_chat_sessions", student)
	os.MkdirAll(owner, 0o755)
	second := `  {
    "session_id": "hw_物理_01",
    "message_count": 2,
    "updated_at": "2026-02-04T09:00:00",
    "assignment_id": "hw_物理_01",
    "date": "2026-02-04",
    "preview": "作业第3题不会",
    "custom": {
      "nested": [
        1,
        2.50
      ]
    }
  }`
	index := "[\n  {\n    \"session_id\": \"general_2026-02-05\",\n    \"message_count\": 2,\n    \"updated_at\": \"2026-02-05T10:00:02\",\n" +
		"    \"date\": \"2026-02-05\",\n    \"preview\": \"牛顿第二定律是什么？\"\n  },\n" + second + "\n]"
	os.WriteFile(filepath.Join(owner, "index.json"), []byte(index), 0o644)
	jsonl := `{"ts": "2026-02-05T10:00:00", "role": "user", "content": "牛顿第二定律是什么？", "request_id": "req_1", "source": "start_prewrite"}
{"ts": "2026-02-05T10:00:02", "role": "assistant", "content": "F=ma，力等于质量乘以加速度。", "job_id": "cjob_abc123def456", "request_id": "req_1"}
`
	os.WriteFile(filepath.Join(owner, "general_2026-02-05.jsonl"), []byte(jsonl), 0o644)
	os.WriteFile(filepath.Join(owner, "view_state.json"), []byte("{\n  \"title_map\": {\n    \"general_2026-02-05\": \"物理答疑\"\n  },\n  \"hidden_ids\": [],\n  \"active_session_id\": \"general_2026-02-05\",\n  \"updated_at\": \"2026-02-05T10:00:03.123\"\n}"), 0o644)

	q := "student_id=" + url.QueryEscape(student)
	_, raw, m := ts.do(t, "GET", "/student/history/sessions?"+q, "")
	if m["total"] != 2.0 || !strings.Contains(raw, `{"session_id":"general_2026-02-05","message_count":2,"updated_at":"2026-02-05T10:00:02","date":"2026-02-05","preview":"牛顿第二定律是什么？"}`) {
		t.Fatalf("sessions %s", raw)
	}
	_, raw, m = ts.do(t, "GET", "/student/history/session?session_id=general_2026-02-05&"+q, "")
	if msgContents(m["messages"]) != "牛顿第二定律是什么？,F=ma，力等于质量乘以加速度。" || m["next_cursor"] != 0.0 ||
		!strings.Contains(raw, `{"ts":"2026-02-05T10:00:00","role":"user","content":"牛顿第二定律是什么？","request_id":"req_1","source":"start_prewrite"}`) {
		t.Fatalf("session %s", raw)
	}
	_, _, m = ts.do(t, "GET", "/student/session/view-state?"+q, "")
	if st := m["state"].(map[string]any); st["updated_at"] != "2026-02-05T10:00:03.123" || st["title_map"].(map[string]any)["general_2026-02-05"] != "物理答疑" {
		t.Fatalf("view state %v", m)
	}

	err := ts.store.Append(Student, student, "general_2026-02-05",
		[]map[string]any{{"role": "user", "content": "谢谢老师", "request_id": "req_2"}}, map[string]any{"date": "2026-02-05"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(owner, "index.json"))
	want := "[\n  {\n    \"session_id\": \"general_2026-02-05\",\n    \"message_count\": 3,\n    \"updated_at\": \"2026-02-08T14:46:44\",\n" +
		"    \"date\": \"2026-02-05\",\n    \"preview\": \"谢谢老师\"\n  },\n" + second + "\n]\n"
	if string(got) != want {
		t.Fatalf("index after append:\n%s\nwant:\n%s", got, want)
	}
	got, _ = os.ReadFile(filepath.Join(owner, "general_2026-02-05.jsonl"))
	if string(got) != jsonl+`{"ts": "2026-02-08T14:46:44", "role": "user", "content": "谢谢老师", "request_id": "req_2"}`+"\n" {
		t.Fatalf("jsonl after append:\n%s", got)
	}
}
