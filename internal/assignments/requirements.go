package assignments

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
)

// Requirements is the normalised 8-item checklist of an assignment.
type Requirements struct {
	Subject          string   `json:"subject"`
	Topic            string   `json:"topic"`
	GradeLevel       string   `json:"grade_level"`
	ClassLevel       string   `json:"class_level"`
	CoreConcepts     []string `json:"core_concepts"`
	TypicalProblem   string   `json:"typical_problem"`
	Misconceptions   []string `json:"misconceptions"`
	DurationMinutes  int      `json:"duration_minutes"`
	Preferences      []string `json:"preferences"`
	ExtraConstraints string   `json:"extra_constraints"`
}

// Record is requirements.json: who saved the checklist, when, and the
// checklist itself.
type Record struct {
	AssignmentID string `json:"assignment_id"`
	Date         string `json:"date"`
	CreatedBy    string `json:"created_by"`
	CreatedAt    string `json:"created_at"`
	Requirements
}

// SaveRequest is the body of POST /assignment/requirements.
type SaveRequest struct {
	AssignmentID string         `json:"assignment_id"`
	Date         string         `json:"date"`
	Requirements map[string]any `json:"requirements"`
	CreatedBy    string         `json:"created_by"`
}

// SaveResult is the answer of a save; Path is relative to DATA_DIR.
type SaveResult struct {
	OK           bool   `json:"ok"`
	Path         string `json:"path"`
	Requirements Record `json:"requirements"`
}

var (
	classLevels = map[string]string{
		"偏弱": "偏弱", "弱": "偏弱",
		"中等": "中等", "一般": "中等",
		"较强": "较强", "强": "较强",
		"混合": "混合",
	}
	preferenceNames = map[string]string{}
	firstInt        = regexp.MustCompile(`\d+`)
)

func init() {
	for _, p := range []string{"A基础", "B提升", "C生活应用", "D探究", "E小测验", "F错题反思"} {
		preferenceNames[p] = p
		preferenceNames[p[:1]] = p
		preferenceNames[p[1:]] = p
	}
}

// ValidateRequirements checks a checklist as the predecessor did and
// returns it normalised, or the list of its Chinese error lines.
func ValidateRequirements(p map[string]any) (Requirements, []string) {
	var errs []string
	r := Requirements{
		Subject:          field(p, "subject"),
		Topic:            field(p, "topic"),
		GradeLevel:       field(p, "grade_level"),
		TypicalProblem:   field(p, "typical_problem"),
		ExtraConstraints: field(p, "extra_constraints"),
		CoreConcepts:     ParseList(p["core_concepts"]),
		Misconceptions:   ParseList(p["misconceptions"]),
	}
	if r.Subject == "" {
		errs = append(errs, "1) 学科 必填")
	}
	if r.Topic == "" {
		errs = append(errs, "1) 本节课主题 必填")
	}
	if r.GradeLevel == "" {
		errs = append(errs, "2) 学生学段/年级 必填")
	}
	r.ClassLevel = classLevels[field(p, "class_level")]
	if r.ClassLevel == "" {
		errs = append(errs, "2) 班级整体水平 必须是 偏弱/中等/较强/混合")
	}
	if n := len(r.CoreConcepts); n < 3 || n > 8 {
		errs = append(errs, "3) 核心概念/公式/规律 需要 3-8 个关键词")
	}
	if r.TypicalProblem == "" {
		errs = append(errs, "4) 课堂典型题型/例题 必填")
	}
	if len(r.Misconceptions) < 4 {
		errs = append(errs, "5) 易错点/易混点 至少 4 条")
	}
	d, ok := parseDuration(orValue(p["duration_minutes"], p["duration"]))
	if !ok || (d != 20 && d != 40 && d != 60) {
		errs = append(errs, "6) 作业时间 仅可选 20/40/60 分钟")
	}
	r.DurationMinutes = d
	var invalid []string
	r.Preferences = []string{}
	for _, v := range ParseList(p["preferences"]) {
		name, ok := preferenceNames[v]
		if !ok {
			invalid = append(invalid, v)
			continue
		}
		if !contains(r.Preferences, name) {
			r.Preferences = append(r.Preferences, name)
		}
	}
	if len(invalid) > 0 {
		errs = append(errs, "7) 作业偏好 无效项: "+strings.Join(invalid, ", "))
	}
	if len(r.Preferences) == 0 {
		errs = append(errs, "7) 作业偏好 至少选择 1 项")
	}
	return r, errs
}

// ParseList reads a list field: an array (items as text, trimmed, empty
// ones dropped) or a string split on ",", "，" and ";". Anything else is
// an empty list.
func ParseList(v any) []string {
	out := []string{}
	switch x := v.(type) {
	case []any:
		for _, item := range x {
			if s := strings.TrimSpace(pyStr(item)); s != "" {
				out = append(out, s)
			}
		}
	case string:
		x = strings.NewReplacer("，", ",", ";", ",").Replace(x)
		for _, part := range strings.Split(x, ",") {
			if s := strings.TrimSpace(part); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// parseDuration is the first integer in v (an integral number as is).
func parseDuration(v any) (int, bool) {
	switch x := v.(type) {
	case nil:
		return 0, false
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e9 {
			return int(x), true
		}
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	m := firstInt.FindString(pyStr(v))
	if m == "" {
		return 0, false
	}
	n, err := strconv.Atoi(m)
	return n, err == nil
}

// field is p[key] as trimmed text ("" for missing or null).
func field(p map[string]any, key string) string {
	return strings.TrimSpace(pyStr(p[key]))
}

// pyStr is a JSON value as text: strings as is, integral numbers without
// a fraction, null as "".
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseDate is the ISO date of s, or today's for an empty or unparseable
// value (the predecessor's parse_date_str: never an error).
func parseDate(s string, now time.Time) string {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04:05", "2006-01-02 15:04:05",
		"2006-01-02T15:04", "2006-01-02 15:04", time.RFC3339Nano, "2006-01-02T15:04:05.999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02")
		}
	}
	return now.Format("2006-01-02")
}

// SaveRequirements validates req and writes
// DATA_DIR/assignments/<id>/requirements.json atomically, creating the
// folder (as the predecessor did) when the id is valid and the checklist
// passes; nothing is created otherwise. Errors are Invalid with the
// predecessor's object details: {"error":"invalid_assignment_id","detail"}
// or {"error":"invalid_requirements","errors":[...]}.
func (s *Service) SaveRequirements(req SaveRequest) (*SaveResult, error) {
	aid, dir, _, err := s.resolve(req.AssignmentID)
	if err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) && fe.Code == fault.Invalid {
			return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_assignment_id", "detail": fe.Detail})
		}
		return nil, err
	}
	if req.Requirements == nil {
		return nil, fault.New(fault.Invalid, "requirements must be an object")
	}
	norm, errs := ValidateRequirements(req.Requirements)
	if len(errs) > 0 {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_requirements", "errors": errs})
	}
	now := s.now()
	createdBy := strings.TrimSpace(req.CreatedBy)
	if createdBy == "" {
		createdBy = "teacher"
	}
	rec := Record{
		AssignmentID: aid,
		Date:         parseDate(req.Date, now),
		CreatedBy:    createdBy,
		CreatedAt:    now.Format(TimeLayout),
		Requirements: norm,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "save requirements failed")
	}
	path := filepath.Join(dir, "requirements.json")
	if err := atomicfile.WriteJSON(path, rec); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "save requirements failed")
	}
	return &SaveResult{OK: true, Path: "assignments/" + aid + "/requirements.json", Requirements: rec}, nil
}
