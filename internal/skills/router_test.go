package skills

import (
	"math"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/caller"
)

func builtinSet(t *testing.T) *Set {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRouteTable routes teacher and student messages with the built-in
// skills and no requested skill.
func TestRouteTable(t *testing.T) {
	s := builtinSet(t)
	const (
		ops      = "physics-teacher-ops"
		homework = "physics-homework-generator"
		focus    = "physics-student-focus"
		lesson   = "physics-lesson-capture"
		coach    = "physics-student-coach"
		examples = "physics-core-examples"
		routing  = "physics-llm-routing"
	)
	cases := []struct {
		role    caller.Role
		message string
		want    string
		reason  string
	}{
		// Teachers.
		{caller.RoleTeacher, "帮我做一下EX2026-03的考试分析", ops, ReasonAutoRule},
		{caller.RoleTeacher, "把我的模型路由切换到我自己的私有 provider", routing, ReasonAutoRule},
		{caller.RoleTeacher, "路由回滚到上一个版本", routing, ReasonAutoRule},
		{caller.RoleTeacher, "准备明天的试卷讲评", ops, ReasonAutoRule},
		{caller.RoleTeacher, "下节课的备课建议", ops, ReasonAutoRule},
		{caller.RoleTeacher, "生成作业，作业ID A2403_2026-03-04，每个知识点 5 题", homework, ReasonAutoRule},
		{caller.RoleTeacher, "给二班布置一份分层作业", homework, ReasonAutoRule},
		{caller.RoleTeacher, "作业 2026-03-04 的完成进度", homework, ReasonAutoRule},
		{caller.RoleTeacher, "帮我讲评试卷并生成作业", homework, ReasonAutoRule},
		{caller.RoleTeacher, "看看李雷的学生画像，他最近作业表现怎么样", focus, ReasonAutoRule},
		{caller.RoleTeacher, "该同学的个体诊断", focus, ReasonAutoRule},
		{caller.RoleTeacher, "王芳同学最近的薄弱点在哪里", focus, ReasonAutoRule},
		{caller.RoleTeacher, "课堂采集：把今天的板书照片 OCR 一下", lesson, ReasonAutoRule},
		{caller.RoleTeacher, "识别这节课的课堂材料", lesson, ReasonAutoRule},
		{caller.RoleTeacher, "给 CE12 出两道变式题", examples, ReasonAutoRule},
		{caller.RoleTeacher, "把这道题登记到核心例题库", examples, ReasonAutoRule},
		{caller.RoleTeacher, "开始今天作业", coach, ReasonAutoRule},
		{caller.RoleTeacher, "你好", ops, ReasonRoleDefault},
		{caller.RoleTeacher, "The force on the block", ops, ReasonRoleDefault}, // "ce" only on a word boundary
		{caller.RoleTeacher, "作业", ops, ReasonThresholdBlocked},
		{caller.RoleTeacher, "exam 2 summary", ops, ReasonThresholdBlocked},
		{caller.RoleTeacher, "", ops, ReasonRoleDefault},
		// Students: only the coach is theirs.
		{caller.RoleStudent, "开始今天作业", coach, ReasonAutoRule},
		{caller.RoleStudent, "讲解一下错题", coach, ReasonAutoRule},
		{caller.RoleStudent, "讲解", coach, ReasonThresholdBlocked},
		{caller.RoleStudent, "这道题怎么做", coach, ReasonRoleDefault},
		{caller.RoleStudent, "帮我生成作业，考试分析", coach, ReasonRoleDefault},
		// A blank role may use every skill; no role rules apply.
		{"", "生成作业", homework, ReasonAutoRule},
		{"", "你好", ops, ReasonRoleDefault},
		// No skill allows the admin role.
		{caller.RoleAdmin, "生成作业", "", ReasonNoSkill},
	}
	for _, c := range cases {
		d := s.Route(c.role, "", c.message)
		if d.Effective != c.want || d.Reason != c.reason {
			t.Errorf("%s %q → %s (%s), want %s (%s); candidates %+v", c.role, c.message, d.Effective, d.Reason,
				c.want, c.reason, d.Candidates)
			continue
		}
		wantMode := ModeDefault
		if c.reason == ReasonAutoRule {
			wantMode = ModeAuto
		}
		if d.Mode != wantMode || len(d.Candidates) > TopCandidates {
			t.Errorf("%q: mode %s, %d candidates", c.message, d.Mode, len(d.Candidates))
		}
		if c.reason == ReasonAutoRule && (d.Confidence <= DefaultConfidenceFloor || d.Confidence > 0.95 ||
			d.MatchedRule == "" || d.Candidates[0].SkillID != c.want) {
			t.Errorf("%q: %+v", c.message, d)
		}
	}
}

func TestRouteDetails(t *testing.T) {
	s := builtinSet(t)
	// Scores stack: config keyword, regex keyword, intent bonus and role
	// rules (agent-extras.md §1.2/§1.3).
	d := s.Route(caller.RoleTeacher, "", "生成作业")
	// cfg:生成作业 6 + assignment_generate 8 (assignment superseded) +
	// intent-and-generation rule 8 + 生成作业 rule 4 + 作业 rule 1.
	if d.BestScore != 27 || d.SecondScore != 0 {
		t.Fatalf("生成作业: %+v", d)
	}
	wantHits := "cfg:生成作业,cfg-intent:assignment_generate,assignment_intent+generation,生成作业,作业"
	if got := strings.Join(d.Candidates[0].Hits, ","); got != wantHits {
		t.Errorf("hits %s", got)
	}
	if d.MatchedRule != "cfg:生成作业,cfg-intent:assignment_generate,assignment_intent+generation" {
		t.Errorf("matched rule %s", d.MatchedRule)
	}
	// confidence = 0.28 + min(0.35, 0.04·27) + 0.08 (margin ≥ 4)
	if math.Abs(d.Confidence-0.71) > 1e-9 {
		t.Errorf("confidence %v", d.Confidence)
	}

	// A margin of 2: 0.28 + 0.04·6 + 0.04.
	d = s.Route(caller.RoleTeacher, "", "诊断备课")
	if d.Effective != "physics-teacher-ops" || d.BestScore != 6 || d.SecondScore != 4 || math.Abs(d.Confidence-0.56) > 1e-9 {
		t.Errorf("诊断备课: %+v", d)
	}
	// A margin of 1: no bonus.
	d = s.Route(caller.RoleTeacher, "", "学生考试")
	if d.Effective != "physics-student-focus" || math.Abs(d.Confidence-0.44) > 1e-9 || len(d.Candidates) != 2 {
		t.Errorf("学生考试: %+v", d)
	}

	// Negation (HEAD): a rule keyword after 不要 does not count; a config
	// keyword does (and the negative keyword 不要生成作业 subtracts 3).
	neg := s.Route(caller.RoleTeacher, "", "不要生成作业")
	// (作业 follows 不要 too: its rule is negated as well.)
	if neg.BestScore != 27-4-1-3 {
		t.Errorf("不要生成作业: %+v", neg)
	}
	for _, h := range neg.Candidates[0].Hits {
		if h == "生成作业" || h == "作业" {
			t.Errorf("negated rule counted: %v", neg.Candidates[0].Hits)
		}
	}

	// Blocked decisions report the floor.
	d = s.Route(caller.RoleTeacher, "", "作业")
	if d.Confidence != DefaultConfidenceFloor || d.BestScore != 1 || d.Candidates[0].SkillID != "physics-homework-generator" {
		t.Errorf("blocked: %+v", d)
	}

	f := d.JobFields()
	for _, k := range []string{"skill_id_requested", "skill_id_effective", "skill_reason", "skill_confidence",
		"skill_candidates", "skill_resolution_mode"} {
		if _, ok := f[k]; !ok {
			t.Errorf("job fields lack %s", k)
		}
	}
	if f["skill_id_effective"] != "physics-teacher-ops" || f["skill_reason"] != ReasonThresholdBlocked {
		t.Errorf("job fields %v", f)
	}
}

func TestRouteRequested(t *testing.T) {
	s := builtinSet(t)
	cases := []struct {
		role           caller.Role
		requested, msg string
		want, reason   string
	}{
		// A valid, allowed request wins whatever the message says.
		{caller.RoleTeacher, "physics-lesson-capture", "生成作业", "physics-lesson-capture", ReasonExplicit},
		{caller.RoleTeacher, " physics-student-coach ", "", "physics-student-coach", ReasonExplicit},
		{caller.RoleStudent, "physics-student-coach", "", "physics-student-coach", ReasonExplicit},
		// Unknown: auto-routing, with the prefix.
		{caller.RoleTeacher, "physics-chart-lab", "生成作业", "physics-homework-generator", ReasonPrefixUnknown + ReasonAutoRule},
		{caller.RoleTeacher, "nope", "你好", "physics-teacher-ops", ReasonPrefixUnknown + "default"},
		// Invalid ids.
		{caller.RoleTeacher, "../etc", "你好", "physics-teacher-ops", ReasonPrefixInvalid + "default"},
		{caller.RoleTeacher, "x", "作业", "physics-teacher-ops", ReasonPrefixInvalid + ReasonThresholdBlocked},
		// Not allowed for the role: a student cannot pick a teacher skill.
		{caller.RoleStudent, "physics-teacher-ops", "考试分析", "physics-student-coach", ReasonPrefixNotAllowed + "default"},
		{caller.RoleStudent, "physics-homework-generator", "开始今天作业", "physics-student-coach", ReasonPrefixNotAllowed + ReasonAutoRule},
	}
	for _, c := range cases {
		d := s.Route(c.role, c.requested, c.msg)
		if d.Effective != c.want || d.Reason != c.reason || d.Requested != strings.TrimSpace(c.requested) {
			t.Errorf("%s requested %q %q → %+v, want %s (%s)", c.role, c.requested, c.msg, d, c.want, c.reason)
		}
		if c.reason == ReasonExplicit && (d.Mode != ModeExplicit || d.Confidence != 1 || len(d.Candidates) != 0) {
			t.Errorf("explicit %+v", d)
		}
	}
	sk, d := s.Resolve(caller.RoleTeacher, "physics-core-examples", "")
	if sk == nil || sk.ID != "physics-core-examples" || d.Effective != sk.ID {
		t.Errorf("resolve: %v %+v", sk, d)
	}
	if sk, _ := s.Resolve(caller.RoleAdmin, "", "hi"); sk != nil {
		t.Errorf("admin got skill %s", sk.ID)
	}
}

// TestRouteTenantSkills: tenant manifests take part in routing with their
// own thresholds; ties rank by the tie-break order, then id; equal scores
// are ambiguous.
func TestRouteTenantSkills(t *testing.T) {
	data := t.TempDir()
	writeSkill(t, data, "alpha-lab", `
allowed_roles: [teacher]
routing:
  keywords: [实验报告]
  keyword_weights: {实验报告: 5}
`)
	writeSkill(t, data, "beta-lab", `
allowed_roles: [teacher]
routing:
  keywords: [实验报告, 实验视频]
  keyword_weights: {实验报告: 5}
  min_score: 10
`)
	writeSkill(t, data, "admin-desk", `
allowed_roles: [admin]
routing:
  keywords: [统计]
`)
	writeSkill(t, data, "student-lab", `
allowed_roles: [student]
routing:
  keywords: [实验]
  keyword_weights: {实验: 9}
`)
	s, err := New(Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	d := s.Route(caller.RoleTeacher, "", "批改实验报告")
	if d.Effective != "physics-teacher-ops" || d.Reason != ReasonAmbiguous || d.BestScore != 5 || d.SecondScore != 5 ||
		d.Candidates[0].SkillID != "alpha-lab" || d.Candidates[1].SkillID != "beta-lab" {
		t.Errorf("tie: %+v", d)
	}
	d = s.Route(caller.RoleTeacher, "", "实验报告和实验视频")
	if d.Effective != "physics-teacher-ops" || d.Reason != ReasonThresholdBlocked || d.Candidates[0].SkillID != "beta-lab" {
		t.Errorf("beta's own min_score: %+v", d)
	}
	// A role whose default skill it may not use falls back to the first
	// allowed skill.
	d = s.Route(caller.RoleAdmin, "", "你好")
	if d.Effective != "admin-desk" || d.Reason != ReasonRoleDefault+ReasonSuffixFirstAllowed {
		t.Errorf("admin: %+v", d)
	}
	d = s.Route(caller.RoleAdmin, "", "统计")
	if d.Effective != "admin-desk" || d.Reason != ReasonAutoRule {
		t.Errorf("admin auto: %+v", d)
	}
	// A student skill beats the coach on its keyword; the coach stays
	// the default.
	if d = s.Route(caller.RoleStudent, "", "做实验"); d.Effective != "student-lab" {
		t.Errorf("student skill: %+v", d)
	}
	if d = s.Route(caller.RoleStudent, "", "你好"); d.Effective != "physics-student-coach" {
		t.Errorf("student default: %+v", d)
	}
}

func TestWordBoundary(t *testing.T) {
	for _, c := range []struct {
		text, kw string
		want     bool
	}{
		{"ce", "ce", true},
		{"讲ce题", "ce", true},
		{"force", "ce", false},
		{"ce12", "ce", false},
		{"ce_x", "ce", false},
		{"a ce.", "ce", true},
		{"forcece ce", "ce", true},
		{"", "ce", false},
	} {
		if got := hasWordBoundary(c.text, c.kw); got != c.want {
			t.Errorf("%q in %q: %v", c.kw, c.text, got)
		}
	}
}

func TestNegationWindow(t *testing.T) {
	n := &negation{words: []string{"不要", "别", "不"}, window: 4}
	for _, c := range []struct {
		text string
		want bool
	}{
		{"生成作业", true},
		{"不要生成作业", false},
		{"别再生成作业", false},
		{"不要紧，今天生成作业", true},     // the negation is more than 4 characters before
		{"不要生成作业，还是生成作业吧", true}, // a later occurrence counts
	} {
		p, _ := compilePattern("生成作业", true)
		if got := p.match(c.text, n); got != c.want {
			t.Errorf("%q: %v", c.text, got)
		}
	}
}
