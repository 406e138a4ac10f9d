package desktop

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The shell is a client of the service: every action of the menu and of a
// notification is a service method, and what the service follows (its
// keepers' alerts, the [[remote]] servers over ssh) reaches it as data. A
// shell that reached for the keepers, the fleet or ssh again would be a
// second implementation of an operation.
func TestTheShellIsAClientOfTheService(t *testing.T) {
	forbidden := []string{"internal/fleet", "internal/remote", "internal/op", "internal/localapi"}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, no := range forbidden {
				if strings.HasSuffix(path, "/"+no) {
					t.Errorf("%s imports %s: the shell asks the service (internal/service) instead", e.Name(), path)
				}
			}
		}
	}
	if files < 3 {
		t.Fatalf("looked at %d files", files)
	}
}
