package layout

import (
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// golden is the whole tree, relative to its root ("data/" or "uploads/"),
// with the per-id methods called with "ID" (and "AID", "SID" for two). A
// path here is an on-disk contract with the predecessor's data
// directories: changing one breaks them.
var golden = map[string]string{
	"Exams":                   "data/exams",
	"ExamDir":                 "data/exams/ID",
	"ExamManifest":            "data/exams/ID/manifest.json",
	"ExamDerived":             "data/exams/ID/derived",
	"Analysis":                "data/analysis",
	"AnalysisDir":             "data/analysis/ID",
	"Assignments":             "data/assignments",
	"AssignmentDir":           "data/assignments/ID",
	"CoreVariantsDir":         "data/assignments/generated_from_core/ID",
	"StudentProfiles":         "data/student_profiles",
	"StudentProfile":          "data/student_profiles/ID.json",
	"StudentSubmissions":      "data/student_submissions",
	"SubmissionsOfStudent":    "data/student_submissions/ID",
	"SubmissionsOfAssignment": "data/student_submissions/AID/SID",
	"StudentChatSessions":     "data/student_chat_sessions",
	"TeacherChatSessions":     "data/teacher_chat_sessions",
	"TeacherWorkspaces":       "data/teacher_workspaces",
	"TeacherWorkspace":        "data/teacher_workspaces/ID",
	"Lessons":                 "data/lessons",
	"CoreExamples":            "data/core_examples",
	"KnowledgePointMap":       "data/knowledge/knowledge_point_map.csv",
	"QuestionBank":            "data/question_bank",
	"QuestionBankCSV":         "data/question_bank/questions.csv",
	"Staging":                 "data/staging",
	"Skills":                  "data/skills",
	"Prompts":                 "data/prompts",
	"AuthRegistry":            "data/auth/auth_registry.sqlite3",
	"AdminBootstrap":          "data/auth/admin_bootstrap.txt",
	"AuthTokenSecret":         "data/_system/auth_token_secret",

	"ChatJobs":        "uploads/chat_jobs",
	"ChatAttachments": "uploads/chat_attachments",
	"ExamJobs":        "uploads/exam_jobs",
	"AssignmentJobs":  "uploads/assignment_jobs",
	"SubmissionJobs":  "uploads/submission_jobs",
	"ProfileJobs":     "uploads/profile_jobs",
	"Uploads":         "uploads/uploads",
}

// call calls method name of t with "ID" (or "AID", "SID") for each
// argument.
func call(t *testing.T, l Tenant, name string) string {
	t.Helper()
	m := reflect.ValueOf(l).MethodByName(name)
	if !m.IsValid() {
		t.Fatalf("golden names %s, which Tenant does not have", name)
	}
	var args []reflect.Value
	switch n := m.Type().NumIn(); n {
	case 0:
	case 1:
		args = []reflect.Value{reflect.ValueOf("ID")}
	case 2:
		args = []reflect.Value{reflect.ValueOf("AID"), reflect.ValueOf("SID")}
	default:
		t.Fatalf("%s takes %d arguments", name, n)
	}
	out := m.Call(args)
	if len(out) != 1 || out[0].Kind() != reflect.String {
		t.Fatalf("%s does not return one string", name)
	}
	return out[0].String()
}

func methods() []string {
	typ := reflect.TypeFor[Tenant]()
	var out []string
	for i := range typ.NumMethod() {
		out = append(out, typ.Method(i).Name)
	}
	return out
}

// TestGoldenTree checks every method against the golden tree, and that
// the golden tree names every method: a new path gets a golden line.
func TestGoldenTree(t *testing.T) {
	root := t.TempDir()
	l := New(filepath.Join(root, "data"), filepath.Join(root, "uploads"))
	for _, name := range methods() {
		if _, ok := golden[name]; !ok {
			t.Errorf("Tenant.%s has no golden path", name)
		}
	}
	for name, want := range golden {
		if got := call(t, l, name); got != filepath.Join(root, filepath.FromSlash(want)) {
			t.Errorf("%s = %q, want %q", name, got, filepath.Join(root, filepath.FromSlash(want)))
		}
	}
	// No two methods name the same path.
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(golden)) {
		if other, ok := seen[golden[name]]; ok {
			t.Errorf("%s and %s both name %s", name, other, golden[name])
		}
		seen[golden[name]] = name
	}
}

// TestInsideRoot checks that every method stays inside its root: the
// path relative to DATA_DIR or UPLOADS_DIR is local (no "..", not
// absolute, not empty), and the Relative() layout gives exactly that.
func TestInsideRoot(t *testing.T) {
	data, uploads := filepath.Join(t.TempDir(), "d"), filepath.Join(t.TempDir(), "u")
	l := New(data, uploads)
	for _, name := range methods() {
		got := call(t, l, name)
		root := data
		if strings.HasPrefix(golden[name], "uploads/") {
			root = uploads
		}
		rel, err := filepath.Rel(root, got)
		if err != nil || !filepath.IsLocal(rel) || rel == "." {
			t.Errorf("%s = %q is not inside %s (rel %q, %v)", name, got, root, rel, err)
			continue
		}
		if r := call(t, Relative(), name); r != rel {
			t.Errorf("Relative().%s = %q, want %q", name, r, rel)
		}
		if !filepath.IsLocal(call(t, Relative(), name)) {
			t.Errorf("Relative().%s is not local", name)
		}
	}
}

// TestLiteral checks that a Tenant literal and New agree, and that a
// relative root stays relative (the tenant app passes absolute roots;
// nothing here makes them so).
func TestLiteral(t *testing.T) {
	if New("d", "u") != (Tenant{DataDir: "d", UploadsDir: "u"}) {
		t.Fatal("New and the literal differ")
	}
	if got := New("d", "u").ExamManifest("E1"); got != filepath.Join("d", "exams", "E1", "manifest.json") {
		t.Errorf("ExamManifest = %q", got)
	}
	if got := (Tenant{UploadsDir: "/srv/u"}).ChatJobs(); got != filepath.Join("/srv/u", "chat_jobs") {
		t.Errorf("ChatJobs = %q", got)
	}
}
