//go:build !darwin || cgo

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/autostart"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/sibling"
	"github.com/tokentray/tokentray/internal/windowreq"
	"github.com/tokentray/tokentray/ui/desktop"
	"github.com/tokentray/tokentray/ui/tray"
)

// The tray, the menu-bar icon on macOS: fyne.io/systray, which needs cgo on
// macOS (Apple's SDK). A build without cgo there leaves it out
// (tray_none.go).

// appID identifies tokentray to the desktop (preferences, notifications).
const appID = "io.tokentray.tokentray"

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

// trayRun starts the tray for every configured connection. A missing config
// starts an empty tray that says how to add one; an invalid one is an error.
func trayRun(c *cobra.Command, envFor envGetter) error {
	leaveOwnConsole()
	// Single instance: a running tray shows its dashboard instead.
	api := apiclient.New(apiclient.DefaultPath())
	if err := api.ShowDashboard(c.Context()); err == nil {
		fmt.Fprintln(c.ErrOrStderr(), "tokentray is already running: its dashboard is up.")
		return nil
	} else if !errors.Is(err, apiclient.ErrNotRunning) {
		return err
	}
	e, err := envFor(c)
	if err == nil {
		_, err = e.config()
	}
	if errors.Is(err, config.ErrNoFile) {
		fmt.Fprintf(c.ErrOrStderr(), "tokentray: %v\nStarting with no connections; try `tokentray demo`.\n", err)
		e, err = emptyEnv(c)
	}
	if err != nil {
		return err
	}
	store, locker, err := e.storage()
	if err != nil {
		return err
	}
	svc := service.New(service.Options{Role: service.Tray, Config: e.cfg, Store: store, Locker: locker, Clock: e.clock, Log: e.log,
		OpenBrowser: e.opener, SocketPath: apiclient.DefaultPath(), ControlDir: filepath.Dir(apiclient.DefaultPath())})
	opt := desktop.Options{OpenBrowser: e.opener}
	if entry, err := autostart.ForThisExecutable(appID, "tokentray"); err == nil {
		opt.Autostart = entry
	} else {
		e.log.Info("start at login is not offered", "err", err)
	}
	return runResident(c.Context(), svc, opt, nil)
}

// runResident runs svc with the desktop's shell until ctx ends or Quit is
// chosen: the keepers, the local API, alerts, and the tray drawn with
// fyne.io/systray alone. Windows are the window process
// (tokentray-window), started when a person asks for one. It returns once every
// keeper has finished (an in-flight refresh is saved first). afterStart
// runs once the keepers and the API run, before the tray is drawn.
func runResident(ctx context.Context, svc *service.Service, opt desktop.Options, afterStart func(*desktop.Resident)) error {
	windows := &desktop.Windows{Log: svc.Log(), Command: windowCommand}
	if _, err := sibling.Find(windowProgram, windowRole); err != nil {
		fmt.Fprintf(os.Stderr, "tokentray: %v\n", err)
	}
	defer windows.Close()
	opt.Windows = windows
	if opt.Notifier == nil {
		opt.Notifier = notify.New("tokentray", svc.Log())
		defer opt.Notifier.Close()
	}
	r := desktop.New(svc, opt)
	windows.Problem = r.Problem
	if err := r.Start(ctx); err != nil {
		return err
	}
	if afterStart != nil {
		afterStart(r)
	}
	r.Run()
	return nil
}

// The window process's program, and what it is for (in errors).
const windowProgram, windowRole = "tokentray-window", "the dashboard and the editor"

// windowCommand is the window process for its first request.
func windowCommand(r windowreq.Request) (*exec.Cmd, error) {
	bin, err := sibling.Find(windowProgram, windowRole)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, r.Args()...)
	noConsoleWindow(cmd)
	cmd.Env = windowEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd, nil
}

// demoTray runs the demo in the system tray.
func demoTray(ctx context.Context, io streams, opener func(string) error, o demoOptions) error {
	srv, conn, store, err := demoSetup(o)
	if err != nil {
		return err
	}
	defer srv.Close()
	svc := demoService(io.err, conn, store, opener, func(url string) {
		fmt.Fprintf(io.err, "Sign in to the demo provider in your browser; if none opens, open:\n  %s\n", url)
	})
	k := svc.Keeper(conn.Name)
	// Breaking refreshes at once, as a person testing it wants to see the
	// outcome now, not at the next scheduled refresh up to minutes later.
	breakNow := func() {
		srv.BreakRefreshTokens()
		go func() { _ = k.Refresh(ctx) }() // fails with invalid_grant: the icon turns red
	}
	fmt.Fprintf(io.err, "tokentray demo: the tray icon is up; access tokens live %s. Demo tokens stay in memory.\n", o.lifetime)
	extra := []tray.Item{{Label: "Break the refresh token (demo)", Action: breakNow}}
	return runResident(ctx, svc, desktop.Options{Extra: extra}, func(r *desktop.Resident) {
		r.ShowDashboard()
		if o.breakAfter > 0 {
			// From the first sign-in, as in the terminal.
			events, stop := k.Subscribe()
			go func() {
				defer stop()
				for {
					select {
					case e := <-events:
						if e.Kind == auth.EventSignedIn {
							time.AfterFunc(o.breakAfter, breakNow)
							return
						}
					case <-ctx.Done():
						return
					}
				}
			}()
		}
		r.SignIn(conn.Name)
	})
}
