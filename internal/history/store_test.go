package history

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/fsid"
)

// clock is a fake time source that advances one second per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 2, 8, 14, 0, 0, 0, time.Local)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func testStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s := NewStore(dir, 0)
	s.now = newClock().now
	return s, dir
}

func readIndex(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	if err := json.Unmarshal(data, &items); err != nil {
		t.Fatalf("index %s: %v\n%s", path, err, data)
	}
	return items
}

func TestAppendReadRoundTrip(t *testing.T) {
	s, dir := testStore(t)
	recs := []map[string]any{
		{"role": "user", "content": "你好，老师 <b>&", "request_id": "r1", "source": "start_prewrite"},
		{"role": "assistant", "content": "同学好", "job_id": "cjob_1", "ts": "2026-01-01T00:00:00"},
	}
	err := s.Append(Student, "高二2403班_武熙语", "general_2026-02-05", recs,
		map[string]any{"assignment_id": nil, "date": "2026-02-05"})
	if err != nil {
		t.Fatal(err)
	}
	owner := filepath.Join(dir, "student_chat_sessions", "高二2403班_武熙语")
	raw, err := os.ReadFile(filepath.Join(owner, "general_2026-02-05.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ts": "2026-02-08T14:00:01", "role": "user", "content": "你好，老师 <b>&", "request_id": "r1", "source": "start_prewrite"}` + "\n" +
		`{"ts": "2026-01-01T00:00:00", "role": "assistant", "content": "同学好", "job_id": "cjob_1"}` + "\n"
	if string(raw) != want {
		t.Fatalf("jsonl:\n%s\nwant:\n%s", raw, want)
	}
	if recs[0]["ts"] != nil {
		t.Fatal("Append modified the caller's record")
	}

	all, err := s.ReadAll(Student, "高二2403班_武熙语", "general_2026-02-05")
	if err != nil || len(all) != 2 || all[0]["content"] != "你好，老师 <b>&" || all[1]["job_id"] != "cjob_1" {
		t.Fatalf("ReadAll %v %v", all, err)
	}
	items := readIndex(t, filepath.Join(owner, "index.json"))
	if len(items) != 1 {
		t.Fatalf("index %v", items)
	}
	it := items[0]
	if it["session_id"] != "general_2026-02-05" || it["message_count"] != 2.0 || it["preview"] != "同学好" ||
		it["date"] != "2026-02-05" || it["updated_at"] != "2026-02-08T14:00:01" {
		t.Fatalf("item %v", it)
	}
	if _, ok := it["assignment_id"]; ok {
		t.Fatalf("nil extra stored: %v", it)
	}
	idx, _ := os.ReadFile(filepath.Join(owner, "index.json"))
	wantIdx := "[\n  {\n    \"session_id\": \"general_2026-02-05\",\n    \"message_count\": 2,\n    \"updated_at\": \"2026-02-08T14:00:01\",\n" +
		"    \"date\": \"2026-02-05\",\n    \"preview\": \"同学好\"\n  }\n]\n"
	if string(idx) != wantIdx {
		t.Fatalf("index bytes:\n%s\nwant:\n%s", idx, wantIdx)
	}

	// A second append: count grows, preview follows, teacher layout.
	long := strings.Repeat("长", 250)
	if err := s.Append(Teacher, "teacher", "main", []map[string]any{{"role": "user", "content": long}, {"role": "assistant", "content": "  "}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(Teacher, "teacher", "main", []map[string]any{{"role": "user", "content": "x"}}, nil); err != nil {
		t.Fatal(err)
	}
	items = readIndex(t, filepath.Join(dir, "teacher_chat_sessions", "teacher", "index.json"))
	if items[0]["message_count"] != 3.0 || items[0]["preview"] != "x" {
		t.Fatalf("teacher item %v", items[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "teacher_chat_sessions", "teacher", fsid.Safe("main", "session")+".jsonl")); err != nil {
		t.Fatal(err)
	}
	s.Append(Teacher, "teacher", "other", []map[string]any{{"role": "user", "content": long}}, nil)
	items = readIndex(t, filepath.Join(dir, "teacher_chat_sessions", "teacher", "index.json"))
	if items[0]["session_id"] != "other" || items[0]["preview"] != strings.Repeat("长", 200) {
		t.Fatalf("preview not cut to 200 characters: %v", items[0])
	}

	for _, c := range []struct {
		kind           Kind
		owner, session string
	}{{Student, " ", "s"}, {Student, "a", " "}, {"admin", "a", "s"}} {
		if err := s.Append(c.kind, c.owner, c.session, recs, nil); err == nil {
			t.Errorf("Append(%q,%q,%q) accepted", c.kind, c.owner, c.session)
		}
	}
}

// 50 goroutines append to two sessions of one student at once: every line
// lands and the index counts are exact.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir, 0) // real clock
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			session := []string{"s-alpha", "s-beta"}[i%2]
			recs := []map[string]any{{"role": "user", "content": fmt.Sprintf("q%d", i)}}
			if i%5 == 0 {
				recs = append(recs, map[string]any{"role": "assistant", "content": fmt.Sprintf("a%d", i)})
			}
			errs <- s.Append(Student, "S001", session, recs, map[string]any{"date": "2026-02-08"})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{}
	for i := range n {
		k := []string{"s-alpha", "s-beta"}[i%2]
		want[k]++
		if i%5 == 0 {
			want[k]++
		}
	}
	owner := filepath.Join(dir, "student_chat_sessions", fsid.Safe("S001", "student"))
	for session, count := range want {
		recs, err := s.ReadAll(Student, "S001", session)
		if err != nil || len(recs) != count {
			t.Fatalf("%s: %d records, want %d (%v)", session, len(recs), count, err)
		}
		data, _ := os.ReadFile(filepath.Join(owner, fsid.Safe(session, "session")+".jsonl"))
		if got := strings.Count(string(data), "\n"); got != count {
			t.Fatalf("%s: %d lines, want %d", session, got, count)
		}
	}
	items := readIndex(t, filepath.Join(owner, "index.json"))
	if len(items) != 2 {
		t.Fatalf("index %v", items)
	}
	for _, it := range items {
		if int(it["message_count"].(float64)) != want[it["session_id"].(string)] {
			t.Fatalf("item %v, want count %d", it, want[it["session_id"].(string)])
		}
	}
	entries, _ := os.ReadDir(owner)
	if len(entries) != 3 {
		t.Fatalf("left behind: %v", entries)
	}
}

// sevenLines is a session file of 7 lines; line 2 is not JSON.
const sevenLines = `{"ts": "2026-02-08T10:00:00", "role": "user", "content": "m0"}
{"ts": "2026-02-08T10:00:01", "role": "assistant", "content": "m1"}
{"ts": "2026-02-08T10:00:02", "role": "user", "conte
{"ts": "2026-02-08T10:00:03", "role": "user", "content": "m3"}
{"ts": "2026-02-08T10:00:04", "role": "assistant", "content": "m4"}
{"ts": "2026-02-08T10:00:05", "role": "user", "content": "m5"}
{"ts": "2026-02-08T10:00:06", "role": "assistant", "content": "m6"}
`

func writeSession(t *testing.T, dataDir string, kind Kind, owner, session, content string) {
	t.Helper()
	dir := filepath.Join(dataDir, string(kind)+"_chat_sessions", OwnerDir(kind, owner))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fsid.Safe(session, "session")+".jsonl"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func contents(msgs []map[string]any) string {
	var parts []string
	for _, m := range msgs {
		parts = append(parts, fmt.Sprint(m["content"]))
	}
	return strings.Join(parts, ",")
}

func TestMessagesCursor(t *testing.T) {
	s, dir := testStore(t)
	writeSession(t, dir, Student, "S001", "main", sevenLines)
	for _, c := range []struct {
		cursor, limit int
		forward       bool
		want          string
		next          int
	}{
		// backward
		{-1, 3, false, "m4,m5,m6", 4},
		{4, 2, false, "m1,m3", 1}, // line 2 skipped but counted
		{1, 2, false, "m0", 0},
		{0, 5, false, "", 0},
		{3, 1, false, "m1", 1}, // walking back from line 2 skips it
		{100, 2, false, "m5,m6", 5},
		{-1, 0, false, "m0,m1,m3,m4,m5,m6", 0},   // 0 → 50
		{-1, 500, false, "m0,m1,m3,m4,m5,m6", 0}, // clamped to 200
		{-1, -3, false, "m6", 6},                 // clamped to 1
		// forward
		{0, 2, true, "m0,m1", 2},
		{2, 2, true, "m3,m4", 5},
		{2, 1, true, "m3", 4},
		{5, 5, true, "m5,m6", 7},
		{7, 5, true, "", 7},
		{-4, 1, true, "m0", 1},
		{9, 1, true, "", 9},
	} {
		msgs, next, err := s.Messages(Student, "S001", "main", c.cursor, c.limit, c.forward)
		if err != nil {
			t.Fatal(err)
		}
		if got := contents(msgs); got != c.want || next != c.next {
			t.Errorf("cursor %d limit %d forward %v: %q next %d, want %q next %d", c.cursor, c.limit, c.forward, got, next, c.want, c.next)
		}
	}
	// A missing file echoes the cursor.
	for _, cur := range []int{-1, 0, 12} {
		msgs, next, err := s.Messages(Student, "S001", "nope-session", cur, 10, false)
		if err != nil || len(msgs) != 0 || next != cur {
			t.Errorf("missing file, cursor %d: %v next %d err %v", cur, msgs, next, err)
		}
	}
	// A file with a trailing invalid line: forward stops before it.
	writeSession(t, dir, Student, "S001", "tail", "{\"content\":\"a\"}\n[1,2]\n\n")
	msgs, next, _ := s.Messages(Student, "S001", "tail", 0, 10, true)
	if contents(msgs) != "a" || next != 1 {
		t.Errorf("trailing invalid: %v next %d", msgs, next)
	}
	msgs, next, _ = s.Messages(Student, "S001", "tail", -1, 10, false)
	if contents(msgs) != "a" || next != 0 {
		t.Errorf("trailing invalid backward: %v next %d", msgs, next)
	}
}

func TestSessionsPaging(t *testing.T) {
	s, _ := testStore(t)
	for i := range 5 {
		if err := s.Append(Teacher, "teacher", fmt.Sprintf("session-%d", i), []map[string]any{{"role": "user", "content": "hi"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(items []map[string]any) string {
		var out []string
		for _, it := range items {
			out = append(out, it["session_id"].(string))
		}
		return strings.Join(out, ",")
	}
	intp := func(p *int) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	for _, c := range []struct {
		limit, cursor int
		want, next    string
	}{
		{2, 0, "session-4,session-3", "2"},
		{2, 2, "session-2,session-1", "4"},
		{2, 4, "session-0", "nil"},
		{2, 5, "", "nil"},
		{0, 0, "session-4,session-3,session-2,session-1,session-0", "nil"},
		{-1, -7, "session-4", "1"},
		{1000, 1, "session-3,session-2,session-1,session-0", "nil"},
	} {
		items, next, total, err := s.Sessions(Teacher, "teacher", c.limit, c.cursor)
		if err != nil || total != 5 || ids(items) != c.want || intp(next) != c.next {
			t.Errorf("limit %d cursor %d: %q next %s total %d err %v; want %q next %s", c.limit, c.cursor, ids(items), intp(next), total, err, c.want, c.next)
		}
	}
	items, next, total, err := s.Sessions(Student, "nobody", 10, 0)
	if err != nil || len(items) != 0 || items == nil || next != nil || total != 0 {
		t.Errorf("empty owner: %v %v %d %v", items, next, total, err)
	}
}

func TestIndexTruncation(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir, 3) // raised to the minimum 50
	s.now = newClock().now
	for i := range 55 {
		if err := s.Append(Student, "S001", fmt.Sprintf("session-%02d", i), []map[string]any{{"role": "user", "content": "hi"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	items, _, total, _ := s.Sessions(Student, "S001", 100, 0)
	if total != 50 || items[0]["session_id"] != "session-54" || items[49]["session_id"] != "session-05" {
		t.Fatalf("total %d first %v last %v", total, items[0], items[len(items)-1])
	}
	if NewStore(dir, 0).maxItems != 500 || NewStore(dir, 800).maxItems != 800 {
		t.Fatal("defaults")
	}

	// With a frozen clock (every update in the same second) a new session
	// still displaces the oldest, not itself.
	frozen := time.Date(2026, 2, 8, 9, 0, 0, 0, time.Local)
	s.now = func() time.Time { return frozen }
	for i := range 3 {
		s.Append(Student, "S002", "x", nil, nil) // index-only update, no file
		for j := range 50 {
			s.Append(Student, "S002", fmt.Sprintf("tie-%d-%02d", i, j), []map[string]any{{"content": "c"}}, nil)
		}
	}
	items, _, total, _ = s.Sessions(Student, "S002", 1, 0)
	if total != 50 || items[0]["session_id"] != "tie-2-49" {
		t.Fatalf("ties: total %d first %v", total, items[0])
	}
}

// Ids that look like paths end up as safe folder and file names inside
// DATA_DIR; nothing is created outside it.
func TestTraversalIDsStayInside(t *testing.T) {
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	s := NewStore(dataDir, 0)
	ids := []string{"../x", "a/b", "..", "../../etc/passwd", "/abs", `..\win`, ".", "a/../../b"}
	for _, owner := range ids {
		for _, session := range ids {
			rec := []map[string]any{{"role": "user", "content": "x"}}
			if err := s.Append(Student, owner, session, rec, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(Teacher, owner, session, rec, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.PutViewState(Teacher, owner, map[string]any{"active_session_id": session}); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 || entries[0].Name() != "data" {
		t.Fatalf("parent holds %v", entries)
	}
	filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dataDir, p)
		depth := len(strings.Split(rel, string(filepath.Separator)))
		if rel != "." && (depth > 3 || strings.HasPrefix(d.Name(), ".")) {
			t.Errorf("unexpected path %s", rel)
		}
		return nil
	})
	for _, kd := range []string{"student_chat_sessions", "teacher_chat_sessions"} {
		owners, _ := os.ReadDir(filepath.Join(dataDir, kd))
		for _, o := range owners {
			if !o.IsDir() || strings.ContainsAny(o.Name(), `/\.`) {
				t.Errorf("%s/%s", kd, o.Name())
			}
		}
	}
	for _, owner := range ids {
		for _, session := range ids {
			recs, err := s.ReadAll(Student, owner, session)
			if err != nil || len(recs) == 0 {
				t.Fatalf("%q/%q: %v %v", owner, session, recs, err)
			}
		}
	}
}

// A torn last line (a crash mid-write) does not swallow the next append.
func TestAppendAfterTornLine(t *testing.T) {
	s, dir := testStore(t)
	writeSession(t, dir, Student, "S001", "main", "{\"content\":\"ok\"}\n{\"content\":\"tor")
	if err := s.Append(Student, "S001", "main", []map[string]any{{"role": "user", "content": "next"}}, nil); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.ReadAll(Student, "S001", "main")
	if contents(recs) != "ok,next" {
		t.Fatalf("records %v", recs)
	}
}

// An index rewritten in place (unsynced: atomicfile.SwapUnsynced) that a
// machine crash tore is read from its previous content: sessions an
// append behind, not an empty list.
func TestTornIndexReadFromItsPreviousContent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("rewrites in place are Linux's (renameat2)")
	}
	s, dir := testStore(t)
	for _, sid := range []string{"a", "b", "a"} {
		if err := s.AppendAs(RecordsDurable, Student, "S001", sid, []map[string]any{{"content": sid}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	index := filepath.Join(dir, "student_chat_sessions", fsid.Safe("S001", "student"), "index.json")
	whole, _ := os.ReadFile(index)
	os.WriteFile(index, whole[:len(whole)/2], 0o644) // the crash's half-written rewrite
	items, _, total, err := s.Sessions(Student, "S001", 10, 0)
	if err != nil || total != 2 {
		t.Fatalf("torn index read: %v total %d %v", items, total, err)
	}
	if err := s.AppendAs(RecordsDurable, Student, "S001", "b", []map[string]any{{"content": "b2"}}, nil); err != nil {
		t.Fatal(err)
	}
	items, _, total, _ = s.Sessions(Student, "S001", 10, 0)
	if total != 2 || items[0]["session_id"] != "b" || items[0]["message_count"] != 2.0 {
		t.Fatalf("index after the next append: %v", items)
	}
	if matches, _ := filepath.Glob(index + ".corrupt-*"); len(matches) != 0 {
		t.Fatalf("an index recovered from its previous content was moved aside: %v", matches)
	}
}

// A corrupt index is moved aside, not silently replaced.
func TestCorruptIndexKept(t *testing.T) {
	s, dir := testStore(t)
	owner := filepath.Join(dir, "student_chat_sessions", fsid.Safe("S001", "student"))
	os.MkdirAll(owner, 0o755)
	os.WriteFile(filepath.Join(owner, "index.json"), []byte("[{\"session_id\": "), 0o644)
	if items, _, _, err := s.Sessions(Student, "S001", 10, 0); err != nil || len(items) != 0 {
		t.Fatalf("corrupt index read: %v %v", items, err)
	}
	if err := s.Append(Student, "S001", "main", []map[string]any{{"content": "x"}}, nil); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(owner, "index.json.corrupt-*"))
	if len(matches) != 1 {
		t.Fatalf("corrupt index not kept: %v", matches)
	}
	if items, _, total, _ := s.Sessions(Student, "S001", 10, 0); total != 1 || items[0]["message_count"] != 1.0 {
		t.Fatalf("fresh index %v", items)
	}
}

func TestRewrite(t *testing.T) {
	s, dir := testStore(t)
	for i := range 6 {
		s.Append(Teacher, "teacher", "main", []map[string]any{{"role": "user", "content": fmt.Sprintf("m%d", i)}}, nil)
	}
	before, _, _, _ := s.Sessions(Teacher, "teacher", 1, 0)
	err := s.Rewrite(Teacher, "teacher", "main", func(recs []map[string]any, item map[string]any) ([]map[string]any, map[string]any, error) {
		if len(recs) != 6 || item["message_count"] != 6.0 {
			t.Errorf("fn got %d records, item %v", len(recs), item)
		}
		summary := map[string]any{"role": "assistant", "content": "【会话压缩摘要】", "kind": "session_summary", "synthetic": true}
		return append([]map[string]any{summary}, recs[4:]...), map[string]any{"compacted_at": "2026-02-08T15:00:00", "compaction_runs": 1}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := s.ReadAll(Teacher, "teacher", "main")
	if contents(recs) != "【会话压缩摘要】,m4,m5" {
		t.Fatalf("rewritten %v", recs)
	}
	items, _, _, _ := s.Sessions(Teacher, "teacher", 1, 0)
	if items[0]["message_count"] != 3.0 || items[0]["compaction_runs"] != 1.0 || items[0]["updated_at"] != before[0]["updated_at"] {
		t.Fatalf("item %v (before %v)", items[0], before[0])
	}
	// nil records: nothing changes.
	s.Rewrite(Teacher, "teacher", "main", func([]map[string]any, map[string]any) ([]map[string]any, map[string]any, error) {
		return nil, nil, nil
	})
	if recs, _ := s.ReadAll(Teacher, "teacher", "main"); len(recs) != 3 {
		t.Fatal("nil rewrite changed the file")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "teacher_chat_sessions", "teacher"))
	if len(entries) != 2 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestParseISO(t *testing.T) {
	local := func(y, mo, d, h, mi, s, ns int) time.Time {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.Local)
	}
	for in, want := range map[string]time.Time{
		"2026-02-08T14:46:44":           local(2026, 2, 8, 14, 46, 44, 0),
		"2026-02-08T14:46:44.123":       local(2026, 2, 8, 14, 46, 44, 123e6),
		"2026-02-08 14:46":              local(2026, 2, 8, 14, 46, 0, 0),
		"2026-02-08":                    local(2026, 2, 8, 0, 0, 0, 0),
		"20260208T144644":               local(2026, 2, 8, 14, 46, 44, 0),
		"2026-02-08T06:46:44.123Z":      time.Date(2026, 2, 8, 6, 46, 44, 123e6, time.UTC),
		"2026-02-08T14:46:44+08:00":     time.Date(2026, 2, 8, 6, 46, 44, 0, time.UTC),
		"2026-02-08T14:46:44.5-0130":    time.Date(2026, 2, 8, 16, 16, 44, 5e8, time.UTC),
		"2026-02-08T14:46:44.123456789": local(2026, 2, 8, 14, 46, 44, 123456789),
	} {
		got, ok := parseISO(in)
		if !ok || !got.Equal(want) {
			t.Errorf("parseISO(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-02-30T00:00:00", "2026-13-01", "2026-02-08T25:00:00", "2026-02-08T14:46:44+25:00", "2026-02-08Z", "1770000000"} {
		if _, ok := parseISO(in); ok {
			t.Errorf("parseISO(%q) accepted", in)
		}
	}
}

func TestPyStr(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{"a", "a"}, {nil, ""}, {true, "True"}, {false, ""}, {json.Number("0"), ""}, {json.Number("12"), "12"},
		{json.Number("1.50"), "1.5"}, {json.Number("2.0"), "2.0"}, {json.Number("1e20"), "1e+20"}, {[]any{"x"}, ""},
	} {
		if got := pyStr(c.in); got != c.want {
			t.Errorf("pyStr(%#v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The Go view-state API takes any JSON-encodable state (typed maps too)
// and returns typed fields.
func TestViewStateGoAPI(t *testing.T) {
	s, _ := testStore(t)
	v, err := s.ViewState(Teacher, "teacher")
	if err != nil || v["updated_at"] != "" || len(v["title_map"].(map[string]string)) != 0 || v["hidden_ids"].([]string) == nil {
		t.Fatalf("default %v %v", v, err)
	}
	saved, stale, err := s.PutViewState(Teacher, "teacher", map[string]any{
		"title_map": map[string]string{"main": "主"}, "hidden_ids": []string{"x", "x"}, "updated_at": "2026-02-08T10:00:00+08:00",
	})
	if err != nil || stale || saved["title_map"].(map[string]string)["main"] != "主" || len(saved["hidden_ids"].([]string)) != 1 {
		t.Fatalf("saved %v %v %v", saved, stale, err)
	}
	_, stale, _ = s.PutViewState(Teacher, "teacher", map[string]any{"updated_at": "2026-02-08T01:59:59Z"})
	if !stale {
		t.Fatal("01:59:59Z is before 10:00+08:00")
	}
	if _, _, err := s.PutViewState(Teacher, " ", nil); err == nil {
		t.Fatal("blank owner accepted")
	}
}

// message_count values the predecessor's int() accepted are carried on.
func TestOddMessageCounts(t *testing.T) {
	s, dir := testStore(t)
	owner := filepath.Join(dir, "teacher_chat_sessions", "teacher")
	os.MkdirAll(owner, 0o755)
	os.WriteFile(filepath.Join(owner, "index.json"), []byte(`[{"session_id":"a","message_count":"3"},{"session_id":"b","message_count":2.7},`+
		`{"session_id":"c","message_count":true},{"session_id":"d","message_count":"x"},{"session_id":"e"},7]`), 0o644)
	want := map[string]float64{"a": 4, "b": 3, "c": 2, "d": 1, "e": 1}
	for id := range want {
		if err := s.Append(Teacher, "teacher", id, []map[string]any{{"content": "x"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	items, _, total, _ := s.Sessions(Teacher, "teacher", 10, 0)
	if total != 5 {
		t.Fatalf("items %v", items)
	}
	for _, it := range items {
		if it["message_count"] != want[it["session_id"].(string)] {
			t.Errorf("item %v", it)
		}
	}
}
