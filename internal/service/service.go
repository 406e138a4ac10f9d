// Package service is the running tokentray, assembled once: the keepers of
// the configured connections (internal/fleet), the event hub and the local
// API (internal/localapi), the on_alert hooks, the export files, the proxy
// ports, and the watches of the config file and of the machine's resume
// from suspend. The tray, `tokentray serve` and the demo are roles of it,
// chosen by Options.Role; what a person sees of the tray (its menu, its
// notifications, its windows) is a Shell, given to Start.
//
// While a Service runs, its keepers are the only refreshers of their
// connections: every other process asks it over the local API.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/events"
	"github.com/tokentray/tokentray/internal/export"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/hook"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/proxy"
)

// Role is what the running tokentray is for.
type Role int

const (
	// Tray is the desktop's tokentray: a Shell shows it (the tray icon,
	// notifications, windows), the browser opens here, and the config
	// file can be edited through the API.
	Tray Role = iota + 1
	// Serve is `tokentray serve` on a server: no Shell, no browser (a
	// sign-in is pasted or made with a code, or relayed from a desktop),
	// its log says what happens, and the API must be served.
	Serve
	// Demo runs the embedded demo provider's one connection, from memory:
	// no config file to edit or watch.
	Demo
)

// Options configure a Service.
type Options struct {
	Role   Role
	Config *config.Config
	// Store keeps the tokens and client secrets (the config's choice; the
	// demo's is in memory).
	Store  auth.Store
	Locker auth.Locker
	Clock  auth.Clock
	Log    *slog.Logger
	// OpenBrowser opens a sign-in page; nil: none opens here.
	OpenBrowser func(string) error
	// ShowURL shows a sign-in's address besides (the demo's terminal).
	ShowURL func(string)
	// SocketPath is where the local API is served; "" serves none (tests
	// of a shell).
	SocketPath string
	// NewKeeper replaces the keepers built from the options above (tests
	// and the demo hold theirs).
	NewKeeper func(conn *config.Resolved) *auth.Keeper
	// Remotes are the [[remote]] servers the Tray role follows (asked again
	// at each change of the config); nil: the config's.
	Remotes func() []config.Remote
	// ControlDir holds the ssh control sockets of the remotes (private to
	// the user: the local API's socket directory).
	ControlDir string
	// UnreachableNotice is how long a remote stays out of reach before the
	// shell is told (DefaultUnreachableNotice when zero).
	UnreachableNotice time.Duration
	// Keepers, when set, are the connections served instead of the
	// config's, for a command's one-shot service and tests: Start serves
	// them but runs none, no file is watched and no config can be edited.
	Keepers []*auth.Keeper
}

// Shell is what a person sees of the running tokentray: the tray's menu,
// notifications and windows. Serve has none. The service tells it what
// happened as data; the shell chooses the words.
type Shell interface {
	// Problem tells a person about a problem of the app itself, or of one
	// connection that is not an alert of its keeper.
	Problem(text string)
	// ShowDashboard brings the dashboard up (a second start).
	ShowDashboard()
	// ShowEditor opens the editor of the connection called name (a
	// tokentray://edit/NAME link).
	ShowEditor(name string)
	// Resumed is called when the machine is back from suspend, after
	// every keeper was woken.
	Resumed()
	// Alert tells a person of a connection's alert (of a keeper here, or
	// of a [[remote]] server's connection), once per transition.
	Alert(a alerts.Alert)
	// ShowCode shows the code of a sign-in with a code of name, whose
	// tokens keeper keeps ("tokentray", or the server's name).
	ShowCode(name, keeper string, code apitype.DeviceSignIn)
	// Unreachable tells that a [[remote]] server has been out of reach
	// since since (for reason), once per outage, after UnreachableNotice;
	// Reachable, that it answers again after that was told.
	Unreachable(server string, since time.Time, reason string)
	Reachable(server string)
}

