package chat

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// teacherTurn is one OnTeacherReply call, with what was already recorded
// when it came.
type teacherTurn struct {
	teacherID, session, userText, reply string
	lastRecord                          map[string]any // the session's last history record
}

// OnTeacherReply is called once per finished teacher turn, job or
// synchronous, after the turn is recorded and without holding the reply
// back; never for a student or a failed turn.
func TestOnTeacherReply(t *testing.T) {
	calls := make(chan teacherTurn, 10)
	release := make(chan struct{})
	var hist *history.Store
	e := newEnv(t, func(c *Config) {
		hist = c.History
		c.OnTeacherReply = func(teacherID, session, userText, reply string) {
			recs, _, _ := hist.Messages(history.Teacher, teacherID, session, -1, 1, false)
			turn := teacherTurn{teacherID: teacherID, session: session, userText: userText, reply: reply}
			if len(recs) == 1 {
				turn.lastRecord = recs[0]
			}
			calls <- turn
			<-release // a slow hook holds back no reply
		}
	})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	next := func(what string) teacherTurn {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: OnTeacherReply not called", what)
		}
		return teacherTurn{}
	}
	check := func(what string, got teacherTurn, teacher, session, user, reply string) {
		t.Helper()
		if got.teacherID != teacher || got.session != session || got.userText != user || got.reply != reply {
			t.Errorf("%s: called with %+v", what, got)
		}
		if got.lastRecord["role"] != "assistant" || got.lastRecord["content"] != reply {
			t.Errorf("%s: the reply was not recorded before the hook: %v", what, got.lastRecord)
		}
	}

	// A student's synchronous reply and job: no call.
	e.fake.Script(llmtest.Step{Reply: "学生的回答"}, llmtest.Step{Reply: "学生的第二个回答"})
	if code, res := e.postJSON(studentA, "/chat", map[string]any{"messages": []map[string]any{{"role": "user", "content": "老师，这题怎么做？"}}}); code != 200 {
		t.Fatalf("student chat %d %v", code, res)
	}
	if rec := e.waitJob(studentA, e.start(studentA, "s1", "再问一题", nil)); rec["status"] != StatusDone {
		t.Fatalf("student job %v", rec)
	}

	// A teacher's job: called on the job's goroutine once the job is done.
	e.fake.Script(llmtest.Step{Reply: "好的，以后讲评先给结论。"})
	id := e.start(teacherA, "t1", "记住：以后讲评都先给结论再给过程", nil)
	check("job", next("job"), "t_zhang", "main", "记住：以后讲评都先给结论再给过程", "好的，以后讲评先给结论。")
	if rec := e.waitJob(teacherA, id); rec["status"] != StatusDone || rec["reply"] != "好的，以后讲评先给结论。" {
		t.Fatalf("teacher job while the hook runs: %v", rec)
	}

	// POST /chat: answered while the hook (still blocked) has not returned.
	e.fake.Script(llmtest.Step{Reply: "第二节课的安排如下。"})
	code, res := e.postJSON(teacherB, "/chat", map[string]any{"session_id": "s_week2",
		"messages": []map[string]any{{"role": "assistant", "content": "之前的回答"}, {"role": "user", "content": "第二节课怎么安排？"}}})
	if code != 200 || res["reply"] != "第二节课的安排如下。" {
		t.Fatalf("teacher chat %d %v", code, res)
	}
	check("chat", next("chat"), "t_li", "s_week2", "第二节课怎么安排？", "第二节课的安排如下。")
	releaseOnce.Do(func() { close(release) })

	// Failed turns: no call.
	e.fake.Script(llmtest.Step{Status: 400}, llmtest.Step{Status: 400})
	if rec := e.waitJob(teacherA, e.start(teacherA, "t2", "这一轮会失败", nil)); rec["status"] != StatusFailed {
		t.Fatalf("failing job %v", rec)
	}
	if code, res := e.postJSON(teacherA, "/chat", map[string]any{"messages": []map[string]any{{"role": "user", "content": "这一轮也会失败"}}}); code == 200 {
		t.Fatalf("failing chat %d %v", code, res)
	}

	// Every job has ended (its hook included): nothing else was called.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.Runner().Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-calls:
		t.Fatalf("unexpected call %+v", c)
	case <-time.After(100 * time.Millisecond):
	}
}
