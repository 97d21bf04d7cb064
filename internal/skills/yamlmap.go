package skills

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
)

// The manifests are decoded into generic maps and read through these
// helpers, so that a field may be spelled in snake_case or camelCase (the
// predecessor accepted both) and a wrong type is an error naming the field.

// asMap accepts both forms yaml decodes a mapping to.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[fmt.Sprint(k)] = val
		}
		return out, true
	}
	return nil, false
}

// camel is the camelCase spelling of a snake_case key.
func camel(key string) string {
	parts := strings.Split(key, "_")
	for i := 1; i < len(parts); i++ {
		if r, size := utf8.DecodeRuneInString(parts[i]); size > 0 {
			parts[i] = string(unicode.ToUpper(r)) + parts[i][size:]
		}
	}
	return strings.Join(parts, "")
}

// field returns m's value for key (snake_case, else camelCase).
func field(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok && v != nil {
		return v, true
	}
	if c := camel(key); c != key {
		if v, ok := m[c]; ok && v != nil {
			return v, true
		}
	}
	return nil, false
}

// scalarString is a scalar as text (yaml turns 3 or true into numbers and
// booleans; a keyword "3" is still the string "3").
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(x), true
	}
	return "", false
}

// stringField reads an optional string, cut at maxRunes.
func stringField(m map[string]any, key, where string, maxRunes int) (string, error) {
	v, ok := field(m, key)
	if !ok {
		return "", nil
	}
	s, ok := scalarString(v)
	if !ok {
		return "", fmt.Errorf("%s%s: must be a string", prefix(where), key)
	}
	return textcut.Short(strings.TrimSpace(s), maxRunes), nil
}

// stringsField reads an optional list of strings (a single string is a list
// of one), trimmed, empty items dropped, at most maxItems.
func stringsField(m map[string]any, key, where string, maxItems int) ([]string, error) {
	v, ok := field(m, key)
	if !ok {
		return nil, nil
	}
	return stringList(v, prefix(where)+key, maxItems)
}

func stringList(v any, where string, maxItems int) ([]string, error) {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case string:
		items = []any{x}
	default:
		return nil, fmt.Errorf("%s: must be a list of strings", where)
	}
	if len(items) > maxItems {
		return nil, fmt.Errorf("%s: more than %d items", where, maxItems)
	}
	out := []string{}
	for _, item := range items {
		s, ok := scalarString(item)
		if !ok {
			return nil, fmt.Errorf("%s: must be a list of strings", where)
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, textcut.Short(s, maxItemRunes))
		}
	}
	return out, nil
}

// number reads a number (an int, a float, or a numeric string).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// intField reads an optional integer (a float is truncated), def if absent.
func intField(m map[string]any, key, where string, def int) (int, error) {
	v, ok := field(m, key)
	if !ok {
		return def, nil
	}
	f, ok := number(v)
	if !ok || math.Abs(f) > 1e6 {
		return 0, fmt.Errorf("%s%s: must be a number", prefix(where), key)
	}
	return int(f), nil
}

func floatField(m map[string]any, key, where string, def float64) (float64, error) {
	v, ok := field(m, key)
	if !ok {
		return def, nil
	}
	f, ok := number(v)
	if !ok {
		return 0, fmt.Errorf("%s%s: must be a number", prefix(where), key)
	}
	return f, nil
}

func mapField(m map[string]any, key, where string) (map[string]any, error) {
	v, ok := field(m, key)
	if !ok {
		return map[string]any{}, nil
	}
	sub, ok := asMap(v)
	if !ok {
		return nil, fmt.Errorf("%s%s: must be a mapping", prefix(where), key)
	}
	return sub, nil
}

func prefix(where string) string {
	if where == "" {
		return ""
	}
	return where + "."
}

func clamp[T int | float64](v, lo, hi T) T {
	return min(max(v, lo), hi)
}
