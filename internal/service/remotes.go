package service

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/remote"
)

// The [[remote]] servers the desktop's tokentray follows over ssh (the Tray
// role): their connections are listed beside the local ones as
// NAME@REMOTE, their alerts reach the shell as the local ones do, and they
// can be signed in with this machine's browser and refreshed. Their tokens
// stay there.

// DefaultUnreachableNotice is how long a [[remote]] server stays out of
// reach before a person is told, once: a laptop that changes networks or
// a server that reboots is no news.
const DefaultUnreachableNotice = 10 * time.Minute

// remoteCallTimeout bounds a refresh asked of a server.
const remoteCallTimeout = time.Minute

// followed is one [[remote]] server that the service follows.
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

// followsRemotes reports whether this service follows [[remote]] servers:
// the desktop's, with a shell to tell.
func (s *Service) followsRemotes() bool {
	return s.opt.Role == Tray && s.fleet != nil && s.shell != nil
}

// followRemotes follows the config's [[remote]] servers from now on: new
// ones are followed, changed ones followed anew, and gone ones let go.
func (s *Service) followRemotes(ctx context.Context) {
	var want []config.Remote
	if ctx.Err() == nil {
		if s.opt.Remotes != nil {
			want = s.opt.Remotes()
		} else {
			want = s.fleet.Config().Remotes
		}
	}
	rs := &s.remotes
	rs.mu.Lock()
	defer rs.mu.Unlock()
	keep := map[string]bool{}
	for _, rc := range want {
		keep[rc.Name] = true
		if f := rs.byName[rc.Name]; f != nil {
			if reflect.DeepEqual(f.cfg, rc) {
				continue
			}
			s.unfollowLocked(f)
		}
		s.followLocked(ctx, rc)
	}
	for name, f := range rs.byName {
		if !keep[name] {
			s.unfollowLocked(f)
		}
	}
}

func (s *Service) followLocked(ctx context.Context, rc config.Remote) {
	f := &followed{cfg: rc, remote: remote.Remote{Remote: rc, ControlDir: s.opt.ControlDir}, done: make(chan struct{}),
		tracker: alerts.NewTracker(), last: map[string]apitype.Status{}}
	f.watcher = remote.NewWatcher(f.remote, s.opt.Clock,
		func(v remote.View) { s.remoteChanged(ctx, f, v) },
		func(e apitype.Event) { s.hub.Log(e.Connection, e.Text) })
	var wctx context.Context
	wctx, f.cancel = context.WithCancel(ctx)
	s.remotes.byName[rc.Name] = f
	s.remotes.children.Add(1)
	go func() {
		defer s.remotes.children.Done()
		defer close(f.done)
		f.watcher.Run(wctx)
	}()
}

// unfollowLocked lets f go and takes its connections off the list.
func (s *Service) unfollowLocked(f *followed) {
	f.cancel()
	<-f.done
	if f.notice != nil {
		f.notice()
	}
	delete(s.remotes.byName, f.cfg.Name)
	s.hub.SetRemote(f.cfg.Name, nil)
}

// retryRemotes tries every server that cannot be reached again now (the
// machine is back from sleep).
func (s *Service) retryRemotes() {
	s.remotes.mu.Lock()
	defer s.remotes.mu.Unlock()
	for _, f := range s.remotes.byName {
		f.watcher.Retry()
	}
}

// RetryRemote tries server again now (the menu's "Try again now").
func (s *Service) RetryRemote(server string) {
	if f := s.followedNamed(server); f != nil {
		f.watcher.Retry()
	}
}

func (s *Service) followedNamed(server string) *followed {
	s.remotes.mu.Lock()
	defer s.remotes.mu.Unlock()
	return s.remotes.byName[server]
}

