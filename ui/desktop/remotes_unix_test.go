//go:build unix

package desktop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// fakeSSH puts an `ssh` on PATH that plays a server's tokentray: `events`
// prints what the test writes into a pipe (and ends when the test closes
// it: the connection is lost), `refresh NAME` is noted in a file.
func fakeSSH(t *testing.T, more ...string) (events, calls string) {
	dir := t.TempDir()
	events, calls = filepath.Join(dir, "events"), filepath.Join(dir, "calls")
	if err := syscall.Mkfifo(events, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
for last; do :; done
case "$last" in
*" events") exec cat "` + events + `" ;;
*" refresh "*) echo "$last" >> "` + calls + `"; exit 0 ;;
` + strings.Join(more, "\n") + `
esac
echo "unexpected: $last" >&2
exit 2
`
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return events, calls
}

// serverSays opens the server's side of the event stream (once the
// watcher connects) and writes events to it.
func serverSays(t *testing.T, fifo string) (say func(...apitype.Event), hangUp func()) {
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	return func(es ...apitype.Event) {
			for _, e := range es {
				if err := enc.Encode(e); err != nil {
					t.Fatal(err)
				}
			}
		}, func() {
			f.Close()
		}
}

func remoteStatus(name, state string, usable bool) apitype.Event {
	return apitype.Event{Type: apitype.EventStatus, Connection: name,
		Status: &apitype.Connection{Status: apitype.Status{Name: name, State: state, Usable: usable, HasRefreshToken: true,
			AccessExpiry: time.Now().Add(time.Hour)}, Provider: "procore"}}
}

// told are the titles of the notifications about the server (the test's
// local connection, refused by its provider, has its own).
func told(rec *recorder) []notify.Message {
	var out []notify.Message
	for _, m := range rec.messages() {
		if m.Key != "procore" {
			m.Icon = nil
			out = append(out, m)
		}
	}
	return out
}

func row(r *Resident, name string) (apitype.Connection, bool) {
	for _, c := range r.Connections() {
		if c.Name == name {
			return c, true
		}
	}
	return apitype.Connection{}, false
}

// The resident process follows a [[remote]] server: its connections are
// listed beside the local ones as NAME@REMOTE; one that needs a sign-in is
// notified once, with a Re-authenticate; a server out of reach shows its
// connections unreachable, grey, and is notified once after a while; when
// it answers again, all of it comes back, and a refresh is asked of it.
func TestTheResidentFollowsAServerAndSaysWhenItCannot(t *testing.T) {
	events, calls := fakeSSH(t)
	clock := fakeclock.New(time.Now())
	rec := &recorder{actionable: true}
	// The config file names the server; taken out of the file, the
	// server is let go.
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[[remote]]\nname = \"moby\"\nssh = \"agent@moby\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runningWith(t, Options{Notifier: rec, Clock: clock}, func(o *service.Options) {
		cfg.Connections = o.Config.Connections
		o.Config, o.ControlDir = cfg, t.TempDir()
	})

	say, hangUp := serverSays(t, events)
	say(remoteStatus("agent", apitype.StateConnected, true), apitype.Event{Type: apitype.EventReady})
	waitUntil(t, func() bool {
		c, ok := row(r, "agent@moby")
		return ok && c.State == apitype.StateConnected && c.Remote == "moby"
	})
	if len(told(rec)) != 0 {
		t.Fatalf("a connected server's connection was notified: %+v", told(rec))
	}

	say(remoteStatus("agent", apitype.StateNeedsReauth, false))
	waitUntil(t, func() bool { return len(told(rec)) == 1 })
	m := told(rec)[0]
	if m.Title != "agent@moby: sign-in needed" || m.Action != "Re-authenticate" || !strings.Contains(m.Body, "the tokentray on moby") {
		t.Fatalf("notification %+v", m)
	}
	say(remoteStatus("agent", apitype.StateNeedsReauth, false)) // the same again: no second notification

	// The connection is lost: the row turns unreachable at once, and a
	// person hears of it after UnreachableNotice, once.
	hangUp()
	waitUntil(t, func() bool { c, _ := row(r, "agent@moby"); return c.State == apitype.StateUnreachable })
	lostAt := clock.Now()
	c, _ := row(r, "agent@moby")
	if !c.UnreachableSince.Equal(lostAt) || c.Usable || !strings.Contains(c.LastError, "the connection ended") {
		t.Fatalf("unreachable row %+v", c)
	}
	if len(told(rec)) != 1 {
		t.Fatalf("notified at once of a lost connection: %+v", told(rec))
	}
	if !clock.BlockUntil(2, 20*time.Second) { // the retry, and the notice
		t.Fatalf("waiting for %d timers, want 2", clock.Waiters())
	}
	clock.Advance(service.DefaultUnreachableNotice)
	waitUntil(t, func() bool { return len(told(rec)) == 2 })
	if m := told(rec)[1]; m.Title != "moby cannot be reached since "+lostAt.Format("15:04") || m.Action != "" {
		t.Fatalf("unreachable notification %+v", m)
	}

	// Back: the retry that moving the clock let through connects again.
	say, hangUp = serverSays(t, events)
	defer hangUp()
	say(remoteStatus("agent", apitype.StateConnected, true), apitype.Event{Type: apitype.EventReady})
	waitUntil(t, func() bool { c, _ := row(r, "agent@moby"); return c.State == apitype.StateConnected })
	waitUntil(t, func() bool { return len(told(rec)) == 4 })
	titles := []string{told(rec)[2].Title, told(rec)[3].Title}
	if !strings.Contains(strings.Join(titles, "|"), "agent@moby is connected again") || !strings.Contains(strings.Join(titles, "|"), "moby can be reached again") {
		t.Fatalf("after reconnecting: %q", titles)
	}

	// The menu's (and the API's) refresh is asked of the server.
	r.Refresh("agent@moby")
	if b, _ := os.ReadFile(calls); !strings.HasSuffix(strings.TrimSpace(string(b)), "tokentray refresh agent") {
		t.Fatalf("ssh was asked %q", b)
	}

	// The server is taken out of the config: its rows go.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Fleet().Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := row(r, "agent@moby"); ok {
		t.Fatal("a server no longer in the config is still listed")
	}
}
