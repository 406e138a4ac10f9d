package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/systray"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/notify"
)

// Options configure the tray.
type Options struct {
	Clock      auth.Clock
	Log        *slog.Logger
	ConfigPath string
	// ExtraMenu adds items above Quit (the demo's "Break the refresh token").
	ExtraMenu []*fyne.MenuItem
	// Tick is how often the countdowns update (default 1 s).
	Tick time.Duration
	// Notifier shows the alerts; nil for none.
	Notifier notify.Notifier
	// Autostart is the start-at-login registration; nil hides the item.
	Autostart Autostart
	// Connections adds, edits and removes connections (the running fleet);
	// nil hides "Add connection…" and "Edit…".
	Connections Connections
}

// Connections is the configured set of connections as the editor changes
// it. Each change takes effect at once: SetKeepers follows.
type Connections interface {
	Config() *config.Config
	ClientSecret(ctx context.Context, name string) (auth.Secret, error)
	Save(ctx context.Context, s fleet.Save) error
	Remove(ctx context.Context, name string, localOnly bool) error
	TestSignIn(ctx context.Context, t fleet.Test) (fleet.Tested, error)
}

// Autostart turns starting at login on and off.
type Autostart interface {
	Enabled() (bool, error)
	Enable() error
	Disable() error
}

// Tray is the system-tray icon and menu and the dashboard behind them, for
// a set of keepers. It is a thin client: every action is a keeper call.
type Tray struct {
	app     fyne.App
	opt     Options
	ctx     context.Context
	dash    *Dashboard
	level   humanize.Level
	menuKey string
	// dashShown: the dashboard is drawn only while a person can see it.
	dashShown bool
	// editors are the open editor windows by the name they edit ("" adds).
	editors map[string]*Editor
	// uiMu serialises UI work. The real driver runs fyne.Do on its one UI
	// thread anyway; Fyne's test driver runs it on the caller's goroutine.
	uiMu sync.Mutex

	// mu guards the set of keepers, which changes when the config does.
	mu      sync.Mutex
	keepers []*auth.Keeper
	lives   map[*auth.Keeper]life
	started bool
}

// life is how long the tray follows one keeper: until it is removed.
type life struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// onUI runs f on the UI goroutine, one at a time.
func (t *Tray) onUI(f func()) {
	fyne.Do(func() {
		t.uiMu.Lock()
		defer t.uiMu.Unlock()
		f()
	})
}

// NewTray builds the tray for keepers; Start shows it.
func NewTray(a fyne.App, keepers []*auth.Keeper, opt Options) *Tray {
	if opt.Clock == nil {
		opt.Clock = auth.SystemClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Tick <= 0 {
		opt.Tick = time.Second
	}
	t := &Tray{app: a, keepers: keepers, opt: opt, ctx: context.Background(), level: -1,
		lives: map[*auth.Keeper]life{}, editors: map[string]*Editor{}}
	t.dash = newDashboard(t)
	return t
}

// Keepers returns the connections the tray shows.
func (t *Tray) Keepers() []*auth.Keeper {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.keepers)
}

// keeper returns the keeper of name and the context of its life in the
// tray, or nil once it was removed.
func (t *Tray) keeper(name string) (*auth.Keeper, context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keepers {
		if k.Connection().Name == name {
			if l, ok := t.lives[k]; ok {
				return k, l.ctx
			}
			return k, t.ctx
		}
	}
	return nil, nil
}

// SetKeepers changes the connections the tray shows, after the config
// changed: new keepers are followed, removed ones let go (a sign-in they
// were waiting for ends), and the menu and dashboard are rebuilt. Safe on
// any goroutine.
func (t *Tray) SetKeepers(keepers []*auth.Keeper) {
	t.mu.Lock()
	old := t.lives
	t.keepers = slices.Clone(keepers)
	t.lives = map[*auth.Keeper]life{}
	for _, k := range t.keepers {
		if l, ok := old[k]; ok {
			t.lives[k] = l
			delete(old, k)
		} else if t.started {
			t.lives[k] = t.follow(k)
		}
	}
	t.mu.Unlock()
	for _, l := range old {
		l.cancel()
	}
	t.onUI(func() {
		t.menuKey = "" // the lines changed: rebuild the menu
		t.refresh()
	})
}

