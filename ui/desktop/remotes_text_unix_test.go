//go:build unix

package desktop

import (
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// A server's words reach the list, the event log and the notifications
// without the escape sequences it put in them; a connection name that no
// connection here could have makes the server unreachable, saying why.
func TestWhatAServerSaysIsShownCleanAndANameNotAllowedMakesItUnreachable(t *testing.T) {
	const title = "\x1b]0;TITLE\x07\x1b[2J"
	events, _ := fakeSSH(t)
	rec := &recorder{actionable: true}
	remotes := []config.Remote{{Name: "moby", SSH: "agent@moby", Command: "tokentray"}}
	clock := fakeclock.New(time.Now())
	r, _ := runningWith(t, Options{Notifier: rec, Clock: clock}, func(o *service.Options) {
		o.Remotes, o.ControlDir = func() []config.Remote { return remotes }, t.TempDir()
	})
	log, stop := r.Hub().Subscribe()
	defer stop()

	say, hangUp := serverSays(t, events)
	defer hangUp()
	agent := remoteStatus("agent", apitype.StateDegraded, true)
	agent.Status.LastError = "refresh failed: HTTP 503" + title
	agent.Status.Hint = "tokentray retries\x1b]52;c;ZXZpbA==\x07 by itself"
	say(agent, apitype.Event{Type: apitype.EventReady},
		apitype.Event{Type: apitype.EventLog, Connection: "agent", Text: "refresh failed" + title})
	waitUntil(t, func() bool { c, ok := row(r, "agent@moby"); return ok && c.State == apitype.StateDegraded })
	if c, _ := row(r, "agent@moby"); c.LastError != "refresh failed: HTTP 503" || c.Hint != "tokentray retries by itself" {
		t.Fatalf("last error %q, hint %q", c.LastError, c.Hint)
	}
	for line := false; !line; {
		select {
		case e := <-log:
			if line = e.Type == apitype.EventLog && e.Connection == "agent@moby"; line && e.Text != "refresh failed" {
				t.Fatalf("event log line %q", e.Text)
			}
		case <-time.After(time.Minute):
			t.Fatal("the server's log line did not reach the event log")
		}
	}

	say(remoteStatus("ci"+title, apitype.StateConnected, true))
	waitUntil(t, func() bool { c, _ := row(r, "agent@moby"); return c.State == apitype.StateUnreachable })
	c, _ := row(r, "agent@moby")
	if !strings.Contains(c.LastError, `moby: the tokentray there sent a connection name that is not allowed, "ci"`) {
		t.Fatalf("unreachable row: state %s, last error %q", c.State, c.LastError)
	}
	for _, c := range r.Connections() {
		if strings.Contains(c.Name, "ci") {
			t.Fatalf("the name not allowed is listed: %q", c.Name)
		}
	}
	if !clock.BlockUntil(2, 20*time.Second) { // the retry, and the notice
		t.Fatalf("waiting for %d timers, want 2", clock.Waiters())
	}
	clock.Advance(service.DefaultUnreachableNotice)
	waitUntil(t, func() bool { return len(told(rec)) == 1 })
	if m := told(rec)[0]; !strings.Contains(m.Body, "not allowed") || strings.ContainsAny(m.Body, "\x1b\x07") {
		t.Fatalf("unreachable notification %q: %q", m.Title, m.Body)
	}
}
