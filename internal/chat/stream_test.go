package chat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/jobs/jobstest"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

const longReply = "牛顿第二定律说明，物体的加速度与所受合力成正比，与质量成反比，方向与合力方向相同。" +
	"写成公式就是 \\(F=ma\\)。例如质量为 2 kg 的物体受到 10 N 的合力时，加速度为 5 m/s²。" +
	"解题时先画受力分析图，再沿加速度方向列方程，最后检查单位是否一致。"

// scriptToolThenReply: one round calling the tool, then the reply
// streamed in many slow pieces.
func scriptToolThenReply(fake *llmtest.Server, chunks int, delay time.Duration) {
	fake.Script(
		llmtest.Step{ToolCalls: []llm.ToolCall{{ID: "call_a", Type: "function",
			Function: llm.FunctionCall{Name: "demo_lookup", Arguments: `{"q":"光速"}`}}}},
		llmtest.Step{Reply: longReply, Chunks: chunks, ChunkDelay: delay},
	)
}

func types(evs []sseEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.name)
	}
	return out
}

func deltas(evs []sseEvent) string {
	var b strings.Builder
	for _, e := range evs {
		if e.name == EventDelta {
			b.WriteString(e.data.Payload["delta"].(string))
		}
	}
	return b.String()
}

// The whole scenario of a client: it reads the stream, drops the
// connection in the middle of the reply, reconnects with last_event_id
// (and once more with the Last-Event-ID header after the job ended), and
// gets every event exactly once, in order, ending with job.done; the
// deltas (streamed by the LLM, coalesced) add up to the reply.
func TestStreamResumeNoEventTwice(t *testing.T) {
	e := newEnv(t)
	scriptToolThenReply(e.fake, 40, 15*time.Millisecond)
	id := e.start(teacherA, "r1", "牛顿第二定律是什么？", nil)

	first, code := e.openStream(teacherA, id, 0, "")
	if code != 200 {
		t.Fatalf("stream %d", code)
	}
	if ct := first.resp.Header.Get("Content-Type"); ct != "text/event-stream" ||
		first.resp.Header.Get("Cache-Control") != "no-cache" || first.resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", first.resp.Header)
	}
	var got []sseEvent
	nDeltas := 0
	for nDeltas < 3 {
		ev, err := first.next()
		if err != nil {
			t.Fatalf("after %v: %v", types(got), err)
		}
		got = append(got, ev)
		if ev.name == EventDelta {
			nDeltas++
		}
	}
	first.close() // mid-reply
	if first.retry != "1000" {
		t.Errorf("retry %q", first.retry)
	}
	last := got[len(got)-1].id
	for _, ev := range got {
		if ev.name == EventAssistantDone || ev.data.Type == EventJobDone {
			t.Fatalf("the first connection saw the end already: %v", types(got))
		}
	}

	second, code := e.openStream(teacherA, id, last, "")
	if code != 200 {
		t.Fatalf("reconnect %d", code)
	}
	rest := second.readAll(t)
	second.close()
	all := append(append([]sseEvent(nil), got...), rest...)
	for i, ev := range all {
		if ev.id != ev.data.ID || ev.name != ev.data.Type || ev.data.Version != 1 {
			t.Fatalf("event %d: wire %d %s, data %+v", i, ev.id, ev.name, ev.data)
		}
		if i > 0 && ev.id != all[i-1].id+1 {
			t.Fatalf("ids %d then %d (a gap or a repeat) in %v", all[i-1].id, ev.id, types(all))
		}
	}
	if all[0].id != 1 || all[0].name != EventJobQueued || all[1].name != EventJobProcessing {
		t.Fatalf("start %v", types(all))
	}
	tail := all[len(all)-2:]
	if tail[0].name != EventAssistantDone || tail[1].name != EventJobDone || tail[1].data.Payload["status"] != StatusDone {
		t.Fatalf("end %v", types(all))
	}
	reply := tail[0].data.Payload["text"].(string)
	if reply != strings.ReplaceAll(strings.ReplaceAll(longReply, `\(`, "$"), `\)`, "$") || deltas(all) != reply {
		t.Fatalf("reply %q\ndeltas %q", reply, deltas(all))
	}
	want := []string{EventJobQueued, EventJobProcessing, "llm.round.start", "tool.start", "tool.finish", "llm.round.start"}
	if strings.Join(types(all[:6]), ",") != strings.Join(want, ",") {
		t.Fatalf("events %v", types(all))
	}
	if p := all[4].data.Payload; p["tool_name"] != "demo.lookup" || p["tool_call_id"] != "call_a" || p["ok"] != true {
		t.Fatalf("tool.finish %v", p)
	}
	// 40 pieces 15 ms apart coalesce into fewer events (≥ 96 chars or 40 ms).
	if n := strings.Count(strings.Join(types(all), ","), EventDelta); n >= 40 || n < 3 {
		t.Errorf("%d delta events", n)
	}

	// After the end: from the header's cursor, nothing is left and the
	// stream closes at once; from 0 the client gets the whole log again.
	third, _ := e.openStream(teacherA, id, 0, strconv.FormatInt(tail[1].id, 10))
	if evs := third.readAll(t); len(evs) != 0 {
		t.Fatalf("after the end: %v", types(evs))
	}
	third.close()
	again, _ := e.openStream(teacherA, id, 0, "")
	if evs := again.readAll(t); len(evs) != len(all) || evs[len(evs)-1].name != EventJobDone {
		t.Fatalf("replay %v", types(evs))
	}
	again.close()
}

