package textcut

import "testing"

func TestHeadAndShort(t *testing.T) {
	for _, c := range []struct {
		s           string
		n           int
		head, short string
	}{
		{"牛顿第二定律", 2, "牛顿", "牛顿…"},
		{"牛顿", 2, "牛顿", "牛顿"},
		{"abc", 5, "abc", "abc"},
		{"abc", 0, "", ""},
		{"", 3, "", ""},
	} {
		if got := Head(c.s, c.n); got != c.head {
			t.Errorf("Head(%q, %d) = %q, want %q", c.s, c.n, got, c.head)
		}
		if got := Short(c.s, c.n); got != c.short {
			t.Errorf("Short(%q, %d) = %q, want %q", c.s, c.n, got, c.short)
		}
	}
}
