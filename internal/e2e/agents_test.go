//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTwoHundredAgentsOneRefresh runs 200 `tokentray token` processes at
// once against the running tray while the token needs refreshing: every one
// gets the same valid token and the real server sees exactly one refresh.
func TestTwoHundredAgentsOneRefresh(t *testing.T) {
	h := setup(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.startTray(t, startXvfb(t))
	// The plain call scripts make, once the token is due: the refreshed one
	// then stays good for 18 s, longer than the burst of 200 processes on
	// two cores takes.
	waitDue(obtained(t, "e2e"))
	start, before := time.Now(), h.events.count("grant.success", "refresh_token")

	const n = 200
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.runQuiet("", "token", "e2e")
		}()
	}
	wg.Wait()
	tokens := map[string]int{}
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("agent %d: exit %d: %q", i, r.code, r.stderr)
		}
		tokens[strings.TrimSpace(r.stdout)]++
	}
	h.sync()
	got := h.events.count("grant.success", "refresh_token") - before
	if got < 1 || len(tokens) > got {
		t.Fatalf("%d agents: %d refreshes at the server and %d distinct tokens", n, got, len(tokens))
	}
	if kept(t, start) && (got != 1 || len(tokens) != 1) {
		t.Fatalf("%d agents: %d refreshes at the server and %d distinct tokens; want 1 and 1", n, got, len(tokens))
	}
	t.Logf("%d agents in %s: %d refresh, %d token", n, time.Since(start).Round(time.Millisecond), got, len(tokens))
	if errs := h.events.errors(); len(errs) > 0 {
		t.Fatalf("server errors: %v", errs)
	}
}

// BenchmarkTokenCommand is the latency of `tokentray token NAME` served by
// the running tray (a whole process: start, ask, print), with percentiles.
// Run: .ci/desktop-session go test -tags e2e -run XXX -bench TokenCommand ./internal/e2e/
func BenchmarkTokenCommand(b *testing.B) {
	h := setup(b)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.startTray(b, startXvfb(b))
	var durations []time.Duration
	for b.Loop() {
		start := time.Now()
		if r := h.runQuiet("", "token", "e2e"); r.code != 0 {
			b.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}

// BenchmarkHelloWorldProcess is the floor for BenchmarkTokenCommand: the
// start and exit of a Go hello-world binary on the same machine.
func BenchmarkHelloWorldProcess(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "main.go")
	_ = os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	bin := filepath.Join(dir, "hello")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	var durations []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := exec.Command(bin).Run(); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}

func reportPercentiles(b *testing.B, durations []time.Duration) {
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds()), "p99-µs")
}