// Dashboard returns the dashboard; its window exists once Start has run.
func (t *Tray) Dashboard() *Dashboard { return t.dash }

// Start installs the tray icon and menu, creates the (hidden) dashboard
// window, and follows the keepers' events until ctx ends. Call it before
// the app runs: Fyne starts the tray only if the first menu is set before
// Run, and quits with a nil D-Bus connection otherwise.
func (t *Tray) Start(ctx context.Context) {
	t.ctx = ctx
	w := t.app.NewWindow("tokentray")
	w.SetIcon(AppIcon)
	w.SetContent(t.dash.content)
	w.Resize(fyne.NewSize(820, 640))
	w.SetCloseIntercept(func() { // closing the window leaves the tray running
		t.dashShown = false
		w.Hide()
	})
	t.dash.Window = w
	if desk, ok := t.app.(desktop.App); ok {
		desk.SetSystemTrayWindow(w)
	}
	t.mu.Lock()
	t.started = true
	for _, k := range t.keepers {
		t.lives[k] = t.follow(k)
	}
	t.mu.Unlock()
	t.uiMu.Lock()
	t.refresh()
	t.uiMu.Unlock()
	go func() {
		ticker := time.NewTicker(t.opt.Tick)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				t.onUI(t.refresh)
			}
		}
	}()
}

// follow turns one keeper's events into log lines, checks, notifications
// and a refreshed view, until the returned life is cancelled.
func (t *Tray) follow(k *auth.Keeper) life {
	ctx, cancel := context.WithCancel(t.ctx)
	events, stop := k.Subscribe()
	go func() {
		<-ctx.Done()
		stop()
	}()
	go t.followEvents(ctx, k, events)
	return life{ctx, cancel}
}

func (t *Tray) followEvents(ctx context.Context, k *auth.Keeper, events <-chan auth.Event) {
	tracker := alerts.NewTracker()
	for e := range events {
		if a, ok := tracker.Observe(e); ok {
			t.notify(a)
		}
		line := humanize.Event(e)
		t.onUI(func() {
			if line != "" {
				t.dash.addLog(fmt.Sprintf("%s  %s  %s", e.Time.Local().Format("15:04:05"), e.Connection, line))
			}
			t.refresh()
		})
	}
}

// notify tells a person about an alert, with a one-click Re-authenticate.
func (t *Tray) notify(a alerts.Alert) {
	n := t.opt.Notifier
	if n == nil {
		return
	}
	name := a.Connection
	m := notify.Message{Key: name}
	switch a.Kind {
	case alerts.NeedsReauth:
		m.Title = name + ": sign-in needed"
		m.Body = "The provider refused the refresh token, so tokentray cannot renew access. Scripts using " + name + " fail once the access token expires."
	case alerts.ClientRefused:
		m.Title = name + ": client credentials refused"
		m.Body = "The provider refused the client secret, id or authentication method. The refresh token is kept: once the client settings are fixed (Edit… in the tokentray menu, or `tokentray secret " + name + "`), no sign-in is needed."
	case alerts.Expired:
		m.Title = name + ": no valid access token"
		m.Body = "Refreshing keeps failing and the access token has expired; tokentray keeps retrying."
	case alerts.Recovered:
		m.Title = name + " is connected again"
		m.Body = "A valid access token is held and kept fresh."
		m.Icon = assets.TrayGreen
	}
	if a.Kind != alerts.Recovered {
		if a.Error != "" {
			m.Body += "\n" + a.Error
		}
		m.Urgent, m.Icon, m.Action = true, assets.TrayRed, "Re-authenticate"
		m.OnAction = func() { t.SignIn(name) } // safe off the UI goroutine
	}
	if a.Kind == alerts.ClientRefused {
		// A sign-in cannot fix a refused client; the editor can.
		m.Action, m.OnAction = "Edit…", func() { t.onUI(func() { t.EditConnection(name) }) }
	}
	if m.Action != "" {
		if !n.Actionable() {
			m.Body += "\nChoose Re-authenticate in the tokentray menu."
		}
	}
	if _, err := n.Send(m); err != nil {
		t.opt.Log.Warn("notification failed", "connection", name, "err", err)
		t.logf("%s  could not show a notification: %v", name, err)
		return
	}
	t.logf("%s  notified: %s", name, m.Title)
}

