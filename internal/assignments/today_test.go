package assignments

import "testing"

// The predecessor's specificity table.
func TestSpecificity(t *testing.T) {
	for _, c := range []struct {
		meta  map[string]any
		sid   string
		class string
		want  int
	}{
		{map[string]any{"scope": "student", "student_ids": []any{"s1"}}, "s1", "", 3},
		{map[string]any{"scope": "student", "student_ids": "s2, s3"}, "s1", "", 0},
		{map[string]any{"scope": "class", "class_name": "一班"}, "s1", "一班", 2},
		{map[string]any{"scope": "class", "class_name": "一班"}, "s1", "二班", 0},
		{map[string]any{"scope": "public"}, "s1", "", 1},
		{map[string]any{"student_ids": "s1，s2"}, "s1", "", 3},
		{map[string]any{"student_ids": []any{"s2"}}, "s1", "一班", 0},
		{map[string]any{"class_name": "一班"}, "s1", "一班", 2},
		{map[string]any{"class_name": "一班"}, "s1", "二班", 1},
		{map[string]any{}, "s1", "", 1},
	} {
		if got := specificity(c.meta, c.sid, c.class); got != c.want {
			t.Errorf("%v for %s (%s): %d, want %d", c.meta, c.sid, c.class, got, c.want)
		}
	}
}
