package examupload

import (
	"testing"

	"github.com/lectern/lectern/internal/caller"
)

// With a token an exam upload job is a teacher's own (the admin sees all);
// in open mode anyone's, as before.
func TestMayUse(t *testing.T) {
	job := map[string]any{"teacher_id": "t_zhang"}
	old := map[string]any{} // a job recorded before the field
	tok := func(r caller.Role, tid string) caller.Principal {
		return caller.Principal{Role: r, TeacherID: tid, Via: caller.Token}
	}
	for _, c := range []struct {
		name string
		who  caller.Principal
		rec  map[string]any
		want bool
	}{
		{"open mode", caller.Principal{Role: caller.RoleTeacher, TeacherID: "t_lisi", Via: caller.Claimed}, job, true},
		{"own job", tok(caller.RoleTeacher, "t_zhang"), job, true},
		{"another teacher's", tok(caller.RoleTeacher, "t_lisi"), job, false},
		{"no owner recorded", tok(caller.RoleTeacher, "t_zhang"), old, false},
		{"admin", tok(caller.RoleAdmin, "root"), job, true},
		{"student", tok(caller.RoleStudent, ""), job, false},
	} {
		if got := mayUse(c.who, c.rec); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
