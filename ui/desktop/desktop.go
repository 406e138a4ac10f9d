// Package desktop is what a person sees of the desktop's running
// tokentray (the service's Tray role, internal/service): its Shell. The
// service's alerts (its keepers' and its [[remote]] servers') become
// notifications, the tray icon and menu are drawn with fyne.io/systray
// alone, and the windows process is started on demand. Every action of
// the menu and of a notification is a method of the service. It links no
// GUI toolkit and runs no event loop, so it costs nothing while nothing
// happens.
package desktop

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/activation"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/events"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/windowreq"
	"github.com/tokentray/tokentray/ui/tray"
)

// Autostart turns starting at login on and off.
type Autostart interface {
	Enabled() (bool, error)
	Enable() error
	Disable() error
}

// Options configure the resident process.
type Options struct {
	Clock auth.Clock
	Log   *slog.Logger
	// Notifier shows the alerts; nil for none.
	Notifier notify.Notifier
	// Autostart is the start-at-login registration; nil hides the item.
	Autostart Autostart
	// Extra menu items go above Quit (the demo's).
	Extra []tray.Item
	// Windows shows the windows; nil shows none (tests).
	Windows interface{ Show(windowreq.Request) }
	// OpenBrowser opens a page that a notification offers (a sign-in
	// with a code's) in this machine's browser.
	OpenBrowser func(string) error
}

// Resident is the desktop's shell of a running service.
type Resident struct {
	svc *service.Service
	hub *events.Hub
	opt Options
	// editable: a config file runs, so connections can be added and edited.
	editable bool
	ctx      context.Context
	quit     context.CancelFunc
	redraw   chan struct{} // a change to draw
}

// New returns the shell of svc, which Start runs.
func New(svc *service.Service, opt Options) *Resident {
	if opt.Clock == nil {
		opt.Clock = svc.Clock()
	}
	if opt.Log == nil {
		opt.Log = svc.Log()
	}
	return &Resident{svc: svc, hub: svc.Hub(), opt: opt, editable: svc.Editable(), ctx: context.Background(), quit: func() {},
		redraw: make(chan struct{}, 1)}
}

// Hub is the event stream the local API serves.
func (r *Resident) Hub() *events.Hub { return r.hub }

// Start runs the service with this shell and follows it until ctx ends or
// Quit: the service's alerts become notifications and log lines, and
// every change is drawn once Run shows the tray. It does not block.
func (r *Resident) Start(ctx context.Context) error {
	ctx, r.quit = context.WithCancel(ctx)
	r.ctx = ctx
	subscribe := func() <-chan apitype.Event {
		events, stop := r.hub.Subscribe()
		go func() {
			<-ctx.Done()
			stop()
		}()
		return events
	}
	// Subscribed before the service starts: a change that comes before
	// anyone listens (a keeper's first state) would otherwise go undrawn
	// until the next timed redraw, an hour away when nothing counts down.
	events := subscribe()
	if err := r.svc.Start(ctx, r); err != nil {
		r.quit()
		return err
	}
	go func() {
		for {
			for range events {
				r.askRedraw()
			}
			if ctx.Err() != nil {
				return
			}
			// Dropped for falling behind: follow again, and draw what
			// was missed meanwhile.
			events = subscribe()
			r.askRedraw()
		}
	}()
	return nil
}

// askRedraw asks the draw loop for a redraw; one pending is enough.
func (r *Resident) askRedraw() {
	select {
	case r.redraw <- struct{}{}:
	default:
	}
}

// Quit ends the resident process (the menu's Quit).
func (r *Resident) Quit() { r.quit() }

// Wait returns once every keeper has stopped: an in-flight refresh is
// saved first.
func (r *Resident) Wait() { r.svc.Wait() }

// Resumed is told when the machine is back from sleep (the service woke
// its keepers and retried its servers): the menu's times are redrawn.
func (r *Resident) Resumed() { r.askRedraw() }

// Connections are the statuses of every connection now, as the API has
// them but for who is at a shared store, which the menu does not show.
func (r *Resident) Connections() []apitype.Connection {
	return r.svc.ConnectionsHere()
}

