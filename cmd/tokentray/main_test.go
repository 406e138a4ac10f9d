//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tokentray links what `token NAME` needs and nothing of the core: every
// package linked is initialised on every call of every script, and makes
// the program larger. Nor does it link fmt, encoding/json, net/url, reflect
// or the hashing of client/apitype: a hello world's floor is what it is
// measured against (BenchmarkTokenCommand in internal/e2e). The Windows
// build is held to the same: its pipe client is CreateFile and package
// syscall, never go-winio, x/sys or net.
func TestTokentrayLinksNeitherHTTPNorTheCore(t *testing.T) {
	for _, goos := range []string{"", "windows"} {
		cmd := exec.Command("go", "list", "-deps", ".")
		if goos != "" {
			cmd.Env = append(os.Environ(), "GOOS="+goos)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("GOOS=%s go list: %v\n%s", goos, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if linksTooMuch(dep) {
				t.Errorf("tokentray links %s (GOOS=%s)", dep, goos)
			}
		}
	}
}

func linksTooMuch(dep string) bool {
	switch {
	case dep == "net/http", dep == "net", strings.HasPrefix(dep, "crypto/tls"),
		strings.HasPrefix(dep, "github.com/") && !strings.HasPrefix(dep, "github.com/tokentray/"),
		strings.HasPrefix(dep, "golang.org/x/"), strings.HasPrefix(dep, "fyne.io/"),
		dep == "github.com/tokentray/tokentray/auth", dep == "github.com/tokentray/tokentray/internal/config",
		dep == "github.com/tokentray/tokentray/internal/apiclient",
		dep == "fmt", dep == "encoding/json", dep == "net/url", dep == "reflect", strings.HasPrefix(dep, "crypto/"),
		dep == "github.com/tokentray/tokentray/client/apitype", dep == "github.com/tokentray/tokentray/internal/humanize":
		return true
	}
	return false
}

// Every other command line goes to tokentray-core in this process's place:
// the same pid, arguments (argv[0] too), streams and exit code. Without the
// core beside it or on PATH, it says what to install.
func TestEveryOtherCommandIsTheCores(t *testing.T) {
	dir := t.TempDir()
	front := filepath.Join(dir, "tokentray")
	if out, err := exec.Command("go", "build", "-o", front, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("XDG_RUNTIME_DIR", dir) // nothing listens there
	t.Setenv("PATH", "/usr/bin:/bin")

	cmd := exec.Command(front, "status")
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code != 1 || !strings.Contains(string(out), "tokentray-core") || !strings.Contains(string(out), "go install ./cmd/...") {
		t.Fatalf("without the core: exit %d, %q", code, out)
	}

	// A stand-in core: it tells its pid, $0 and arguments, reads stdin, and
	// exits 4. `token NAME` with nothing running goes to it too.
	core := "#!/bin/sh\necho \"pid=$$ ran=$0 args=$*\"\ncat\nexit 4\n"
	if err := os.WriteFile(filepath.Join(dir, "tokentray-core"), []byte(core), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status", "--json"}, {"token", "procore"}, {}} {
		cmd := exec.Command(front, args...)
		cmd.Stdin = strings.NewReader("from stdin\n")
		var stdout strings.Builder
		cmd.Stdout = &stdout
		err := cmd.Run()
		want := "pid=" + strconv.Itoa(cmd.Process.Pid) + " ran=" + filepath.Join(dir, "tokentray-core") + " args=" + strings.Join(args, " ") + "\nfrom stdin\n"
		if code := exitCode(t, err); code != 4 || stdout.String() != want {
			t.Errorf("%v: exit %d, stdout %q, want exit 4 and %q", args, code, stdout.String(), want)
		}
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	exit, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatal(err)
	}
	return exit.ExitCode()
}
