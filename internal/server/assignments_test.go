package server

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/atomicfile"
)

// Assignments are read per tenant: a's never show under b or the root, and
// a saved checklist stays in a's DATA_DIR.
func TestAssignmentsPerTenant(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"a", "b"} {
		expect(t, e.putTenant(id, nil), 200, "")
	}
	aData, _ := e.tenantDirs("a")
	if err := atomicfile.WriteJSON(filepath.Join(aData, "assignments", "HW_2026-11-30", "meta.json"),
		map[string]any{"assignment_id": "HW_2026-11-30", "date": "2026-11-30", "mode": "practice"}); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/t/a/assignments"); r.status != 200 || !strings.Contains(string(r.body), "HW_2026-11-30") {
		t.Fatalf("a: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/t/b/assignments", "/assignments"} {
		expect(t, e.get(p), 200, `{"assignments":[]}`)
	}
	req := map[string]any{"assignment_id": "HW_2026-11-30", "requirements": map[string]any{
		"subject": "物理", "topic": "牛顿第二定律", "grade_level": "高二", "class_level": "中等",
		"core_concepts": "受力分析, 加速度, 合力", "typical_problem": "斜面上的物块",
		"misconceptions":   []string{"质量与重量混淆", "忽略摩擦", "方向弄反", "单位错误"},
		"duration_minutes": 40, "preferences": []string{"A基础", "E小测验"}}}
	if r := e.postJSON("/t/a/assignment/requirements", req); r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) {
		t.Fatalf("save: %d %s", r.status, r.body)
	}
	if r := e.get("/t/a/assignment/HW_2026-11-30/requirements"); r.status != 200 || !strings.Contains(string(r.body), "牛顿第二定律") {
		t.Fatalf("read back: %d %s", r.status, r.body)
	}
	delete(req["requirements"].(map[string]any), "subject")
	if r := e.postJSON("/t/a/assignment/requirements", req); r.status != 400 || !strings.Contains(string(r.body), "invalid_requirements") {
		t.Fatalf("invalid save: %d %s", r.status, r.body)
	}
	expect(t, e.get("/t/b/assignment/HW_2026-11-30"), 404, "")
}

// Today's assignment: the most specific of the day for the student,
// teacher-made before automatic; none is null.
func TestAssignmentToday(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("a", nil), 200, "")
	aData, _ := e.tenantDirs("a")
	write := func(p string, v any) {
		t.Helper()
		if err := atomicfile.WriteJSON(filepath.Join(aData, p), v); err != nil {
			t.Fatal(err)
		}
	}
	write("student_profiles/s1.json", map[string]any{"student_id": "s1", "class_name": "高二1班"})
	write("student_profiles/s2.json", map[string]any{"student_id": "s2", "class_name": "高二2班"})
	day := "2026-12-01"
	for id, meta := range map[string]map[string]any{
		"PUBLIC":     {"date": day, "scope": "public"},
		"CLASS1":     {"date": day, "scope": "class", "class_name": "高二1班"},
		"JUST_S1":    {"date": day, "scope": "student", "student_ids": []string{"s1"}},
		"AUTO_S2":    {"date": day, "source": "auto", "student_ids": "s2"},
		"YESTERDAY1": {"date": "2026-11-30", "scope": "public"},
	} {
		write("assignments/"+id+"/meta.json", meta)
	}
	today := func(q string) (int, string) {
		t.Helper()
		r := e.get("/t/a/assignment/today?" + q)
		if r.status != 200 {
			return r.status, string(r.body)
		}
		b := r.json(t)
		if b["date"] == nil {
			t.Fatalf("no date: %s", r.body)
		}
		if b["assignment"] == nil {
			return 200, ""
		}
		return 200, b["assignment"].(map[string]any)["assignment_id"].(string)
	}
	for q, want := range map[string]string{
		"student_id=s1&date=" + day:     "JUST_S1",
		"student_id=s2&date=" + day:     "PUBLIC", // teacher-made before the automatic one made for s2
		"student_id=s9&date=" + day:     "PUBLIC",
		"student_id=s1&date=2026-11-30": "YESTERDAY1",
		"student_id=s1&date=2026-10-01": "",
	} {
		if st, got := today(q); st != 200 || got != want {
			t.Errorf("%s: %d %q, want %q", q, st, got, want)
		}
	}
	if st, _ := today("date=" + day); st != 400 {
		t.Errorf("no student: %d", st)
	}
}

// Progress through the tenant's routes: read only.
func TestAssignmentProgressRoute(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("a", nil), 200, "")
	aData, _ := e.tenantDirs("a")
	if err := atomicfile.WriteJSON(filepath.Join(aData, "assignments", "HW1", "meta.json"),
		map[string]any{"assignment_id": "HW1", "date": "2026-12-01", "scope": "student", "student_ids": []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, aData)
	r := e.get("/t/a/teacher/assignment/progress?assignment_id=HW1")
	if r.status != 200 || r.json(t)["expected_count"] != 2.0 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	expect(t, e.get("/t/a/teacher/assignments/progress?date=2026-12-01"), 200, "")
	expect(t, e.get("/t/a/teacher/assignment/progress?assignment_id=NOPE"), 404, "")
	if after := treeState(t, aData); after != before {
		t.Fatalf("a GET wrote files:\n%s\n%s", before, after)
	}
}

// A verified student reads (and downloads from) only the assignments meant
// for them: public, their class's, or naming them; the others are 403
// forbidden_assignment_scope. Teachers read them all.
func TestStudentReadsOnlyAssignmentsForThem(t *testing.T) {
	e := newEnv(t, withAuth)
	expect(t, e.putTenant("a", nil), 200, "")
	aData, _ := e.tenantDirs("a")
	toks := mint(t, aData, "a") // s1 and s2 are in 高二1班
	metas := map[string]map[string]any{
		"PUB":   {"scope": "public"},
		"CLS":   {"scope": "class", "class_name": "高二1班"},
		"OTHER": {"scope": "class", "class_name": "高二9班"},
		"S2":    {"scope": "student", "student_ids": []string{"s2"}},
	}
	for id, m := range metas {
		m["assignment_id"], m["date"] = id, "2026-12-01"
		dir := filepath.Join(aData, "assignments", id)
		if err := atomicfile.WriteJSON(filepath.Join(dir, "meta.json"), m); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "source", "paper.txt"), []byte("1. 题目"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[string]int{
		"student":         {"PUB": 200, "CLS": 200, "OTHER": 403, "S2": 403},
		"another student": {"PUB": 200, "CLS": 200, "OTHER": 403, "S2": 200},
		"teacher":         {"PUB": 200, "CLS": 200, "OTHER": 200, "S2": 200},
	}
	for who, byID := range want {
		for id, status := range byID {
			for _, path := range []string{"/t/a/assignment/" + id, "/t/a/assignment/" + id + "/download?file=paper.txt"} {
				got := e.authCall("GET", path, toks[who], nil)
				if int(got["_status"].(float64)) != status {
					t.Errorf("%s GET %s: %v, want %d", who, path, got, status)
				}
				if status == 403 && got["detail"] != "forbidden_assignment_scope" {
					t.Errorf("%s GET %s: %v, want forbidden_assignment_scope", who, path, got)
				}
			}
		}
	}
	if got := e.authCall("GET", "/t/a/assignment/NOPE", toks["student"], nil); got["_status"] != 404.0 {
		t.Errorf("missing assignment as a student: %v", got)
	}
}