// refresh updates the icon, the menu (when its text changed) and the
// dashboard. Call on the UI goroutine.
func (t *Tray) refresh() {
	now := t.opt.Clock.Now()
	sts := t.statuses()
	level := humanize.Overall(sts)
	desk, isDesktop := t.app.(desktop.App)
	if level != t.level {
		t.level = level
		if isDesktop {
			desk.SetSystemTrayIcon(TrayIcon(level))
		}
	}
	key := humanize.Tooltip(sts, now)
	if key != t.menuKey {
		t.menuKey = key
		if isDesktop {
			desk.SetSystemTrayMenu(t.Menu(sts, now))
			systray.SetTooltip(key) // the hover text, where the platform shows one
		}
	}
	if t.dashShown {
		t.dash.update(now)
	}
}

func (t *Tray) statuses() []apitype.Status {
	keepers := t.Keepers()
	sts := make([]apitype.Status, 0, len(keepers))
	for _, k := range keepers {
		sts = append(sts, localapi.WireStatus(k.Status()))
	}
	return sts
}

// Menu builds the tray menu: one line per connection with its actions,
// then the app's items.
func (t *Tray) Menu(sts []apitype.Status, now time.Time) *fyne.Menu {
	var items []*fyne.MenuItem
	for _, st := range sts {
		name := st.Name
		line := fyne.NewMenuItem(humanize.MenuLine(st, now), nil)
		line.ChildMenu = fyne.NewMenu("",
			fyne.NewMenuItem("Re-authenticate", func() { t.SignIn(name) }),
			fyne.NewMenuItem("Refresh now", func() { t.RefreshNow(name) }),
			fyne.NewMenuItem("Copy access token", func() { t.CopyToken(name) }),
			fyne.NewMenuItem("Sign out…", func() { t.ConfirmSignOut(name) }),
		)
		if t.opt.Connections != nil {
			line.ChildMenu.Items = append(line.ChildMenu.Items, fyne.NewMenuItemSeparator(),
				fyne.NewMenuItem("Edit…", func() { t.EditConnection(name) }))
		}
		items = append(items, line)
	}
	if len(sts) == 0 {
		none := fyne.NewMenuItem("No connections configured", nil)
		none.Disabled = true
		items = append(items, none)
	}
	items = append(items, fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Open dashboard", t.ShowDashboard),
	)
	if t.opt.Connections != nil {
		items = append(items, fyne.NewMenuItem("Add connection…", func() { t.EditConnection("") }))
	}
	if as := t.opt.Autostart; as != nil {
		on, err := as.Enabled()
		item := fyne.NewMenuItem("Start at login", func() { t.toggleAutostart(!on) })
		item.Checked = on && err == nil
		items = append(items, item)
	}
	if len(t.opt.ExtraMenu) > 0 {
		items = append(items, fyne.NewMenuItemSeparator())
		items = append(items, t.opt.ExtraMenu...)
	}
	quit := fyne.NewMenuItem("Quit", func() { t.app.Quit() })
	quit.IsQuit = true
	items = append(items, fyne.NewMenuItemSeparator(), quit)
	return fyne.NewMenu("tokentray", items...)
}