// Alert tells a person about an alert, with a one-click Re-authenticate.
func (r *Resident) Alert(a alerts.Alert) {
	name := a.Connection
	c, remote := r.hub.RemoteConnection(name)
	m := notify.Message{Key: name}
	switch a.Kind {
	case alerts.NeedsReauth:
		m.Title = name + ": sign-in needed"
		m.Body = "The provider refused the refresh token, so tokentray cannot renew access. Scripts using " + name + " fail once the access token expires."
		if remote {
			m.Body = "The provider refused the refresh token, so the tokentray on " + c.Remote + " cannot renew access. Its agents fail once the access token expires. Re-authenticate signs it in with this machine's browser."
		}
	case alerts.ClientRefused:
		m.Title = name + ": client credentials refused"
		m.Body = "The provider refused the client secret, id or authentication method. The refresh token is kept: once the client settings are fixed (Edit… in the tokentray menu, or `tokentray secret " + name + "`), no sign-in is needed."
		if remote {
			there, _, _ := strings.Cut(name, "@")
			m.Body = "The provider refused the client secret, id or authentication method. The refresh token is kept on " + c.Remote + ": once the client settings are fixed there (`tokentray secret " + there + "` on " + c.Remote + "), no sign-in is needed."
		}
	case alerts.APIRefused:
		m.Title = name + ": the API refuses its token"
		m.Body = "Even a freshly refreshed access token is refused, so agents calling the API through tokentray get 401. Check that api_base is of the same environment as the sign-in, and that the app may use this API; a sign-in with other scopes may help."
	case alerts.RefreshTokenExpiring:
		m.Title = name + ": a sign-in will be needed soon"
		m.Body = "The refresh token is coming to its end, and no refresh can move it: once it ends, a person must sign in."
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
		m.OnAction, m.Link = func() { r.SignIn(name) }, activation.Link(activation.Reauth, name)
	}
	if a.Kind == alerts.RefreshTokenExpiring {
		m.Urgent = false // days ahead: it need not stay on screen
	}
	switch {
	case a.Kind == alerts.ClientRefused && remote:
		m.Action, m.OnAction, m.Link = "", nil, "" // fixed on the server, not here
	case a.Kind == alerts.ClientRefused && r.editable:
		// A sign-in cannot fix a refused client; the editor can.
		m.Action, m.OnAction = "Edit…", func() { r.ShowEditor(name) }
		m.Link = activation.Link(activation.Edit, name)
	}
	r.send(m, name)
}

// send shows m (about connection, or the app with ""), and says so in the
// event log.
func (r *Resident) send(m notify.Message, connection string) {
	n := r.opt.Notifier
	if n == nil {
		return
	}
	if m.Action != "" && !n.Actionable() {
		m.Body += "\nChoose " + m.Action + " in the tokentray menu."
	}
	if _, err := n.Send(m); err != nil {
		r.opt.Log.Warn("notification failed", "connection", connection, "err", err)
		r.hub.Log(connection, fmt.Sprintf("could not show a notification: %v", err))
		return
	}
	r.hub.Log(connection, "notified: "+m.Title)
}

// Problem tells a person about a problem of the app itself (not of one
// connection): in the event log, and as a notification, since it usually
// answers a click that showed nothing.
func (r *Resident) Problem(text string) {
	r.hub.Log("", text)
	if n := r.opt.Notifier; n != nil {
		if _, err := n.Send(notify.Message{Key: "tokentray", Title: "tokentray", Body: text}); err != nil {
			r.opt.Log.Warn("notification failed", "err", err)
		}
	}
}

// SignIn starts the sign-in of name (the menu, a notification): the
// service's, which says how it goes in the event log.
func (r *Resident) SignIn(name string) {
	if err := r.svc.StartLogin(r.ctx, name, 0); err != nil {
		r.hub.Log(name, "sign-in not started: "+err.Error())
	}
}

