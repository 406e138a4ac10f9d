package desktop

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/remote"
	"github.com/tokentray/tokentray/internal/service"
)

// DefaultUnreachableNotice is how long a [[remote]] server stays out of
// reach before a person is told, once: a laptop that changes networks or
// a server that reboots is no news.
const DefaultUnreachableNotice = 10 * time.Minute

// remoteCallTimeout bounds a refresh asked of a server.
const remoteCallTimeout = time.Minute

// followed is one [[remote]] server that the resident process follows.
type followed struct {
	cfg     config.Remote
	remote  remote.Remote
	watcher *remote.Watcher
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the watcher's goroutine (its Changed calls come one at a time).
	tracker *alerts.Tracker
	last    map[string]apitype.Status
	notice  context.CancelFunc // the pending "cannot be reached" notice

	mu   sync.Mutex
	told bool // a person was told it cannot be reached
}

// remotes are the followed servers, by name.
type remotes struct {
	mu       sync.Mutex
	byName   map[string]*followed
	signing  map[string]bool // remote connections being signed in
	children sync.WaitGroup
}

// followRemotes follows the config's [[remote]] servers from now on: new
// ones are followed, changed ones followed anew, and gone ones let go.
func (r *Resident) followRemotes(ctx context.Context) {
	var want []config.Remote
	if r.opt.Remotes != nil {
		want = r.opt.Remotes()
	}
	rs := &r.remotes
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.byName == nil {
		rs.byName, rs.signing = map[string]*followed{}, map[string]bool{}
	}
	keep := map[string]bool{}
	for _, rc := range want {
		keep[rc.Name] = true
		if f := rs.byName[rc.Name]; f != nil {
			if reflect.DeepEqual(f.cfg, rc) {
				continue
			}
			r.unfollowLocked(f)
		}
		r.followLocked(ctx, rc)
	}
	for name, f := range rs.byName {
		if !keep[name] {
			r.unfollowLocked(f)
		}
	}
}

func (r *Resident) followLocked(ctx context.Context, rc config.Remote) {
	f := &followed{cfg: rc, remote: remote.Remote{Remote: rc, ControlDir: r.opt.ControlDir}, done: make(chan struct{}),
		tracker: alerts.NewTracker(), last: map[string]apitype.Status{}}
	f.watcher = remote.NewWatcher(f.remote, r.opt.Clock,
		func(v remote.View) { r.remoteChanged(ctx, f, v) },
		func(e apitype.Event) { r.hub.Log(e.Connection, e.Text) })
	var wctx context.Context
	wctx, f.cancel = context.WithCancel(ctx)
	r.remotes.byName[rc.Name] = f
	r.remotes.children.Add(1)
	go func() {
		defer r.remotes.children.Done()
		defer close(f.done)
		f.watcher.Run(wctx)
	}()
}

// unfollowLocked lets f go and takes its connections off the list.
func (r *Resident) unfollowLocked(f *followed) {
	f.cancel()
	<-f.done
	if f.notice != nil {
		f.notice()
	}
	delete(r.remotes.byName, f.cfg.Name)
	r.hub.SetRemote(f.cfg.Name, nil)
}

// RetryRemotes tries every server that cannot be reached again now (the
// machine is back from sleep).
func (r *Resident) RetryRemotes() {
	r.remotes.mu.Lock()
	defer r.remotes.mu.Unlock()
	for _, f := range r.remotes.byName {
		f.watcher.Retry()
	}
}

// retryRemote tries server again now (the menu's "Try again now").
func (r *Resident) retryRemote(server string) {
	if f := r.followedNamed(server); f != nil {
		f.watcher.Retry()
	}
}

func (r *Resident) followedNamed(server string) *followed {
	r.remotes.mu.Lock()
	defer r.remotes.mu.Unlock()
	return r.remotes.byName[server]
}

// remoteChanged shows a server's new view: its rows on the list, the
// alerts their changes call for, and a notice once it has been out of
// reach for a while.
func (r *Resident) remoteChanged(ctx context.Context, f *followed, v remote.View) {
	r.hub.SetRemote(v.Remote, v.Connections)
	now := r.opt.Clock.Now()
	seen := map[string]apitype.Status{}
	for _, c := range v.Connections {
		seen[c.Name] = c.Status
		if c.State == apitype.StateUnreachable {
			if prev, ok := f.last[c.Name]; ok {
				seen[c.Name] = prev // not knowing is no change
			}
			continue
		}
		var before *apitype.Status
		if prev, ok := f.last[c.Name]; ok {
			before = &prev
		}
		if a, ok := f.tracker.ObserveStatus(before, c.Status, now); ok {
			r.notify(a)
		}
	}
	f.last = seen
	// The notice's goroutine and this one decide under f.mu, so that a
	// server back at the last moment is told of either way, never both.
	f.mu.Lock()
	told := f.told
	switch {
	case !v.Reachable && f.notice == nil && !told:
		nctx, cancel := context.WithCancel(ctx)
		f.notice = cancel
		wait := r.opt.UnreachableNotice
		go func() {
			select {
			case <-nctx.Done():
				return
			case <-r.opt.Clock.After(wait):
			}
			f.mu.Lock()
			cur := f.watcher.View()
			tell := nctx.Err() == nil && !cur.Reachable && cur.Since.Equal(v.Since)
			f.told = f.told || tell
			f.mu.Unlock()
			if tell {
				r.tellUnreachable(cur)
			}
		}()
	case v.Reachable:
		if f.notice != nil {
			f.notice()
			f.notice = nil
		}
		f.told = false
	}
	f.mu.Unlock()
	if v.Reachable {
		if told {
			r.send(notify.Message{Key: "remote:" + v.Remote, Title: v.Remote + " can be reached again", Icon: assets.TrayGreen,
				Body: "tokentray follows its connections again."}, "")
		}
	}
}

