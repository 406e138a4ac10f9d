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
	"syscall"
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
// two references started the same way (the same environment; stdin,
// stdout and stderr pipes, as runQuiet runs tokentray): a Go hello world,
// the floor of any Go command, and internal/bench/tokenfloor, the floor of
// this one (a Go program that only connects to the socket, writes the
// request and reads the answer: no checks, no parsing). The three
// alternate, so that they see the same machine (the tray, the OAuth
// server, the session's services, whatever else runs). All three are
// built as .ci/package builds the shipped tokentray (CGO_ENABLED=0,
// -trimpath, -ldflags "-s -w"). It reports each one's median and p99,
// their ratios (token/hello, floor/hello, token/floor) and each one's
// median of minor page faults (on a virtual machine, where a page fault
// is dear, the most of a short process's cost).
// Run: .ci/desktop-session go test -tags e2e -run XXX -bench TokenCommand -benchtime 1000x ./internal/e2e/
func BenchmarkTokenCommand(b *testing.B) {
	h := setup(b)
	root, _ := filepath.Abs("../..")
	buildAsShipped(b, root, h.bin, "./cmd/tokentray")
	dir := b.TempDir()
	hello := filepath.Join(dir, "hello")
	_ = os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	buildAsShipped(b, root, hello, filepath.Join(dir, "main.go"))
	floor := filepath.Join(dir, "tokenfloor")
	buildAsShipped(b, root, floor, "./internal/bench/tokenfloor")
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.startTray(b, startXvfb(b))
	sock := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "tokentray", "api.sock")
	programs := []struct {
		name string
		argv []string
		runs []time.Duration
		flts []int
	}{
		{name: "token", argv: []string{h.bin, "token", "e2e"}},
		{name: "hello", argv: []string{hello}},
		{name: "floor", argv: []string{floor, sock, "e2e"}},
	}
	for b.Loop() {
		for i := range programs {
			p := &programs[i]
			cmd := exec.Command(p.argv[0], p.argv[1:]...)
			cmd.Env = h.env
			var out, errb bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &out, &errb
			start := time.Now()
			err := cmd.Run()
			p.runs = append(p.runs, time.Since(start))
			if err != nil || out.Len() == 0 {
				b.Fatalf("%s: %v, stdout %q, stderr %q", p.name, err, out.String(), errb.String())
			}
			p.flts = append(p.flts, int(cmd.ProcessState.SysUsage().(*syscall.Rusage).Minflt))
		}
	}
	b.StopTimer()
	tm, t99 := percentiles(programs[0].runs)
	hm, h99 := percentiles(programs[1].runs)
	fm, f99 := percentiles(programs[2].runs)
	b.ReportMetric(float64(tm.Microseconds()), "median-µs")
	b.ReportMetric(float64(t99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(hm.Microseconds()), "hello-median-µs")
	b.ReportMetric(float64(h99.Microseconds()), "hello-p99-µs")
	b.ReportMetric(float64(fm.Microseconds()), "floor-median-µs")
	b.ReportMetric(float64(f99.Microseconds()), "floor-p99-µs")
	b.ReportMetric(float64(tm)/float64(hm), "median-x")
	b.ReportMetric(float64(t99)/float64(h99), "p99-x")
	b.ReportMetric(float64(fm)/float64(hm), "floor-median-x")
	b.ReportMetric(float64(f99)/float64(h99), "floor-p99-x")
	b.ReportMetric(float64(tm)/float64(fm), "over-floor-median-x")
	b.ReportMetric(float64(t99)/float64(f99), "over-floor-p99-x")
	for _, p := range programs {
		sort.Ints(p.flts)
		b.ReportMetric(float64(p.flts[len(p.flts)/2]), p.name+"-faults")
	}
}

// buildAsShipped builds pkg (run in root) to out as .ci/package builds
// tokentray: without cgo, -trimpath, stripped.
func buildAsShipped(b *testing.B, root, out, pkg string) {
	b.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %v\n%s", cmd.Args, err, msg)
	}
}

// percentiles are the median and the 99th percentile of durations.
func percentiles(durations []time.Duration) (median, p99 time.Duration) {
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	return durations[len(durations)/2], durations[len(durations)*99/100]
}
