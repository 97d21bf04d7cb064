package attachments

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/testfixtures"
	"github.com/lectern/lectern/internal/upload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t       *testing.T
	dir     string
	svc     *Service
	srv     *httptest.Server
	chunked bool
}

// newEnv serves the three routes over real HTTP; the caller comes from
// X-Role/X-Teacher/X-Student (a verified principal) or, without them,
// from the query in open mode.
func newEnv(t *testing.T, x upload.Extractor, start bool) *env {
	t.Helper()
	dir := t.TempDir()
	res := caller.Resolver{Tenant: "t1", DefaultTeacherID: "teacher"}
	svc := New(Config{UploadsDir: dir, Extractor: x, Resolver: res})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /chat/attachments", svc.HandleUpload)
	mux.HandleFunc("GET /chat/attachments/status", svc.HandleStatus)
	mux.HandleFunc("DELETE /chat/attachments/{attachment_id}", svc.HandleDelete)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := res.Resolve(caller.Claims{Role: q.Get("role"), TeacherID: q.Get("teacher_id"), StudentID: q.Get("student_id")})
		if role := r.Header.Get("X-Role"); role != "" {
			p = caller.Principal{Tenant: "t1", Role: caller.Role(role), TeacherID: r.Header.Get("X-Teacher"),
				StudentID: r.Header.Get("X-Student"), Via: caller.Token}
		}
		mux.ServeHTTP(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	e := &env{t: t, dir: dir, svc: svc, srv: srv}
	if start {
		e.start()
	}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Runner().Stop(ctx)
	})
	return e
}

