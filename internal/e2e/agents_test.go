//go:build e2e

package e2e

import (
	"bytes"
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
// the running tray (a whole process: start, ask, print), side by side with
// its floor, a Go hello world started the same way: the two alternate, so
// that both see the same machine (the tray, the OAuth server, the session's
// services, whatever else runs). It reports each one's median and p99 and
// their ratios.
// Run: .ci/desktop-session go test -tags e2e -run XXX -bench TokenCommand -benchtime 400x ./internal/e2e/
func BenchmarkTokenCommand(b *testing.B) {
	h := setup(b)
	hello := buildHelloWorld(b)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.startTray(b, startXvfb(b))
	var token, floor []time.Duration
	for b.Loop() {
		start := time.Now()
		if r := h.runQuiet("", "token", "e2e"); r.code != 0 {
			b.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		token = append(token, time.Since(start))
		// As runQuiet runs tokentray: stdin, stdout and stderr are pipes.
		cmd := exec.Command(hello)
		var out, errb bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &out, &errb
		start = time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		floor = append(floor, time.Since(start))
	}
	b.StopTimer()
	tm, t99 := percentiles(token)
	hm, h99 := percentiles(floor)
	b.ReportMetric(float64(tm.Microseconds()), "median-µs")
	b.ReportMetric(float64(t99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(hm.Microseconds()), "hello-median-µs")
	b.ReportMetric(float64(h99.Microseconds()), "hello-p99-µs")
	b.ReportMetric(float64(tm)/float64(hm), "median-x")
	b.ReportMetric(float64(t99)/float64(h99), "p99-x")
}

// buildHelloWorld builds a Go hello world, the floor of any Go command.
func buildHelloWorld(b *testing.B) string {
	dir := b.TempDir()
	src := filepath.Join(dir, "main.go")
	_ = os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	bin := filepath.Join(dir, "hello")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	return bin
}

// percentiles are the median and the 99th percentile of durations.
func percentiles(durations []time.Duration) (median, p99 time.Duration) {
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	return durations[len(durations)/2], durations[len(durations)*99/100]
}
