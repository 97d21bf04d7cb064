package assignments

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	t    *testing.T
	data string
	svc  *Service
	srv  *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	data := t.TempDir()
	svc := NewService(data)
	svc.now = func() time.Time { return time.Date(2026, 2, 8, 12, 0, 0, 0, time.Local) }
	api := NewAPI(svc, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /assignments", api.List)
	mux.HandleFunc("GET /assignment/{assignment_id}", api.Get)
	mux.HandleFunc("GET /assignment/{assignment_id}/requirements", api.Requirements)
	mux.HandleFunc("POST /assignment/requirements", api.SaveRequirements)
	mux.HandleFunc("GET /assignment/{assignment_id}/download", api.Download)
	mux.HandleFunc("GET /lessons", api.Lessons)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{t: t, data: data, svc: svc, srv: srv}
}

func (f *fixture) write(rel, content string) string {
	f.t.Helper()
	p := filepath.Join(f.data, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// do sends a request on the raw path (no client-side cleaning) and
// returns the status, the body and the response.
func (f *fixture) do(method, path string, body any) (int, []byte, *http.Response) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			data, _ := json.Marshal(b)
			rd = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(method, f.srv.URL, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.URL.Opaque = path // sent exactly as written
	if i := strings.IndexByte(path, '?'); i >= 0 {
		req.URL.Opaque, req.URL.RawQuery = path[:i], path[i+1:]
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp
}

func (f *fixture) getJSON(path string, wantStatus int) map[string]any {
	f.t.Helper()
	status, body, _ := f.do("GET", path, nil)
	if status != wantStatus {
		f.t.Fatalf("GET %s = %d %s, want %d", path, status, body, wantStatus)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		f.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return m
}

func TestListSortingAndFields(t *testing.T) {
	f := newFixture(t)
	f.write("assignments/A_2026-02-01/meta.json", `{"generated_at":"2026-02-01T10:00:00","mode":"kp","target_kp":["KP1"],"class_name":"高二1班"}`)
	f.write("assignments/A_2026-02-01/questions.csv", "question_id,stem_ref\nQ1,\nQ2,\n\nQ3,\n")
	f.write("assignments/B/meta.json", `{"date":"2026-03-01","generated_at":"2026-03-01T09:00:00","assignment_id":"B"}`)
	f.write("assignments/C_x/meta.json", `{"assignment_id":"HW_2026-01-05"}`) // no updated_at
	f.write("assignments/D/questions.csv", "\ufeffquestion_id\nQ1\n")         // updated_at from the mtime
	f.write("assignments/.hidden/meta.json", `{}`)
	f.write("assignments/file.txt", "not a folder")
	mtime := time.Date(2026, 2, 15, 8, 30, 0, 0, time.Local)
	os.Chtimes(filepath.Join(f.data, "assignments/D/questions.csv"), mtime, mtime)

	got := f.getJSON("/assignments", 200)
	list := got["assignments"].([]any)
	var ids []string
	for _, a := range list {
		ids = append(ids, a.(map[string]any)["assignment_id"].(string))
	}
	if want := []string{"B", "D", "A_2026-02-01", "C_x"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
	first := list[2].(map[string]any)
	want := map[string]any{"assignment_id": "A_2026-02-01", "date": "2026-02-01", "question_count": 3.0,
		"updated_at": "2026-02-01T10:00:00", "mode": "kp", "target_kp": []any{"KP1"}, "class_name": "高二1班"}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("A = %v\nwant %v", first, want)
	}
	d := list[1].(map[string]any)
	if d["updated_at"] != "2026-02-15T08:30:00" || d["date"] != nil || d["question_count"] != 1.0 ||
		!reflect.DeepEqual(d["target_kp"], []any{}) || d["mode"] != nil {
		t.Fatalf("D = %v", d)
	}
	c := list[3].(map[string]any)
	if c["date"] != "2026-01-05" || c["updated_at"] != nil || c["question_count"] != 0.0 {
		t.Fatalf("C = %v", c)
	}
	if list[0].(map[string]any)["date"] != "2026-03-01" {
		t.Fatalf("B = %v", list[0])
	}
}

func TestListMissingDir(t *testing.T) {
	f := newFixture(t)
	if got := f.getJSON("/assignments", 200); !reflect.DeepEqual(got, map[string]any{"assignments": []any{}}) {
		t.Fatalf("%v", got)
	}
	if got := f.getJSON("/lessons", 200); !reflect.DeepEqual(got, map[string]any{"lessons": []any{}}) {
		t.Fatalf("%v", got)
	}
}

func TestDetailStemTextAndDelivery(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("力", StemMaxChars+10)
	f.write("assignments/HW1/stems/long.md", long)
	f.write("assignments/HW1/stems/short.md", "短题干")
	f.write("assignments/HW1/meta.json", `{"assignment_id":"HW1","date":"2026-02-08","delivery_mode":"pdf","source_files":["第1页 a&b.pdf"]}`)
	f.write("assignments/HW1/requirements.json", `{"subject":"物理"}`)
	f.write("assignments/HW1/questions.csv", "question_id,kp_id,stem_ref\n"+
		"Q1,KP1,data/assignments/HW1/stems/long.md\n"+
		"Q2,KP2,assignments/HW1/stems/short.md\n"+
		"Q3,KP3,stems/missing.md\n"+
		"Q4\n")
	got := f.getJSON("/assignment/HW1", 200)
	if got["assignment_id"] != "HW1" || got["date"] != "2026-02-08" || got["question_count"] != 4.0 {
		t.Fatalf("%v", got)
	}
	if !reflect.DeepEqual(got["requirements"], map[string]any{"subject": "物理"}) {
		t.Fatalf("requirements %v", got["requirements"])
	}
	qs := got["questions"].([]any)
	q1 := qs[0].(map[string]any)
	stem := q1["stem_text"].(string)
	if !strings.HasSuffix(stem, "…") || len([]rune(stem)) != StemMaxChars+1 || q1["kp_id"] != "KP1" {
		t.Fatalf("Q1 stem: %d runes, %v", len([]rune(stem)), q1["kp_id"])
	}
	if s := qs[1].(map[string]any)["stem_text"]; s != "短题干" {
		t.Fatalf("Q2 stem %q", s)
	}
	if s := qs[2].(map[string]any)["stem_text"]; s != "" {
		t.Fatalf("Q3 stem %q", s)
	}
	if q4 := qs[3].(map[string]any); q4["kp_id"] != nil || q4["stem_text"] != "" {
		t.Fatalf("Q4 %v", q4)
	}
	// Column order is kept.
	_, body, _ := f.do("GET", "/assignment/HW1", nil)
	if !bytes.Contains(body, []byte(`{"question_id":"Q2","kp_id":"KP2","stem_ref":"assignments/HW1/stems/short.md","stem_text":"短题干"}`)) {
		t.Fatalf("column order lost: %s", body)
	}
	want := map[string]any{"mode": "pdf", "files": []any{map[string]any{"name": "第1页 a&b.pdf",
		"url": "/assignment/HW1/download?file=%E7%AC%AC1%E9%A1%B5%20a%26b.pdf"}}}
	if !reflect.DeepEqual(got["delivery"], want) {
		t.Fatalf("delivery %v", got["delivery"])
	}
}

func TestDetailWithoutFiles(t *testing.T) {
	f := newFixture(t)
	os.MkdirAll(filepath.Join(f.data, "assignments", "A_2026-02-03"), 0o755)
	f.write("assignments/X/meta.json", `{"delivery_mode":"pdf","source_files":[]}`)
	got := f.getJSON("/assignment/A_2026-02-03", 200)
	if got["assignment_id"] != "A_2026-02-03" || got["date"] != "2026-02-03" || got["delivery"] != nil ||
		!reflect.DeepEqual(got["meta"], map[string]any{}) || !reflect.DeepEqual(got["requirements"], map[string]any{}) ||
		!reflect.DeepEqual(got["questions"], []any{}) {
		t.Fatalf("%v", got)
	}
	if got := f.getJSON("/assignment/X", 200); got["delivery"] != nil {
		t.Fatalf("delivery without source files: %v", got["delivery"])
	}
}

func TestStemRefOutsideDataDirNotRead(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte("TOP SECRET"), 0o644)
	os.MkdirAll(filepath.Join(f.data, "assignments/HW/stems"), 0o755)
	if err := os.Symlink(outside, filepath.Join(f.data, "assignments/HW/stems/link.md")); err != nil {
		t.Skip("no symlinks:", err)
	}
	f.write("assignments/HW/questions.csv", "question_id,stem_ref\n"+
		"Q1,assignments/HW/stems/link.md\n"+
		"Q2,"+outside+"\n"+
		"Q3,../"+filepath.Base(filepath.Dir(outside))+"/secret.txt\n"+
		"Q4,/etc/passwd\n")
	_, body, _ := f.do("GET", "/assignment/HW", nil)
	if bytes.Contains(body, []byte("SECRET")) || bytes.Contains(body, []byte("root:")) {
		t.Fatalf("read outside DATA_DIR: %s", body)
	}
	got := f.getJSON("/assignment/HW", 200)
	for _, q := range got["questions"].([]any) {
		if s := q.(map[string]any)["stem_text"]; s != "" {
			t.Fatalf("stem_text %q", s)
		}
	}
}

func TestInvalidIDs(t *testing.T) {
	f := newFixture(t)
	f.write("assignments/meta.json", `{"x":1}`) // the root must never be taken for an assignment
	f.write("requirements.json", `{"x":1}`)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "requirements.json"), []byte(`{"leak":true}`), 0o644)
	os.Symlink(outside, filepath.Join(f.data, "assignments", "escape"))

	for _, c := range []struct {
		path, detail string
		status       int
	}{
		{"/assignment/%2e%2e/requirements", "invalid assignment_id", 400},
		{"/assignment/%2E/requirements", "invalid assignment_id", 400},
		{"/assignment/a%2Fb/requirements", "invalid assignment_id", 400},
		{"/assignment/escape/requirements", "invalid assignment_id", 400},
		{"/assignment/%20/requirements", "assignment_id is required", 400},
		{"/assignment/nope/requirements", "assignment not found", 404},
		{"/assignment/%2e%2e", "assignment not found", 404},
		{"/assignment/escape", "assignment not found", 404},
		{"/assignment/nope", "assignment not found", 404},
		{"/assignment/%2e%2e/download?file=a.pdf", "invalid assignment_id", 400},
		{"/assignment/escape/download?file=requirements.json", "invalid assignment_id", 400},
	} {
		status, body, resp := f.do("GET", c.path, nil)
		if status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect || status == http.StatusPermanentRedirect {
			t.Errorf("%s redirected to %s", c.path, resp.Header.Get("Location"))
			continue
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		if status != c.status || m["detail"] != c.detail {
			t.Errorf("%s = %d %s, want %d %q", c.path, status, body, c.status, c.detail)
		}
	}
	// A literal "." or ".." segment never reaches a handler: ServeMux
	// redirects to the cleaned path. The handlers check ids themselves,
	// whatever router is in front.
	for _, id := range []string{"..", ".", "../..", "a/../..", ""} {
		for _, h := range []struct {
			name   string
			fn     http.HandlerFunc
			status int
		}{{"requirements", NewAPI(f.svc, nil).Requirements, 400}, {"get", NewAPI(f.svc, nil).Get, 404}, {"download", NewAPI(f.svc, nil).Download, 400}} {
			req := httptest.NewRequest("GET", "/x?file=meta.json", nil)
			req.SetPathValue("assignment_id", id)
			rec := httptest.NewRecorder()
			h.fn(rec, req)
			if rec.Code != h.status {
				t.Errorf("%s(%q) = %d %s, want %d", h.name, id, rec.Code, rec.Body, h.status)
			}
		}
	}
}

func TestRequirementsRead(t *testing.T) {
	f := newFixture(t)
	f.write("assignments/A/requirements.json", `{"subject":"物理","topic":"电场"}`)
	f.write("assignments/B/requirements.json", `not json`)
	f.write("assignments/C/requirements.json", `{}`)
	os.MkdirAll(filepath.Join(f.data, "assignments", "D"), 0o755)
	got := f.getJSON("/assignment/A/requirements", 200)
	if !reflect.DeepEqual(got, map[string]any{"assignment_id": "A", "requirements": map[string]any{"subject": "物理", "topic": "电场"}}) {
		t.Fatalf("%v", got)
	}
	for _, id := range []string{"B", "C", "D"} {
		if got := f.getJSON("/assignment/"+id+"/requirements", 200); got["requirements"] != nil || got["assignment_id"] != id {
			t.Fatalf("%s: %v", id, got)
		}
	}
	// A changed file is read again.
	time.Sleep(10 * time.Millisecond)
	f.write("assignments/A/requirements.json", `{"subject":"化学","topic":"电离平衡!"}`)
	if got := f.getJSON("/assignment/A/requirements", 200); got["requirements"].(map[string]any)["subject"] != "化学" {
		t.Fatalf("stale cache: %v", got)
	}
}

func validRequirements() map[string]any {
	return map[string]any{
		"subject":           "物理",
		"topic":             "牛顿第二定律",
		"grade_level":       "高一",
		"class_level":       "中等",
		"core_concepts":     []any{"F=ma", "合力", "加速度"},
		"typical_problem":   "斜面上的物块",
		"misconceptions":    []any{"混淆质量与重量", "忽略摩擦", "合力方向", "单位换算"},
		"duration_minutes":  40,
		"preferences":       []any{"A基础", "E小测验"},
		"extra_constraints": "允许计算器",
	}
}

func TestSaveRequirementsValidationRules(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name  string
		edit  func(map[string]any)
		error string
	}{
		{"subject", func(m map[string]any) { m["subject"] = "  " }, "1) 学科 必填"},
		{"topic", func(m map[string]any) { delete(m, "topic") }, "1) 本节课主题 必填"},
		{"grade_level", func(m map[string]any) { m["grade_level"] = nil }, "2) 学生学段/年级 必填"},
		{"class_level", func(m map[string]any) { m["class_level"] = "优秀" }, "2) 班级整体水平 必须是 偏弱/中等/较强/混合"},
		{"core_concepts few", func(m map[string]any) { m["core_concepts"] = "a, b" }, "3) 核心概念/公式/规律 需要 3-8 个关键词"},
		{"core_concepts many", func(m map[string]any) { m["core_concepts"] = "1,2,3,4,5,6,7,8,9" }, "3) 核心概念/公式/规律 需要 3-8 个关键词"},
		{"typical_problem", func(m map[string]any) { m["typical_problem"] = "" }, "4) 课堂典型题型/例题 必填"},
		{"misconceptions", func(m map[string]any) { m["misconceptions"] = []any{"a", "b", " ", "c"} }, "5) 易错点/易混点 至少 4 条"},
		{"duration", func(m map[string]any) { m["duration_minutes"] = "30分钟" }, "6) 作业时间 仅可选 20/40/60 分钟"},
		{"duration missing", func(m map[string]any) { delete(m, "duration_minutes") }, "6) 作业时间 仅可选 20/40/60 分钟"},
		{"preferences empty", func(m map[string]any) { m["preferences"] = []any{} }, "7) 作业偏好 至少选择 1 项"},
		{"preferences unknown", func(m map[string]any) { m["preferences"] = "A, Z, 作文" }, "7) 作业偏好 无效项: Z, 作文"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := validRequirements()
			c.edit(req)
			status, body, _ := f.do("POST", "/assignment/requirements", map[string]any{"assignment_id": "HW_" + strings.ReplaceAll(c.name, " ", "_"), "requirements": req})
			var m struct {
				Detail struct {
					Error  string   `json:"error"`
					Errors []string `json:"errors"`
				} `json:"detail"`
			}
			json.Unmarshal(body, &m)
			if status != 400 || m.Detail.Error != "invalid_requirements" || !reflect.DeepEqual(m.Detail.Errors, []string{c.error}) {
				t.Fatalf("= %d %s, want 400 [%s]", status, body, c.error)
			}
		})
	}
	// Nothing was created for any of them.
	if _, err := os.Stat(filepath.Join(f.data, "assignments")); !os.IsNotExist(err) {
		t.Fatalf("an invalid save created files: %v", err)
	}
	// All errors at once, in the predecessor's order.
	status, body, _ := f.do("POST", "/assignment/requirements", `{"assignment_id":"E","requirements":{}}`)
	var m struct {
		Detail struct{ Errors []string } `json:"detail"`
	}
	json.Unmarshal(body, &m)
	if status != 400 || len(m.Detail.Errors) != 9 || m.Detail.Errors[0] != "1) 学科 必填" || m.Detail.Errors[8] != "7) 作业偏好 至少选择 1 项" {
		t.Fatalf("%d %s", status, body)
	}
}

