package students

import (
	"context"
	"fmt"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/jobs/jobstest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidID(t *testing.T) {
	for _, ok := range []string{"S001", "高二(3)班_张三", "高二2403班_武熙语", "a b", "x.y"} {
		if !ValidID(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, "/abs", ".hidden", "x\x00", " pad", strings.Repeat("长", 129)} {
		if ValidID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestApplyKinds(t *testing.T) {
	prof := Profile{}
	apply(prof, Update{Kind: KindForm, StudentID: "S1", WeakKP: []string{"受力分析"}, Note: "n1"}, nil, "2026-01-01T00:00:00")
	if prof["next_focus"] != "受力分析" || prof["summary"] != "weak: 受力分析 | strong:  | next: 受力分析" || prof["created_at"] != "2026-01-01T00:00:00" {
		t.Fatalf("form: %v", prof)
	}
	apply(prof, Update{Kind: KindImport, StudentID: "S1", StudentName: "张三", ClassName: "一班", ExamID: "E1"}, nil, "t2")
	apply(prof, Update{Kind: KindImport, StudentID: "S1", StudentName: "张 三", ClassName: "二班", ExamID: "E2"}, nil, "t3")
	if prof["student_name"] != "张三" || fmt.Sprint(prof["aliases"]) != "[张 三]" || prof["class_name"] != "一班" || len(list(prof["import_history"])) != 2 {
		t.Fatalf("import: %v", prof)
	}
	for i := range 25 {
		apply(prof, Update{Kind: KindForm, StudentID: "S1", Note: fmt.Sprint("n", i)}, nil, "t")
	}
	if notes := list(prof["interaction_notes"]); len(notes) != 20 || notes[19].(map[string]any)["note"] != "n24" {
		t.Fatalf("notes kept: %d", len(notes))
	}
	max := 10.0
	ex := &ExamResult{ExamID: "E1", Total: 6, MaxTotal: &max, Rank: 2, StudentCount: 3,
		Knowledge: map[string]KPScore{"力学": {Score: 3, Max: 4, Questions: 1}, "电学": {Score: 0, Max: 6, Questions: 2}}}
	apply(prof, Update{Kind: KindExam, StudentID: "S1", Exam: ex}, nil, "t4")
	ex2 := *ex
	ex2.ExamID = "E2"
	ex2.Knowledge = map[string]KPScore{"力学": {Score: 4, Max: 4, Questions: 1}}
	apply(prof, Update{Kind: KindExam, StudentID: "S1", Exam: &ex2}, nil, "t5")
	apply(prof, Update{Kind: KindExam, StudentID: "S1", Exam: &ex2}, nil, "t6") // replaces E2's entry
	m := prof["mastery_by_kp"].(map[string]any)
	if len(list(prof["exam_results"])) != 2 || m["电学"].(map[string]any)["accuracy"] != 0.0 {
		t.Fatalf("exam: %v", prof)
	}
	// 力学 over E1 (3 of 4) and E2 (4 of 4, applied twice: counted once) = 7/8.
	if l := m["力学"].(map[string]any); l["accuracy"] != 0.875 || l["evidence"] != 2.0 {
		t.Fatalf("mastery 力学 = %v", l)
	}
	block := ContextBlock("S1", prof)
	for _, want := range []string{"student_id: S1", "近期薄弱知识点: 受力分析", "电学 0%", "最近考试: E2"} {
		if !strings.Contains(block, want) {
			t.Errorf("context block lacks %q:\n%s", want, block)
		}
	}
	if got := ChatNote("A1", "问", strings.Repeat("答", 1000)); len([]rune(got)) != 901 || !strings.HasPrefix(got, "assignment_id=A1 | U:问 | A:答") {
		t.Fatalf("chat note %q", got[:40])
	}
}

func newWorker(t testing.TB, dir string, coalesce bool) (*Worker, *Store) {
	t.Helper()
	store := NewStore(filepath.Join(dir, "data"))
	w := NewWorker(WorkerConfig{UploadsDir: filepath.Join(dir, "uploads"), Profiles: store, Bound: 100000, NoCoalesce: !coalesce})
	if err := w.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Runner().Stop(context.Background()) })
	return w, store
}

// Coalescing: many pending updates of one student, applied in far fewer
// writes, none lost.
func TestWorkerCoalesces(t *testing.T) {
	dir := t.TempDir()
	w, store := newWorker(t, dir, true)
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 15 {
		wg.Go(func() {
			id, err := w.Enqueue(Update{Kind: KindForm, StudentID: "S1", Note: fmt.Sprint("n", i)})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := w.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	prof, err := store.Get("S1")
	if err != nil || len(list(prof["interaction_notes"])) != 15 || w.Pending() != 0 {
		t.Fatalf("profile %v err %v pending %d", prof, err, w.Pending())
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "uploads", "profile_jobs"))
	for _, e := range entries {
		if e.Name() != jobs.JournalDir {
			t.Errorf("job folder %s left", e.Name())
		}
	}
}

// BenchmarkProfileUpdates: updates/s through the worker (durable job, one
// writer, atomic profile write), 20 students, coalescing on and off.
func BenchmarkProfileUpdates(b *testing.B) {
	for _, coalesce := range []bool{true, false} {
		b.Run(fmt.Sprintf("coalesce=%v", coalesce), func(b *testing.B) {
			w, _ := newWorker(b, b.TempDir(), coalesce)
			ids := make([]string, b.N)
			start := time.Now()
			var wg sync.WaitGroup
			next := make(chan int)
			for range 8 {
				wg.Go(func() {
					for i := range next {
						id, err := w.Enqueue(Update{Kind: KindForm, StudentID: fmt.Sprint("S", i%20), Note: "课堂表现良好"})
						if err != nil {
							b.Error(err)
						}
						ids[i] = id
					}
				})
			}
			for i := range b.N {
				next <- i
			}
			close(next)
			wg.Wait()
			for _, id := range ids {
				w.Wait(context.Background(), id)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
		})
	}
}

// A graded submission: mastery and practice history recorded (once per
// submission), knowledge-point lists replaced only by non-empty ones,
// next_focus never "(none)", nothing at all while review is pending.
func TestApplyGrading(t *testing.T) {
	prof := Profile{"recent_weak_kp": []any{"受力分析", "功和能"}, "recent_strong_kp": []any{"运动学"}, "next_focus": "受力分析",
		"mastery_by_kp": map[string]any{"电学": map[string]any{"accuracy": 0.4}}}
	g := &GradingResult{AssignmentID: "HW1", SubmissionID: "submission_20260302_093000", SubmittedAt: "2026-03-02T09:30:00",
		Matched: 3, Graded: 4, Ungraded: 1, ScoreEarned: 5, MaxScore: 7,
		Mastery:  map[string]KPMastery{"功和能": {Accuracy: 2.0 / 3, Counted: 3, Correct: 2}, "力学": {Accuracy: 1, Counted: 1, Correct: 1}},
		MediumKP: []string{"功和能"}, NextFocus: "功和能"}
	for range 2 { // applied twice (a resumed job): one history entry
		if !apply(prof, Update{Kind: KindGrading, StudentID: "S1", Grading: g}, nil, "t1") {
			t.Fatal("grading changed nothing")
		}
	}
	if fmt.Sprint(prof["recent_weak_kp"]) != "[受力分析]" || fmt.Sprint(prof["recent_medium_kp"]) != "[功和能]" ||
		fmt.Sprint(prof["recent_strong_kp"]) != "[运动学]" || prof["next_focus"] != "功和能" || prof["summary"] != "HW1: matched 3/4, next focus 功和能" {
		t.Fatalf("lists: %v", prof)
	}
	m := prof["mastery_by_kp"].(map[string]any)
	if m["功和能"].(map[string]any)["accuracy"] != 0.667 || m["功和能"].(map[string]any)["evidence"] != "HW1" || m["电学"] == nil || m["力学"] == nil {
		t.Fatalf("mastery: %v", m)
	}
	if h := list(prof["practice_history"]); len(h) != 1 || h[0].(map[string]any)["timestamp"] != "2026-03-02T09:30:00" {
		t.Fatalf("practice_history: %v", h)
	}
	// No knowledge point with two counted items: the lists and the focus stay.
	apply(prof, Update{Kind: KindGrading, StudentID: "S1", Grading: &GradingResult{AssignmentID: "HW2", SubmissionID: "s2", Matched: 1, Graded: 1}}, nil, "t2")
	if fmt.Sprint(prof["recent_weak_kp"]) != "[受力分析]" || prof["next_focus"] != "功和能" || prof["summary"] != "HW2: matched 1/1" || len(list(prof["practice_history"])) != 2 {
		t.Fatalf("empty grading: %v", prof)
	}
	// An exam keeps the points it does not cover.
	apply(prof, Update{Kind: KindExam, StudentID: "S1", Exam: &ExamResult{ExamID: "E1", Knowledge: map[string]KPScore{"电学": {Score: 1, Max: 2, Questions: 1}}}}, nil, "t3")
	if m := prof["mastery_by_kp"].(map[string]any); m["功和能"] == nil || m["电学"].(map[string]any)["accuracy"] != 0.5 {
		t.Fatalf("exam after grading: %v", m)
	}
	held := Profile{}
	if apply(held, Update{Kind: KindGrading, StudentID: "S1", Grading: &GradingResult{AssignmentID: "HW1", ReviewPending: true, NextFocus: "x"}}, nil, "t") || len(held) != 0 {
		t.Fatalf("held for review: %v", held)
	}
}

// The worker writes nothing, and creates no profile, for an update that
// changes nothing.
func TestWorkerSkipsHeldGrading(t *testing.T) {
	w, store := newWorker(t, t.TempDir(), true)
	enqueueApplied(t, w, Update{Kind: KindGrading, StudentID: "S9", Grading: &GradingResult{AssignmentID: "HW1", ReviewPending: true}})
	if store.Exists("S9") || w.Pending() != 0 {
		t.Fatalf("profile created for a held grading (pending %d)", w.Pending())
	}
}

// A machine crash after an update was applied (the profile's new content,
// written unsynced, lost; the journal record of its application kept)
// loses nothing and applies nothing twice: the replay writes the content
// back when the file still holds what it held before, and leaves a file
// written since alone.
func TestAppliedUpdateSurvivesAMachineCrash(t *testing.T) {
	// lost: the crash lost the write (the student's first: no file);
	// superseded: written again since, kept; torn: the write was in place
	// (atomicfile.SwapUnsynced) and the crash left half of it.
	for _, after := range []string{"lost", "superseded", "torn"} {
		t.Run(after, func(t *testing.T) {
			superseded := after == "superseded"
			dir := t.TempDir()
			store := NewStore(filepath.Join(dir, "data"))
			w := NewWorker(WorkerConfig{UploadsDir: filepath.Join(dir, "uploads"), Profiles: store, Bound: 100})
			if err := w.Runner().Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			enqueueApplied(t, w, Update{Kind: KindForm, StudentID: "S1", Note: "first"})
			restore := jobstest.JournalSnapshot(t, filepath.Join(dir, "uploads", "profile_jobs"))
			w.Runner().Stop(context.Background())
			w.Close()
			// The crash: the journal is what is left; the profile lost its
			// write (no file: it was the student's first).
			restore()
			prof := filepath.Join(dir, "data", "student_profiles", "S1.json")
			os.Remove(prof)
			switch after {
			case "superseded":
				os.WriteFile(prof, []byte(`{"student_id":"S1","note":"written since"}`), 0o644)
			case "torn":
				os.WriteFile(prof, []byte(`{"student_id":"S1","interaction_no`), 0o644)
			}
			w2 := NewWorker(WorkerConfig{UploadsDir: filepath.Join(dir, "uploads"), Profiles: store, Bound: 100})
			if err := w2.Runner().Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer func() { w2.Runner().Stop(context.Background()); w2.Close() }()
			if n := w2.Pending(); n != 0 {
				t.Fatalf("%d updates queued again after the crash: an applied one came back", n)
			}
			got, err := store.Get("S1")
			if err != nil {
				t.Fatal(err)
			}
			if superseded {
				if got["note"] != "written since" {
					t.Fatalf("the replay overwrote a profile written since: %v", got)
				}
				return
			}
			notes := list(got["interaction_notes"])
			if len(notes) != 1 || notes[0].(map[string]any)["note"] != "first" {
				t.Fatalf("profile after the crash: %v", got)
			}
		})
	}
}

// enqueueApplied queues u and waits until the worker has applied it.
func enqueueApplied(t *testing.T, w *Worker, u Update) {
	t.Helper()
	id, err := w.Enqueue(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
}
