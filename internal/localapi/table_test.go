package localapi_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The API is a table of handlers over its Backend: it decodes, encodes and
// maps errors to status codes. The operations live in the service, so this
// package reaches none of what they are made of (the keepers' fleet, the
// config, the event hub, the service itself): a second implementation of
// an operation here would need one of them.
func TestTheAPIIsATableOfHandlersOverItsBackend(t *testing.T) {
	forbidden := []string{"internal/fleet", "internal/config", "internal/events", "internal/service", "internal/humanize"}
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
					t.Errorf("%s imports %s: an operation belongs to internal/service, the API only calls it", e.Name(), path)
				}
			}
		}
	}
	if files < 5 {
		t.Fatalf("looked at %d files", files)
	}
}
