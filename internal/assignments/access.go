package assignments

import (
	"path/filepath"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
)

// ErrAssignmentScope refuses a student an assignment that is not for them.
var ErrAssignmentScope = fault.New(fault.Forbidden, "forbidden_assignment_scope")

// MayRead is the access check of an assignment's detail and source files
// (the predecessor at HEAD): teachers and admins read every assignment; a
// verified student only one whose specificity for them (see specificity,
// with their profile's class) is above 0, else ErrAssignmentScope. Open
// mode checks nothing, as the predecessor did without auth. An invalid id
// is a fault.Invalid, a missing assignment ErrNotFound.
func (s *Service) MayRead(p caller.Principal, id string) error {
	if !p.Verified() || p.Role != caller.RoleStudent {
		return nil
	}
	_, dir, err := s.existing(id)
	if err != nil {
		return err
	}
	meta := s.jsonObject(filepath.Join(dir, "meta.json"))
	if specificity(meta, p.StudentID, s.studentClass(p.StudentID)) > 0 {
		return nil
	}
	return ErrAssignmentScope
}