// tellUnreachable tells a person, once per outage, that a server has been
// out of reach for a while, and what that does and does not mean.
func (r *Resident) tellUnreachable(v remote.View) {
	since := v.Since.In(r.opt.Clock.Now().Location()).Format("15:04")
	r.send(notify.Message{Key: "remote:" + v.Remote, Title: v.Remote + " cannot be reached since " + since, Icon: assets.TrayGrey,
		Body: "Its tokentray keeps refreshing its connections on its own and runs its on_alert there; this desktop cannot show them or sign them in until it answers again. tokentray tries again by itself.\n" + v.Error}, "")
}

// remoteConnection splits a remote connection's name (NAME@REMOTE) into
// the server it is followed from and its name there.
func (r *Resident) remoteConnection(name string) (*followed, string) {
	c, ok := r.hub.RemoteConnection(name)
	if !ok {
		return nil, ""
	}
	f := r.followedNamed(c.Remote)
	if f == nil {
		return nil, ""
	}
	return f, strings.TrimSuffix(name, "@"+c.Remote)
}

// signInRemote signs name (NAME@REMOTE) in with this machine's browser:
// the server prepares the sign-in and exchanges the code; the browser's
// callback is relayed to it over ssh. One at a time per connection.
func (r *Resident) signInRemote(name string) bool {
	f, there := r.remoteConnection(name)
	if f == nil || strings.HasPrefix(name, "*@") {
		return false
	}
	rs := &r.remotes
	rs.mu.Lock()
	if rs.signing[name] {
		rs.mu.Unlock()
		r.hub.Log(name, "a sign-in is already waiting for the browser")
		return true
	}
	rs.signing[name] = true
	rs.children.Add(1)
	rs.mu.Unlock()
	remote, _ := r.hub.RemoteConnection(name)
	if remote.CodeSignIn {
		r.hub.Log(name, "sign-in with a code started on "+f.cfg.Name)
	} else {
		r.hub.Log(name, "sign-in started on "+f.cfg.Name+": finish it in this machine's browser")
	}
	go func() {
		defer rs.children.Done()
		defer func() {
			rs.mu.Lock()
			delete(rs.signing, name)
			rs.mu.Unlock()
		}()
		open := r.opener()
		var err error
		if remote.CodeSignIn {
			// As long as the code is valid (0): a person on a phone may
			// take longer than a browser sign-in's five minutes.
			_, err = f.remote.DeviceLogin(r.ctx, there, func(code apitype.DeviceSignIn) { r.showCode(name, f.cfg.Name, code, open) }, 0)
		} else {
			_, err = f.remote.Login(r.ctx, there, open, nil, auth.DefaultLoginTimeout)
		}
		if err != nil {
			if r.ctx.Err() == nil {
				r.hub.Log(name, "sign-in failed: "+err.Error())
			}
			return
		}
		r.hub.Log(name, "signed in: "+f.cfg.Name+" holds the new tokens")
	}()
	return true
}

// opener opens a URL in this machine's browser.
func (r *Resident) opener() func(string) error {
	if r.opt.OpenBrowser == nil {
		return func(string) error { return fmt.Errorf("no browser can be opened here") }
	}
	return r.opt.OpenBrowser
}

// showCode tells a person the code of a sign-in with a code (a server's,
// or one kept here: keeper names who keeps the tokens): a notification
// whose action opens the page (with the code in it, where the provider
// offers that) in this machine's browser.
func (r *Resident) showCode(name, keeper string, code apitype.DeviceSignIn, open func(string) error) {
	page := code.VerificationURI
	if code.VerificationURIComplete != "" {
		page = code.VerificationURIComplete
	}
	r.hub.Log(name, "sign-in with a code: enter "+code.UserCode+" at "+code.VerificationURI)
	msg := notify.Message{Key: name, Title: name + ": enter the code " + code.UserCode,
		Body: "To sign " + name + " in, open " + code.VerificationURI + " on any device and enter " + code.UserCode + ". " + keeper + " keeps the tokens."}
	// The page comes from the provider, through a server: a notification
	// offers to open only a web page; anything else stays text, with why.
	if err := auth.CheckBrowserURL(page); err != nil {
		r.hub.Log(name, "the sign-in page is shown, not opened: "+err.Error())
	} else {
		msg.Action, msg.OnAction = "Open the page", func() {
			if err := open(page); err != nil {
				r.hub.Log(name, "the page could not be opened: "+err.Error())
			}
		}
	}
	r.send(msg, name)
}

// refreshRemote asks the server of name (NAME@REMOTE) to refresh it now.
func (r *Resident) refreshRemote(ctx context.Context, name string) (bool, error) {
	f, there := r.remoteConnection(name)
	if f == nil {
		return false, nil
	}
	if err := f.remote.Refresh(ctx, there, remoteCallTimeout); err != nil {
		r.hub.Log(name, "refresh failed: "+err.Error())
		return true, err
	}
	return true, nil
}

// RemoteActions are what the local API may do with the servers'
// connections: sign them in with this machine's browser, and refresh them.
func (r *Resident) RemoteActions() service.Remotes { return remoteActions{r} }

type remoteActions struct{ r *Resident }

func (a remoteActions) SignIn(name string) { a.r.signInRemote(name) }

func (a remoteActions) Refresh(ctx context.Context, name string) error {
	ok, err := a.r.refreshRemote(ctx, name)
	if !ok {
		return fmt.Errorf("no server keeps %s", name)
	}
	return err
}