// A restarted tenant (a new Service over the same files) serves the log
// from events.jsonl with the same ids; a job of the predecessor (no
// events at all) gets its reply and its end from its record.
func TestStreamFromFileAfterRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, nil)
	e.fake.Script(llmtest.Step{Reply: "第一次的回答", Chunks: 3})
	id := e.start(teacherA, "r1", "你好", nil)
	e.waitJob(teacherA, id)
	s1, _ := e.openStream(teacherA, id, 0, "")
	before := s1.readAll(t)
	s1.close()
	e.close()

	e2 := newEnvIn(t, dir, nil)
	s2, _ := e2.openStream(teacherA, id, 2, "")
	after := s2.readAll(t)
	s2.close()
	if len(after) != len(before)-2 || after[0].id != 3 || after[len(after)-1].name != EventJobDone {
		t.Fatalf("before %v, after %v", types(before), types(after))
	}

	// The predecessor's job: job.json only.
	old := filepath.Join(dir, "chat_jobs", "cjob_0123456789ab")
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, "job.json"), []byte(`{"job_id":"cjob_0123456789ab","status":"done","role":"teacher",`+
		`"teacher_id":"t_zhang","reply":"旧的回答","step":"done"}`), 0o644)
	s3, code := e2.openStream(teacherA, "cjob_0123456789ab", 0, "")
	evs := s3.readAll(t)
	s3.close()
	if code != 200 || len(evs) != 2 || evs[0].name != EventAssistantDone || evs[0].data.Payload["text"] != "旧的回答" ||
		evs[1].name != EventJobDone || evs[1].id != 2 {
		t.Fatalf("%d %v %+v", code, types(evs), evs)
	}
	if _, err := os.Stat(filepath.Join(old, eventsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a GET wrote the events file")
	}
}

// Only the job's owner streams it (as for /chat/status): another teacher
// or a student gets 403 forbidden_chat_job; an unknown job 404; a bad
// cursor 400.
func TestStreamOfAnotherUsersJobRefused(t *testing.T) {
	e := newEnv(t)
	e.fake.Script(llmtest.Step{Reply: "好的"})
	id := e.start(teacherA, "r1", "你好", nil)
	for _, c := range []struct {
		as   who
		id   string
		q    string
		code int
		det  string
	}{
		{teacherB, id, "", 403, "forbidden_chat_job"},
		{studentA, id, "", 403, "forbidden_chat_job"},
		{teacherA, "cjob_ffffffffffff", "", 404, "job not found"},
		{teacherA, "../x", "", 404, "job not found"},
		{teacherA, id, "&last_event_id=-3", 400, "last_event_id must be a non-negative integer"},
		{teacherA, "", "", 400, "job_id is required"},
	} {
		code, res := e.get(c.as, "/chat/stream?job_id="+c.id+c.q)
		if code != c.code || res["detail"] != c.det {
			t.Errorf("%+v: %d %v", c, code, res)
		}
	}
	e.waitJob(teacherA, id)
}

