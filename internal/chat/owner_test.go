package chat

import (
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
