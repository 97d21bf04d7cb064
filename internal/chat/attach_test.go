package chat

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/testfixtures"
)

// uploadFiles posts files to /chat/attachments as who and returns their
// ids.
func (e *env) uploadFiles(as who, fields map[string]string, files map[string][]byte, order ...string) []string {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, name := range order {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="files"; filename="%s"`, name))
		w, _ := mw.CreatePart(h)
		w.Write(files[name])
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/chat/attachments", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	as.set(req)
	code, res := e.do(req)
	if code != 200 {
		e.t.Fatalf("upload %d %v", code, res)
	}
	var ids []string
	for _, a := range res["attachments"].([]any) {
		ids = append(ids, a.(map[string]any)["attachment_id"].(string))
	}
	return ids
}

// A text file and a rendered PNG (read by real tesseract) are uploaded,
// their status polled until ready, then referenced by a chat message: the
// LLM request carries their text as system context, an attachment of
// another teacher is left out with a warning, and the job keeps the text.
func TestAttachmentReferencedInChat(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract")
	e := newEnvIn(t, t.TempDir(), ocr.New(ocr.Options{}))
	e.fake.Script(llmtest.Step{Reply: "我看了你的附件。", Chunks: 2})
	png := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.CJKFont(t), 36, "楞次定律的内容", "感应电流阻碍磁通量变化"))
	mine := e.uploadFiles(teacherA, map[string]string{"role": "teacher", "session_id": "main"},
		map[string][]byte{"lesson.md": []byte("# 教案\n本节讲电磁感应的三个实验。"), "board.png": png}, "lesson.md", "board.png")
	theirs := e.uploadFiles(teacherB, map[string]string{"role": "teacher"}, map[string][]byte{"x.md": []byte("别人的")}, "x.md")

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, res := e.get(teacherA, "/chat/attachments/status?role=teacher&attachment_ids="+strings.Join(mine, ","))
		items := res["attachments"].([]any)
		if code == 200 && items[0].(map[string]any)["status"] == "ready" && items[1].(map[string]any)["status"] == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", res)
		}
		time.Sleep(50 * time.Millisecond)
	}

	refs := []map[string]any{{"attachment_id": mine[0]}, {"attachment_id": mine[1]}, {"attachment_id": theirs[0]}}
	code, start := e.postJSON(teacherA, "/chat/start", map[string]any{"request_id": "r1", "attachments": refs,
		"attachment_context": "客户端伪造的内容", "messages": []map[string]any{{"role": "user", "content": "帮我看看这两个附件"}}})
	if code != 200 {
		t.Fatalf("%d %v", code, start)
	}
	if w, _ := start["warnings"].([]any); len(w) != 1 || w[0] != theirs[0]+":forbidden_attachment" {
		t.Fatalf("warnings %v", start["warnings"])
	}
	rec := e.waitJob(teacherA, start["job_id"].(string))
	if rec["status"] != StatusDone {
		t.Fatalf("%v", rec)
	}
	req := e.fake.Requests()[0]
	var system strings.Builder
	for _, m := range req.Messages {
		if m.Role == "system" {
			system.WriteString(m.Content)
		}
	}
	sys := strings.ReplaceAll(system.String(), " ", "")
	if !strings.Contains(sys, "[附件#1:lesson.md]") || !strings.Contains(sys, "电磁感应的三个实验") ||
		!strings.Contains(sys, "[附件#2:board.png]") || !strings.Contains(sys, "磁通量") ||
		strings.Contains(sys, "别人的") || strings.Contains(sys, "伪造") {
		t.Fatalf("system context: %q", system.String())
	}
	kept := rec["request"].(map[string]any)["attachment_context"].(string)
	if !strings.Contains(kept, "电磁感应") || strings.Contains(kept, "伪造") {
		t.Fatalf("attachment_context %q", kept)
	}

	// The same through POST /chat; a student cannot use the teacher's.
	e.fake.Script(llmtest.Step{Reply: "好"})
	code, res := e.postJSON(studentA, "/chat", map[string]any{"attachments": []string{mine[0]},
		"messages": []map[string]any{{"role": "user", "content": "看附件"}}})
	if code != 200 || res["reply"] != "好" {
		t.Fatalf("%d %v", code, res)
	}
	if w, _ := res["warnings"].([]any); len(w) != 1 || w[0] != mine[0]+":forbidden_attachment" {
		t.Fatalf("warnings %v", res["warnings"])
	}
	if last := e.fake.Requests()[1]; strings.Contains(fmt.Sprint(last.Messages), "电磁感应") {
		t.Fatal("a student's request carried the teacher's attachment")
	}
}