// Refresh refreshes name now (a failure is in the event log).
func (r *Resident) Refresh(name string) {
	if _, err := r.svc.Refresh(r.ctx, name); err != nil {
		r.opt.Log.Warn("refresh from the menu failed", "connection", name, "err", err)
	}
}

// ShowEditor opens name's editor (a tokentray://edit/NAME link).
func (r *Resident) ShowEditor(name string) {
	r.show(windowreq.Request{Show: windowreq.Edit, Name: name})
}

// ShowDashboard brings the dashboard up (the menu, a second start).
func (r *Resident) ShowDashboard() { r.show(windowreq.Request{Show: windowreq.Dashboard}) }

func (r *Resident) show(req windowreq.Request) {
	if r.opt.Windows != nil {
		r.opt.Windows.Show(req)
	}
}

// Run shows the tray until the context given to Start ends or Quit is
// chosen, then waits for the fleet. Call it after Start, from the main
// goroutine.
func (r *Resident) Run() {
	tray.Run(func(t *tray.Tray) {
		go r.drawLoop(t, r.redraw)
		go func() {
			<-r.ctx.Done()
			tray.Quit()
		}()
	}, nil)
	r.quit()
	r.Wait()
}

// minRedraw is the least time between two redraws that no change asked for.
const minRedraw = 30 * time.Second

// drawLoop redraws the tray at every change and when a minute left turns
// in the menu (at most every minRedraw), and at no other time.
func (r *Resident) drawLoop(t *tray.Tray, redraw <-chan struct{}) {
	actions := tray.Actions{
		SignIn:       r.SignIn,
		Refresh:      r.Refresh,
		Copy:         func(name string) { r.show(windowreq.Request{Show: windowreq.Copy, Name: name}) },
		SignOut:      func(name string) { r.show(windowreq.Request{Show: windowreq.SignOut, Name: name}) },
		Edit:         func(name string) { r.show(windowreq.Request{Show: windowreq.Edit, Name: name}) },
		Dashboard:    r.ShowDashboard,
		Add:          func() { r.show(windowreq.Request{Show: windowreq.Add}) },
		Retry:        r.svc.RetryRemote,
		Quit:         r.Quit,
		SetAutostart: r.setAutostart, // its log line redraws the menu
	}
	due := r.opt.Clock.After(0)
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-redraw:
		case <-due:
		}
		now := r.opt.Clock.Now()
		next := r.draw(t, actions)
		if next.IsZero() {
			next = now.Add(time.Hour) // nothing counts down: look again in an hour
		}
		// At most twice a minute, however many connections turn their
		// minutes at other seconds: a menu line may then show a minute more
		// for up to 30 s.
		if earliest := now.Add(minRedraw); next.Before(earliest) {
			next = earliest
		}
		due = r.opt.Clock.After(next.Sub(now))
	}
}

// draw puts the icon, the hover text and the menu for now on the bus, and
// returns when they next read differently if nothing happens (zero: never).
func (r *Resident) draw(t *tray.Tray, a tray.Actions) time.Time {
	now := r.opt.Clock.Now()
	conns := r.Connections()
	sts := make([]apitype.Status, len(conns))
	for i, c := range conns {
		sts[i] = c.Status
	}
	o := tray.MenuOptions{Editable: r.editable, Extra: r.opt.Extra}
	if as := r.opt.Autostart; as != nil {
		on, err := as.Enabled()
		on = on && err == nil
		o.Autostart = &on
	}
	t.Show(humanize.Overall(sts), humanize.Tooltip(sts, now), tray.Menu(conns, now, a, o))
	var next time.Time
	for _, st := range sts {
		if n := humanize.NextSummary(st, now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// setAutostart turns starting at login on or off.
func (r *Resident) setAutostart(on bool) {
	as := r.opt.Autostart
	err := as.Disable()
	if on {
		err = as.Enable()
	}
	switch {
	case err != nil:
		r.hub.Log("", fmt.Sprintf("start at login could not be changed: %v", err))
	case on:
		r.hub.Log("", "tokentray will start at login")
	default:
		r.hub.Log("", "tokentray will no longer start at login")
	}
}
