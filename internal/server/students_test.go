package server

import (
	"encoding/json"
	"fmt"
	"github.com/lectern/lectern/internal/jobs"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
)

func (e *env) postForm(path string, form url.Values) response {
	e.t.Helper()
	resp, err := e.client.PostForm(e.http.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, data}
}

func TestProfileFormUpdateThenGet(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("t1", nil), 200, "")
	expect(t, e.putTenant("t2", nil), 200, "")
	r := e.postForm("/t/t1/student/profile/update", url.Values{"student_id": {"高二(3)班_张三"},
		"weak_kp": {"受力分析，牛顿第二定律"}, "strong_kp": {"运动学"}, "interaction_note": {"课后问了斜面问题"}})
	if r.status != 200 || !strings.Contains(string(r.body), "[OK] Updated profile") {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	p := e.get("/t/t1/student/profile/" + url.PathEscape("高二(3)班_张三")).json(t)
	if fmt.Sprint(p["recent_weak_kp"]) != "[受力分析 牛顿第二定律]" || p["next_focus"] != "受力分析" ||
		p["summary"] != "weak: 受力分析, 牛顿第二定律 | strong: 运动学 | next: 受力分析" || p["last_updated"] == nil {
		t.Fatalf("profile: %v", p)
	}
	// Two tenants never mix.
	expect(t, e.get("/t/t2/student/profile/"+url.PathEscape("高二(3)班_张三")), 404, `{"detail":"profile not found"}`)
	expect(t, e.postForm("/t/t1/student/profile/update", url.Values{"weak_kp": {"x"}}), 400, `{"detail":"student_id is required"}`)
}

func TestProfileTraversalRefused(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"..", "../etc/passwd", "a/b", "/etc/passwd", `..\x`, ".hidden"} {
		r := e.postForm("/student/profile/update", url.Values{"student_id": {id}, "interaction_note": {"x"}})
		if r.status != 400 || !strings.Contains(string(r.body), "invalid_student_id") {
			t.Errorf("update %q: %d %s", id, r.status, r.body)
		}
	}
	for _, p := range []string{"/student/profile/%2e%2e", "/student/profile/..%2Fx", "/student/profile/a%2Fb", "/student/profile/%2Fetc%2Fpasswd", "/student/profile/.x"} {
		if r := e.get(p); r.status != 400 && r.status != 404 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	// Nothing was written anywhere but inside DATA_DIR/student_profiles.
	filepath.Walk(e.root, func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, ".json") && strings.Contains(path, "passwd") {
			t.Errorf("file written: %s", path)
		}
		return nil
	})
}

// 20 concurrent updates to one student all land.
func TestProfileConcurrentUpdatesAllLand(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			r := e.postForm("/student/profile/update", url.Values{"student_id": {"S1"}, "interaction_note": {fmt.Sprint("note-", i)}})
			if r.status != 200 {
				t.Errorf("update %d: %d %s", i, r.status, r.body)
			}
		})
	}
	wg.Wait()
	notes := e.get("/student/profile/S1").json(t)["interaction_notes"].([]any)
	seen := map[string]bool{}
	for _, n := range notes {
		seen[n.(map[string]any)["note"].(string)] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct notes landed, want 20", len(seen))
	}
}

// Updates queued on disk when the server stopped are applied at start.
func TestProfileUpdatesSurviveRestart(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.srv.cfg.UploadsDir, "profile_jobs")
	for i := range 5 {
		id := fmt.Sprintf("pjob_00000000000%d", i)
		rec := map[string]any{"job_id": id, "status": "queued", "student_id": "S9", "created_at": fmt.Sprintf("2026-01-01T00:00:0%d", i),
			"update": map[string]any{"kind": "form", "student_id": "S9", "interaction_note": fmt.Sprint("pending-", i)}}
		data, _ := json.Marshal(rec)
		os.MkdirAll(filepath.Join(dir, id), 0o755)
		os.WriteFile(filepath.Join(dir, id, "job.json"), data, 0o644)
	}
	e.restart()
	waitFor(t, func() bool {
		r := e.get("/student/profile/S9")
		return r.status == 200 && len(r.json(t)["interaction_notes"].([]any)) == 5
	})
	notes := e.get("/student/profile/S9").json(t)["interaction_notes"].([]any)
	for i, n := range notes {
		if got := n.(map[string]any)["note"]; got != fmt.Sprint("pending-", i) {
			t.Fatalf("note %d = %v (order lost)", i, got)
		}
	}
	waitFor(t, func() bool {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != jobs.JournalDir { // the journal stays: its segments are gone once applied
				return false
			}
		}
		return true
	})
}

