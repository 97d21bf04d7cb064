// Package logcap bounds what a log line can carry: user-controlled strings
// (a 60 MB name cell, an upload's file name, an LLM's error body) reach log
// attributes through errors and values, and one of them must never become
// a 60 MB log line. Wrap puts the bound on every record of a handler, so no
// call site has to remember it.
package logcap

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"unicode/utf8"
)

// DefaultMax is the longest attribute value, in bytes, Wrap lets through.
const DefaultMax = 1024

// Wrap returns a handler that passes every record to h with its message
// and each attribute value (strings, errors, anything formatted, inside
// groups too) cut to max bytes; max < 1 means DefaultMax.
func Wrap(h slog.Handler, max int) slog.Handler {
	if max < 1 {
		max = DefaultMax
	}
	return &handler{next: h, max: max}
}

type handler struct {
	next slog.Handler
	max  int
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Cut(r.Message, h.max), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	capped := make([]slog.Attr, len(as))
	for i, a := range as {
		capped[i] = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(capped), max: h.max}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), max: h.max}
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > h.max {
			return slog.String(a.Key, Cut(s, h.max))
		}
	case slog.KindGroup:
		group := v.Group()
		capped := make([]any, len(group))
		for i, g := range group {
			capped[i] = h.attr(g)
		}
		return slog.Group(a.Key, capped...)
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		default:
			s = fmt.Sprintf("%+v", x)
		}
		return slog.String(a.Key, Cut(s, h.max))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Cut returns s if it has at most max bytes, else its first max bytes (at
// a rune boundary) followed by how long s was.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
