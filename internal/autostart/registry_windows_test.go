package autostart

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// The Run key itself (under Wine in CI, the prefix's registry), under a
// value name of the test's own: a real tokentray entry is left alone.
func TestTheRunKeyEntryRoundTrip(t *testing.T) {
	e := &Entry{ID: "io.tokentray.test", Name: fmt.Sprintf("tokentray-test-%d", time.Now().UnixNano()),
		Args: []string{`C:\Users\Ann Lee\AppData\Local\Programs\tokentray\tokentray-core.exe`, "--minimized"}}
	t.Cleanup(func() { _ = e.Disable() })
	if on, err := e.Enabled(); on || err != nil {
		t.Fatalf("before Enable: %v %v", on, err)
	}
	if err := e.Enable(); err != nil {
		t.Fatal(err)
	}
	if on, err := e.Enabled(); !on || err != nil {
		t.Fatalf("after Enable: %v %v", on, err)
	}
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.QUERY_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	value, kind, err := k.GetStringValue(e.Name)
	if err != nil || kind != registry.SZ || value != RunValue(e.Args) {
		t.Fatalf("the Run key holds %q (type %d, %v), want %q", value, kind, err, RunValue(e.Args))
	}
	if err := e.Disable(); err != nil {
		t.Fatal(err)
	}
	if on, err := e.Enabled(); on || err != nil {
		t.Fatalf("after Disable: %v %v", on, err)
	}
	if err := e.Disable(); err != nil {
		t.Fatalf("disabling what is off: %v", err)
	}
}

// A test binary is a temporary build: it is not registered to start at login.
func TestATemporaryBuildIsNotRegistered(t *testing.T) {
	exe, _ := os.Executable()
	if !strings.Contains(exe, `\go-build`) {
		t.Skipf("%s is not a go build temporary", exe)
	}
	if _, err := ForThisExecutable("io.tokentray.test", "tokentray"); err == nil {
		t.Fatalf("%s was accepted for the Run key", exe)
	}
}

// Windows starts the Run key's command line, and the program splits it
// with the rules of CommandLineToArgvW: it must get back the arguments.
func TestWindowsSplitsTheRunValueBackIntoItsArguments(t *testing.T) {
	for _, args := range [][]string{
		{`C:\Program Files\tokentray\tokentray-core.exe`},
		{`C:\tokentray\tokentray-core.exe`, "--minimized"},
		{`C:\Users\Ann Lee\tokentray.exe`, `--config`, `C:\Users\Ann Lee\My Config\`},
		{`C:\tokentray.exe`, `say "hi"`, `back\"slash`, ""},
	} {
		line := RunValue(args)
		got, err := windows.DecomposeCommandLine(line)
		if err != nil || !slices.Equal(got, args) {
			t.Errorf("RunValue(%q) = %s, which Windows splits into %q (%v)", args, line, got, err)
		}
	}
}
