package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
	"github.com/lectern/lectern/internal/practice"
	"github.com/lectern/lectern/internal/students"
	"github.com/lectern/lectern/internal/upload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTenant is one tenant's data with every tool over it: exam EX1 (six
// students S01…S06, see writeExam), profiles of S01 李雷 and S02 韩梅梅,
// a question bank on 受力分析, assignment A_S01 (today, for S01 only) and
// A_S02 (today, for S02 only), lesson L0, and an upload up_1 holding a
// lesson handout.
type testTenant struct {
	data, uploads string
	exams         *exams.Service
	asg           *assignments.Service
	pr            *practice.Service
	profiles      *students.Store
	worker        *students.Worker
	reg           *Registry
	rendered      []string // titles the fake PDF renderer drew
}

var (
	studentS01 = caller.Principal{Role: caller.RoleStudent, StudentID: "S01", TeacherID: "teacher"}
	studentS02 = caller.Principal{Role: caller.RoleStudent, StudentID: "S02", TeacherID: "teacher"}
)

type tenantOptions struct {
	font string
	text upload.Extractor
	llm  *llm.Client
}

func newTenant(t *testing.T, opts ...func(*tenantOptions)) *testTenant {
	t.Helper()
	var o tenantOptions
	for _, f := range opts {
		f(&o)
	}
	ex, data := writeExam(t)
	tt := &testTenant{data: data, uploads: t.TempDir(), exams: ex}
	today := time.Now().Format("2006-01-02")
	writeJSON(t, data, "student_profiles/S01.json", map[string]any{"student_id": "S01", "student_name": "李雷",
		"class_name": "一班", "recent_weak_kp": []string{"受力分析"}})
	writeJSON(t, data, "student_profiles/S02.json", map[string]any{"student_id": "S02", "student_name": "韩梅梅",
		"class_name": "一班", "aliases": []string{"梅梅"}})
	writeText(t, data, "question_bank/questions.csv", "question_id,kp_id,difficulty,type,stem_ref,answer_ref,source,tags\n"+
		"B1,受力分析,basic,calc,question_bank/stems/B1.md,,bank,\n"+
		"B2,受力分析,basic,calc,question_bank/stems/B2.md,,bank,\n"+
		"B3,受力分析,medium,calc,question_bank/stems/B3.md,,bank,\n")
	for _, id := range []string{"B1", "B2", "B3"} {
		writeText(t, data, "question_bank/stems/"+id+".md", "题目 "+id+"：一个物体静止在斜面上，画出受力分析图。")
	}
	for _, s := range []string{"S01", "S02"} {
		writeJSON(t, data, "assignments/A_"+s+"/meta.json", map[string]any{"assignment_id": "A_" + s, "date": today,
			"scope": "student", "student_ids": []string{s}, "mode": "kp", "target_kp": []string{"受力分析"}})
		writeText(t, data, "assignments/A_"+s+"/questions.csv", "question_id,kp_id,difficulty,type,stem_ref,answer_ref,source,tags\n"+
			"B1,受力分析,basic,calc,question_bank/stems/B1.md,,bank,\n")
	}
	writeJSON(t, data, "lessons/L0/lesson.json", map[string]any{"lesson_id": "L0", "summary": "牛顿第一定律"})
	writeText(t, tt.uploads, "uploads/up_1/handout.md", "第3节 受力分析\n1. 物体静止在水平面上，受到几个力？\nA. 1个\nB. 2个\nC. 3个\n"+
		"2、 斜面上的物块匀速下滑，\n摩擦力方向如何？\n")
	// Another teacher's memory: no tool may read it.
	writeText(t, data, "teacher_workspaces/t2/MEMORY.md", "t2 的私人备忘")

	tt.asg = assignments.NewService(data)
	tt.pr = practice.New(practice.Config{DataDir: data, Assignments: tt.asg, Font: o.font, LLM: o.llm})
	t.Cleanup(func() { tt.pr.Stop(context.Background()) })
	tt.profiles = students.NewStore(data)
	tt.worker = students.NewWorker(students.WorkerConfig{UploadsDir: tt.uploads, Profiles: tt.profiles})
	if err := tt.worker.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.worker.Runner().Stop(context.Background()) })

	render := func(ctx context.Context, title string, paragraphs []string) ([]byte, error) {
		tt.rendered = append(tt.rendered, title+"|"+strings.Join(paragraphs, "/"))
		return []byte("%PDF-1.4 " + title), nil
	}
	var all []Tool
	all = append(all, ExamTools(ex)...)
	all = append(all, AssignmentTools(tt.asg, tt.pr)...)
	all = append(all, LessonTools(tt.asg, LessonConfig{UploadsDir: tt.uploads, Text: o.text})...)
	all = append(all, StudentTools(tt.profiles, tt.worker, ex)...)
	all = append(all, CoreExampleTools(data, tt.uploads, render)...)
	all = append(all, ChartTools(ex, "/t/school")...)
	reg, err := NewRegistry(all...)
	if err != nil {
		t.Fatal(err)
	}
	tt.reg = reg
	return tt
}

// call dispatches a tool and returns the result as decoded JSON.
func (tt *testTenant) call(t *testing.T, c caller.Principal, name, args string) map[string]any {
	t.Helper()
	out := tt.reg.Dispatch(context.Background(), c, name, json.RawMessage(args))
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: result is not an object: %s", name, b)
	}
	return m
}

// ok dispatches a tool that must succeed.
func (tt *testTenant) ok(t *testing.T, c caller.Principal, name, args string) map[string]any {
	t.Helper()
	m := tt.call(t, c, name, args)
	if e, bad := m["error"]; bad {
		t.Fatalf("%s %s: error %v (%v)", name, args, e, m["detail"])
	}
	return m
}

func writeText(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func writeJSON(t *testing.T, root, rel string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	writeText(t, root, rel, string(b))
}

func readFile(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeLLM is a client to the in-process fake provider.
func fakeLLM(t *testing.T) (*llm.Client, *llmtest.Server) {
	t.Helper()
	srv := llmtest.NewServer(t)
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "test", BaseURL: srv.URL, Model: "m",
		Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	return &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}, srv
}