// The tenant's bound on open streams answers 429, and an idle stream is
// kept alive with comments.
func TestStreamOpenBoundAndKeepAlive(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.StreamMaxOpen, c.StreamHeartbeat = 1, 30*time.Millisecond })
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // (registered after the fake's own cleanup: runs first)
	e.fake.Respond(func(r llmtest.Recorded) llmtest.Step {
		<-release
		return llmtest.Step{Reply: "终于好了", Chunks: 2}
	})
	id := e.start(teacherA, "r1", "慢一点", nil)
	s1, code := e.openStream(teacherA, id, 0, "")
	if code != 200 {
		t.Fatal(code)
	}
	if code, res := e.get(teacherA, "/chat/stream?job_id="+id); code != 429 || !strings.Contains(res["detail"].(string), "对话流过多") {
		t.Fatalf("second stream: %d %v", code, res)
	}
	var evs []sseEvent
	for len(evs) < 3 { // job.queued, job.processing, llm.round.start; then the model is slow
		ev, err := s1.next()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	time.Sleep(120 * time.Millisecond)
	free()
	evs = append(evs, s1.readAll(t)...)
	s1.close()
	if s1.comments == 0 {
		t.Error("no keep-alive comment on an idle stream")
	}
	if evs[len(evs)-1].name != EventJobDone || deltas(evs) != "终于好了" {
		t.Fatalf("%v", types(evs))
	}
	// The place is free again.
	s2, code := e.openStream(teacherA, id, 0, "")
	s2.readAll(t)
	s2.close()
	if code != 200 {
		t.Fatalf("after the first closed: %d", code)
	}
}

// A connection ends after StreamMaxEvents events; the client resumes from
// its last id, connection after connection, and gets every event once.
func TestStreamEventBoundPerConnection(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.StreamMaxEvents = 3 })
	e.fake.Script(llmtest.Step{Reply: longReply, Chunks: 10, ChunkDelay: 5 * time.Millisecond})
	id := e.start(teacherA, "r1", "讲讲", nil)
	e.waitJob(teacherA, id)
	var all []sseEvent
	var cursor int64
	for conns := 0; ; conns++ {
		if conns > 100 {
			t.Fatal("no end")
		}
		s, code := e.openStream(teacherA, id, 0, strconv.FormatInt(cursor, 10))
		if code != 200 {
			t.Fatalf("connection %d: %d", conns, code)
		}
		got := s.readAll(t)
		s.close()
		if len(got) > 3 {
			t.Fatalf("%d events on one connection", len(got))
		}
		all = append(all, got...)
		if len(got) == 0 || got[len(got)-1].name == EventJobDone {
			break
		}
		cursor = got[len(got)-1].id
	}
	for i, ev := range all {
		if ev.id != int64(i+1) {
			t.Fatalf("event %d has id %d: %v", i, ev.id, types(all))
		}
	}
	if all[len(all)-1].name != EventJobDone {
		t.Fatalf("%v", types(all))
	}
}

// A failed reply ends the stream with job.failed.
func TestStreamEndsWithFailure(t *testing.T) {
	e := newEnv(t)
	e.fake.Script(llmtest.Step{Status: 400})
	id := e.start(studentA, "r1", "你好", nil)
	s, _ := e.openStream(studentA, id, 0, "")
	evs := s.readAll(t)
	s.close()
	lastEv := evs[len(evs)-1]
	if lastEv.name != EventJobFailed || lastEv.data.Payload["status"] != StatusFailed || lastEv.data.Payload["error"] == "" {
		t.Fatalf("%v %+v", types(evs), lastEv)
	}
}

// plainReplier answers without any events (no streaming model).
type plainReplier struct{}

func (plainReplier) Reply(context.Context, caller.Principal, string, []Message, string) (string, error) {
	return strings.Repeat("字", 60), nil
}

// A reply that was not streamed is replayed as 24-character deltas.
func TestStreamReplaysUnstreamedReply(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Replier = plainReplier{} })
	id := e.start(teacherA, "r1", "你好", nil)
	s, _ := e.openStream(teacherA, id, 0, "")
	evs := s.readAll(t)
	s.close()
	var sizes []int
	for _, ev := range evs {
		if ev.name == EventDelta {
			sizes = append(sizes, len([]rune(ev.data.Payload["delta"].(string))))
		}
	}
	if len(sizes) != 3 || sizes[0] != 24 || sizes[2] != 12 || deltas(evs) != strings.Repeat("字", 60) {
		t.Fatalf("%v %v", sizes, types(evs))
	}
}

// Deltas coalesce: pieces within 40 ms and under 96 characters go out
// together; the first at once; a tool event flushes what is pending.
func agentDelta(d string) agent.Event {
	return agent.Event{Type: agent.EventDelta, Payload: map[string]any{"delta": d}}
}

func toolEvent() agent.Event {
	return agent.Event{Type: agent.EventToolStart, Payload: map[string]any{"tool_name": "x", "tool_call_id": "c"}}
}

