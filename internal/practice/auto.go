package practice

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/textcut"
)

var _ assignments.AutoGenerator = (*Service)(nil)

// maxSlugRunes keeps AUTO_<slug>_<date> within an id's 128 characters.
const maxSlugRunes = 100

// AutoID is the id of a student's automatic assignment of a day:
// AUTO_<slug(student)>_<date>, the slug being the id with every run of
// characters other than letters, digits, '_' and '-' made '_', trimmed of
// '_' ("student" when nothing is left).
func AutoID(studentID, date string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.TrimSpace(studentID) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	s := strings.Trim(textcut.Short(strings.Trim(b.String(), "_"), maxSlugRunes), "_…")
	if s == "" {
		s = "student"
	}
	return "AUTO_" + s + "_" + date
}

// AutoGenerate makes a student's automatic assignment of a day for GET
// /assignment/today (assignments.AutoGenerator): id AutoID, mode and
// source auto (no requirements gate), the student as its only student,
// kps (invalid ones dropped; none → "uncategorized"), perKP questions
// each (clamped to 1…20). If the assignment already exists (an earlier or
// concurrent call made it) nothing is written and its id is returned.
//
// The selection runs now, without the model, so the GET answers at once
// with bank questions and placeholders; when useLLM and an LLM is
// configured and placeholders were needed, a background generation then
// replaces them with generated questions (its state in
// generate_status.json). date is YYYY-MM-DD.
func (s *Service) AutoGenerate(ctx context.Context, studentID, class, date string, kps []string, perKP int, useLLM bool) (string, error) {
	sid := strings.TrimSpace(studentID)
	if sid == "" || !validName(sid) {
		return "", fault.New(fault.Invalid, "invalid student_id")
	}
	id := AutoID(sid, isoDate(date, s.now()))
	release, err := s.claimWait(ctx, id)
	if err != nil {
		return "", err
	}
	handedOff := false
	defer func() {
		if !handedOff {
			release()
		}
	}()
	_, dir, _, err := s.asg.Resolve(id)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(filepath.Join(dir, "meta.json")); err == nil && fi.Mode().IsRegular() {
		return id, nil
	}
	var clean []string
	for _, kp := range kps {
		kp = strings.TrimSpace(kp)
		if kp != "" && kp != "(none)" && validKP(kp) && len(clean) < MaxKPs && !contains(clean, kp) {
			clean = append(clean, kp)
		}
	}
	if len(clean) == 0 {
		clean = []string{"uncategorized"}
	}
	switch {
	case perKP <= 0:
		perKP = 5
	case perKP > MaxPerKP:
		perKP = MaxPerKP
	}
	class = strings.TrimSpace(class)
	if !validName(class) {
		class = ""
	}
	p, err := s.prepare(GenerateRequest{AssignmentID: id, KPs: clean, PerKP: perKP, Mode: ModeAuto,
		Date: date, StudentIDs: []string{sid}, ClassName: class, Source: "auto", TeacherID: ""})
	if err != nil {
		return "", err
	}
	res, err := s.run(ctx, p)
	if err != nil {
		return "", err
	}
	if useLLM && s.LLMConfigured() && res.Placeholders > 0 {
		fill := *p
		fill.UseLLM, fill.useLLM = true, true
		if err := s.startRun(&fill, release); err != nil {
			// The placeholders stay; the student still has an assignment.
			s.log.Warn("auto-generate: LLM fill not started", "assignment_id", id, "err", err)
		} else {
			handedOff = true
		}
	}
	return id, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
