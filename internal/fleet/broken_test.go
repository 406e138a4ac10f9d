package fleet

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tokentray/tokentray/internal/config"
)

// A table that breaks in a hand edit is told once, the others run on;
// told again when its problems change, or when it breaks again after a
// fix; and a listener that comes later hears of what is broken now.
func TestABrokenTableIsToldOnceAndStopsNoOther(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var told []string
	r.f.OnBroken(func(b config.Broken) { mu.Lock(); told = append(told, b.Label+": "+b.Problems.Error()); mu.Unlock() })
	toldNow := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(told, " | ") }
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(r.path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.f.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	noRedirect := strings.Replace(twoConnections, "redirect_uri = \"http://localhost:9102/callback\"\n", "", 1)
	write(noRedirect)
	if got := strings.Join(r.names(), ","); got != "alpha" {
		t.Fatalf("running %s, want alpha alone", got)
	}
	write(noRedirect + "# an edit elsewhere\n")
	if got := toldNow(); got != `connection "beta": redirect_uri: missing; register http://localhost:8765/callback (or another port) with the provider and set exactly that here` {
		t.Fatalf("told: %s", got)
	}
	write(strings.Replace(noRedirect, `client_id = "b"`, `client_id = ""`, 1))
	if n := strings.Count(toldNow(), "|"); n != 1 {
		t.Fatalf("a change of its problems: told %s", toldNow())
	}
	write(twoConnections)
	if got := strings.Join(r.names(), ","); got != "alpha,beta" {
		t.Fatalf("after the fix: running %s", got)
	}
	write(noRedirect)
	if n := strings.Count(toldNow(), "|"); n != 2 {
		t.Fatalf("broken again: told %s", toldNow())
	}
	var late []string
	r.f.OnBroken(func(b config.Broken) { late = append(late, b.Label) })
	if strings.Join(late, ",") != `connection "beta"` {
		t.Fatalf("a later listener heard %v", late)
	}
}