// Service is the running tokentray.
type Service struct {
	opt   Options
	fleet *fleet.Fleet // nil: Options.Keepers
	hub   *events.Hub
	hooks *hook.Runner
	shell Shell
	proxy *proxy.Proxy // the API calls sent with a connection's token

	// running is the context Start was given: what the service starts
	// on its own (a remote sign-in) ends with it.
	running context.Context
	remotes remotes

	mu      sync.Mutex
	pastes  map[string]*pasteSignIn  // sign-ins waiting for a pasted address, by connection
	devices map[string]*deviceSignIn // sign-ins with a code waiting for a person, by connection
	// served receives the API's end if it stops before the service;
	// apiDone is closed once it has stopped. Both nil when the API is not
	// served.
	served  chan error
	apiDone chan struct{}
}

// MaxSleep is how long a keeper of the running tokentray sleeps at most
// between looks at the wall clock: the resume watch wakes them after a
// suspend, so an idle keeper wakes only when something is due.
const MaxSleep = 24 * time.Hour

// configLookInterval is how often the config file is looked at where its
// directory cannot be watched (it does not exist yet).
const configLookInterval = 10 * time.Second

// New assembles the running tokentray for o.Config; Start runs it.
func New(o Options) *Service {
	if o.Clock == nil {
		o.Clock = auth.SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Locker == nil {
		o.Locker = &auth.ProcessLocker{}
	}
	if o.Role == Serve {
		o.OpenBrowser = nil // a server has no browser: a sign-in is pasted, made with a code or relayed
	}
	s := &Service{opt: o, hooks: &hook.Runner{Log: o.Log}, hub: events.NewHub(o.Clock), proxy: &proxy.Proxy{Clock: o.Clock},
		pastes: map[string]*pasteSignIn{}, devices: map[string]*deviceSignIn{}, running: context.Background(),
		remotes: remotes{byName: map[string]*followed{}, signing: map[string]bool{}}}
	if s.opt.UnreachableNotice <= 0 {
		s.opt.UnreachableNotice = DefaultUnreachableNotice
	}
	if c, ok := o.Store.(alerts.Claimer); ok {
		s.hooks.Claim = s.claimAlert(c)
	}
	if o.Keepers != nil {
		s.hub.SetKeepers(o.Keepers)
		return s
	}
	newKeeper := o.NewKeeper
	if newKeeper == nil {
		newKeeper = func(conn *config.Resolved) *auth.Keeper {
			ko := KeeperOptions(conn, s.keeperBase())
			ko.OnlyHolder = true // while it runs, every token comes from it
			ko.MaxSleep = MaxSleep
			return auth.NewKeeper(conn.Auth, ko)
		}
	}
	fo := fleet.Options{Store: o.Store, Log: o.Log, NewKeeper: newKeeper,
		Started: func(ctx context.Context, k *auth.Keeper, conn *config.Resolved) {
			hook.Watch(ctx, k, conn.AlertCommand, s.hooks)
		},
	}
	if o.Role == Tray {
		// The editor's test sign-ins open this desktop's browser.
		fo.NewTestKeeper = func(conn *auth.Connection, store auth.Store) *auth.Keeper {
			return auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}, Clock: o.Clock, Logger: o.Log, OpenBrowser: o.OpenBrowser})
		}
	}
	s.fleet = fleet.New(o.Config, fo)
	// The hub follows the set of keepers before anything else does: a
	// listener registered later sees the hub up to date.
	follow := func() { s.hub.SetKeepers(s.fleet.Keepers()) }
	follow()
	s.fleet.OnChange(follow)
	return s
}

// keeperBase are the options every keeper of this tokentray shares.
func (s *Service) keeperBase() auth.KeeperOptions {
	o := s.opt
	return auth.KeeperOptions{Store: o.Store, Locker: o.Locker, Clock: o.Clock, Logger: o.Log, OpenBrowser: o.OpenBrowser, ShowURL: o.ShowURL}
}

