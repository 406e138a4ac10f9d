package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Set at build time by the packages (-ldflags "-X main.version=… -X
// main.commit=… -X main.date=…"); otherwise read from what the Go
// toolchain stamps into every build of a git checkout.
var version, commit, date string

// versionLine is what `tokentray --version` prints:
// "tokentray 0.7.0 (commit 1a2b3c4d5e6f, built 2026-11-30)".
func versionLine() string {
	v, c, d, dirty := version, commit, date, false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true" && commit == ""
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += ", modified"
	}
	if t, _, ok := strings.Cut(d, "T"); ok {
		d = t
	}
	var parts []string
	if c != "" {
		parts = append(parts, "commit "+c)
	}
	if d != "" {
		parts = append(parts, "built "+d)
	}
	if len(parts) == 0 {
		return "tokentray " + v
	}
	return fmt.Sprintf("tokentray %s (%s)", v, strings.Join(parts, ", "))
}