func TestSaveRequirementsAliases(t *testing.T) {
	req := validRequirements()
	req["class_level"] = "弱"
	req["core_concepts"] = "F=ma，合力;加速度, 惯性"
	req["misconceptions"] = "a;b，c,d"
	delete(req, "duration_minutes")
	req["duration"] = "60分钟"
	req["preferences"] = []any{"B", "生活应用", "F错题反思", "B提升"}
	r, errs := ValidateRequirements(req)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if r.ClassLevel != "偏弱" || r.DurationMinutes != 60 ||
		!reflect.DeepEqual(r.CoreConcepts, []string{"F=ma", "合力", "加速度", "惯性"}) ||
		!reflect.DeepEqual(r.Misconceptions, []string{"a", "b", "c", "d"}) ||
		!reflect.DeepEqual(r.Preferences, []string{"B提升", "C生活应用", "F错题反思"}) {
		t.Fatalf("%+v", r)
	}
	for in, want := range map[string]string{"一般": "中等", "强": "较强", "混合": "混合", " 较强 ": "较强"} {
		req["class_level"] = in
		if r, errs := ValidateRequirements(req); len(errs) > 0 || r.ClassLevel != want {
			t.Errorf("class_level %q → %q %v", in, r.ClassLevel, errs)
		}
	}
	for _, d := range []any{20.0, "40", "约20分钟", 60.0} {
		req["duration"] = d
		if _, errs := ValidateRequirements(req); len(errs) > 0 {
			t.Errorf("duration %v: %v", d, errs)
		}
	}
	req["duration_minutes"] = 0.0 // falsy: duration is used
	req["duration"] = "20"
	if r, errs := ValidateRequirements(req); len(errs) > 0 || r.DurationMinutes != 20 {
		t.Errorf("duration fallback: %v %v", r.DurationMinutes, errs)
	}
}

