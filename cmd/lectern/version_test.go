package main

import (
	"context"
	"io"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"lectern", "version"}, envFrom(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"lectern ", "revision ", "time ", "modified ", "go go1."} {
		if !strings.Contains(out.String(), "\n"+line) && !strings.HasPrefix(out.String(), line) {
			t.Fatalf("version output lacks %q:\n%s", line, out.String())
		}
	}
	if err := run(context.Background(), []string{"lectern", "version", "extra"}, envFrom(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("version with an argument accepted")
	}
}

func TestWriteVersion(t *testing.T) {
	var out strings.Builder
	writeVersion(&out, &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/lectern/lectern", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	want := "lectern v1.2.3\nmodule github.com/lectern/lectern\nrevision 0123abcd\ntime 2026-01-02T03:04:05Z\nmodified true\ngo go1.26.8\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	writeVersion(&out, &debug.BuildInfo{GoVersion: "go1.26.8"})
	if !strings.Contains(out.String(), "lectern unknown\n") || !strings.Contains(out.String(), "revision unknown\n") {
		t.Fatalf("unstamped build: %q", out.String())
	}
}
