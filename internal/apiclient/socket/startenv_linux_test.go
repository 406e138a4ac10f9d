package socket

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// startEnv reads what os.Getenv reads from the environment a process
// starts with: the first mention of a name, values longer than its
// buffer, empty and missing ones.
func TestStartEnvIsGetenv(t *testing.T) {
	if names := os.Getenv("TT_STARTENV_NAMES"); names != "" {
		for _, name := range strings.Split(names, ",") {
			got, ok := startEnv(name)
			if !ok || got != os.Getenv(name) {
				t.Errorf("startEnv(%q) = %q, %t; os.Getenv %q", name, got, ok, os.Getenv(name))
			}
		}
		return
	}
	long := strings.Repeat("/very/long", 200)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartEnvIsGetenv$", "-test.v")
	cmd.Env = []string{"A=1", "XDG_RUNTIME_DIR=/run/user/1000", "LONG=" + long, "A=2", "EMPTY=", "NOEQUALS", "XDG_RUNTIME_DIR_NOT=x",
		"XDG=y", "TT_STARTENV_NAMES=A,XDG_RUNTIME_DIR,LONG,EMPTY,NOEQUALS,MISSING,XDG,XDG_RUNTIME,LAST", "LAST=" + long + "end"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("%v\n%s", err, out)
	}
}
