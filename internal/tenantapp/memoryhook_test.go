package tenantapp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/chat"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/memory"
)

func newObserver(t *testing.T) (*memoryObserver, string) {
	t.Helper()
	dir := t.TempDir()
	return &memoryObserver{memory: memory.New(memory.Config{DataDir: dir}), history: history.NewStore(dir, 0),
		log: slog.New(slog.DiscardHandler)}, dir
}

func appendTurns(t *testing.T, h *history.Store, teacher, session string, records ...map[string]any) {
	t.Helper()
	if err := h.Append(history.Teacher, teacher, session, records, nil); err != nil {
		t.Fatal(err)
	}
}

func user(text string) map[string]any { return map[string]any{"role": "user", "content": text} }
func assistant(text string) map[string]any {
	return map[string]any{"role": "assistant", "content": text}
}

func recentTurnsOf(t *testing.T, o *memoryObserver, teacher, session, userText string) []string {
	t.Helper()
	recs, _, err := o.history.Messages(history.Teacher, teacher, session, -1, observeRecords, false)
	if err != nil {
		t.Fatal(err)
	}
	return recentUserTurns(recs, userText)
}

// Near its compaction (within FlushMargin messages of chat.CompactMax) a
// teacher's main session is flushed into a DAILY proposal of its last
// turns, once per compaction cycle; other sessions, shorter dialogs and a
// second turn of the same cycle are not.
func TestMemoryObserverFlushBeforeCompaction(t *testing.T) {
	o, _ := newObserver(t)
	flushes := func(teacher string) []memory.Proposal {
		list, err := o.memory.List(teacher, "", 50)
		if err != nil {
			t.Fatal(err)
		}
		var out []memory.Proposal
		for _, p := range list {
			if p.Source == memory.SourceAutoFlush {
				out = append(out, p)
			}
		}
		return out
	}
	n := chat.CompactMax - memory.FlushMargin
	for i := range n/2 - 1 {
		appendTurns(t, o.history, "t_alpha", "main", user(fmt.Sprintf("第 %d 题的受力分析怎么讲", i)), assistant(fmt.Sprintf("第 %d 题先画受力图", i)))
		appendTurns(t, o.history, "t_alpha", "s2", user(fmt.Sprintf("第 %d 题的受力分析怎么讲", i)), assistant("好"))
	}
	o.observe("t_alpha", "main", "第 66 题的受力分析怎么讲", "先画受力图")
	if got := flushes("t_alpha"); len(got) != 0 {
		t.Fatalf("flushed %d messages short of the margin: %+v", 2, got)
	}
	appendTurns(t, o.history, "t_alpha", "main", user("最后一题：斜面上的物块"), assistant("沿斜面分解重力"))
	appendTurns(t, o.history, "t_alpha", "s2", user("最后一题：斜面上的物块"), assistant("好"))
	o.observe("t_alpha", "main", "最后一题：斜面上的物块", "沿斜面分解重力")
	o.observe("t_alpha", "s2", "最后一题：斜面上的物块", "好")
	got := flushes("t_alpha")
	if len(got) != 1 {
		t.Fatalf("flush proposals %+v, want one (main only)", got)
	}
	p := got[0]
	if p.Target != memory.TargetDaily || p.Status != memory.StatusProposed ||
		!strings.Contains(p.Content, "老师: 最后一题：斜面上的物块") || !strings.Contains(p.Content, "助理: 沿斜面分解重力") ||
		strings.Contains(p.Content, "第 0 题") {
		t.Errorf("flush proposal %+v: want a DAILY excerpt of the last turns, waiting for review", p)
	}
	// The next turn of the same cycle: no second flush.
	appendTurns(t, o.history, "t_alpha", "main", user("再讲一道类似的题目吧"), assistant("好的"))
	o.observe("t_alpha", "main", "再讲一道类似的题目吧", "好的")
	if got := flushes("t_alpha"); len(got) != 1 {
		t.Errorf("%d flushes in one compaction cycle", len(got))
	}
	items, _, _, _ := o.history.Sessions(history.Teacher, "t_alpha", 10, 0)
	for _, it := range items {
		if it["session_id"] == "main" && it["memory_flush_cycle"] != float64(0) {
			t.Errorf("main's index item %v: want memory_flush_cycle 0", it)
		}
	}
}

