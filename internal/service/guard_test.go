package service_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// assembly are the parts of the running tokentray that only this package
// puts together: a second assembly is how the tray, serve and the demo
// came to differ before.
var assembly = map[string]bool{
	"fleet.New":       true, // the keepers
	"events.NewHub":   true, // the event stream
	"localapi.Listen": true, // the API's socket
	"localapi.Server": true, // the API
	"localapi.Ports":  true, // the proxy ports
}

// assembled lists where src (a non-test file) makes a part of assembly.
func assembled(fset *token.FileSet, file *ast.File) []string {
	var found []string
	name := func(e ast.Expr) string {
		if u, ok := e.(*ast.UnaryExpr); ok {
			e = u.X
		}
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return ""
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok {
			return ""
		}
		return pkg.Name + "." + sel.Sel.Name
	}
	ast.Inspect(file, func(n ast.Node) bool {
		var what string
		switch n := n.(type) {
		case *ast.CallExpr:
			what = name(n.Fun)
		case *ast.CompositeLit:
			what = name(n.Type)
		}
		if assembly[what] {
			found = append(found, fset.Position(n.Pos()).String()+": "+what)
		}
		return true
	})
	return found
}

func TestOnlyTheServiceAssemblesTheRunningTokentray(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			// The parts themselves, and this package.
			if rel == "internal/service" || rel == "internal/localapi" || rel == "internal/fleet" || rel == "internal/events" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		for _, where := range assembled(fset, f) {
			t.Errorf("%s: only internal/service assembles the running tokentray (service.New with a Role)", where)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("looked at %d files; the walk missed the repository", files)
	}
}

// The guard finds each kind of assembly it looks for.
func TestTheGuardFindsAnAssembly(t *testing.T) {
	src := `package x
func f() {
	h := events.NewHub(clock)
	l, _ := localapi.Listen(path)
	s := &localapi.Server{Backend: h}
	p := localapi.Ports{Server: s}
	fl := fleet.New(cfg, fleet.Options{})
	_, _, _ = l, p, fl
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := assembled(fset, f); len(got) != 5 {
		t.Fatalf("found %v; want the hub, the listener, the server, the ports and the fleet", got)
	}
}

// Imports point one way: no product package under internal/ imports ui/
// (what a person sees is a client of the service, never a part of it). A
// benchmark that draws a reference tray may.
func TestNoProductPackageUnderInternalImportsUI(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(root, path); rel == "internal/bench" || d.Name() == "node_modules" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); p == uiPath || strings.HasPrefix(p, uiPath+"/") {
				t.Errorf("%s imports %s: no product package under internal/ imports ui/", fset.Position(imp.Pos()), p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("looked at %d files; the walk missed internal/", files)
	}
}

const uiPath = "github.com/tokentray/tokentray/ui"
