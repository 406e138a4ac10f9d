package ui

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/windowreq"
)

// Backend is the running tokentray as the windows use it: its local API
// (*apiclient.Client). The windows hold no token and no config of their
// own; everything they show comes from it, and everything they do goes
// through it.
type Backend interface {
	Events(ctx context.Context, f func(apitype.Event) error) error
	Connections(ctx context.Context) ([]apitype.Connection, error)
	StartLogin(ctx context.Context, name string) error
	Refresh(ctx context.Context, name string) (*apitype.Connection, error)
	Check(ctx context.Context, name string) (*apitype.Connection, error)
	Token(ctx context.Context, name string, minValid time.Duration) (*apitype.Token, error)
	Logout(ctx context.Context, name string, localOnly bool) (*apitype.SignedOut, error)
	Config(ctx context.Context) (*apitype.Config, error)
	ConfigConnection(ctx context.Context, name string) (*apitype.ConfiguredConnection, error)
	SaveConnection(ctx context.Context, replacing string, s apitype.SaveConnection) (*apitype.Saved, error)
	RemoveConnection(ctx context.Context, name string, localOnly bool) (*apitype.Saved, error)
	TestSignIn(ctx context.Context, t apitype.TestSignIn) (*apitype.Tested, error)
}

// Options configure the windows.
type Options struct {
	Clock auth.Clock
	// Tick is how often the dashboard's countdowns update while it is open
	// (default 1 s).
	Tick time.Duration
	// Editable offers the connection editor (a config file runs).
	Editable bool
	// Context bounds what the windows ask of the API (default: none).
	Context context.Context
}

// Windows are the dashboard and the connection editors of the window
// process: a client of the local API and of nothing else.
type Windows struct {
	app fyne.App
	api Backend
	opt Options
	ctx context.Context

	// UI state, on the UI goroutine (onUI).
	dash      *Dashboard
	dashShown bool
	editors   map[string]*Editor // by the name they edit ("" adds)
	uiMu      sync.Mutex

	// bg is the work on the API each action starts; Wait waits for it.
	bg sync.WaitGroup

	mu    sync.Mutex
	conns []apitype.Connection // as the event stream last said
	ready chan struct{}        // closed once the stream's snapshot is in
	once  sync.Once
}

// NewWindows returns the windows for api; Follow feeds them.
func NewWindows(a fyne.App, api Backend, opt Options) *Windows {
	if opt.Clock == nil {
		opt.Clock = auth.SystemClock{}
	}
	if opt.Tick <= 0 {
		opt.Tick = time.Second
	}
	if opt.Context == nil {
		opt.Context = context.Background()
	}
	w := &Windows{app: a, api: api, opt: opt, ctx: opt.Context, editors: map[string]*Editor{}, ready: make(chan struct{})}
	w.dash = newDashboard(w)
	return w
}

// onUI runs f on the UI goroutine, one at a time. f must not call onUI
// (Fyne's test driver runs f at once, on the caller's goroutine, and the
// lock does not nest): inside it, use logNow rather than logf.
func (w *Windows) onUI(f func()) {
	fyne.Do(func() {
		w.uiMu.Lock()
		defer w.uiMu.Unlock()
		f()
	})
}

// Wait returns once the work the windows' actions started is done (their
// answers drawn): what an end of the windows, or of a test, waits for.
func (w *Windows) Wait() { w.bg.Wait() }

// Ready is closed once the windows know every connection.
func (w *Windows) Ready() <-chan struct{} { return w.ready }

// Follow applies the running tokentray's event stream until ctx ends or
// the stream does (the resident process stopped): then it returns why.
func (w *Windows) Follow(ctx context.Context) error {
	err := w.api.Events(ctx, func(e apitype.Event) error {
		w.apply(e)
		return nil
	})
	w.once.Do(func() { close(w.ready) })
	return err
}

// apply takes one event of the stream into the view.
func (w *Windows) apply(e apitype.Event) {
	w.mu.Lock()
	switch e.Type {
	case apitype.EventStatus:
		if e.Status == nil {
			break // not what this version expects: nothing to show
		}
		found := false
		for i := range w.conns {
			if w.conns[i].Name == e.Connection {
				// The stream does not say who is at a shared store:
				// lookShared does, and it holds until its next look.
				shared := w.conns[i].Shared
				w.conns[i], found = *e.Status, true
				if w.conns[i].Shared == nil {
					w.conns[i].Shared = shared
				}
			}
		}
		if !found {
			w.conns = append(w.conns, *e.Status)
		}
	case apitype.EventRemoved:
		for i := range w.conns {
			if w.conns[i].Name == e.Connection {
				w.conns = append(w.conns[:i], w.conns[i+1:]...)
				break
			}
		}
	case apitype.EventReady:
		w.once.Do(func() { close(w.ready) })
	}
	w.mu.Unlock()
	if e.Text != "" { // a log line, or a change with something to say
		line := logLine(e.Time, e.Connection, e.Text)
		w.onUI(func() {
			w.dash.addLog(line)
			w.refresh()
		})
		return
	}
	w.onUI(w.refresh)
}

func logLine(t time.Time, connection, text string) string {
	if connection == "" {
		return fmt.Sprintf("%s  %s", t.Local().Format("15:04:05"), text)
	}
	return fmt.Sprintf("%s  %s  %s", t.Local().Format("15:04:05"), connection, text)
}

// logf puts a line of this window process in the dashboard's event log,
// from any goroutine.
func (w *Windows) logf(connection, format string, a ...any) {
	line := logLine(w.opt.Clock.Now(), connection, fmt.Sprintf(format, a...))
	w.onUI(func() { w.dash.addLog(line) })
}