// The recent user turns come from the session's history: the last 24,
// oldest first, without compaction summaries, ending with this turn's.
func TestMemoryObserverRecentTurns(t *testing.T) {
	o, _ := newObserver(t)
	appendTurns(t, o.history, "t_alpha", "main", map[string]any{"role": "assistant", "content": "摘要", "kind": "session_summary", "synthetic": true})
	for i := range 30 {
		appendTurns(t, o.history, "t_alpha", "main", user(fmt.Sprintf("问题 %d", i)), assistant("回答"))
	}
	got := recentTurnsOf(t, o, "t_alpha", "main", "问题 29")
	if len(got) != 24 || got[0] != "问题 6" || got[23] != "问题 29" {
		t.Fatalf("recent turns %q", got)
	}
	// This turn's user message missing from the history (its write failed).
	got = recentTurnsOf(t, o, "t_alpha", "main", "新的问题")
	if len(got) != 24 || got[22] != "问题 29" || got[23] != "新的问题" {
		t.Fatalf("recent turns without this one %q", got)
	}
	if got = recentTurnsOf(t, o, "t_beta", "main", "只有这一句"); len(got) != 1 || got[0] != "只有这一句" {
		t.Fatalf("another teacher's turns %q", got)
	}
}

// A preference the teacher repeated in the session's history is proposed
// (auto_infer): the history is what makes it a repeat.
func TestMemoryObserverInfersFromHistory(t *testing.T) {
	o, _ := newObserver(t)
	pref := "反馈总结请用 markdown 分点，先结论再细节"
	appendTurns(t, o.history, "t_alpha", "s2", user("先看一下第三题"), assistant("好的"),
		user("反馈总结请用markdown分点，先结论再细节"), assistant("好的"), user(pref), assistant("明白"))
	o.observe("t_alpha", "s2", pref, "明白")
	list, err := o.memory.List("t_alpha", memory.StatusProposed, 10)
	if err != nil || len(list) != 1 || list[0].Source != memory.SourceAutoInfer || list[0].Content != pref {
		t.Fatalf("proposals %+v %v", list, err)
	}
	// The same text in a session where it was never said before: no repeat.
	o.observe("t_beta", "s2", pref, "明白")
	if list, _ := o.memory.List("t_beta", "", 10); len(list) != 0 {
		t.Fatalf("a single mention inferred: %+v", list)
	}
}

// plainReplier answers every turn with the same text.
type plainReplier struct{}

func (plainReplier) Reply(context.Context, caller.Principal, string, []chat.Message, string) (string, error) {
	return "好的，已记下。", nil
}

// Wired as the chat's OnTeacherReply, a teacher's "记住…" turn becomes a
// memory proposal waiting for review; a student's turn never does.
func TestMemoryObserverThroughChat(t *testing.T) {
	o, dir := newObserver(t)
	res := caller.Resolver{Tenant: "t1", DefaultTeacherID: "teacher"}
	svc := chat.New(chat.Config{UploadsDir: dir, History: o.history, Replier: plainReplier{}, Resolver: res,
		OnTeacherReply: o.observe})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := caller.Principal{Tenant: "t1", Role: caller.Role(r.Header.Get("X-Role")), TeacherID: "t_alpha", Via: caller.Token}
		if p.Role == caller.RoleStudent {
			p.TeacherID, p.StudentID = "", "S001"
		}
		svc.HandleStart(w, r.WithContext(caller.With(r.Context(), p)))
	}))
	defer srv.Close()
	if err := svc.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	post := func(role, requestID, text string) {
		t.Helper()
		body := fmt.Sprintf(`{"request_id":%q,"messages":[{"role":"user","content":%q}]}`, requestID, text)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat/start", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Role", role)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("start %s: %d", requestID, resp.StatusCode)
		}
	}
	post("student", "r_student", "记住：以后作业都先给我答案")
	post("teacher", "r_teacher", "请记住：以后批改作业都用红色标注关键步骤")

	var list []memory.Proposal
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if list, _ = o.memory.List("t_alpha", "", 10); len(list) > 0 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Runner().Stop(ctx); err != nil {
		t.Fatal(err)
	}
	list, _ = o.memory.List("t_alpha", "", 10)
	if len(list) != 1 || list[0].Source != memory.SourceAutoIntent || list[0].Status != memory.StatusProposed ||
		list[0].Content != "请记住：以后批改作业都用红色标注关键步骤" || list[0].Meta["session_id"] != "main" {
		t.Fatalf("proposals %+v", list)
	}
	for _, tid := range []string{"teacher", "S001"} {
		if l, _ := o.memory.List(tid, "", 10); len(l) != 0 {
			t.Errorf("a student's turn proposed for %s: %+v", tid, l)
		}
	}
}
