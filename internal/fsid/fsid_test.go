package fsid

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeMatchesPredecessor(t *testing.T) {
	for _, c := range []struct{ in, prefix, want string }{
		{"main", "session", "session_b28b7af693"},
		{"S001", "student", "student_f4e9cb5df6"},
		{"teacher", "teacher", "teacher"},
		{"高二2403班_武熙语", "student", "高二2403班_武熙语"},
		{"general_2026-02-05", "session", "general_2026-02-05"},
		{"  a/../b c  ", "x", "x_" + "" /* filled below */},
	} {
		got := Safe(c.in, c.prefix)
		if c.in == "  a/../b c  " {
			if !strings.HasPrefix(got, "x_") || len(got) != 12 {
				t.Errorf("%q → %q", c.in, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("Safe(%q, %q) = %q, want %q", c.in, c.prefix, got, c.want)
		}
	}
	if a, b := Safe("", "p"), Safe("", "p"); a == b || !strings.HasPrefix(a, "p_") {
		t.Errorf("empty values: %q %q", a, b)
	}
	for _, in := range []string{"../../etc/passwd", "a\x00b/c", "..", "%2e%2e/x", "/abs/path"} {
		got := Safe(in, "id")
		if strings.ContainsAny(got, "/\\\x00") || got == ".." || got == "." || strings.HasPrefix(got, ".") {
			t.Errorf("Safe(%q) = %q is not a safe component", in, got)
		}
	}
	if got := Component("a//b..c"); got != "a_b_c" {
		t.Errorf("Component = %q", got)
	}
}

// A huge id still makes one bounded, stable, distinct path component.
func TestSafeBoundsLongIDs(t *testing.T) {
	long := strings.Repeat("张", 400)
	a, b := Safe(long, "s"), Safe(long+"x", "s")
	if len(a) > MaxBytes || len(b) > MaxBytes || a == b || Safe(long, "s") != a || !utf8.ValidString(a) {
		t.Fatalf("%q (%d) / %q (%d)", a, len(a), b, len(b))
	}
	if s := strings.Repeat("a", MaxBytes); Safe(s, "x") != s {
		t.Fatal("an id of MaxBytes changed")
	}
}
