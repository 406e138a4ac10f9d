//go:build unix

package desktop

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// A server taken over answers a sign-in with a URL of its choosing: a
// file: URL naming a desktop entry, javascript:. Nothing is opened; the
// sign-in fails saying why, and a code's page is shown as text, with no
// action that would open it.
func TestAServerCannotMakeTheDesktopOpenAnyURL(t *testing.T) {
	redirect := fmt.Sprintf("http://localhost:%d/callback", freePort(t))
	events, _ := fakeSSH(t,
		`*" login browser --relay "*) echo '{"authorize_url": "file:///tmp/payload.desktop?state=x", "redirect_uri": "`+redirect+`"}'; exec cat >/dev/null ;;`,
		`*" login coded --device --relay"*) echo '{"user_code": "WDJB-MJHT", "verification_uri": "javascript:alert(1)//", "verification_uri_complete": "file:///tmp/payload.desktop?user_code=WDJB-MJHT", "expires_at": "2099-01-01T00:00:00Z"}'; exec cat >/dev/null ;;`)

	var mu sync.Mutex
	var opened []string
	open := func(u string) error { mu.Lock(); opened = append(opened, u); mu.Unlock(); return nil }
	rec := &recorder{actionable: true}
	remotes := []config.Remote{{Name: "moby", SSH: "agent@moby", Command: "tokentray"}}
	r, _ := runningWith(t, Options{Notifier: rec, Clock: fakeclock.New(time.Now()), OpenBrowser: open}, func(o *service.Options) {
		o.Remotes, o.ControlDir, o.OpenBrowser = func() []config.Remote { return remotes }, t.TempDir(), open
	})
	log, stop := r.Hub().Subscribe()
	defer stop()

	say, hangUp := serverSays(t, events)
	defer hangUp()
	coded := remoteStatus("coded", apitype.StateNeedsReauth, false)
	coded.Status.CodeSignIn = true
	say(remoteStatus("browser", apitype.StateNeedsReauth, false), coded, apitype.Event{Type: apitype.EventReady})
	waitUntil(t, func() bool { _, a := row(r, "browser@moby"); _, b := row(r, "coded@moby"); return a && b })

	logged := func(name, says string) {
		t.Helper()
		for {
			select {
			case e := <-log:
				if e.Type == apitype.EventLog && e.Connection == name && strings.Contains(e.Text, says) {
					return
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s: no log line saying %q", name, says)
			}
		}
	}
	r.SignIn("browser@moby")
	logged("browser@moby", `sign-in failed: the sign-in URL the other tokentray sent: "file:///tmp/payload.desktop?state=x" is a file: URL, so it is not opened`)

	r.SignIn("coded@moby")
	logged("coded@moby", "the sign-in page is shown, not opened")
	var code []string
	codes := func() []string { // the notification follows the log line
		code = nil
		for _, m := range told(rec) {
			if strings.HasPrefix(m.Title, "coded@moby: enter the code") {
				if m.Action != "" || m.OnAction != nil {
					t.Fatalf("the code's notification offers to open a page: %+v", m)
				}
				code = append(code, m.Body)
			}
		}
		return code
	}
	waitUntil(t, func() bool { return len(codes()) > 0 })
	if len(code) != 1 || !strings.Contains(code[0], "WDJB-MJHT") {
		t.Fatalf("the code's notifications: %q", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opened) != 0 {
		t.Fatalf("opened: %q", opened)
	}
}
