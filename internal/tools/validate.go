package tools

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// maxIssues bounds the issues Validate reports.
const maxIssues = 20

// Validate checks v against schema with the small JSON-schema subset the
// tools use, and returns at most 20 issues ("arguments.exam_id: required",
// "arguments.x: unexpected", "arguments.limit: expected integer",
// "arguments.ranges[0].start: required", ...); nil means valid.
//
//   - type: object, array, string, integer, number, boolean, null, or a
//     list of these. A bool is never an integer or a number; an integer
//     must be whole (5 and 5.0 are, 5.5 is not). No type accepts anything.
//   - object: required names must be present; with additionalProperties
//     false other names are unexpected; properties are checked
//     recursively. An object schema without properties takes any object.
//   - array: every element is checked against items.
//   - enum: the value must equal one of the listed values (numbers
//     compare by value).
//
// Other keywords (default, description, minimum, ...) are ignored.
// Values are what encoding/json decodes into any (map[string]any, []any,
// string, float64 or json.Number, bool, nil); Go ints are accepted too.
func Validate(schema map[string]any, v any) []string {
	var issues []string
	validate(schema, v, "arguments", &issues)
	if len(issues) > maxIssues {
		issues = issues[:maxIssues]
	}
	return issues
}

func validate(schema map[string]any, v any, path string, issues *[]string) {
	if len(*issues) >= maxIssues || schema == nil {
		return
	}
	add := func(format string, a ...any) { *issues = append(*issues, path+": "+fmt.Sprintf(format, a...)) }

	if types := schemaTypes(schema["type"]); len(types) > 0 {
		matched := ""
		for _, t := range types {
			if hasType(t, v) {
				matched = t
				break
			}
		}
		if matched == "" {
			add("expected %s", strings.Join(types, " or "))
			return
		}
		switch matched {
		case "object":
			validateObject(schema, v.(map[string]any), path, issues)
		case "array":
			if items, ok := schema["items"].(map[string]any); ok {
				for i, x := range v.([]any) {
					validate(items, x, fmt.Sprintf("%s[%d]", path, i), issues)
				}
			}
		}
	}
	if enum, ok := schema["enum"]; ok {
		values, _ := enum.([]any)
		if s, ok := enum.([]string); ok {
			for _, x := range s {
				values = append(values, x)
			}
		}
		if !slices.ContainsFunc(values, func(e any) bool { return sameValue(e, v) }) {
			shown := make([]string, len(values))
			for i, e := range values {
				shown[i] = fmt.Sprint(e)
			}
			add("must be one of %s", strings.Join(shown, ", "))
		}
	}
}

func validateObject(schema map[string]any, m map[string]any, path string, issues *[]string) {
	props, hasProps := schema["properties"].(map[string]any)
	if req, ok := stringList(schema["required"]); ok {
		for _, k := range req {
			if _, ok := m[k]; !ok {
				*issues = append(*issues, path+"."+k+": required")
			}
		}
	}
	if !hasProps && schema["additionalProperties"] != false {
		return // free-form object
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sub, known := props[k].(map[string]any)
		switch {
		case known:
			validate(sub, m[k], path+"."+k, issues)
		case schema["additionalProperties"] == false:
			*issues = append(*issues, path+"."+k+": unexpected")
		}
		if len(*issues) >= maxIssues {
			return
		}
	}
}

func schemaTypes(t any) []string {
	switch t := t.(type) {
	case string:
		return []string{t}
	default:
		l, _ := stringList(t)
		return l
	}
}

func hasType(t string, v any) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := toFloat(v)
		return ok
	case "integer":
		f, ok := toFloat(v)
		return ok && f == math.Trunc(f) && math.Abs(f) < 1<<53
	}
	return true // a type this subset does not know constrains nothing
}

// toFloat reads a JSON number (never a bool).
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case float64:
		return n, !math.IsInf(n, 0) && !math.IsNaN(n)
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	}
	return 0, false
}

func sameValue(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	switch a.(type) {
	case string, bool, nil:
		return a == b
	}
	return false
}

// ArgString returns args[key] if it is a string, else "".
func ArgString(args map[string]any, key string) string {
	s, _ := args[key].(string)
	return strings.TrimSpace(s)
}

// ArgInt returns args[key] as an int, or def when it is absent or not a
// number.
func ArgInt(args map[string]any, key string, def int) int {
	if f, ok := toFloat(args[key]); ok {
		return int(math.Max(math.Min(f, math.MaxInt32), math.MinInt32))
	}
	return def
}

// ArgInts returns the numbers of the list args[key], skipping anything
// else.
func ArgInts(args map[string]any, key string) []int {
	l, _ := args[key].([]any)
	out := make([]int, 0, len(l))
	for _, x := range l {
		if f, ok := toFloat(x); ok {
			out = append(out, int(math.Max(math.Min(f, math.MaxInt32), math.MinInt32)))
		}
	}
	return out
}

// ArgBool returns args[key] if it is a bool, else def.
func ArgBool(args map[string]any, key string, def bool) bool {
	if b, ok := args[key].(bool); ok {
		return b
	}
	return def
}