func TestDeltaCoalescing(t *testing.T) {
	dir := t.TempDir()
	s := New(Config{UploadsDir: dir, History: history.NewStore(dir, 0), Replier: plainReplier{}})
	id := "cjob_aaaaaaaaaaaa"
	os.MkdirAll(filepath.Join(dir, "chat_jobs", id), 0o755)
	turn := &turnEvents{s: s, id: id}
	d := func(x string) { turn.sink(agentDelta(x)) }
	d("一")                      // at once
	d("二")                      // pending (within 40 ms)
	d("三")                      // pending
	turn.sink(toolEvent())      // flushes 二三, then the tool event
	d(strings.Repeat("长", 100)) // ≥ 96: at once
	d("尾")
	if !turn.close() {
		t.Fatal("no deltas")
	}
	l := s.events.live(id)
	evs, _, _, _ := l.after(0, 100)
	var got []string
	for _, e := range evs {
		if e.Type == EventDelta {
			got = append(got, e.Payload["delta"].(string))
		} else {
			got = append(got, "<"+e.Type+">")
		}
	}
	want := []string{"一", "二三", "<tool.start>", strings.Repeat("长", 100), "尾"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%q", got)
	}
}

// skillReplier reports a skill resolution, as the tenant's replier does
// after routing, then answers.
type skillReplier struct{}

func (skillReplier) Reply(ctx context.Context, _ caller.Principal, _ string, _ []Message, _ string) (string, error) {
	agent.Emit(ctx, agent.Event{Type: EventWorkflowResolved, Payload: map[string]any{
		"skill_id_requested": RequestedSkill(ctx), "skill_id_effective": "physics-homework-generator", "skill_reason": "auto_rule",
		"skill_confidence": 0.8, "skill_candidates": []any{map[string]any{"skill_id": "physics-homework-generator", "score": 5}}}})
	return "好的", nil
}

// A turn's skill resolution is a workflow.resolved event, and the job
// records it: /chat/status and job.done show the effective skill. The
// Replier learns the requested skill from its context.
func TestSkillResolutionRecorded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Replier = skillReplier{} })
	id := e.start(teacherA, "r1", "帮我布置作业", map[string]any{"skill_id": "physics-teacher-ops"})
	rec := e.waitJob(teacherA, id)
	if rec["skill_id_effective"] != "physics-homework-generator" || rec["skill_id_requested"] != "physics-teacher-ops" || rec["skill_reason"] != "auto_rule" || rec["skill_confidence"] != 0.8 {
		t.Fatalf("record %v", rec)
	}
	s, _ := e.openStream(teacherA, id, 0, "")
	evs := s.readAll(t)
	s.close()
	if got := strings.Join(types(evs), ","); !strings.Contains(got, "job.processing,workflow.resolved,") {
		t.Fatalf("%s", got)
	}
	if p := evs[len(evs)-1].data.Payload; p["skill_id_effective"] != "physics-homework-generator" {
		t.Fatalf("job.done %v", p)
	}
}

// A machine crash right after a job ended (what was written unsynced is
// gone: its sealed record, the session's turns) loses
// nothing: the journal brings back the finished record and both turns, and
// the model is not asked again.
func TestFinishedJobSurvivesAMachineCrash(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, nil)
	e.fake.Script(llmtest.Step{Reply: "牛顿第二定律：F=ma"})
	id := e.start(teacherA, "r1", "讲一下牛顿第二定律", map[string]any{"session_id": "main"})
	if rec := e.waitJob(teacherA, id); rec["status"] != StatusDone {
		t.Fatalf("job: %v", rec)
	}
	restore := jobstest.JournalSnapshot(t, filepath.Join(dir, "chat_jobs"))
	e.close()

	// The crash: the journal's synced segment is all that is left of the
	// job's end.
	restore()
	// The finished job's one file (sealed, unsynced) is lost too.
	sealed := filepath.Join(dir, "chat_jobs", id+jobs.SealedSuffix)
	if _, err := os.Stat(sealed); err != nil {
		t.Fatalf("the finished job is not sealed: %v", err)
	}
	os.Remove(sealed)
	files, err := history.NewStore(dir, 0).Files(history.Teacher, "t_zhang", "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		os.Remove(f)
	}

	e2 := newEnvIn(t, dir, nil)
	got := e2.waitJob(teacherA, id)
	if got["status"] != StatusDone || got["reply"] != "牛顿第二定律：F=ma" {
		t.Fatalf("after the crash: %v", got)
	}
	if n := len(e2.fake.Requests()); n != 0 {
		t.Errorf("the model was asked %d times after the crash", n)
	}
	msgs, _, err := history.NewStore(dir, 0).Messages(history.Teacher, "t_zhang", "main", -1, 50, false)
	if err != nil || len(msgs) != 2 || msgs[0]["role"] != "user" || msgs[1]["job_id"] != id {
		t.Fatalf("history after the crash: %v %v", msgs, err)
	}
}
