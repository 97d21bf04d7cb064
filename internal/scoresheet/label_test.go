package scoresheet

import "testing"

func TestParseLabel(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		no     int
		sub, q string
	}{
		{"3", true, 3, "", "Q3"},
		{" 12.0 ", true, 12, "", "Q12"},
		{"12.00", true, 12, "", "Q12"},
		{"11(1)", true, 11, "1", "Q11_1"},
		{"11（1）", true, 11, "1", "Q11_1"},
		{"１１（２）", true, 11, "2", "Q11_2"},
		{"12-1", true, 12, "1", "Q12_1"},
		{"12_1", true, 12, "1", "Q12_1"},
		{"12a", true, 12, "a", "Q12_a"},
		{"12(a)", true, 12, "a", "Q12_a"},
		{"12A", true, 12, "a", "Q12_a"},
		{"2(1)", true, 2, "1", "Q2_1"},
		{"21", true, 21, "", "Q21"},
		{"999", true, 999, "", "Q999"},
		{"\u30007\u3000", true, 7, "", "Q7"},
		{"", false, 0, "", ""},
		{"0", false, 0, "", ""},
		{"1000", false, 0, "", ""},
		{"12.5", false, 0, "", ""},
		{"12.", false, 0, "", ""},
		{"a12", false, 0, "", ""},
		{"总分", false, 0, "", ""},
		{"12()", false, 0, "", ""},
		{"12(1", false, 0, "", ""},
		{"12-", false, 0, "", ""},
		{"12(一)", false, 0, "", ""},
		{"12 a", false, 0, "", ""},
		{"12(abcdefghi)", false, 0, "", ""},
		{"-3", false, 0, "", ""},
	} {
		l, ok := ParseLabel(tc.in)
		if ok != tc.ok {
			t.Errorf("ParseLabel(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if l.No != tc.no || l.Sub != tc.sub || l.QuestionID() != tc.q {
			t.Errorf("ParseLabel(%q) = %+v id %s, want %d %q %s", tc.in, l, l.QuestionID(), tc.no, tc.sub, tc.q)
		}
	}
	if l, _ := ParseLabel(" 11（1） "); l.Raw != "11（1）" || l.String() != "11(1)" {
		t.Errorf("raw %q string %q", l.Raw, l.String())
	}
}

func TestParseNumber(t *testing.T) {
	for in, want := range map[string]float64{"4": 4, "4.0": 4, "2.5": 2.5, ".5": 0.5, "-1": -1, "1E-3": 0.001, "3.": 3, "0.30000000000000004": 0.3, "36.499999999999993": 36.5, "1e300": 1e300} {
		if got, ok := parseNumber(in); !ok || got != want {
			t.Errorf("parseNumber(%q) = %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", ".", "NaN", "Inf", "1e999", "0x10", "1_0", "4分", "1e", "A"} {
		if got, ok := parseNumber(in); ok {
			t.Errorf("parseNumber(%q) = %v, want not a number", in, got)
		}
	}
}
