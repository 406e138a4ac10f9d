package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTheVersionSaysWhatTheBuildStamped(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "0.7.0", "1a2b3c4d5e6f7a8b9c0d", "2026-11-30T12:00:00Z"
	if got := versionLine(); got != "tokentray 0.7.0 (commit 1a2b3c4d5e6f, built 2026-11-30)" {
		t.Fatalf("%q", got)
	}
	version, commit, date = "", "", ""
	if got := versionLine(); got[:len("tokentray ")] != "tokentray " {
		t.Fatalf("unstamped: %q", got)
	}
}

// Every command has its man page, made from the command itself: what
// --help says is what man says.
func TestEveryCommandHasAManPageMadeFromIt(t *testing.T) {
	dir := t.TempDir()
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"__man", dir}, streams{in: strings.NewReader(""), out: &out, err: &errb}, deps{}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	root := newRootCmd(streams{in: strings.NewReader(""), out: &out, err: &errb}, deps{})
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" {
			continue
		}
		page, err := os.ReadFile(filepath.Join(dir, "tokentray-"+c.Name()+".1"))
		if err != nil {
			t.Fatalf("no man page for %s: %v", c.Name(), err)
		}
		if !strings.Contains(string(page), strings.ReplaceAll(c.Short, "-", "\\-")[:20]) {
			t.Errorf("the man page of %s does not say what its help says (%q)", c.Name(), c.Short)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tokentray-__man.1")); err == nil {
		t.Error("the hidden command has a man page")
	}
}