// remoteChanged takes a server's new view: its rows on the list, the
// alerts their changes call for, and a notice once it has been out of
// reach for a while.
func (s *Service) remoteChanged(ctx context.Context, f *followed, v remote.View) {
	s.hub.SetRemote(v.Remote, v.Connections)
	now := s.opt.Clock.Now()
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
			s.shell.Alert(a)
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
		wait := s.opt.UnreachableNotice
		go func() {
			select {
			case <-nctx.Done():
				return
			case <-s.opt.Clock.After(wait):
			}
			f.mu.Lock()
			cur := f.watcher.View()
			tell := nctx.Err() == nil && !cur.Reachable && cur.Since.Equal(v.Since)
			f.told = f.told || tell
			f.mu.Unlock()
			if tell {
				s.shell.Unreachable(cur.Remote, cur.Since, cur.Error)
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
	if v.Reachable && told {
		s.shell.Reachable(v.Remote)
	}
}

// remoteConnection splits a remote connection's name (NAME@REMOTE) into
// the server it is followed from and its name there.
func (s *Service) remoteConnection(name string) (*followed, string) {
	c, ok := s.hub.RemoteConnection(name)
	if !ok {
		return nil, ""
	}
	f := s.followedNamed(c.Remote)
	if f == nil {
		return nil, ""
	}
	return f, strings.TrimSuffix(name, "@"+c.Remote)
}

// signInRemote signs name (NAME@REMOTE) in with this machine's browser:
// the server prepares the sign-in and exchanges the code; the browser's
// callback is relayed to it over ssh. One at a time per connection. How
// it goes is told in the event log.
func (s *Service) signInRemote(name string) error {
	f, there := s.remoteConnection(name)
	if f == nil || strings.HasPrefix(name, "*@") {
		return op.Refusal(apitype.CodeUnknownConnection, "no server that this tokentray follows keeps "+quote(name), "")
	}
	rs := &s.remotes
	rs.mu.Lock()
	if rs.signing[name] {
		rs.mu.Unlock()
		s.hub.Log(name, "a sign-in is already waiting for the browser")
		return nil
	}
	rs.signing[name] = true
	rs.children.Add(1)
	rs.mu.Unlock()
	c, _ := s.hub.RemoteConnection(name)
	if c.CodeSignIn {
		s.hub.Log(name, "sign-in with a code started on "+f.cfg.Name)
	} else {
		s.hub.Log(name, "sign-in started on "+f.cfg.Name+": finish it in this machine's browser")
	}
	go func() {
		defer rs.children.Done()
		defer func() {
			rs.mu.Lock()
			delete(rs.signing, name)
			rs.mu.Unlock()
		}()
		var err error
		if c.CodeSignIn {
			// As long as the code is valid (0): a person on a phone may
			// take longer than a browser sign-in's five minutes.
			_, err = f.remote.DeviceLogin(s.running, there, func(code apitype.DeviceSignIn) { s.showCode(name, f.cfg.Name, code) }, 0)
		} else {
			_, err = f.remote.Login(s.running, there, s.opener(), nil, auth.DefaultLoginTimeout)
		}
		if err != nil {
			if s.running.Err() == nil {
				s.hub.Log(name, "sign-in failed: "+err.Error())
			}
			return
		}
		s.hub.Log(name, "signed in: "+f.cfg.Name+" holds the new tokens")
	}()
	return nil
}

// refreshRemote asks the server of name (NAME@REMOTE) to refresh it now;
// a failure is told in the event log too.
func (s *Service) refreshRemote(ctx context.Context, name string) error {
	f, there := s.remoteConnection(name)
	if f == nil {
		return op.Refusal(apitype.CodeUnknownConnection, "no server that this tokentray follows keeps "+quote(name), "")
	}
	if err := f.remote.Refresh(ctx, there, remoteCallTimeout); err != nil {
		s.hub.Log(name, "refresh failed: "+err.Error())
		return op.Refusal(apitype.CodeProviderUnreachable, err.Error(), "")
	}
	return nil
}

// errNoBrowser: the service opens no browser here.
var errNoBrowser = errors.New("no browser can be opened here")

// opener opens a URL in this machine's browser.
func (s *Service) opener() func(string) error {
	if s.opt.OpenBrowser == nil {
		return func(string) error { return errNoBrowser }
	}
	return s.opt.OpenBrowser
}

// showCode tells of the code of a sign-in with a code of name, whose
// tokens keeper keeps: in the event log, and through the shell (a
// notification whose action opens the page).
func (s *Service) showCode(name, keeper string, code apitype.DeviceSignIn) {
	s.hub.Log(name, "sign-in with a code: enter "+code.UserCode+" at "+code.VerificationURI)
	if s.shell != nil {
		s.shell.ShowCode(name, keeper, code)
	}
}

// followAlerts follows each keeper's alerts for the shell, once per
// transition, from before the keepers run (their first events are heard)
// and as the set of keepers changes.
func (s *Service) followAlerts(ctx context.Context) {
	var mu sync.Mutex
	follows := map[*auth.Keeper]context.CancelFunc{}
	follow := func() {
		mu.Lock()
		defer mu.Unlock()
		keep := map[*auth.Keeper]bool{}
		for _, k := range s.fleet.Keepers() {
			keep[k] = true
			if follows[k] == nil {
				kctx, cancel := context.WithCancel(ctx)
				follows[k] = cancel
				// Subscribed here, not in the goroutine: an event right
				// after Start must not pass before anyone listens.
				events, stop := k.Subscribe()
				go s.alerts(kctx, k, events, stop)
			}
		}
		for k, cancel := range follows {
			if !keep[k] {
				cancel()
				delete(follows, k)
			}
		}
	}
	follow()
	s.fleet.OnChange(follow)
}

// alerts turns a keeper's events into the shell's alerts.
func (s *Service) alerts(ctx context.Context, k *auth.Keeper, events <-chan auth.Event, stop func()) {
	go func() {
		<-ctx.Done()
		stop()
	}()
	tracker := alerts.NewTracker()
	if a, ok := tracker.Seed(k.Status(), s.opt.Clock.Now()); ok {
		s.shell.Alert(a)
	}
	for e := range events {
		if a, ok := tracker.Observe(e); ok {
			s.shell.Alert(a)
		}
	}
}