// Past the queue bound, the form endpoint answers 429 with Retry-After;
// nothing is dropped.
func TestProfileQueueBound(t *testing.T) {
	fake := llmtest.NewServer(t)
	release := make(chan struct{})
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		if req.Body["response_format"] != nil {
			return llmtest.Step{Handler: func(llmtest.Recorded) (int, string) {
				<-release // hold the worker inside a judgement
				return 200, llmtest.ReplyBody(llmtest.Step{Reply: `{"weak_kp":["受力分析"],"strong_kp":[],"next_focus":"","evidence":"问了斜面"}`}, 1)
			}}
		}
		return llmtest.Step{Reply: "我们先画受力图。"}
	})
	e := newEnv(t, withLLM(30*time.Second, 1, fake), func(c *Config) { c.ProfileQueueMax = 3 })
	r := e.postJSON("/chat", studentTurn("", "S1", "斜面上的木块怎么分析？"))
	if r.status != 200 {
		t.Fatalf("chat: %d %s", r.status, r.body)
	}
	waitFor(t, func() bool { return len(fake.Requests()) == 2 }) // the reply, then the judgement
	results := make(chan response, 3)
	for i := range 3 {
		go func() {
			results <- e.postForm("/student/profile/update", url.Values{"student_id": {fmt.Sprint("Q", i)}, "interaction_note": {"x"}})
		}()
	}
	got429 := 0
	for range 3 {
		select {
		case r := <-results:
			if r.status == 429 {
				got429++
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
	if got429 != 1 {
		t.Fatalf("%d answers were 429, want exactly 1 (bound 3: the chat update and two forms fit)", got429)
	}
	close(release)
	waitFor(t, func() bool {
		return e.get("/student/profile/Q0").status == 200 || e.get("/student/profile/Q1").status == 200
	})
	p := e.get("/student/profile/S1").json(t)
	j := p["llm_judgements"].([]any)[0].(map[string]any)
	if fmt.Sprint(p["recent_weak_kp"]) != "[受力分析]" || j["source"] != "chat" || j["model"] != "fake-model" {
		t.Fatalf("profile after judgement: %v", p)
	}
	if n := p["interaction_notes"].([]any)[0].(map[string]any)["note"].(string); !strings.Contains(n, "U:斜面上的木块怎么分析？ | A:我们先画受力图。") {
		t.Fatalf("note %q", n)
	}
}

// Import from a confirmed exam; a confirmed exam updates profiles by
// itself; verify finds one, none, several.
func TestStudentImportAndVerify(t *testing.T) {
	fx := fixtures(t)
	e := newEnv(t)
	kp := "question_id,kp_id\nQ1,力学\nQ2,力学\nQ11_1,电学\nQ13,电学\n"
	os.MkdirAll(filepath.Join(e.srv.cfg.DataDir, "knowledge"), 0o755)
	os.WriteFile(filepath.Join(e.srv.cfg.DataDir, "knowledge", "knowledge_point_map.csv"), []byte(kp), 0o644)
	r := e.upload("/exam/upload/start", upload{fields: map[string]string{"exam_id": "PHYS", "date": "2026-11-01", "max_scores": fullMarks},
		files: map[string][]string{"score_files": {filepath.Join(fx, "physics_midterm_utf8.csv")}}})
	job := r.json(t)["job_id"].(string)
	e.waitJob("", job)
	expect(t, e.postJSON("/exam/upload/confirm", map[string]any{"job_id": job}), 200, "")

	// The confirm queued one exam update per student.
	waitFor(t, func() bool { return e.get("/student/profile/"+url.PathEscape("高二(3)班_夏雨涵")).status == 200 })
	imp := e.postJSON("/student/import", map[string]any{"exam_id": "PHYS"})
	if imp.status != 200 {
		t.Fatalf("import: %d %s", imp.status, imp.body)
	}
	res := imp.json(t)
	if res["total_students"] != 44.0 || res["created"].(float64)+res["updated"].(float64) != 44 || res["skipped"] != 0.0 {
		t.Fatalf("import: %v", res)
	}
	p := e.get("/student/profile/" + url.PathEscape("高二(4)班_梁志强")).json(t)
	exams := p["exam_results"].([]any)
	last := exams[len(exams)-1].(map[string]any)
	if p["student_name"] != "梁志强" || p["class_name"] != "高二(4)班" || len(exams) != 1 ||
		last["total"] != 11.0 || last["rank"] != 44.0 || last["student_count"] != 44.0 || len(last["lost_most"].([]any)) != 3 {
		t.Fatalf("profile: %v", p)
	}
	mastery, _ := p["mastery_by_kp"].(map[string]any)
	if len(mastery) != 2 || mastery["力学"].(map[string]any)["evidence"] != 2.0 || mastery["电学"].(map[string]any)["accuracy"] != 0.0667 {
		t.Fatalf("mastery_by_kp: %v", p["mastery_by_kp"])
	}
	if h := p["import_history"].([]any); len(h) != 1 || h[0].(map[string]any)["exam_id"] != "PHYS" {
		t.Fatalf("import_history: %v", h)
	}
	// Profiles are the *.json files (the predecessor's listing rule;
	// beside them are the hidden .<id>.json.spare copies of SwapUnsynced).
	profiles, _ := filepath.Glob(filepath.Join(e.srv.cfg.DataDir, "student_profiles", "*.json"))
	if len(profiles) != 44 {
		t.Fatalf("%d profiles, want 44", len(profiles))
	}

	one := e.postJSON("/student/verify", map[string]any{"name": "夏 雨涵"})
	if one.status != 200 || one.json(t)["student"].(map[string]any)["student_id"] != "高二(3)班_夏雨涵" {
		t.Fatalf("verify one: %d %s", one.status, one.body)
	}
	several := e.postJSON("/student/verify", map[string]any{"name": "梁志强"})
	if b := several.json(t); several.status != 200 || b["ok"] != false || b["error"] != "multiple" || len(b["candidates"].([]any)) != 2 {
		t.Fatalf("verify several: %d %s", several.status, several.body)
	}
	if r := e.postJSON("/student/verify", map[string]any{"name": "梁志强", "class_name": "高二(4)班"}); r.status != 200 || r.json(t)["ok"] != true {
		t.Fatalf("verify with class: %d %s", r.status, r.body)
	}
	expect(t, e.postJSON("/student/verify", map[string]any{"name": "无此人"}), 200, `{"error":"not_found","message":"未找到该学生，请检查姓名或班级。","ok":false}`)
	expect(t, e.postJSON("/student/verify", map[string]any{"name": " "}), 200, `{"error":"missing_name","message":"请先输入姓名。","ok":false}`)

	// Only the tenant's own files: a path outside DATA_DIR is refused.
	outside := filepath.Join(t.TempDir(), "responses_scored.csv")
	os.WriteFile(outside, []byte("student_id,score\nx,1\n"), 0o644)
	for _, fp := range []string{outside, "../uploads/x.csv", "/etc/passwd"} {
		expect(t, e.postJSON("/student/import", map[string]any{"file_path": fp}), 400, `{"detail":"responses file not found"}`)
	}
	expect(t, e.postJSON("/student/import", map[string]any{"source": "weird"}), 400, `{"detail":"unsupported source: weird"}`)
}

// Uploads keep each upload in its own folder and answer relative paths.
func TestUploadKeepsFilesApart(t *testing.T) {
	e := newEnv(t)
	var paths []string
	for _, content := range []string{"first", "second"} {
		r := e.uploadBytes("/upload", nil, [3]string{"files", "homework.jpg", content})
		if r.status != 200 {
			t.Fatalf("upload: %d %s", r.status, r.body)
		}
		saved := r.json(t)["saved"].([]any)
		paths = append(paths, saved[0].(string))
	}
	if paths[0] == paths[1] || strings.HasPrefix(paths[0], "/") {
		t.Fatalf("paths %v", paths)
	}
	for i, want := range []string{"first", "second"} {
		got, _ := os.ReadFile(filepath.Join(e.srv.cfg.UploadsDir, paths[i]))
		if string(got) != want {
			t.Fatalf("%s holds %q", paths[i], got)
		}
	}
	expect(t, e.uploadBytes("/upload", nil, [3]string{"files", "..", "x"}), 400, "")
	_ = http.StatusOK
}

// Verify answers 200 in every outcome, as the predecessor did, because its
// student client reads "ok" first; only a body that is not the object
// asked for is a 400.
func TestStudentVerifyAnswers200(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.srv.cfg.DataDir, "student_profiles")
	os.MkdirAll(dir, 0o755)
	for id, p := range map[string]string{
		"一班_张三": `{"student_id":"一班_张三","student_name":"张三","class_name":"一班"}`,
		"二班_张三": `{"student_id":"二班_张三","student_name":"张三","class_name":"二班"}`,
		"一班_李四": `{"student_id":"一班_李四","student_name":"李四","class_name":"一班","aliases":["小李"]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(body any) response { return e.do("POST", "/student/verify", "", body) }
	lisi := `{"ok":true,"student":{"class_name":"一班","student_id":"一班_李四","student_name":"李四"}}`
	expect(t, verify(map[string]any{"name": "李四"}), 200, lisi)
	expect(t, verify(map[string]any{"name": " 小 李 "}), 200, lisi)
	expect(t, verify(map[string]any{"name": "张三", "class_name": "二班"}), 200,
		`{"ok":true,"student":{"class_name":"二班","student_id":"二班_张三","student_name":"张三"}}`)
	expect(t, verify(map[string]any{"name": "王五"}), 200, `{"error":"not_found","message":"未找到该学生，请检查姓名或班级。","ok":false}`)
	expect(t, verify(map[string]any{"name": "李四", "class_name": "二班"}), 200, `{"error":"not_found","message":"未找到该学生，请检查姓名或班级。","ok":false}`)
	expect(t, verify(map[string]any{"name": ""}), 200, `{"error":"missing_name","message":"请先输入姓名。","ok":false}`)

	r := verify(map[string]any{"name": "张三"})
	b := r.json(t)
	cands, _ := b["candidates"].([]any)
	if r.status != 200 || b["ok"] != false || b["error"] != "multiple" || b["message"] != "同名学生，请补充班级。" || len(cands) != 2 || len(b) != 4 {
		t.Fatalf("several: %d %s", r.status, r.body)
	}
	for _, c := range cands {
		if m := c.(map[string]any); m["student_name"] != "张三" || m["student_id"] == nil || m["class_name"] == nil {
			t.Fatalf("candidate %v", c)
		}
	}

	for _, bad := range []any{`{"name":`, `{}`, `{"name":null}`, `{"name":3}`, `{"nam":"张三"}`} {
		r := verify(bad)
		if d, ok := r.json(t)["detail"].(string); r.status != 400 || !ok || d == "" {
			t.Fatalf("%v: %d %s", bad, r.status, r.body)
		}
	}
}

// One upload with the same name three times answers the three names it
// stored, each holding its own file.
func TestUploadRepeatedNameReportsStoredNames(t *testing.T) {
	e := newEnv(t)
	r := e.uploadBytes("/upload", nil, [3]string{"files", "same.txt", "one"}, [3]string{"files", "same.txt", "two"},
		[3]string{"files", "same.txt", "three"})
	if r.status != 200 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	b := r.json(t)
	id, _ := b["upload_id"].(string)
	var saved []string
	for _, x := range b["saved"].([]any) {
		saved = append(saved, x.(string))
	}
	prefix := "uploads/" + id + "/"
	if id == "" || len(b) != 2 || strings.Join(saved, " ") != prefix+"same.txt "+prefix+"same_2.txt "+prefix+"same_3.txt" {
		t.Fatalf("answer: %s", r.body)
	}
	for i, want := range []string{"one", "two", "three"} {
		if got, err := os.ReadFile(filepath.Join(e.srv.cfg.UploadsDir, saved[i])); err != nil || string(got) != want {
			t.Fatalf("%s holds %q (%v), want %q", saved[i], got, err, want)
		}
	}
}

// The student tutor sees the profile's weak points.
func TestStudentChatSeesProfile(t *testing.T) {
	fake := llmtest.NewServer(t)
	fake.Respond(func(req llmtest.Recorded) llmtest.Step {
		if req.Body["response_format"] != nil {
			return llmtest.Step{Reply: `{"weak_kp":[],"strong_kp":[],"next_focus":"","evidence":""}`}
		}
		return llmtest.Step{Reply: "好的"}
	})
	e := newEnv(t, withLLM(5*time.Second, 1, fake))
	expect(t, e.postForm("/student/profile/update", url.Values{"student_id": {"S7"}, "weak_kp": {"动量守恒"}}), 200, "")
	job := e.waitChat("", e.startChat("", studentTurn("r7", "S7", "这题怎么做"))["job_id"].(string))
	if job["status"] != "done" {
		t.Fatalf("job %v", job)
	}
	var system []string
	for _, m := range fake.Requests()[0].Messages {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
	}
	if s := strings.Join(system, "\n"); !strings.Contains(s, "student_id: S7") || !strings.Contains(s, "近期薄弱知识点: 动量守恒") {
		t.Fatalf("system context:\n%s", s)
	}
	var names []string
	for _, tl := range fake.Requests()[0].Tools {
		names = append(names, tl.Function.Name)
	}
	if got := strings.Join(names, ","); got != "assignment_get,assignment_today,student_profile_get" {
		t.Fatalf("a student got the tools %s, want only its own three", got)
	}
}