func (e *env) start() {
	if err := e.svc.Runner().Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

type who struct{ role, teacher, student string }

var (
	teacherA = who{"teacher", "t_zhang", ""}
	teacherB = who{"teacher", "t_li", ""}
	studentA = who{"student", "teacher", "S001"}
)

func (w who) set(r *http.Request) {
	r.Header.Set("X-Role", w.role)
	r.Header.Set("X-Teacher", w.teacher)
	r.Header.Set("X-Student", w.student)
}

type file struct {
	name string
	data []byte
}

// upload posts fields and files as who.
func (e *env) upload(as who, fields map[string]string, files ...file) (int, map[string]any) {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="files"; filename="%s"`, f.name))
		w, _ := mw.CreatePart(h)
		w.Write(f.data)
	}
	mw.Close()
	var r io.Reader = &body
	if e.chunked {
		r = io.MultiReader(&body) // no length: sent chunked, checked while stored
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/chat/attachments", r)
	req.Header.Set("Content-Type", mw.FormDataContentType())
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
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("%d %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func (e *env) status(as who, query string) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/chat/attachments/status?"+query, nil)
	as.set(req)
	return e.do(req)
}

func (e *env) remove(as who, id, query string) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/chat/attachments/"+id+"?"+query, nil)
	as.set(req)
	return e.do(req)
}

func ids(res map[string]any) []string {
	var out []string
	for _, a := range res["attachments"].([]any) {
		out = append(out, a.(map[string]any)["attachment_id"].(string))
	}
	return out
}

// waitDone polls the status until no attachment is processing.
func (e *env) waitDone(as who, query string) []map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, res := e.status(as, query)
		if code != 200 {
			e.t.Fatalf("status %d %v", code, res)
		}
		var items []map[string]any
		pending := false
		for _, a := range res["attachments"].([]any) {
			m := a.(map[string]any)
			items = append(items, m)
			pending = pending || m["status"] == StatusProcessing
		}
		if !pending {
			return items
		}
		time.Sleep(30 * time.Millisecond)
	}
	e.t.Fatal("attachments still processing")
	return nil
}

// A text file and a rendered PNG (real tesseract) are uploaded, answered
// at once as processing, read in the background, and ready with their
// text; meta.json and extracted.txt lie where the predecessor put them.
func TestUploadTextAndImage(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract")
	e := newEnv(t, ocr.New(ocr.Options{}), true)
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.CJKFont(t), 36, "动量守恒定律", "碰撞前后总动量不变"))
	code, res := e.upload(teacherA, map[string]string{"role": "teacher", "session_id": "s1", "request_id": "q1"},
		file{"notes.md", []byte("# 第三章\n电场强度 E = F/q\n")}, file{"board.png", png})
	if code != 200 || res["ok"] != true {
		t.Fatalf("%d %v", code, res)
	}
	lim := res["limits"].(map[string]any)
	if lim["max_files_per_message"] != 5.0 || lim["max_file_size_bytes"] != 10485760.0 || lim["max_total_size_bytes"] != 31457280.0 {
		t.Fatalf("limits %v", lim)
	}
	got := ids(res)
	if len(got) != 2 || !ValidID(got[0]) || res["attachments"].([]any)[0].(map[string]any)["status"] != StatusProcessing {
		t.Fatalf("%v", res)
	}
	items := e.waitDone(teacherA, "role=teacher&session_id=s1&attachment_ids="+got[1]+"&attachment_ids="+strings.ToUpper(got[0])+"&attachment_ids="+got[1])
	if len(items) != 2 || items[0]["attachment_id"] != got[1] || items[1]["attachment_id"] != got[0] {
		t.Fatalf("order and dedup: %v", items)
	}
	for _, it := range items {
		if it["status"] != StatusReady {
			t.Fatalf("%v", it)
		}
	}
	dir := filepath.Join(e.dir, "chat_attachments", got[0])
	var meta map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "meta.json"))
	json.Unmarshal(raw, &meta)
	if meta["file_name"] != "notes.md" || meta["role"] != "teacher" || meta["teacher_id"] != "t_zhang" || meta["session_id"] != "s1" ||
		meta["request_id"] != "q1" || meta["status"] != StatusReady || meta["size_bytes"] != float64(len("# 第三章\n电场强度 E = F/q\n")) {
		t.Fatalf("meta %v", meta)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.md")); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(e.dir, "chat_attachments", got[1], "extracted.txt"))
	if !strings.Contains(strings.ReplaceAll(string(text), " ", ""), "动量守恒") {
		t.Fatalf("OCR text %q", text)
	}

	ctxText, warnings := e.svc.Context(context.Background(), Owner{Role: caller.RoleTeacher, TeacherID: "t_zhang", SessionID: "s1"}, got, time.Second)
	if !strings.HasPrefix(ctxText, "[附件 #1: notes.md]\n# 第三章") || !strings.Contains(ctxText, "[附件 #2: board.png]") || len(warnings) != 0 {
		t.Fatalf("%q %v", ctxText, warnings)
	}
}

// Only the owner (role, id and session) sees, uses or deletes an
// attachment; deleting twice answers deleted false; bad ids are 400.
func TestOwnership(t *testing.T) {
	e := newEnv(t, nil, true)
	_, res := e.upload(teacherA, map[string]string{"role": "teacher"}, file{"a.md", []byte("内容")})
	id := ids(res)[0]
	e.waitDone(teacherA, "role=teacher&attachment_ids="+id)

	for _, c := range []struct {
		as    who
		query string
		want  string
	}{
		{teacherA, "role=teacher", StatusReady},
		{teacherA, "role=teacher&session_id=other", "forbidden"},
		{teacherB, "role=teacher", "forbidden"},
		{studentA, "role=student", "forbidden"},
	} {
		code, res := e.status(c.as, c.query+"&attachment_ids="+id+",att_zz,att_0123456789abcdef")
		items := res["attachments"].([]any)
		if code != 200 || items[0].(map[string]any)["status"] != c.want ||
			items[1].(map[string]any)["status"] != "invalid" || items[1].(map[string]any)["error_code"] != "invalid_attachment_id" ||
			items[2].(map[string]any)["status"] != "not_found" {
			t.Errorf("%+v: %d %v", c, code, res)
		}
	}
	// A teacher token naming another teacher, or a student role.
	if code, res := e.status(teacherA, "role=teacher&teacher_id=t_li&attachment_ids="+id); code != 403 || res["detail"] != "forbidden_teacher_scope" {
		t.Errorf("%d %v", code, res)
	}
	if code, res := e.status(teacherA, "role=student&attachment_ids="+id); code != 403 {
		t.Errorf("%d %v", code, res)
	}
	if code, res := e.status(teacherA, "role=admin&attachment_ids="+id); code != 400 {
		t.Errorf("%d %v", code, res)
	}
	if _, w := e.svc.Check(Owner{Role: caller.RoleTeacher, TeacherID: "t_li", SessionID: "main"}, []string{id}); len(w) != 1 || w[0] != id+":forbidden_attachment" {
		t.Errorf("check %v", w)
	}

	if code, res := e.remove(teacherB, id, "role=teacher"); code != 403 || res["detail"] != "forbidden_attachment" {
		t.Fatalf("%d %v", code, res)
	}
	if code, res := e.remove(teacherA, "att_nothex", "role=teacher"); code != 400 {
		t.Fatalf("%d %v", code, res)
	}
	if code, res := e.remove(teacherA, id, "role=teacher"); code != 200 || res["deleted"] != true {
		t.Fatalf("%d %v", code, res)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "chat_attachments", id)); !os.IsNotExist(err) {
		t.Fatal("directory left")
	}
	if code, res := e.remove(teacherA, id, "role=teacher"); code != 200 || res["deleted"] != false {
		t.Fatalf("%d %v", code, res)
	}

	// Open mode: the claims of the form and the query.
	open := who{}
	code, res := e.upload(open, map[string]string{"role": "student", "student_id": "S9", "session_id": "hw1"}, file{"b.txt", []byte("hello")})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	oid := ids(res)[0]
	items := e.waitDone(open, "role=student&student_id=S9&session_id=hw1&attachment_ids="+oid)
	if items[0]["status"] != StatusReady {
		t.Fatalf("%v", items)
	}
	if code, res := e.upload(open, map[string]string{"role": "student"}, file{"b.txt", []byte("x")}); code != 400 || res["detail"] != "student_id is required" {
		t.Fatalf("%d %v", code, res)
	}
}

// The reference's limits, each refused before (or while) storing, and
// nothing of a refused upload is left.
func TestLimits(t *testing.T) {
	e := newEnv(t, nil, true)
	small := file{"a.md", []byte("x")}
	big := make([]byte, MaxFileBytes+1)
	nine := make([]byte, 9<<20)
	for i := range nine {
		nine[i] = 'a'
	}
	for _, c := range []struct {
		name  string
		files []file
		code  int
		det   string
	}{
		{"none", nil, 400, "至少上传一个文件"},
		{"six", []file{small, small, small, small, small, small}, 400, "单条消息最多上传 5 个文件"},
		{"big", []file{{"big.md", big}}, 413, "单个文件大小不能超过 10MB"},
		{"total", []file{{"1.md", nine}, {"2.md", nine}, {"3.md", nine}, {"4.md", nine}}, 413, "单条消息文件总大小不能超过 30MB"},
		{"suffix", []file{{"run.exe", []byte("MZ")}}, 400, "不支持的文件类型: .exe"},
		{"no suffix", []file{{"README", []byte("x")}}, 400, "不支持的文件类型: (无后缀)"},
		{"no name", []file{{"", []byte("x")}}, 400, "文件名不能为空"},
	} {
		code, res := e.upload(teacherA, map[string]string{"role": "teacher"}, c.files...)
		if code != c.code || res["detail"] != c.det {
			t.Errorf("%s: %d %v", c.name, code, res)
		}
	}
	// Without a Content-Length the total is checked as the files arrive.
	e.chunked = true
	four := make([]byte, 4<<20)
	if code, res := e.upload(teacherA, map[string]string{"role": "teacher"}, file{"1.md", nine}, file{"2.md", nine},
		file{"3.md", nine}, file{"4.md", four}); code != 413 || res["detail"] != "单条消息文件总大小不能超过 30MB" {
		t.Errorf("chunked total: %d %v", code, res)
	}
	e.chunked = false
	entries, _ := os.ReadDir(filepath.Join(e.dir, "chat_attachments"))
	if len(entries) != 0 {
		t.Fatalf("%d directories left by refused uploads", len(entries))
	}
	if code, res := e.upload(teacherA, map[string]string{"role": "parent"}, small); code != 400 || res["detail"] != "role must be teacher or student" {
		t.Fatalf("%d %v", code, res)
	}
}

// What cannot be read fails with a code, the upload itself succeeding:
// an image without OCR (ocr_unavailable), a .png that is not one, a
// legacy .xls, an empty text; an .xlsx is read as a table preview.
func TestExtractionOutcomes(t *testing.T) {
	e := newEnv(t, nil, true)
	wb := excelize.NewFile()
	for r := 1; r <= 70; r++ {
		for c := 1; c <= 35; c++ {
			cell, _ := excelize.CoordinatesToCellName(c, r)
			wb.SetCellValue("Sheet1", cell, fmt.Sprintf("r%dc%d", r, c))
		}
	}
	var xb bytes.Buffer
	wb.Write(&xb)
	wb.Close()
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 30, "hello"))
	code, res := e.upload(teacherA, map[string]string{"role": "teacher"},
		file{"scan.png", png}, file{"fake.png", []byte("not an image at all")},
		file{"old.xls", []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0}},
		file{"empty.md", []byte("  \n ")}, file{"scores.xlsx", xb.Bytes()})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	got := ids(res)
	items := e.waitDone(teacherA, "role=teacher&attachment_ids="+strings.Join(got, ","))
	want := []struct{ status, code string }{
		{StatusFailed, CodeOCRUnavailable}, {StatusFailed, CodeExtractFailed}, {StatusFailed, CodeExtractFailed},
		{StatusFailed, CodeExtractEmpty}, {StatusReady, ""},
	}
	for i, w := range want {
		if items[i]["status"] != w.status || items[i]["error_code"] != w.code {
			t.Errorf("%d: %v", i, items[i])
		}
		if d, _ := items[i]["error_detail"].(string); strings.Contains(d, e.dir) {
			t.Errorf("the detail shows a server path: %q", d)
		}
	}
	text, _ := os.ReadFile(filepath.Join(e.dir, "chat_attachments", got[4], "extracted.txt"))
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	if len(lines) != 60 || len(strings.Split(lines[0], "\t")) != 30 || !strings.HasPrefix(lines[0], "r1c1\tr1c2") {
		t.Fatalf("preview: %d lines, first %q", len(lines), lines[0])
	}
	_, w := e.svc.Check(Owner{Role: caller.RoleTeacher, TeacherID: "t_zhang", SessionID: "main"}, got)
	if len(w) != 4 || w[0] != got[0]+":ocr_unavailable" {
		t.Fatalf("warnings %v", w)
	}
}

// The context of a turn is cut at 12 000 characters with a warning, and
// waits for an attachment still being read.
func TestContextBoundAndWait(t *testing.T) {
	e := newEnv(t, nil, false) // the runner starts later
	long := strings.Repeat("长", 7000)
	_, res := e.upload(teacherA, map[string]string{"role": "teacher"}, file{"a.md", []byte(long)}, file{"b.md", []byte(long)})
	got := ids(res)
	o := Owner{Role: caller.RoleTeacher, TeacherID: "t_zhang", SessionID: "main"}
	if text, w := e.svc.Context(context.Background(), o, got, 50*time.Millisecond); text != "" || len(w) != 2 || !strings.HasSuffix(w[0], ":attachment_not_ready") {
		t.Fatalf("before: %q %v", text, w)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		e.start() // the jobs queued before the start resume
	}()
	text, w := e.svc.Context(context.Background(), o, got, 20*time.Second)
	if n := len([]rune(text)); n != MaxContextChars+1 || !strings.HasSuffix(text, "…") || len(w) != 1 || w[0] != "attachment_context_truncated" {
		t.Fatalf("%d chars, %v", n, w)
	}
}

// Deleting an attachment while its text is read cancels the read and
// leaves nothing.
func TestDeleteWhileProcessing(t *testing.T) {
	e := newEnv(t, blockingExtractor{}, true)
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.LatinFont(t), 30, "x"))
	_, res := e.upload(teacherA, map[string]string{"role": "teacher"}, file{"a.png", png})
	id := ids(res)[0]
	time.Sleep(50 * time.Millisecond)
	if code, res := e.remove(teacherA, id, "role=teacher"); code != 200 || res["deleted"] != true {
		t.Fatalf("%d %v", code, res)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.svc.Runner().Stats().Busy > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "chat_attachments", id)); !os.IsNotExist(err) {
		t.Fatal("directory left")
	}
}

// blockingExtractor blocks until its context ends.
type blockingExtractor struct{}

func (blockingExtractor) Extract(ctx context.Context, _ string) (*ocr.Result, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
