package remote

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// title retitles and clears a terminal that prints it.
const title = "\x1b]0;TITLE\x07\x1b[2J"

// watch runs a watcher of moby on f until the test ends.
func watch(t *testing.T, f *fakeRemote) *views {
	t.Helper()
	v := &views{ch: make(chan struct{}, 1)}
	w := NewWatcher(Remote{Remote: config.Remote{Name: "moby", SSH: "agent@moby", Command: "tokentray"}},
		fakeclock.New(time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)), v.changed, v.line)
	w.start = f.start
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return v
}

func TestAServerThatSendsANameNotAllowedIsUnreachableAndSaysWhy(t *testing.T) {
	for what, name := range map[string]string{"an escape sequence": "ci" + title, "another server's": "agent@other",
		"an unreachable row's": "*", "none": "", "a path": "../x"} {
		t.Run(what, func(t *testing.T) {
			f := &fakeRemote{t: t, scripts: []script{{lines: []apitype.Event{
				{Type: apitype.EventStatus, Connection: "agent", Status: status("agent", apitype.StateConnected, true)},
				{Type: apitype.EventStatus, Connection: name, Status: status(name, apitype.StateConnected, true)},
				{Type: apitype.EventReady},
			}}}}
			v := watch(t, f)
			seen := 0
			got := v.wait(t, &seen, "moby is unreachable", func(v View) bool { return !v.Reachable })
			if len(got.Connections) != 1 || got.Connections[0].Name != "*@moby" || got.Connections[0].State != apitype.StateUnreachable {
				t.Fatalf("%d rows, the first %q (%s): none of what the server sent is shown, only the one that says why",
					len(got.Connections), got.Connections[0].Name, got.Connections[0].State)
			}
			why := got.Connections[0].LastError
			if !strings.Contains(why, "moby: the tokentray there sent a connection name that is not allowed") || strings.ContainsAny(why, "\x1b\x07") {
				t.Fatalf("why %q", why)
			}
			if name == "agent@other" && !strings.Contains(why, `"agent@other"`) {
				t.Fatalf("why %q does not quote the name", why)
			}
		})
	}
}

func TestEverythingAServerSaysIsCleaned(t *testing.T) {
	agent := status("agent", apitype.StateNeedsReauth, false)
	agent.LastError = "refresh failed: invalid_grant" + title
	agent.Hint = "sign in\nagain\x1b]52;c;ZXZpbA==\x07"
	agent.LastCheck = &apitype.CheckResult{Who: "mallory\u202Egnp.exe", TokenInfo: &apitype.TokenInfo{Scopes: []string{"read" + title}}}
	f := &fakeRemote{t: t, release: make(chan struct{}), scripts: []script{{lines: []apitype.Event{
		{Type: apitype.EventStatus, Connection: "agent", Status: agent},
		{Type: apitype.EventReady},
		{Type: apitype.EventLog, Connection: "agent", Text: "refresh failed" + title + "\n2026-11-28 forged line"},
		{Type: apitype.EventLog, Text: "started" + title},
	}, hold: true}}}
	v := watch(t, f)
	defer close(f.release)
	seen := 0
	got := v.wait(t, &seen, "agent is listed", func(v View) bool { return v.Reachable && len(v.Connections) == 1 })
	c := got.Connections[0]
	if c.LastError != "refresh failed: invalid_grant" || c.Hint != "sign in again" || c.LastCheck.Who != "mallorygnp.exe" ||
		c.LastCheck.TokenInfo.Scopes[0] != "read" {
		t.Fatalf("last error %q, hint %q, who %q, scopes %q", c.LastError, c.Hint, c.LastCheck.Who, c.LastCheck.TokenInfo.Scopes)
	}
	deadline := time.After(20 * time.Second)
	for {
		v.mu.Lock()
		lines := v.lines
		v.mu.Unlock()
		if len(lines) == 2 {
			if lines[0].Text != "refresh failed 2026-11-28 forged line" || lines[1].Text != "moby: started" {
				t.Fatalf("log lines %q, %q", lines[0].Text, lines[1].Text)
			}
			return
		}
		select {
		case <-v.ch:
		case <-deadline:
			t.Fatalf("%d log lines", len(lines))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fakeSSH puts an `ssh` on PATH that prints out and says stderr, and
// exits with code.
func fakeSSH(t *testing.T, out, stderr string, code int) Remote {
	t.Helper()
	bin := t.TempDir()
	for name, text := range map[string]string{"out": out, "err": stderr} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ssh := "#!/bin/sh\ncat \"$(dirname \"$0\")/out\"; cat \"$(dirname \"$0\")/err\" >&2; exit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(ssh), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return Remote{Remote: config.Remote{Name: "moby", SSH: "agent@moby", Command: "tokentray"}, ControlDir: t.TempDir()}
}

func TestAStatusAskedOfAServerIsCheckedAndCleaned(t *testing.T) {
	list := func(name, lastError string) string {
		b, _ := json.Marshal([]apitype.Connection{{Status: apitype.Status{Name: name, State: apitype.StateDegraded, LastError: lastError}, Provider: "generic"}})
		return string(b)
	}
	t.Run("a name not allowed is an error", func(t *testing.T) {
		r := fakeSSH(t, list("ci"+title, ""), "", 0)
		_, err := r.Connections(context.Background(), time.Minute)
		if err == nil || !strings.Contains(err.Error(), "not allowed") || strings.Contains(err.Error(), "\x1b") {
			t.Fatalf("err %q", err)
		}
	})
	t.Run("the strings are cleaned", func(t *testing.T) {
		r := fakeSSH(t, list("agent", "HTTP 503"+title), "", 0)
		conns, err := r.Connections(context.Background(), time.Minute)
		if err != nil || len(conns) != 1 {
			t.Fatalf("%d connections, err %v", len(conns), err)
		}
		if conns[0].Name != "agent@moby" || conns[0].LastError != "HTTP 503" {
			t.Fatalf("%q with last error %q", conns[0].Name, conns[0].LastError)
		}
	})
	t.Run("what it says on stderr is cleaned", func(t *testing.T) {
		r := fakeSSH(t, "", "tokentray: no such connection"+title+"\nsecond line", 2)
		_, err := r.Connections(context.Background(), time.Minute)
		if err == nil || err.Error() != "on moby: no such connection second line" {
			t.Fatalf("err %q", err)
		}
	})
}

func TestASignInWithACodeOnAServerShowsItsWordsCleaned(t *testing.T) {
	r := fakeSSH(t, `{"user_code":"WDJB\u001b]0;T\u0007-MJHT","verification_uri":"https://github.com/login/device\u001b[2J"}`+"\n"+
		`{"name":"gh","state":"connected","last_error":"\u001b]52;c;ZXZpbA==\u0007","endpoints":{},"provider":"github"}`+"\n", "", 0)
	var shown apitype.DeviceSignIn
	c, err := r.DeviceLogin(context.Background(), "gh", func(code apitype.DeviceSignIn) { shown = code }, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if shown.UserCode != "WDJB-MJHT" || shown.VerificationURI != "https://github.com/login/device" || c.LastError != "" {
		t.Fatalf("shown %q at %q; last error %q", shown.UserCode, shown.VerificationURI, c.LastError)
	}
}
