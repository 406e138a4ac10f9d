package remote

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
)

// View is what this machine knows of a remote's connections now.
type View struct {
	Remote string
	// Connections are the remote's connections, named NAME@REMOTE, in its
	// order. While it cannot be reached they are as it last reported them,
	// each in state "unreachable"; before it ever answered, one row
	// "*@REMOTE" says so.
	Connections []apitype.Connection
	// Reachable: its tokentray answers now.
	Reachable bool
	// Since is when it stopped answering (zero while it answers).
	Since time.Time
	// Error says why it cannot be asked.
	Error string
}

// Retry delays of a Watcher: the first after a lost connection, doubled
// after each failure up to the last, with jitter, so that a hundred
// desktops do not knock on a rebooted server at the same second.
const (
	retryFirst = 2 * time.Second
	retryMax   = 30 * time.Second
)

// watchOptions are the ssh options of the watching connection, unless the
// [[remote]]'s ssh_options say otherwise: no prompt (there is no terminal
// to type a passphrase into; keys come from the agent), and a connection
// given up after 20 s (a dead one is noticed within 45 s: alive). It lives as
// long as the watch does, so it is the control connection itself rather
// than a client of a background one: one ssh process per server, not two
// (its sign-ins and refreshes share it while it runs).
var watchOptions = []string{"BatchMode=yes", "ConnectTimeout=20", "ControlPersist=no"}

// Watcher follows a remote's tokentray over one ssh connection, running
// `tokentray events` there: every change of its connections arrives as it
// happens, and nothing is asked while nothing happens. A lost connection
// is tried again, sooner at first, then every 30 s at most.
type Watcher struct {
	Remote Remote
	Clock  auth.Clock
	// Changed is told every new view, one at a time.
	Changed func(View)
	// Line is told the remote's event-log lines that come after it was
	// reached (not the recent ones it repeats to every new follower), with
	// their connection named NAME@REMOTE.
	Line func(apitype.Event)

	// start is `tokentray events` on the remote; tests replace it.
	start func(ctx context.Context) *exec.Cmd

	retry chan struct{}

	mu    sync.Mutex
	order []string                      // the remote's names, in its order
	conns map[string]apitype.Connection // by the remote's name, as reported
	view  View
}

// NewWatcher returns a watcher of r; Run starts it.
func NewWatcher(r Remote, clock auth.Clock, changed func(View), line func(apitype.Event)) *Watcher {
	if clock == nil {
		clock = auth.SystemClock{}
	}
	w := &Watcher{Remote: r, Clock: clock, Changed: changed, Line: line, retry: make(chan struct{}, 1)}
	w.start = func(ctx context.Context) *exec.Cmd { return r.command(ctx, watchOptions, "events") }
	w.view = View{Remote: r.Name}
	return w
}

// Run follows the remote until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	delay := retryFirst
	for {
		reached, err := w.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if reached {
			delay = retryFirst
		}
		w.lost(err)
		wait := delay/2 + rand.N(delay/2+1) // between half of it and all of it
		delay = min(2*delay, retryMax)
		select {
		case <-ctx.Done():
			return
		case <-w.Clock.After(wait):
		case <-w.retry:
		}
	}
}

// View is the view now.
func (w *Watcher) View() View {
	w.mu.Lock()
	defer w.mu.Unlock()
	return cloneView(w.view)
}

// Retry tries a remote that cannot be reached again now, not at its next
// retry: the machine is back from sleep, or a person asked.
func (w *Watcher) Retry() {
	select {
	case w.retry <- struct{}{}:
	default: // one is pending
	}
}

// follow runs `tokentray events` there until it ends, and reports whether
// it got as far as the opening snapshot.
func (w *Watcher) follow(ctx context.Context) (reached bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := w.start(ctx)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return false, err
	}
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second // ssh's own children must not hold the pipes open
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("run ssh for %s: %w", w.Remote.Name, err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	snapshot := map[string]apitype.Connection{}
	var order []string
	var bad error
	for lines.Scan() {
		var e apitype.Event
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			bad = fmt.Errorf("%s: the tokentray there sent %q, not an event; is it a tokentray of this version?", w.Remote.Name, truncate(lines.Text(), 80))
			break
		}
		if err := w.Remote.admit(&e); err != nil {
			bad = err
			break
		}
		if !reached {
			switch e.Type {
			case apitype.EventStatus:
				if e.Status != nil {
					if _, ok := snapshot[e.Connection]; !ok {
						order = append(order, e.Connection)
					}
					snapshot[e.Connection] = *e.Status
				}
			case apitype.EventReady:
				reached = true
				w.reached(order, snapshot)
			}
			continue
		}
		w.event(e)
	}
	if err := lines.Err(); err != nil && bad == nil {
		bad = fmt.Errorf("%s: the event stream broke: %w", w.Remote.Name, err) // a line over 1 MiB
	}
	if bad != nil {
		cancel() // nonsense: end ssh
		_ = cmd.Wait()
		return reached, bad
	}
	// The stream ended: ssh is ending too, and says why.
	err = cmd.Wait()
	switch {
	case err != nil && stderr.Len() > 0:
		return reached, w.Remote.errorOf(err, stderr.String())
	case err != nil:
		return reached, fmt.Errorf("%s: ssh ended: %w", w.Remote.Name, err)
	}
	return reached, fmt.Errorf("%s: the connection ended", w.Remote.Name)
}

