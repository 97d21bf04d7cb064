package assignments

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/layout"
)

// Today is GET /assignment/today: the date and the student's assignment
// for it (nil when there is none).
type Today struct {
	Date       string  `json:"date"`
	Assignment *Detail `json:"assignment"`
}

// AutoGenerator makes a student's automatic assignment of a day and
// returns its id (package practice implements it; it imports this
// package, so the interface lives here). date is YYYY-MM-DD; useLLM asks
// for generated questions where the bank has none (effective only when
// the generator has an LLM).
type AutoGenerator interface {
	AutoGenerate(ctx context.Context, studentID, class, date string, kps []string, perKP int, useLLM bool) (string, error)
}

// TodayOptions are GET /assignment/today's auto-generation parameters.
type TodayOptions struct {
	// Context bounds an auto-generation (nil: context.Background()).
	Context context.Context
	// AutoGenerate makes the student an assignment when none is found
	// (with Generator; without one, the answer stays null).
	AutoGenerate bool
	// Generate asks the generator for LLM questions (the query's
	// generate, default true).
	Generate bool
	// PerKP is the number of questions per knowledge point (default 5).
	PerKP     int
	Generator AutoGenerator
}

// MaxTodayPerKP bounds per_kp of GET /assignment/today.
const MaxTodayPerKP = 20

// Today picks a student's assignment for date (empty or unparseable:
// today, as the predecessor's parse_date_str): among the assignments of
// that date whose specificity for the student is above 0, teacher-made
// before automatic, then the most specific, then the newest.
//
// It only reads, unless opts.AutoGenerate is set and nothing is found:
// then opts.Generator makes AUTO_<slug(sid)>_<date> (mode and source auto,
// the profile's next_focus + recent_weak_kp + recent_medium_kp as
// knowledge points, "(none)" and empties ignored, else uncategorized) and
// its detail is returned. This is the one GET that creates data, as the
// predecessor's did; the assignment it makes is scoped to the student and
// dated that day, so a second identical call finds it and generates
// nothing.
func (s *Service) Today(studentID, date string, now time.Time, opts TodayOptions) (*Today, error) {
	day := parseDate(date, now)
	sid := strings.TrimSpace(studentID)
	class := s.studentClass(studentID)
	out := &Today{Date: day}
	id := s.todayPick(sid, class, day)
	if id == "" && opts.AutoGenerate && opts.Generator != nil {
		ctx := opts.Context
		if ctx == nil {
			ctx = context.Background()
		}
		perKP := opts.PerKP
		if perKP <= 0 {
			perKP = 5
		}
		gen, err := opts.Generator.AutoGenerate(ctx, sid, class, day, s.focusKPs(sid), perKP, opts.Generate)
		if err != nil {
			return nil, err
		}
		id = gen
	}
	if id == "" {
		return out, nil
	}
	d, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	out.Assignment = d
	return out, nil
}

// todayPick is the id of the student's best assignment of day, or "".
func (s *Service) todayPick(sid, class, day string) string {
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
		if !e.IsDir() || !isAssignmentFolder(name) {
			continue
		}
		meta := s.jsonObject(filepath.Join(s.root(), name, "meta.json"))
		if fmt.Sprint(dateOf(meta, name)) != day {
			continue
		}
		spec := specificity(meta, sid, class)
		if spec == 0 {
			continue
		}
		gen, _ := meta["generated_at"].(string)
		cands = append(cands, candidate{name, meta["source"] != "auto", spec, gen})
	}
	if len(cands) == 0 {
		return ""
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
	return cands[0].id
}

// focusKPs are the knowledge points of an automatic assignment: the
// profile's next_focus, recent_weak_kp and recent_medium_kp in that
// order, without "(none)" (what grading writes when it found nothing),
// empties and repeats; none → ["uncategorized"].
func (s *Service) focusKPs(sid string) []string {
	var out []string
	if validStudentID(sid) {
		p := s.profile(sid)
		for _, key := range []string{"next_focus", "recent_weak_kp", "recent_medium_kp"} {
			for _, kp := range ParseList(p[key]) {
				if kp != "(none)" && !contains(out, kp) {
					out = append(out, kp)
				}
			}
		}
	}
	if len(out) == 0 {
		out = []string{"uncategorized"}
	}
	return out
}

// TodayWith is the GET /assignment/today handler with an auto-generator
// (nil: auto_generate makes nothing and the answer stays null). Query:
// student_id (the principal's: its own with a student's token), date,
// auto_generate (default false), generate (default true; effective only
// when the generator has an LLM), per_kp (default 5, 1…20).
func (a *API) TodayWith(gen AutoGenerator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sid := caller.From(r.Context()).StudentID
		if strings.TrimSpace(sid) == "" {
			httpjson.Fail(w, a.log, fault.New(fault.Invalid, "student_id is required"))
			return
		}
		q := r.URL.Query()
		opts := TodayOptions{Context: r.Context(), Generator: gen}
		var err error
		if opts.AutoGenerate, err = queryBool(q.Get("auto_generate"), false); err != nil {
			httpjson.Fail(w, a.log, fault.New(fault.Invalid, "auto_generate must be a boolean"))
			return
		}
		if opts.Generate, err = queryBool(q.Get("generate"), true); err != nil {
			httpjson.Fail(w, a.log, fault.New(fault.Invalid, "generate must be a boolean"))
			return
		}
		opts.PerKP = 5
		if v := strings.TrimSpace(q.Get("per_kp")); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxTodayPerKP {
				httpjson.Fail(w, a.log, fault.Newf(fault.Invalid, "per_kp must be an integer between 1 and %d", MaxTodayPerKP))
				return
			}
			opts.PerKP = n
		}
		t, err := a.svc.Today(sid, q.Get("date"), time.Now(), opts)
		a.write(w, t, err, "read today's assignment")
	}
}

// queryBool reads a boolean query value the way the predecessor's
// framework did (true/false, 1/0, yes/no, on/off, t/f, y/n); "" is def.
func queryBool(v string, def bool) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return def, nil
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", v)
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
	p := s.jsonObject(layout.Tenant{DataDir: s.dataDir}.StudentProfile(id))
	c, _ := p["class_name"].(string)
	return strings.TrimSpace(c)
}
