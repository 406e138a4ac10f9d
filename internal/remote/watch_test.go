package remote

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// script is what one run of `tokentray events` there does: the lines it
// prints, then what ssh says on stderr and its exit code.
type script struct {
	lines  []apitype.Event
	hold   bool // stay connected until the test lets go (release)
	stderr string
	exit   int
}

// fakeRemote answers the watcher's ssh runs with scripts, in turn.
type fakeRemote struct {
	t       *testing.T
	mu      sync.Mutex
	scripts []script
	runs    int
	release chan struct{}
}

func (f *fakeRemote) start(ctx context.Context) *exec.Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.scripts[min(f.runs, len(f.scripts)-1)]
	f.runs++
	var out strings.Builder
	for _, e := range s.lines {
		b, _ := json.Marshal(e)
		out.Write(b)
		out.WriteByte('\n')
	}
	sh := "printf '%s' \"$LINES\"; "
	if s.hold {
		sh += "read _; " // until stdin (the test's pipe) closes
	}
	sh += "printf '%s' \"$ERR\" >&2; exit " + strconv.Itoa(s.exit)
	cmd := exec.CommandContext(ctx, "sh", "-c", sh)
	cmd.Env = []string{"LINES=" + out.String(), "ERR=" + s.stderr}
	if s.hold {
		r, w, err := os.Pipe()
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { r.Close(); w.Close() })
		cmd.Stdin = r
		release := f.release
		go func() {
			<-release
			w.Close()
		}()
	}
	return cmd
}

func status(name, state string, usable bool) *apitype.Connection {
	return &apitype.Connection{Status: apitype.Status{Name: name, State: state, Usable: usable}, Provider: "generic"}
}

// views collects what a watcher shows, for the test to wait on.
type views struct {
	mu    sync.Mutex
	all   []View
	lines []apitype.Event
	ch    chan struct{}
}

func (v *views) changed(view View) {
	v.mu.Lock()
	v.all = append(v.all, view)
	v.mu.Unlock()
	select {
	case v.ch <- struct{}{}:
	default:
	}
}

func (v *views) line(e apitype.Event) {
	v.mu.Lock()
	v.lines = append(v.lines, e)
	v.mu.Unlock()
}

// wait returns the first view (after the ones already seen) that ok accepts.
func (v *views) wait(t *testing.T, seen *int, what string, ok func(View) bool) View {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		v.mu.Lock()
		for ; *seen < len(v.all); *seen++ {
			if ok(v.all[*seen]) {
				got := v.all[*seen]
				*seen++
				v.mu.Unlock()
				return got
			}
		}
		v.mu.Unlock()
		select {
		case <-v.ch:
		case <-deadline:
			t.Fatalf("no view where %s; views: %+v", what, v.all)
		}
	}
}

