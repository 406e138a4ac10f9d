package main

import (
	"os/exec"
	"strings"
	"testing"
)

// tokentray is the resident process and the command every script runs: it
// must link no GUI toolkit (the windows are tokentray-window), so that it
// starts without libGL or X11, builds without cgo, and prints nothing of a
// toolkit in any locale.
func TestTokentrayLinksNoGUIToolkit(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "fyne.io/fyne/") || strings.HasPrefix(dep, "github.com/go-gl/") || dep == "github.com/tokentray/tokentray/ui" {
			t.Errorf("tokentray links %s", dep)
		}
	}
}

func TestTheWindowProcessIsToldThatCUTF8IsEnglish(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"LANG=C.UTF-8"}, "en"},
		{[]string{"LANG=de_DE.UTF-8", "LC_ALL=C.utf8"}, "en"},
		{[]string{"LANG=de_DE.UTF-8"}, ""},
		{[]string{"LANG=C.UTF-8", "LANGUAGE=fr"}, "fr"},
		{[]string{"LANG=C"}, ""}, // plain C the toolkit reads as untranslated already
	} {
		got := ""
		for _, kv := range windowEnv(tc.env) {
			if v, ok := strings.CutPrefix(kv, "LANGUAGE="); ok {
				got = v
			}
		}
		if got != tc.want {
			t.Errorf("%v: LANGUAGE=%q, want %q", tc.env, got, tc.want)
		}
	}
}
