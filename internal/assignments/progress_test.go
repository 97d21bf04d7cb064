package assignments

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/history"
)

var progressNow = time.Date(2026, 2, 8, 12, 0, 0, 0, time.Local)

// session writes a student's session file in history's layout.
func (f *fixture) session(sid, session string, recs ...map[string]any) {
	f.t.Helper()
	var b strings.Builder
	for _, r := range recs {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	f.write("student_chat_sessions/"+history.OwnerDir(history.Student, sid)+"/"+fsid.Safe(session, "session")+".jsonl", b.String())
}

func (f *fixture) index(sid string, items ...map[string]any) {
	f.t.Helper()
	data, _ := json.Marshal(items)
	f.write("student_chat_sessions/"+history.OwnerDir(history.Student, sid)+"/index.json", string(data))
}

func (f *fixture) report(aid, sid, attempt string, rep map[string]any) {
	f.t.Helper()
	data, _ := json.Marshal(rep)
	f.write("student_submissions/"+aid+"/"+sid+"/"+attempt+"/grading_report.json", string(data))
}

func (f *fixture) profiles() {
	f.write("student_profiles/s1.json", `{"student_id":"s1","student_name":"Bob","class_name":" 1班 "}`)
	f.write("student_profiles/s2.json", `{"student_id":"s2","student_name":"Amy","class_name":"1班"}`)
	f.write("student_profiles/s3.json", `{"student_id":"s3","student_name":"Cid","class_name":"2班"}`)
	f.write("student_profiles/notes.txt", `not a profile`)
}

// fileTree is every file under root with its content and modification time.
func fileTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		val := fi.Mode().String() + fi.ModTime().String()
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			val += string(data)
		}
		out[p] = val
		return nil
	})
	return out
}

func ids(p *Progress) []string {
	out := []string{}
	for _, s := range p.Students {
		out = append(out, s.StudentID)
	}
	return out
}

func TestProgressExpectedStudentsByScope(t *testing.T) {
	f := newFixture(t)
	f.profiles()
	f.write("assignments/STU/meta.json", `{"student_ids":["s3","s1","s3",""," s2 "]}`)
	f.write("assignments/CLS/meta.json", `{"class_name":"1班 "}`)
	f.write("assignments/PUB/meta.json", `{}`)
	f.write("assignments/EXPL/meta.json", `{"scope":"public","student_ids":["s1"]}`)
	f.write("assignments/SNAP/meta.json", `{"scope":"class","class_name":"1班","expected_students":["zz","s3"]}`)
	f.write("assignments/NOMETA/questions.csv", "question_id\n")
	cases := []struct {
		id, scope string
		want      []string // sorted by (class, name, id)
		expected  int
	}{
		{"STU", "student", []string{"s2", "s1", "s3"}, 3},
		{"CLS", "class", []string{"s2", "s1"}, 2},
		{"PUB", "public", []string{"s2", "s1", "s3"}, 3},
		{"EXPL", "public", []string{"s2", "s1", "s3"}, 3},
		{"SNAP", "class", []string{"zz", "s3"}, 2}, // the stored snapshot as is; zz has no profile
		{"NOMETA", "public", []string{"s2", "s1", "s3"}, 3},
	}
	for _, c := range cases {
		p, err := f.svc.Progress(c.id, true, progressNow)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if p.Scope != c.scope || p.ExpectedCount != c.expected || p.Counts.Expected != c.expected || !reflect.DeepEqual(ids(p), c.want) {
			t.Errorf("%s: scope %q expected %d %v, want %q %d %v", c.id, p.Scope, p.ExpectedCount, ids(p), c.scope, c.expected, c.want)
		}
	}
	p, _ := f.svc.Progress("CLS", true, progressNow)
	if s := p.Students[1]; s.StudentName != "Bob" || s.ClassName != "1班" {
		t.Errorf("student = %+v", s)
	}
}