// KeeperOptions are base with what conn's table adds: its export file,
// written at every new token set; and, with a store that several machines
// share, this machine's name among them, as the store was opened with it.
// Every keeper, of a running tokentray or of a command that works in its
// own process, is made with them.
func KeeperOptions(conn *config.Resolved, base auth.KeeperOptions) auth.KeeperOptions {
	o := base
	if s, ok := o.Store.(interface{ Instance() string }); ok && o.Instance == "" {
		o.Instance = s.Instance()
	}
	if path := conn.ExportFile; path != "" {
		log, name, apiBase := o.Logger, conn.Auth.Name, conn.Auth.Endpoints.APIBase
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		o.OnTokens = func(t *auth.TokenSet) {
			if err := export.Write(path, t, apiBase); err != nil {
				log.Error("export file not written", "connection", name, "err", err)
			}
		}
	}
	return o
}

// OneShot is a service over keepers, for a command that finds no
// tokentray running: the same operations, in this process, with nothing
// started (no API, watches, hooks, ports or followers).
func OneShot(o Options, keepers ...*auth.Keeper) *Service {
	o.Keepers = keepers
	return New(o)
}

// Fleet is the set of keepers, which follows the config; nil for a
// service over fixed keepers.
func (s *Service) Fleet() *fleet.Fleet { return s.fleet }

// Hub is the event stream the local API serves.
func (s *Service) Hub() *events.Hub { return s.hub }

// Role is what this tokentray is for.
func (s *Service) Role() Role { return s.opt.Role }

// Clock is the service's clock.
func (s *Service) Clock() auth.Clock { return s.opt.Clock }

// Log is the service's log.
func (s *Service) Log() *slog.Logger { return s.opt.Log }

// Editable reports whether connections can be added and edited: a config
// file runs (not the demo's).
func (s *Service) Editable() bool { return s.fleet != nil && s.opt.Role != Demo }

// Keeper is the keeper of the connection called name, or nil.
func (s *Service) Keeper(name string) *auth.Keeper {
	for _, k := range s.keepers() {
		if k.Connection().Name == name {
			return k
		}
	}
	return nil
}

// ErrAPINotServed is Start's error when the local API cannot be served:
// only the role that must serve it (Serve) fails with it; the others run
// without, and Served says so.
var ErrAPINotServed = errors.New("the local API is not served")

// Start runs the service until ctx ends: the API first (for Serve, a
// socket that cannot be served is an error, and nothing is started), then
// the keepers, the hooks, the proxy ports, the resume and config watches.
// shell is what a person sees (nil for none). Listeners of the fleet
// registered before Start hear the keepers' first events.
func (s *Service) Start(ctx context.Context, shell Shell) error {
	s.shell, s.running = shell, ctx
	api := &localapi.Server{Backend: s}
	var apiErr error
	if s.opt.SocketPath != "" {
		l, err := localapi.Listen(s.opt.SocketPath)
		if err != nil {
			if s.opt.Role == Serve {
				return fmt.Errorf("%w: %w", ErrAPINotServed, err)
			}
			apiErr = err
		} else {
			if err := localapi.SocketError(l); err != nil {
				s.opt.Log.Info("the local API is served on its named pipe only: its AF_UNIX socket could not be made (curl --unix-socket cannot reach it)", "err", err)
			}
			s.served, s.apiDone = make(chan error, 1), make(chan struct{})
			go func() {
				defer close(s.apiDone)
				if err := api.Serve(ctx, l); err != nil || ctx.Err() == nil {
					s.served <- err
				}
			}()
		}
	}
	if s.fleet == nil {
		return nil // fixed keepers: served, not run
	}
	if s.shell != nil {
		s.followAlerts(ctx) // before the keepers run: their first events are heard
	}
	if s.followsRemotes() {
		s.followRemotes(ctx)
		s.fleet.OnChange(func() { s.followRemotes(ctx) })
	}
	s.fleet.Start(ctx)
	if w, ok := s.opt.Store.(auth.StoreWatcher); ok {
		// A shared store: the tokens another instance commits are handed
		// out here at once.
		go w.WatchTokens(ctx, func(name string) { s.storeChanged(ctx, name) })
	}
	if apiErr != nil {
		// Another tokentray serves it (a demo beside the tray): this one
		// runs without.
		s.opt.Log.Error(ErrAPINotServed.Error(), "err", apiErr)
	}
	s.tellBroken(ctx)
	if s.served != nil {
		s.servePorts(ctx, api)
	}
	if s.opt.Role == Serve {
		go s.logEvents(ctx)
	}
	watchResume(ctx, func() {
		for _, k := range s.fleet.Keepers() {
			k.Wake()
		}
		s.retryRemotes()
		if s.shell != nil {
			s.shell.Resumed()
		}
	}, s.opt.Log)
	if s.Editable() {
		s.fleet.Watch(ctx, configLookInterval, func(err error) {
			s.problem("", fmt.Sprintf("the config file was changed but not applied: %v", err))
		})
	}
	return nil
}

