package auth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cliCommandLine matches a command line of tokentray's CLI: a command
// ("tokentray login NAME") or one of its flags.
var cliCommandLine = regexp.MustCompile(`\btokentray(-core)? (login|logout|secret|refresh|token|status|events|exec|serve|demo|proxy-key)\b|(^|[\s("'` + "`" + `])--(paste|device|relay|min-valid|json|config|rotate|no-browser)\b`)

// The core names what a person does next (client/nextstep); each surface
// says it (internal/humanize): no command line of the CLI is written in
// auth, so the dashboard never tells a person to run a command beside its
// own button. Comments may name commands; strings may not.
func TestTheCoreWritesNoCommandLineOfTheCLI(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
			}
			if m := cliCommandLine.FindString(s); m != "" {
				t.Errorf("%s: a command line of the CLI (%q) in %q: name a step (client/nextstep) and let the surface say it", fset.Position(lit.Pos()), strings.TrimSpace(m), s)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source file of auth was read")
	}
}

func TestTheGuardKnowsACommandLineWhenItSeesOne(t *testing.T) {
	for s, want := range map[string]bool{
		"Sign in again with `tokentray login procore`.":          true,
		"run `tokentray secret svc` and paste it":                true,
		"sign in with `tokentray login NAME --paste`":            true,
		"or sign in with a code (--device)":                      true,
		"It fetches its tokens itself: `tokentray refresh":       true,
		"the keyring item was deleted outside tokentray":         false,
		"tokentray retries by itself":                            false,
		"tokentray holds the only copy of the new refresh token": false,
		"a sign-in by pasting needs a terminal to paste into":    false,
	} {
		if got := cliCommandLine.MatchString(s); got != want {
			t.Errorf("%q: matched %t, want %t", s, got, want)
		}
	}
}
