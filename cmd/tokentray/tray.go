package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/autostart"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/hook"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/wake"
	"github.com/tokentray/tokentray/ui"
)

// appID identifies tokentray to the desktop (preferences, notifications).
const appID = "io.tokentray.tokentray"

// trayRun starts the tray for every configured connection. A missing config
// starts an empty tray that says how to add one; an invalid one is an error.
func trayRun(c *cobra.Command, envFor envGetter) error {
	// Single instance: a running tray shows its dashboard instead.
	api := apiclient.New(apiclient.DefaultPath())
	if err := api.ShowDashboard(c.Context()); err == nil {
		fmt.Fprintln(c.ErrOrStderr(), "tokentray is already running: its dashboard is up.")
		return nil
	} else if !errors.Is(err, apiclient.ErrNotRunning) {
		return err
	}
	e, err := envFor(c)
	if errors.Is(err, config.ErrNoFile) {
		fmt.Fprintf(c.ErrOrStderr(), "tokentray: %v\nStarting with no connections; try `tokentray demo`.\n", err)
		e, err = emptyEnv(c)
	}
	if err != nil {
		return err
	}
	runner := &hook.Runner{Log: e.log}
	f := fleet.New(e.cfg, fleet.Options{
		Store: e.store,
		Log:   e.log,
		NewKeeper: func(cfg *config.Config, conn *auth.Connection) *auth.Keeper {
			o := e.keeperOptionsIn(cfg, conn)
			o.OnlyHolder = true // while the tray runs, every token comes from it
			return auth.NewKeeper(conn, o)
		},
		NewTestKeeper: func(conn *auth.Connection, store auth.Store) *auth.Keeper {
			return auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}, Clock: e.clock, Logger: e.log, OpenBrowser: e.opener})
		},
		Started: func(ctx context.Context, k *auth.Keeper, cfg *config.Config) {
			hook.Watch(ctx, []*auth.Keeper{k}, func(name string) string {
				if cmd := cfg.Raw[name].OnAlert; cmd != "" {
					return cmd
				}
				return cfg.OnAlert
			}, runner)
		},
	})
	opt := ui.Options{Clock: e.clock, Log: e.log, ConfigPath: e.cfg.Path, Connections: f}
	if entry, err := autostart.ForThisExecutable(appID, "tokentray"); err == nil {
		opt.Autostart = entry
	} else {
		e.log.Info("start at login is not offered", "err", err)
	}
	return showTray(c.Context(), f, opt, func(t *ui.Tray) {
		go f.Watch(c.Context(), configLookInterval, func(err error) {
			t.Problem(fmt.Sprintf("the config file was changed but not applied: %v", err))
		})
	})
}

// configLookInterval is how often the tray looks whether the config file
// was edited by hand.
const configLookInterval = 2 * time.Second

// emptyEnv is the environment of a tray started without a config file.
func emptyEnv(c *cobra.Command) (*env, error) {
	path, err := config.DefaultPath()
	if err != nil {
		return nil, err
	}
	e, err := newEnvWithConfig(&config.Config{Path: path}, c.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	return e, nil
}

// showTray runs the Fyne app with the tray until Quit or ctx ends, then
// waits for every keeper to finish (an in-flight refresh is saved first).
// afterStart runs on the UI goroutine once the tray is up.
func showTray(ctx context.Context, f *fleet.Fleet, opt ui.Options, afterStart func(*ui.Tray)) error {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	a := app.NewWithID(appID)
	a.SetIcon(ui.AppIcon)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.Start(ctx)
	if opt.Notifier == nil {
		opt.Notifier = notify.New("tokentray", opt.Log)
		defer opt.Notifier.Close()
	}
	tray := ui.NewTray(a, f.Keepers(), opt)
	hub := localapi.NewHub(opt.Clock)
	defer hub.Close()
	hub.SetKeepers(f.Keepers())
	f.OnChange(func() {
		tray.SetKeepers(f.Keepers())
		hub.SetKeepers(f.Keepers())
	})
	tray.Start(ctx)
	var editable localapi.Editable
	if opt.Connections != nil {
		editable = f
	}
	serveAPI(ctx, hub, editable, opt.Clock, func() { fyne.Do(tray.ShowDashboard) }, opt.Log)
	watchResume(ctx, f.Keepers, opt.Log)
	if afterStart != nil {
		a.Lifecycle().SetOnStarted(func() { afterStart(tray) })
	}
	a.Lifecycle().SetOnStopped(cancel)
	go func() {
		<-ctx.Done()
		fyne.Do(a.Quit)
	}()
	a.Run()
	cancel()
	f.Wait()
	return nil
}

// hasDisplay reports whether a window can be shown.
func hasDisplay() bool {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" {
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// serveAPI serves the local API for the hub's keepers, so that the CLI and
// scripts ask this process instead of refreshing themselves. When another
// tokentray already serves it (a demo next to the real tray), this one
// runs without it.
// showDashboard is nil where there is none (the terminal demo). It
// reports whether the API is served.
// editable is nil where no config file runs (a demo).
func serveAPI(ctx context.Context, hub *localapi.Hub, editable localapi.Editable, clock auth.Clock, showDashboard func(), log *slog.Logger) bool {
	path := apiclient.DefaultPath()
	l, err := localapi.Listen(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tokentray: the local API is not served: %v\n", err)
		return false
	}
	s := &localapi.Server{Hub: hub, Connections: editable, Clock: clock, ShowDashboard: showDashboard}
	go func() {
		if err := s.Serve(ctx, l); err != nil && log != nil {
			log.Error("local API stopped", "err", err)
		}
	}()
	return true
}

// watchResume wakes every keeper when the machine resumes from suspend.
// Where there is no logind, the keepers' 30-second poll catches up instead.
func watchResume(ctx context.Context, keepers func() []*auth.Keeper, log *slog.Logger) {
	conn, err := dbus.ConnectSystemBus()
	if err == nil {
		err = wake.Watch(ctx, conn, func() {
			log.Info("resumed from suspend: checking every connection now")
			for _, k := range keepers() {
				k.Wake()
			}
		})
	}
	if err != nil {
		log.Info("resume from suspend is noticed by polling (within 30 s)", "err", err)
		if conn != nil {
			conn.Close()
		}
		return
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
}