// reached takes the opening snapshot as the remote's connections.
func (w *Watcher) reached(order []string, snapshot map[string]apitype.Connection) {
	w.mu.Lock()
	w.order, w.conns = order, snapshot
	w.view.Reachable, w.view.Since, w.view.Error = true, time.Time{}, ""
	w.changedLocked()
}

// event applies one live event.
func (w *Watcher) event(e apitype.Event) {
	w.mu.Lock()
	switch e.Type {
	case apitype.EventStatus:
		if e.Status == nil {
			break
		}
		if _, ok := w.conns[e.Connection]; !ok {
			w.order = append(w.order, e.Connection)
		}
		w.conns[e.Connection] = *e.Status
	case apitype.EventRemoved:
		delete(w.conns, e.Connection)
		w.order = slices.DeleteFunc(w.order, func(n string) bool { return n == e.Connection })
	default:
		w.mu.Unlock()
		w.line(e)
		return
	}
	w.changedLocked()
	w.line(e)
}

// line passes a line of the remote's event log on.
func (w *Watcher) line(e apitype.Event) {
	if w.Line == nil || e.Text == "" {
		return
	}
	name := ""
	if e.Connection != "" {
		name = e.Connection + "@" + w.Remote.Name
	} else {
		e.Text = w.Remote.Name + ": " + e.Text
	}
	w.Line(apitype.Event{Time: e.Time, Type: apitype.EventLog, Connection: name, Text: e.Text})
}

// lost marks the remote unreachable since now (or since it first was).
func (w *Watcher) lost(err error) {
	w.mu.Lock()
	if w.view.Reachable || w.view.Since.IsZero() {
		w.view.Since = w.Clock.Now()
	}
	w.view.Reachable = false
	msg := "cannot be reached"
	if err != nil {
		msg = err.Error()
	}
	if msg == w.view.Error && len(w.view.Connections) > 0 {
		w.mu.Unlock()
		return // tried again, failed the same way: nothing new to show
	}
	w.view.Error = msg
	w.changedLocked()
}

// changedLocked makes the view from what is known, unlocks, and tells.
// Changed is called outside the lock but in order: one Run goroutine
// makes every change.
func (w *Watcher) changedLocked() {
	v := &w.view
	v.Connections = v.Connections[:0:0]
	for _, name := range w.order {
		c := w.conns[name]
		c.Name = name + "@" + w.Remote.Name
		c.Remote = w.Remote.Name
		if c.Next != nil {
			// Its steps are said with the name it has here.
			next := *c.Next
			next.Connection = c.Name
			c.Next = &next
		}
		if !v.Reachable {
			c.State, c.Usable, c.UnreachableSince = apitype.StateUnreachable, false, v.Since
			c.LastError, c.Hint, c.Next = v.Error, unreachableHint(w.Remote), nil
			c.NextRefresh = time.Time{}
		}
		v.Connections = append(v.Connections, c)
	}
	if !v.Reachable && len(v.Connections) == 0 {
		v.Connections = append(v.Connections, w.Remote.Unreachable(v.Since, v.Error))
	}
	out := cloneView(*v)
	w.mu.Unlock()
	if w.Changed != nil {
		w.Changed(out)
	}
}

// Unreachable is the one row that stands for the connections of a remote
// that could not be asked ("*@REMOTE"), since when and why.
func (r Remote) Unreachable(since time.Time, why string) apitype.Connection {
	return apitype.Connection{Status: apitype.Status{Name: "*@" + r.Name, State: apitype.StateUnreachable,
		Remote: r.Name, UnreachableSince: since, LastError: why, Hint: unreachableHint(r)}}
}

// unreachableHint says what a person can do about a remote that cannot be
// asked, and what not to worry about.
func unreachableHint(r Remote) string {
	return "Its tokentray keeps refreshing on its own; tokentray tries again by itself. Check the access: ssh " + r.SSH + " " + r.Remote.Command + " status"
}

func cloneView(v View) View {
	v.Connections = slices.Clone(v.Connections)
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // not inside a character
	}
	return s[:n] + "…"
}

// tailBuffer keeps the last max bytes written to it: what ssh said last.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.b)
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
