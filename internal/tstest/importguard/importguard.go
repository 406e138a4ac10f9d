// Package importguard checks which packages a package's own files import:
// the tests that keep the arrows of the architecture pointing one way (the
// API reaches no operation's parts, the desktop shell no keeper) share it.
package importguard

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Forbid fails t for each import of a package whose path ends in one of
// forbidden ("internal/fleet") by the non-test Go files in dir, saying
// why. It fails too when dir has fewer than min such files: a guard that
// read nothing would pass.
func Forbid(t *testing.T, dir string, min int, why string, forbidden ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, no := range forbidden {
				if strings.HasSuffix(path, "/"+no) {
					t.Errorf("%s imports %s: %s", e.Name(), path, why)
				}
			}
		}
	}
	if files < min {
		t.Fatalf("looked at %d files in %s, want at least %d", files, dir, min)
	}
}