func TestProgressDiscussionAndSubmission(t *testing.T) {
	f := newFixture(t)
	f.profiles()
	aid := "HW_2026-02-08"
	f.write("assignments/"+aid+"/meta.json", `{"scope":"student","student_ids":["s1","s2","s3","../x"],"due_at":"2026-02-07"}`)
	// s1: the assignment's own session in progress (the marker from a
	// user only), an indexed session passes, another tagged one is longer
	// but does not pass.
	f.session("s1", aid,
		map[string]any{"role": "user", "content": "【个性化作业】 please", "ts": "2026-02-08T09:00:00"},
		map[string]any{"role": "assistant", "content": "ok", "ts": "2026-02-08T09:00:05"})
	f.session("s1", "chat-a",
		map[string]any{"role": "user", "content": "hi", "ts": "2026-02-08T10:00:00"},
		map[string]any{"role": "assistant", "content": "done 【个性化作业】", "ts": "2026-02-08T10:00:09"})
	f.session("s1", "chat-b",
		map[string]any{"role": "user", "content": "1"}, map[string]any{"role": "assistant", "content": "2"},
		map[string]any{"role": "user", "content": "3"}, map[string]any{"role": "assistant", "content": "4"})
	f.session("s1", "chat-other", map[string]any{"role": "assistant", "content": "【个性化作业】"})
	f.index("s1",
		map[string]any{"session_id": "chat-a", "assignment_id": aid},
		map[string]any{"session_id": "chat-b", "assignment_id": aid},
		map[string]any{"session_id": "chat-other", "assignment_id": "OTHER"})
	// s2: in progress only.
	f.session("s2", aid, map[string]any{"role": "user", "content": "hello", "ts": "2026-02-08T08:00:00"})
	// s1's attempts: the higher raw score is low-confidence.
	f.report(aid, "s1", "submission_20260208_100000", map[string]any{"graded_total": 2, "correct": 1, "ungraded": 0,
		"items": []map[string]any{{"status": "matched", "score": 5, "confidence": 0.9}, {"status": "missed", "score": 1, "confidence": 0.6}}})
	f.report(aid, "s1", "submission_20260208_110000", map[string]any{"graded_total": 2, "correct": 2, "ungraded": 0,
		"items": []map[string]any{{"status": "matched", "score": 9, "confidence": 0.5}, {"status": "ungraded", "score": 9, "confidence": 1}}})
	f.report(aid, "s1", "submission_20260208_120000", map[string]any{"graded_total": 0, "correct": 0, "ungraded": 3,
		"items": []map[string]any{{"status": "matched", "score": 50, "confidence": 1}}}) // not valid
	f.report(aid, "s1", "submission_20260208_090000", map[string]any{"graded_total": 2, "correct": 1, "ungraded": 0,
		"items": []map[string]any{{"status": "matched", "score": 6, "confidence": 0.95}}}) // ties on score and correct, older
	f.write("student_submissions/"+aid+"/s1/notes/grading_report.json", `{"graded_total":9}`) // not an attempt folder
	// s3: a submission without discussion.
	f.report(aid, "s3", "submission_x", map[string]any{"graded_total": 1, "correct": 1, "items": []map[string]any{{"status": "matched", "score": 1, "confidence": 1}}})

	before := fileTree(t, f.data)
	p, err := f.svc.Progress(aid, true, progressNow)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fileTree(t, f.data), before) {
		t.Error("Progress changed files")
	}
	if p.DueAt != "2026-02-07T23:59:59" || p.Date != "2026-02-08" || p.UpdatedAt != "2026-02-08T12:00:00" {
		t.Errorf("progress = %+v", p)
	}
	byID := map[string]StudentProgress{}
	for _, s := range p.Students {
		byID[s.StudentID] = s
	}
	s1 := byID["s1"]
	if d := s1.Discussion; d != (Discussion{Status: "pass", Pass: true, SessionID: "chat-a", MessageCount: 2, LastTS: "2026-02-08T10:00:09"}) {
		t.Errorf("s1 discussion = %+v", d)
	}
	if s1.Submission.Attempts != 4 || s1.Submission.Best == nil {
		t.Fatalf("s1 submission = %+v", s1.Submission)
	}
	if b := *s1.Submission.Best; b != (Attempt{AttemptID: "submission_20260208_100000", SubmittedAt: "2026-02-08T10:00:00", GradedTotal: 2, Correct: 1,
		ScoreEarned: 6, ValidSubmission: true, ReportPath: "student_submissions/" + aid + "/s1/submission_20260208_100000/grading_report.json"}) {
		t.Errorf("s1 best = %+v", b)
	}
	if !s1.Complete || s1.Overdue {
		t.Errorf("s1 complete %v overdue %v", s1.Complete, s1.Overdue)
	}
	if d := byID["s2"].Discussion; d != (Discussion{Status: "in_progress", SessionID: aid, MessageCount: 1, LastTS: "2026-02-08T08:00:00"}) || byID["s2"].Submission.Best != nil || !byID["s2"].Overdue {
		t.Errorf("s2 = %+v", byID["s2"])
	}
	s3 := byID["s3"]
	if s3.Discussion != (Discussion{Status: "not_started", SessionID: aid}) || s3.Submission.Best == nil || s3.Complete || !s3.Overdue {
		t.Errorf("s3 = %+v", s3)
	}
	if s3.Submission.Best.SubmittedAt == "" {
		t.Error("s3 submitted_at from the mtime is empty")
	}
	if bad := byID["../x"]; bad.Discussion.Status != "not_started" || bad.Submission.Attempts != 0 {
		t.Errorf("invalid id = %+v", bad)
	}
	want := ProgressCounts{Expected: 4, DiscussionPass: 1, Submitted: 2, Completed: 1, Overdue: 3}
	if p.Counts != want {
		t.Errorf("counts = %+v, want %+v", p.Counts, want)
	}
	// Without students: the same counts.
	q, err := f.svc.Progress(aid, false, progressNow)
	if err != nil || q.Counts != want || len(q.Students) != 0 || q.Students == nil {
		t.Errorf("without students = %+v, %v", q, err)
	}
	// Not yet due: nobody is overdue.
	r, _ := f.svc.Progress(aid, false, time.Date(2026, 2, 7, 23, 0, 0, 0, time.Local))
	if r.Counts.Overdue != 0 {
		t.Errorf("overdue before due = %d", r.Counts.Overdue)
	}
}

