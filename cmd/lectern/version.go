package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// versionCmd prints what the Go toolchain stamped into the binary: the
// module version ("(devel)" for a build from a checkout) and, when built
// from a VCS checkout, the revision, its time and whether the tree had
// uncommitted changes.
func versionCmd(args []string, stdout io.Writer) error {
	if len(args) != 0 {
		return fmt.Errorf("version takes no arguments")
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("no build information in this binary")
	}
	writeVersion(stdout, info)
	return nil
}

// writeVersion prints info as "key value" lines; a setting the build did
// not stamp is printed as "unknown".
func writeVersion(w io.Writer, info *debug.BuildInfo) {
	version := info.Main.Version
	if version == "" {
		version = "unknown"
	}
	vcs := map[string]string{"vcs.revision": "unknown", "vcs.time": "unknown", "vcs.modified": "unknown"}
	for _, s := range info.Settings {
		if _, ok := vcs[s.Key]; ok && s.Value != "" {
			vcs[s.Key] = s.Value
		}
	}
	path := info.Main.Path
	if path == "" {
		path = info.Path
	}
	fmt.Fprintf(w, "lectern %s\nmodule %s\nrevision %s\ntime %s\nmodified %s\ngo %s\n",
		version, path, vcs["vcs.revision"], vcs["vcs.time"], vcs["vcs.modified"], info.GoVersion)
}