// Served reports whether the local API is served.
func (s *Service) Served() bool { return s.served != nil }

// APIStopped receives the API's error if it stops before the service
// does; nil (never ready) when it is not served.
func (s *Service) APIStopped() <-chan error { return s.served }

// Wait returns once every keeper and the API have stopped (after the
// context given to Start ended): a refresh in flight is saved first.
func (s *Service) Wait() {
	if s.fleet != nil {
		s.fleet.Wait()
	}
	s.remotes.children.Wait()
	if s.apiDone != nil {
		<-s.apiDone
	}
	s.hub.Close()
}

// problem tells of a problem of the app, or of connection's: to the shell
// where there is one, else to the log.
func (s *Service) problem(connection, text string) {
	if s.shell != nil {
		if connection != "" {
			text = connection + ": " + text
		}
		s.shell.Problem(text)
		return
	}
	if connection != "" {
		s.opt.Log.Error(text, "connection", connection)
		return
	}
	s.opt.Log.Error(text)
}

// logEvents writes what happens to the connections to the log, a line each
// (the keepers log their state changes and failures themselves).
func (s *Service) logEvents(ctx context.Context) {
	events, stop := s.hub.Subscribe()
	go func() {
		<-ctx.Done()
		stop()
	}()
	for e := range events {
		if e.Text == "" || e.Kind == string(auth.EventState) {
			continue
		}
		attrs := []any{"connection", e.Connection}
		if e.Kind != "" {
			attrs = append(attrs, "kind", e.Kind)
		}
		if e.Status != nil {
			attrs = append(attrs, "state", e.Status.State)
		}
		s.opt.Log.Info(e.Text, attrs...)
	}
}

// claimAlert is the hooks' Claim with a shared store: on_alert runs once
// for every instance, on the one that claims the alert's occurrence
// first. A claim that cannot be made (the database is away) runs it here
// all the same: an alert told twice beats one never told.
func (s *Service) claimAlert(c alerts.Claimer) func(ctx context.Context, a alerts.Alert) bool {
	return func(ctx context.Context, a alerts.Alert) bool {
		kind, gen, ok := a.Occurrence()
		if !ok {
			return true
		}
		won, by, err := c.ClaimAlert(ctx, a.Connection, kind, gen)
		switch {
		case err != nil:
			s.opt.Log.Warn("could not tell the other instances of this alert, so on_alert runs here whether or not one of them runs it too", "connection", a.Connection, "kind", a.Kind, "err", err)
			return true
		case !won:
			s.opt.Log.Info("alert told by another instance", "connection", a.Connection, "kind", a.Kind, "by", by)
		}
		return won
	}
}

// storeChanged tells the keeper of name (every keeper for "") that the
// shared store holds tokens another instance wrote (auth.StoreWatcher).
func (s *Service) storeChanged(ctx context.Context, name string) {
	for _, k := range s.fleet.Keepers() {
		if name == "" || k.Connection().Name == name {
			k.StoreChanged(ctx)
		}
	}
}