func TestProgressPolicyAndDueAt(t *testing.T) {
	f := newFixture(t)
	f.write("assignments/A/meta.json", `{"student_ids":"s1","due_at":"2026-02-08T10:30:00","completion_policy":{"discussion_marker":"[DONE]"}}`)
	f.write("assignments/B/meta.json", `{"student_ids":"s1","due_at":"tomorrow"}`)
	f.session("s1", "A", map[string]any{"role": "assistant", "content": "【个性化作业】"})
	f.session("s1", "B", map[string]any{"role": "assistant", "content": "【个性化作业】"})
	a, _ := f.svc.Progress("A", true, progressNow)
	if a.DueAt != "2026-02-08T10:30:00" || a.Students[0].Discussion.Pass || !a.Students[0].Overdue {
		t.Errorf("A = %+v %+v", a, a.Students)
	}
	b, _ := f.svc.Progress("B", true, progressNow)
	if b.DueAt != "" || !b.Students[0].Discussion.Pass || b.Students[0].Overdue {
		t.Errorf("B = %+v %+v", b, b.Students)
	}
}

func TestProgressByDate(t *testing.T) {
	f := newFixture(t)
	f.profiles()
	f.write("assignments/X/meta.json", `{"date":"2026-02-08","class_name":"2班"}`)
	f.write("assignments/Y_2026-02-08/meta.json", `{"student_ids":["s1"]}`)
	f.write("assignments/Z/meta.json", `{"date":"2026-02-09"}`)
	before := fileTree(t, f.data)
	d, err := f.svc.ProgressByDate("", progressNow)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fileTree(t, f.data), before) {
		t.Error("ProgressByDate changed files")
	}
	if d.Date != "2026-02-08" || len(d.Assignments) != 2 || d.Assignments[0].AssignmentID != "X" || d.Assignments[1].AssignmentID != "Y_2026-02-08" {
		t.Fatalf("day = %+v", d)
	}
	if d.Assignments[0].ExpectedCount != 1 || len(d.Assignments[0].Students) != 0 {
		t.Errorf("X = %+v", d.Assignments[0])
	}
	d, _ = f.svc.ProgressByDate("2026-02-09", progressNow)
	if len(d.Assignments) != 1 || d.Assignments[0].AssignmentID != "Z" {
		t.Errorf("2026-02-09 = %+v", d)
	}
	empty := NewService(t.TempDir())
	d, err = empty.ProgressByDate("2026-02-09", progressNow)
	if err != nil || d.Assignments == nil || len(d.Assignments) != 0 {
		t.Errorf("no assignments = %+v, %v", d, err)
	}
}