func TestSaveRequirementsWritesAtomically(t *testing.T) {
	f := newFixture(t)
	req := validRequirements()
	status, body, _ := f.do("POST", "/assignment/requirements", map[string]any{"assignment_id": " HW_2026-02-08 ", "date": "2026-02-09T08:00:00", "requirements": req})
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var got map[string]any
	json.Unmarshal(body, &got)
	if got["ok"] != true || got["path"] != "assignments/HW_2026-02-08/requirements.json" {
		t.Fatalf("%s", body)
	}
	rec := got["requirements"].(map[string]any)
	if rec["assignment_id"] != "HW_2026-02-08" || rec["date"] != "2026-02-09" || rec["created_by"] != "teacher" ||
		rec["created_at"] != "2026-02-08T12:00:00" || rec["duration_minutes"] != 40.0 || rec["class_level"] != "中等" {
		t.Fatalf("record %v", rec)
	}
	dir := filepath.Join(f.data, "assignments", "HW_2026-02-08")
	data, err := os.ReadFile(filepath.Join(dir, "requirements.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk map[string]any
	if err := json.Unmarshal(data, &onDisk); err != nil || !reflect.DeepEqual(onDisk, rec) {
		t.Fatalf("on disk %s", data)
	}
	if !bytes.HasPrefix(data, []byte("{\n  \"assignment_id\": \"HW_2026-02-08\",\n  \"date\"")) || !bytes.Contains(data, []byte("牛顿第二定律")) {
		t.Fatalf("not the predecessor's format:\n%s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
	// It reads back through the GET endpoint.
	if back := f.getJSON("/assignment/HW_2026-02-08/requirements", 200); !reflect.DeepEqual(back["requirements"], rec) {
		t.Fatalf("read back %v", back)
	}
	// A bad date is today's; created_by is kept.
	status, body, _ = f.do("POST", "/assignment/requirements", map[string]any{"assignment_id": "HW2", "date": "someday", "created_by": "t01", "requirements": req})
	json.Unmarshal(body, &got)
	if rec := got["requirements"].(map[string]any); status != 200 || rec["date"] != "2026-02-08" || rec["created_by"] != "t01" {
		t.Fatalf("%d %s", status, body)
	}
}

func TestSaveRequirementsInvalidIDCreatesNothing(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ id, detail string }{
		{"..", "invalid assignment_id"}, {".", "invalid assignment_id"}, {"a/b", "invalid assignment_id"},
		{"../../x", "invalid assignment_id"}, {"", "assignment_id is required"}, {"  ", "assignment_id is required"},
	} {
		status, body, _ := f.do("POST", "/assignment/requirements", map[string]any{"assignment_id": c.id, "requirements": validRequirements()})
		var m struct {
			Detail map[string]any `json:"detail"`
		}
		json.Unmarshal(body, &m)
		if status != 400 || m.Detail["error"] != "invalid_assignment_id" || m.Detail["detail"] != c.detail {
			t.Errorf("%q = %d %s", c.id, status, body)
		}
	}
	for _, body := range []string{`{"assignment_id":"HW"}`, `{"assignment_id":"HW","requirements":[]}`, `not json`, `{"assignment_id":"HW","requirements":{},"x":1}`} {
		if status, resp, _ := f.do("POST", "/assignment/requirements", body); status != 400 {
			t.Errorf("%s = %d %s", body, status, resp)
		}
	}
	entries, _ := os.ReadDir(f.data)
	if len(entries) != 0 {
		t.Fatalf("created %v", entries)
	}
}

func TestDownload(t *testing.T) {
	f := newFixture(t)
	f.write("assignments/HW/source/paper 1.pdf", "%PDF-1.4 fake")
	f.write("assignments/HW/source/notes.unknownext", "<html><script>x</script></html>")
	f.write("assignments/HW/meta.json", `{"secret":1}`)
	f.write("assignments/HW/source/sub/inner.txt", "inner")
	outside := filepath.Join(t.TempDir(), "o.txt")
	os.WriteFile(outside, []byte("OUTSIDE"), 0o644)
	os.Symlink(outside, filepath.Join(f.data, "assignments/HW/source/link.txt"))
	os.MkdirAll(filepath.Join(f.data, "assignments/NOSRC"), 0o755)

	status, body, resp := f.do("GET", "/assignment/HW/download?file=paper%201.pdf", nil)
	if status != 200 || string(body) != "%PDF-1.4 fake" || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("%d %q %v", status, body, resp.Header)
	}
	status, _, resp = f.do("GET", "/assignment/HW/download?file=notes.unknownext", nil)
	if status != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%d %v", status, resp.Header)
	}
	// A path is reduced to its basename.
	if status, body, _ := f.do("GET", "/assignment/HW/download?file=../../etc/paper%201.pdf", nil); status != 200 || string(body) != "%PDF-1.4 fake" {
		t.Fatalf("basename: %d %s", status, body)
	}
	for _, c := range []struct {
		path, detail string
		status       int
	}{
		{"/assignment/HW/download?file=../meta.json", "file not found", 404},
		{"/assignment/HW/download?file=..%2Fmeta.json", "file not found", 404},
		{"/assignment/HW/download?file=..", "invalid file", 400},
		{"/assignment/HW/download?file=.", "invalid file", 400},
		{"/assignment/HW/download?file=", "invalid file", 400},
		{"/assignment/HW/download", "invalid file", 400},
		{"/assignment/HW/download?file=%2F", "invalid file", 400},
		{"/assignment/HW/download?file=sub", "file not found", 404},
		{"/assignment/HW/download?file=link.txt", "file not found", 404},
		{"/assignment/HW/download?file=missing.pdf", "file not found", 404},
		{"/assignment/NOSRC/download?file=a.pdf", "assignment source not found", 404},
		{"/assignment/NONE/download?file=a.pdf", "assignment source not found", 404},
		{"/assignment/%2e%2e/download?file=HW", "invalid assignment_id", 400},
	} {
		status, body, _ := f.do("GET", c.path, nil)
		var m map[string]any
		json.Unmarshal(body, &m)
		if status != c.status || m["detail"] != c.detail {
			t.Errorf("%s = %d %s, want %d %q", c.path, status, body, c.status, c.detail)
		}
		if bytes.Contains(body, []byte("OUTSIDE")) || bytes.Contains(body, []byte("secret")) {
			t.Errorf("%s leaked %s", c.path, body)
		}
	}
}

func TestLessons(t *testing.T) {
	f := newFixture(t)
	f.write("lessons/L2/lesson.json", `{"lesson_id":"L2","summary":"电场","other":1}`)
	f.write("lessons/z_folder/lesson.json", `{"lesson_id":"A_from_json"}`)
	os.MkdirAll(filepath.Join(f.data, "lessons", "M_empty"), 0o755)
	f.write("lessons/bad/lesson.json", `{broken`)
	f.write("lessons/readme.txt", "x")
	got := f.getJSON("/lessons", 200)
	want := map[string]any{"lessons": []any{
		map[string]any{"lesson_id": "A_from_json", "summary": ""},
		map[string]any{"lesson_id": "L2", "summary": "电场"},
		map[string]any{"lesson_id": "M_empty", "summary": ""},
		map[string]any{"lesson_id": "bad", "summary": ""},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
}

// No GET writes a file.
func TestReadsWriteNothing(t *testing.T) {
	f := newFixture(t)
	f.write("assignments/HW/meta.json", `{"delivery_mode":"pdf","source_files":["a.pdf"]}`)
	f.write("assignments/HW/source/a.pdf", "x")
	f.write("lessons/L/lesson.json", `{}`)
	before := tree(t, f.data)
	for _, p := range []string{"/assignments", "/assignment/HW", "/assignment/HW/requirements", "/assignment/HW/download?file=a.pdf",
		"/lessons", "/assignment/NEW", "/assignment/NEW/requirements", "/assignment/NEW/download?file=a"} {
		f.do("GET", p, nil)
	}
	if after := tree(t, f.data); !reflect.DeepEqual(before, after) {
		t.Fatalf("GETs changed the tree:\n%v\n%v", before, after)
	}
}

func tree(t *testing.T, root string) []string {
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			out = append(out, p+"|"+fi.ModTime().String())
		}
		return nil
	})
	return out
}

func TestPyQuote(t *testing.T) {
	for in, want := range map[string]string{"a b.pdf": "a%20b.pdf", "x/y~_-.": "x/y~_-.", "a+b&c=d": "a%2Bb%26c%3Dd", "题": "%E9%A2%98"} {
		if got := pyQuote(in); got != want {
			t.Errorf("pyQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// The core-variants folder sits among the assignments but is not listed.
func TestCoreVariantsFolderIsNotAnAssignment(t *testing.T) {
	data := t.TempDir()
	for _, id := range []string{"A1", CoreVariantsFolder} {
		if err := os.MkdirAll(filepath.Join(data, "assignments", id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	list, err := NewService(data).List()
	if err != nil || len(list) != 1 || list[0].AssignmentID != "A1" {
		t.Fatalf("List = %+v, %v", list, err)
	}
}