func TestAWatcherFollowsTheRemoteLosesItAndReconnects(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC))
	f := &fakeRemote{t: t, release: make(chan struct{}), scripts: []script{
		// 1: reached; a live refresh, a log line; then the connection breaks.
		{lines: []apitype.Event{
			{Type: apitype.EventStatus, Connection: "procore", Status: status("procore", apitype.StateConnected, true)},
			{Type: apitype.EventLog, Connection: "procore", Text: "an old line, repeated to every follower"},
			{Type: apitype.EventStatus, Connection: "agent", Status: status("agent", apitype.StateConnected, true)},
			{Type: apitype.EventReady},
			{Type: apitype.EventStatus, Connection: "agent", Kind: "refresh_failed", Text: "refresh failed: invalid_grant",
				Status: status("agent", apitype.StateNeedsReauth, true)},
			{Type: apitype.EventRemoved, Connection: "procore"},
		}, hold: true, stderr: "Connection to moby closed by remote host.", exit: 255},
		// 2: the machine is away.
		{stderr: "ssh: connect to host moby port 22: Connection refused", exit: 255},
		// 4: back.
		{lines: []apitype.Event{
			{Type: apitype.EventStatus, Connection: "agent", Status: status("agent", apitype.StateConnected, true)},
			{Type: apitype.EventReady},
		}, hold: true},
	}}
	var v views
	v.ch = make(chan struct{}, 1)
	w := NewWatcher(Remote{Remote: config.Remote{Name: "moby", SSH: "agent@moby", Command: "tokentray"}}, clock, v.changed, v.line)
	w.start = f.start
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	seen := 0
	first := v.wait(t, &seen, "agent needs a sign-in and procore is gone", func(v View) bool {
		return len(v.Connections) == 1 && v.Connections[0].State == apitype.StateNeedsReauth
	})
	if !first.Reachable || first.Connections[0].Name != "agent@moby" || first.Connections[0].Remote != "moby" {
		t.Fatalf("view %+v", first)
	}
	v.mu.Lock()
	lines := v.lines
	v.mu.Unlock()
	if len(lines) != 1 || lines[0].Connection != "agent@moby" || lines[0].Text != "refresh failed: invalid_grant" {
		t.Fatalf("log lines passed on: %+v (the snapshot's old lines are not, the live one is)", lines)
	}

	close(f.release) // the connection breaks
	lost := v.wait(t, &seen, "moby is unreachable", func(v View) bool { return !v.Reachable })
	c := lost.Connections[0]
	if c.Name != "agent@moby" || c.State != apitype.StateUnreachable || c.Usable || !c.UnreachableSince.Equal(clock.Now()) ||
		!strings.Contains(c.LastError, "moby cannot be reached over ssh: Connection to moby closed") || c.Provider != "generic" {
		t.Fatalf("unreachable row %+v", c)
	}
	since := clock.Now()

	// Retries, later and later (with jitter), each within its bound.
	f.mu.Lock()
	f.release = make(chan struct{})
	f.mu.Unlock()
	for i, bound := range []time.Duration{retryFirst, 2 * retryFirst} {
		if !clock.BlockUntil(1, 10*time.Second) {
			t.Fatalf("retry %d: the watcher waits for nothing", i)
		}
		wait := clock.Deadlines()[0].Sub(clock.Now())
		if wait < bound/2 || wait > bound {
			t.Fatalf("retry %d in %s, want between %s and %s", i, wait, bound/2, bound)
		}
		clock.Advance(wait)
	}
	back := v.wait(t, &seen, "moby is back", func(v View) bool { return v.Reachable })
	if back.Connections[0].State != apitype.StateConnected || back.Error != "" || !back.Since.IsZero() {
		t.Fatalf("view after reconnecting: %+v", back)
	}
	v.mu.Lock()
	for _, view := range v.all[:seen-1] {
		if !view.Reachable && !view.Since.Equal(since) {
			t.Fatalf("unreachable since %s, then %s: it stays the time it was first lost", since, view.Since)
		}
	}
	v.mu.Unlock()
	close(f.release)
}

func TestARemoteNeverReachedIsOneRowThatSaysWhy(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC))
	f := &fakeRemote{t: t, scripts: []script{{stderr: "tokentray: no tokentray is running here: events come from the running one", exit: 1}}}
	var v views
	v.ch = make(chan struct{}, 1)
	w := NewWatcher(Remote{Remote: config.Remote{Name: "moby", SSH: "agent@moby", Command: "tokentray"}}, clock, v.changed, nil)
	w.start = f.start
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	seen := 0
	got := v.wait(t, &seen, "an unreachable row", func(v View) bool { return !v.Reachable })
	if len(got.Connections) != 1 || got.Connections[0].Name != "*@moby" || !strings.Contains(got.Connections[0].LastError, "on moby: no tokentray is running") ||
		!strings.Contains(got.Connections[0].Hint, "ssh agent@moby tokentray status") {
		t.Fatalf("view %+v", got)
	}
	// The same failure again changes nothing on the screen.
	if !clock.BlockUntil(1, 10*time.Second) {
		t.Fatal("no retry is waited for")
	}
	w.Retry()
	// The retry's wait is left behind (a fake clock keeps it); the next
	// failure's wait is the second.
	if !clock.BlockUntil(2, 10*time.Second) {
		t.Fatal("Retry did not try again now")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.all) != 1 {
		t.Fatalf("%d views for one failure seen twice: %+v", len(v.all), v.all)
	}
}