// logNow is logf on the UI goroutine, inside onUI: onUI does not nest.
func (w *Windows) logNow(connection, format string, a ...any) {
	w.dash.addLog(logLine(w.opt.Clock.Now(), connection, fmt.Sprintf(format, a...)))
}

// Connections are the connections as last known.
func (w *Windows) Connections() []apitype.Connection {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]apitype.Connection(nil), w.conns...)
}

// refresh redraws the dashboard, if it is shown. Call on the UI goroutine.
func (w *Windows) refresh() {
	if w.dashShown {
		w.dash.update(w.Connections(), w.opt.Clock.Now())
	}
}

// Show shows what r asks for. Call on the UI goroutine.
func (w *Windows) Show(r windowreq.Request) {
	switch r.Show {
	case windowreq.Dashboard:
		w.ShowDashboard()
	case windowreq.Add:
		w.EditConnection("")
	case windowreq.Edit:
		w.EditConnection(r.Name)
	case windowreq.Copy:
		w.ShowDashboard()
		w.CopyToken(r.Name)
	case windowreq.SignOut:
		w.ConfirmSignOut(r.Name)
	}
}

// sharedLook is how often the open dashboard asks who is at a shared store
// (the instances, a refresh under way, an intent left): the event stream
// does not carry it, and asking costs the database two reads.
const sharedLook = 10 * time.Second

// lookShared asks the API who is at a shared store and keeps it with each
// connection (the stream's statuses keep it until the next look); it says
// whether any connection is shared, so that a dashboard of one machine
// asks once. Not on the UI goroutine.
func (w *Windows) lookShared() bool {
	if w.api == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	conns, err := w.api.Connections(ctx)
	if err != nil {
		return true // not known: asked again at the next look
	}
	shared := false
	w.mu.Lock()
	for _, c := range conns {
		shared = shared || c.Shared != nil
		for i := range w.conns {
			if w.conns[i].Name == c.Name {
				w.conns[i].Shared = c.Shared
			}
		}
	}
	w.mu.Unlock()
	return shared
}

// ShowDashboard brings the dashboard window up; its countdowns tick every
// second while it is open. Call on the UI goroutine.
func (w *Windows) ShowDashboard() {
	if w.dash.Window == nil {
		win := w.app.NewWindow("tokentray")
		win.SetIcon(AppIcon)
		win.SetContent(w.dash.content)
		win.Resize(fyne.NewSize(820, 640))
		stop := make(chan struct{})
		win.SetOnClosed(func() {
			close(stop)
			w.dashShown = false
			w.dash.Window = nil
		})
		w.dash.Window = win
		go func() {
			ticker := time.NewTicker(w.opt.Tick)
			defer ticker.Stop()
			shared := w.lookShared() // and again while the store is shared
			last := w.opt.Clock.Now()
			for {
				select {
				case <-stop:
					return
				case <-ticker.C:
					if now := w.opt.Clock.Now(); shared && now.Sub(last) >= sharedLook {
						shared, last = w.lookShared(), now
					}
					w.onUI(w.refresh)
				}
			}
		}()
	}
	w.dashShown = true
	w.dash.update(w.Connections(), w.opt.Clock.Now())
	w.dash.Window.Show()
	w.dash.Window.RequestFocus()
}

// SignIn starts the browser sign-in of name, in the running tokentray.
func (w *Windows) SignIn(name string) {
	w.bg.Go(func() {
		if err := w.api.StartLogin(w.ctx, name); err != nil {
			w.logf(name, "sign-in did not start: %v", err)
		}
	})
}

// RefreshNow refreshes name now.
func (w *Windows) RefreshNow(name string) {
	w.bg.Go(func() {
		if _, err := w.api.Refresh(w.ctx, name); err != nil {
			w.logf(name, "refresh failed: %v", err)
		}
	})
}

// CheckNow calls name's "who am I" URL.
func (w *Windows) CheckNow(name string) {
	w.bg.Go(func() {
		if _, err := w.api.Check(w.ctx, name); err != nil {
			w.logf(name, "API check: %v", err)
		}
	})
}

// CopyToken puts a valid access token of name on the clipboard.
func (w *Windows) CopyToken(name string) {
	w.bg.Go(func() {
		tok, err := w.api.Token(w.ctx, name, apiclient.DefaultMinValid)
		if err != nil {
			w.logf(name, "no token to copy: %v", err)
			return
		}
		left := humanize.Duration(tok.ExpiresAt.Sub(w.opt.Clock.Now()))
		w.onUI(func() {
			w.app.Clipboard().SetContent(tok.AccessToken)
			w.dash.addLog(logLine(w.opt.Clock.Now(), name, "access token copied to the clipboard (valid "+left+")"))
		})
	})
}

// ConfirmSignOut asks, on the dashboard, before revoking name's tokens.
// Call on the UI goroutine.
func (w *Windows) ConfirmSignOut(name string) {
	w.ShowDashboard()
	dialog.ShowConfirm("Sign out of "+name+"?",
		"tokentray revokes the refresh token at the provider and forgets the tokens.\nScripts using this connection will stop working until you sign in again.",
		func(ok bool) {
			if !ok {
				return
			}
			w.bg.Go(func() {
				out, err := w.api.Logout(w.ctx, name, false)
				switch {
				case err != nil:
					w.logf(name, "sign-out failed: %v", err)
				case !out.Revoked:
					w.logf(name, "signed out here; nothing was revoked at the provider: %s", out.NotRevoked)
				}
			})
		}, w.dash.Window)
}

// errorHint is the advice that came with an API error, if any, said for
// a window.
func errorHint(err error) string {
	var ae *apiclient.APIError
	if errors.As(err, &ae) {
		return humanize.Advice(ae.Next(), ae.Hint(), humanize.Window)
	}
	return ""
}
