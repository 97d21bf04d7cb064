package tools

import (
	"strings"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/students"
)

// studentArg is the student_id property of the tools a student's tutor
// may call: a teacher names any student of the tenant, a student only
// itself (it may leave it out).
var studentArg = str("学生编号 student_id。老师必须给出；学生本人使用时可省略（只能是自己）。")

// studentFor is the student a tool acts on. A student caller acts on
// itself, always: a student_id naming anyone else is refused
// (caller.ErrStudentScope), whatever the mode, because the id comes from
// the model, which the student's own messages steer. A teacher acts on the
// student it names, which must be a valid profile id.
func studentFor(c caller.Principal, args map[string]any) (string, error) {
	named := ArgString(args, "student_id")
	if c.Role == caller.RoleStudent {
		self := strings.TrimSpace(c.StudentID)
		if self == "" {
			return "", fault.New(fault.Forbidden, "student_id_required: this conversation has no verified student")
		}
		if named != "" && named != self {
			return "", caller.ErrStudentScope
		}
		return self, nil
	}
	if named == "" {
		return "", fault.New(fault.Invalid, "student_id is required")
	}
	if !students.ValidID(named) {
		return "", fault.New(fault.Invalid, map[string]any{"error": "invalid_student_id", "student_id": named})
	}
	return named, nil
}

// scoped is c for the scope checks of the domain services, which check a
// student only when its principal is verified (open mode checks nothing,
// as the predecessor's routes did). A tool's student is the conversation's
// caller, bound by studentFor, so its scope is checked in every mode.
func scoped(c caller.Principal) caller.Principal {
	if c.Role == caller.RoleStudent {
		c.Via = caller.Token
	}
	return c
}
