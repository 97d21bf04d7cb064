package assignupload

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/textcut"
)

// requirementKeys are the checklist's fields, in the predecessor's order.
var requirementKeys = []string{
	"subject", "topic", "grade_level", "class_level", "core_concepts", "typical_problem",
	"misconceptions", "duration_minutes", "preferences", "extra_constraints",
}

// listKeys are the checklist's list fields.
var listKeys = map[string]bool{"core_concepts": true, "misconceptions": true, "preferences": true}

// Bounds of a stored checklist: text fields, list items and list lengths.
const (
	maxReqRunes  = 2000
	maxItemRunes = 200
	maxItems     = 30
)

var firstInt = regexp.MustCompile(`\d+`)

// cleanRequirements is a checklist in the stored shape: exactly the ten
// keys, strings trimmed and bounded, lists as arrays of strings (a string
// is split on , ， ;), duration_minutes the first integer given (0 when
// none). "duration" is read as duration_minutes.
func cleanRequirements(in map[string]any) map[string]any {
	out := make(map[string]any, len(requirementKeys))
	for _, k := range requirementKeys {
		v := in[k]
		if k == "duration_minutes" && isEmpty(v) {
			v = in["duration"]
		}
		switch {
		case listKeys[k]:
			items := []any{}
			for _, s := range listOf(v) {
				if len(items) == maxItems {
					break
				}
				items = append(items, textcut.Head(s, maxItemRunes))
			}
			out[k] = items
		case k == "duration_minutes":
			out[k] = duration(v)
		default:
			out[k] = textcut.Head(strings.TrimSpace(text(v)), maxReqRunes)
		}
	}
	return out
}

// duration is the first integer of v (an integral number as is), else 0.
func duration(v any) int {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e6 {
			return int(x)
		}
		return 0
	case int:
		return x
	}
	m := firstInt.FindString(text(v))
	n, err := strconv.Atoi(m)
	if err != nil || n > 1e6 {
		return 0
	}
	return n
}

// listOf reads a list field: an array (items as text, trimmed, empty ones
// dropped) or a string split on , ， ; (assignments.ParseList), also when
// it holds Go strings.
func listOf(v any) []string {
	if ss, ok := v.([]string); ok {
		out := []string{}
		for _, s := range ss {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return assignments.ParseList(v)
}

// text is a JSON value as text (numbers without a needless fraction).
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// isEmpty is the predecessor's "skip" test of a merged value: null, "",
// [] and {} (and 0, false: Python's falsy values when it asks "not set").
func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case []any:
		return len(x) == 0
	case []string:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case float64:
		return x == 0
	case int:
		return x == 0
	case bool:
		return !x
	}
	return false
}

// missingKeys are the checklist keys that do not pass the requirements
// validation (exams-uploads §3's table), without its upper bound of 8 core
// concepts: the one place the rule lives. Normalisation (class level
// aliases, duration text, preference names) is assignments'.
func missingKeys(req map[string]any) []string {
	norm, _ := assignments.ValidateRequirements(req)
	var miss []string
	add := func(k string, bad bool) {
		if bad {
			miss = append(miss, k)
		}
	}
	add("subject", norm.Subject == "")
	add("topic", norm.Topic == "")
	add("grade_level", norm.GradeLevel == "")
	add("class_level", norm.ClassLevel == "")
	add("core_concepts", len(norm.CoreConcepts) < 3)
	add("typical_problem", norm.TypicalProblem == "")
	add("misconceptions", len(norm.Misconceptions) < 4)
	add("duration_minutes", norm.DurationMinutes != 20 && norm.DurationMinutes != 40 && norm.DurationMinutes != 60)
	badPref := len(norm.Preferences) == 0
	for _, raw := range listOf(req["preferences"]) {
		if one, _ := assignments.ValidateRequirements(map[string]any{"preferences": raw}); len(one.Preferences) == 0 {
			badPref = true // an unknown entry is an error of the table
		}
	}
	add("preferences", badPref)
	return nonNil(miss)
}

// mergeRequirements is the predecessor's merge_requirements over the
// checklist keys. With overwrite (the teacher's edits), every non-empty
// value replaces the stored one. Without (the autofill), a value only
// fills a gap: a list replaces an empty list and extends one of fewer than
// three items with its new entries, a scalar is set only where the stored
// one is empty. The result is clean (cleanRequirements).
func mergeRequirements(base, update map[string]any, overwrite bool) map[string]any {
	merged := cleanRequirements(base)
	up := cleanRequirements(update)
	for _, k := range requirementKeys {
		v := up[k]
		if isEmpty(v) {
			continue
		}
		switch {
		case overwrite:
			merged[k] = v
		case listKeys[k]:
			have := listOf(merged[k])
			switch {
			case len(have) == 0:
				merged[k] = v
			case len(have) < 3:
				out := toAny(have)
				for _, s := range listOf(v) {
					if !slices.Contains(have, s) && len(out) < maxItems {
						out = append(out, s)
					}
				}
				merged[k] = out
			}
		case isEmpty(merged[k]):
			merged[k] = v
		}
	}
	return merged
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// storedRequirements is what requirements.json holds of a checklist: the
// normalised value of each key that passes, the teacher's own value of
// each that does not (the file is written unvalidated when the confirm is
// not strict).
func storedRequirements(req map[string]any) map[string]any {
	req = cleanRequirements(req)
	norm, _ := assignments.ValidateRequirements(req)
	missing := map[string]bool{}
	for _, k := range missingKeys(req) {
		missing[k] = true
	}
	valid := map[string]any{
		"subject": norm.Subject, "topic": norm.Topic, "grade_level": norm.GradeLevel, "class_level": norm.ClassLevel,
		"core_concepts": norm.CoreConcepts, "typical_problem": norm.TypicalProblem, "misconceptions": norm.Misconceptions,
		"duration_minutes": norm.DurationMinutes, "preferences": norm.Preferences, "extra_constraints": norm.ExtraConstraints,
	}
	out := make(map[string]any, len(requirementKeys))
	for _, k := range requirementKeys {
		if missing[k] {
			out[k] = req[k]
		} else {
			out[k] = valid[k]
		}
	}
	return out
}
