package assignments

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/lectern/lectern/internal/exams"
)

// Today is GET /assignment/today: the date and the student's assignment
// for it (nil when there is none).
type Today struct {
	Date       string  `json:"date"`
	Assignment *Detail `json:"assignment"`
}

// Today picks a student's assignment for date (empty or unparseable:
// today, as the predecessor's parse_date_str): among the assignments of
// that date whose specificity for the student is above 0, teacher-made
// before automatic, then the most specific, then the newest. It only
// reads. (The predecessor's auto_generate is not built yet: no assignment
// is made when none is found.)
func (s *Service) Today(studentID, date string, now time.Time) (*Today, error) {
	day := parseDate(date, now)
	class := s.studentClass(studentID)
	type candidate struct {
		id          string
		teacherMade bool
		specificity int
		generatedAt string
	}
	var cands []candidate
	entries, _ := os.ReadDir(s.root()) // a missing folder: no assignment
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !exams.ValidID(name) {
			continue
		}
		meta := s.jsonObject(filepath.Join(s.root(), name, "meta.json"))
		if fmt.Sprint(dateOf(meta, name)) != day {
			continue
		}
		spec := specificity(meta, strings.TrimSpace(studentID), class)
		if spec == 0 {
			continue
		}
		gen, _ := meta["generated_at"].(string)
		cands = append(cands, candidate{name, meta["source"] != "auto", spec, gen})
	}
	out := &Today{Date: day}
	if len(cands) == 0 {
		return out, nil
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		switch {
		case a.teacherMade != b.teacherMade:
			return a.teacherMade
		case a.specificity != b.specificity:
			return a.specificity > b.specificity
		case a.generatedAt != b.generatedAt:
			return a.generatedAt > b.generatedAt
		}
		return a.id < b.id
	})
	d, err := s.Get(cands[0].id)
	if err != nil {
		return nil, err
	}
	out.Assignment = d
	return out, nil
}

// specificity is how closely an assignment targets a student (the
// predecessor's table): 3 named in student_ids, 2 the student's class, 1
// public, 0 not for this student.
func specificity(meta map[string]any, studentID, class string) int {
	ids := ParseList(meta["student_ids"])
	named := studentID != "" && contains(ids, studentID)
	metaClass, _ := meta["class_name"].(string)
	classMatch := class != "" && strings.TrimSpace(metaClass) == class
	switch scope, _ := meta["scope"].(string); scope {
	case "student":
		if named {
			return 3
		}
		return 0
	case "class":
		if classMatch {
			return 2
		}
		return 0
	case "public":
		return 1
	}
	switch {
	case len(ids) > 0 && named:
		return 3
	case len(ids) > 0:
		return 0
	case classMatch:
		return 2
	}
	return 1
}

// studentClass is the class_name of DATA_DIR/student_profiles/<id>.json,
// or "" when the id cannot name a file or there is no profile.
func (s *Service) studentClass(id string) string {
	id = strings.TrimSpace(id)
	if id == "" || strings.HasPrefix(id, ".") || len(id) > 255 || strings.ContainsFunc(id, func(r rune) bool {
		return r == '/' || r == '\\' || unicode.IsControl(r)
	}) {
		return ""
	}
	p := s.jsonObject(filepath.Join(s.dataDir, "student_profiles", id+".json"))
	c, _ := p["class_name"].(string)
	return strings.TrimSpace(c)
}
