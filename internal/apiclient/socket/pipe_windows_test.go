package socket

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

// The pipe's name holds the user's SID: Windows' own socket path gives
// \\.\pipe\tokentray-<SID>, which the README names; another path (a
// test's, XDG_RUNTIME_DIR's) gives a name of its own, the same however
// the path's letters are cased, as Windows' paths are.
func TestThePipesNameIsTheUsersAndThePaths(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	sid, err := userSID()
	if err != nil || !strings.HasPrefix(sid, "S-1-") {
		t.Fatalf("the user's SID: %q, %v", sid, err)
	}
	own, err := PipeName(Path())
	if err != nil || own != `\\.\pipe\tokentray-`+sid {
		t.Fatalf("the pipe of Windows' own path %s: %q, %v", Path(), own, err)
	}
	dir := tempdir.New(t)
	other, _ := PipeName(filepath.Join(dir, "api.sock"))
	upper, _ := PipeName(strings.ToUpper(filepath.Join(dir, "api.sock")))
	second, _ := PipeName(filepath.Join(dir, "second.sock"))
	if !strings.HasPrefix(other, own+"-") || upper != other || second == other {
		t.Fatalf("pipes of other paths: %q, upper case %q, another %q", other, upper, second)
	}
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if p, _ := PipeName(Path()); p == own || !strings.HasPrefix(p, own+"-") {
		t.Fatalf("with XDG_RUNTIME_DIR, the pipe is %q; want one of that path's own", p)
	}
}

// Nobody serves the pipe: the front program hears "not running", and
// leaves the work to the whole CLI.
func TestNoPipeIsNotRunning(t *testing.T) {
	_, err := Dial(filepath.Join(tempdir.New(t), "api.sock"), 0)
	if err == nil || !IsNotRunning(err) {
		t.Fatalf("Dial with no pipe: %v; want an error that IsNotRunning", err)
	}
}