func TestProgressHTTP(t *testing.T) {
	f := newFixture(t)
	f.profiles()
	f.write("assignments/HW/meta.json", `{"date":"2026-02-08","student_ids":["s1"]}`)
	api := NewAPI(f.svc, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /teacher/assignment/progress", api.Progress)
	mux.HandleFunc("GET /teacher/assignments/progress", api.ProgressByDate)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f.srv = srv
	before := fileTree(t, f.data)
	for _, c := range []struct {
		path   string
		status int
		detail string
	}{
		{"/teacher/assignment/progress", 400, "assignment_id is required"},
		{"/teacher/assignment/progress?assignment_id=%20", 400, "assignment_id is required"},
		{"/teacher/assignment/progress?assignment_id=nope", 404, "assignment not found"},
		{"/teacher/assignment/progress?assignment_id=..", 404, "assignment not found"},
		{"/teacher/assignment/progress?assignment_id=..%2Fx", 404, "assignment not found"},
	} {
		m := f.getJSON(c.path, c.status)
		if m["detail"] != c.detail {
			t.Errorf("%s = %v, want %q", c.path, m, c.detail)
		}
	}
	m := f.getJSON("/teacher/assignment/progress?assignment_id=HW", 200)
	students, _ := m["students"].([]any)
	if m["ok"] != true || m["expected_count"] != 1.0 || len(students) != 1 {
		t.Fatalf("progress = %v", m)
	}
	st := students[0].(map[string]any)
	for _, k := range []string{"student_id", "student_name", "class_name", "discussion", "submission", "complete", "overdue"} {
		if _, ok := st[k]; !ok {
			t.Errorf("student lacks %s: %v", k, st)
		}
	}
	if sub := st["submission"].(map[string]any); sub["best"] != nil || sub["attempts"] != 0.0 {
		t.Errorf("submission = %v", sub)
	}
	if _, ok := st["discussion"].(map[string]any)["last_ts"]; ok {
		t.Errorf("last_ts present without messages: %v", st["discussion"])
	}
	m = f.getJSON("/teacher/assignment/progress?assignment_id=HW&include_students=false", 200)
	if s, ok := m["students"].([]any); !ok || len(s) != 0 || m["counts"].(map[string]any)["expected"] != 1.0 {
		t.Errorf("include_students=false = %v", m)
	}
	m = f.getJSON("/teacher/assignments/progress?date=2026-02-08", 200)
	if a, _ := m["assignments"].([]any); m["ok"] != true || m["date"] != "2026-02-08" || len(a) != 1 {
		t.Errorf("by date = %v", m)
	}
	if !reflect.DeepEqual(fileTree(t, f.data), before) {
		t.Error("the GETs changed files")
	}
}

func TestSubmittedAt(t *testing.T) {
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	for folder, want := range map[string]string{
		"submission_20261201_101010":   "2026-12-01T10:10:10",
		"submission_20261201_101010_2": "2026-12-01T10:10:10",
		"submission_x":                 "2026-01-02T03:04:05",
	} {
		if got := submittedAt(folder, mtime); got != want {
			t.Errorf("submittedAt(%q) = %q, want %q", folder, got, want)
		}
	}
}
