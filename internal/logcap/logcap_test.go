package logcap

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestWrapCutsEveryValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Wrap(slog.NewJSONHandler(&buf, nil), 64))
	huge := strings.Repeat("名", 1<<20) // 3 MiB
	log.With("pre", huge).WithGroup("g").Info(huge, "s", huge, "err", errors.New(huge),
		"any", []string{huge}, "n", 42, slog.Group("inner", "s", huge))
	line := buf.String()
	if len(line) > 2048 {
		t.Fatalf("log line of %d bytes", len(line))
	}
	for _, want := range []string{`"n":42`, "(3145728 bytes)"} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %q: %s", want, line)
		}
	}
	if !strings.Contains(line, `"pre":"名`) {
		t.Errorf("WithAttrs value not kept: %s", line)
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…(6 bytes)"},
		{"名字", 4, "名…(6 bytes)"}, // never half a rune
	} {
		if got := Cut(c.s, c.max); got != c.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
}