// toggleAutostart turns starting at login on or off and redraws the menu.
func (t *Tray) toggleAutostart(on bool) {
	as := t.opt.Autostart
	err := as.Disable()
	if on {
		err = as.Enable()
	}
	if err != nil {
		t.logf("start at login: %v", err)
		if t.dash.Window != nil {
			dialog.ShowError(fmt.Errorf("start at login could not be changed: %w", err), t.dash.Window)
		}
	} else if on {
		t.logf("tokentray will start at login")
	} else {
		t.logf("tokentray will no longer start at login")
	}
	t.menuKey = "" // the check mark changed: rebuild the menu
	t.refresh()
}

// ShowDashboard brings the dashboard window up.
func (t *Tray) ShowDashboard() {
	if t.dash.Window == nil {
		return
	}
	t.dashShown = true
	t.dash.update(t.opt.Clock.Now())
	t.dash.Window.Show()
	t.dash.Window.RequestFocus()
}

// SignIn starts the browser sign-in of name.
func (t *Tray) SignIn(name string) {
	k, ctx := t.keeper(name)
	if k == nil {
		return
	}
	t.logf("%s  sign-in started: finish it in the browser", name)
	go func() {
		if err := k.Login(ctx, auth.LoginOptions{}); err != nil && !errors.Is(err, context.Canceled) {
			t.logf("%s  sign-in failed: %v", name, err)
		}
	}()
}

// RefreshNow refreshes name now.
func (t *Tray) RefreshNow(name string) {
	if k, ctx := t.keeper(name); k != nil {
		go func() {
			if err := k.Refresh(ctx); err != nil {
				t.opt.Log.Warn("refresh from the tray failed", "connection", name, "err", err)
			}
		}()
	}
}

// CheckNow calls name's "who am I" URL.
func (t *Tray) CheckNow(name string) {
	if k, ctx := t.keeper(name); k != nil {
		go k.Check(ctx)
	}
}

// CopyToken puts a valid access token of name on the clipboard.
func (t *Tray) CopyToken(name string) {
	k, ctx := t.keeper(name)
	if k == nil {
		return
	}
	go func() {
		tok, err := k.Token(ctx, auth.DefaultMinValid)
		if err != nil {
			t.logf("%s  no token to copy: %v", name, err)
			return
		}
		left := humanize.Duration(tok.Expiry().Sub(t.opt.Clock.Now()))
		t.onUI(func() {
			t.app.Clipboard().SetContent(tok.AccessToken.Reveal())
			t.dash.addLog(fmt.Sprintf("%s  %s  access token copied to the clipboard (valid %s)", t.opt.Clock.Now().Local().Format("15:04:05"), name, left))
		})
	}()
}

// ConfirmSignOut asks before revoking name's tokens.
func (t *Tray) ConfirmSignOut(name string) {
	k, ctx := t.keeper(name)
	if k == nil || t.dash.Window == nil {
		return
	}
	t.ShowDashboard()
	dialog.ShowConfirm("Sign out of "+name+"?",
		"tokentray revokes the refresh token at the provider and forgets the tokens.\nScripts using this connection will stop working until you sign in again.",
		func(ok bool) {
			if !ok {
				return
			}
			go func() {
				out, err := k.Logout(ctx, false)
				switch {
				case err != nil:
					t.logf("%s  sign-out failed: %v", name, err)
				case !out.Revoked:
					t.logf("%s  signed out here; nothing was revoked at the provider: %s", name, out.NotRevoked)
				}
			}()
		}, t.dash.Window)
}

// Problem puts a line about the app itself (not one connection) in the
// event log. Safe on any goroutine.
func (t *Tray) Problem(text string) { t.logf("%s", text) }

func (t *Tray) logf(format string, a ...any) {
	line := t.opt.Clock.Now().Local().Format("15:04:05") + "  " + fmt.Sprintf(format, a...)
	t.onUI(func() { t.dash.addLog(line) })
}
