package chat

import (
	"encoding/json"
	"testing"

	"github.com/lectern/lectern/internal/caller"
)

// With a token, a chat job is seen only by the principal it runs as (and
// the tenant admin); in open mode by anyone, as before.
func TestMayRead(t *testing.T) {
	res := caller.Resolver{DefaultTeacherID: "teacher"}
	teacherJob := map[string]any{"principal": principalRecord(caller.Principal{Role: caller.RoleTeacher, TeacherID: "t_zhang"})}
	studentJob := map[string]any{"principal": principalRecord(caller.Principal{Role: caller.RoleStudent, StudentID: "s1"})}
	legacy := map[string]any{"role": "student", "student_id": "s1"} // a record written before "principal"
	ownerless := map[string]any{"role": "unknown"}
	tok := func(r caller.Role, tid, sid string) caller.Principal {
		return caller.Principal{Role: r, TeacherID: tid, StudentID: sid, Via: caller.Token}
	}
	for _, c := range []struct {
		name string
		p    caller.Principal
		rec  map[string]any
		want bool
	}{
		{"open mode", caller.Principal{Via: caller.Claimed}, teacherJob, true},
		{"own teacher job", tok(caller.RoleTeacher, "t_zhang", ""), teacherJob, true},
		{"another teacher", tok(caller.RoleTeacher, "t_lisi", ""), teacherJob, false},
		{"student on a teacher job", tok(caller.RoleStudent, "", "s1"), teacherJob, false},
		{"own student job", tok(caller.RoleStudent, "", "s1"), studentJob, true},
		{"legacy record", tok(caller.RoleStudent, "", "s1"), legacy, true},
		{"another student", tok(caller.RoleStudent, "", "s2"), studentJob, false},
		{"teacher on a student job", tok(caller.RoleTeacher, "t_zhang", ""), studentJob, false},
		{"admin", tok(caller.RoleAdmin, "root", ""), studentJob, true},
		{"ownerless job", tok(caller.RoleStudent, "", "s1"), ownerless, false},
	} {
		if got := mayRead(c.p, c.rec, res); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// A tenant admin chats as the teacher or student it names, and must name
// one; others run as themselves.
func TestRunAsAdmin(t *testing.T) {
	s := func(v string) *string { return &v }
	admin := caller.Principal{Role: caller.RoleAdmin, TeacherID: "admin", Via: caller.Token}
	for _, c := range []struct {
		p       caller.Principal
		req     Request
		role    caller.Role
		wantErr error
	}{
		{admin, Request{}, "", errAdminRole},
		{admin, Request{Role: s("teacher")}, "", errAdminTeacherID},
		{admin, Request{Role: s("teacher"), TeacherID: s("t_zhang")}, caller.RoleTeacher, nil},
		{admin, Request{Role: s("student")}, "", errAdminStudentID},
		{caller.Principal{Role: caller.RoleAdmin, StudentID: "s1", Via: caller.Token}, Request{Role: s("student")}, caller.RoleStudent, nil},
		{caller.Principal{Role: caller.RoleTeacher, Via: caller.Token}, Request{Role: s("student")}, caller.RoleTeacher, nil},
		{caller.Principal{Via: caller.Claimed}, Request{Messages: []Message{{Role: "user", Content: "我是学生"}}}, caller.RoleStudent, nil},
	} {
		got, err := runAs(c.p, &c.req)
		if err != c.wantErr || (err == nil && got.Role != c.role) {
			t.Errorf("%+v %+v: %+v %v", c.p, c.req, got, err)
		}
	}
}

// A job runs as the principal recorded with it, also after a restart (the
// record is all a resumed job has).
func TestPrincipalSurvivesTheRecord(t *testing.T) {
	res := caller.Resolver{Tenant: "t1", DefaultTeacherID: "teacher"}
	p := caller.Principal{Tenant: "t1", Role: caller.RoleStudent, StudentID: "s1", TeacherID: "teacher", Via: caller.Token}
	raw, _ := json.Marshal(map[string]any{"principal": principalRecord(p)})
	var rec map[string]any
	json.Unmarshal(raw, &rec) // as read back from job.json
	if got := principalOf(rec, res); got != p {
		t.Fatalf("got %+v, want %+v", got, p)
	}
}
