package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/autostart"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/sibling"
	"github.com/tokentray/tokentray/internal/windowreq"
	"github.com/tokentray/tokentray/ui/desktop"
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
	cmd.Env = windowEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd, nil
}

// windowEnv is the window process's environment: this one, told that the
// untranslated "C.UTF-8" locale of cron, systemd and SSH sessions is
// English, which is what it means. The toolkit cannot parse "C.UTF-8" and
// says so on stderr at every start; LANGUAGE is what it reads first then.
func windowEnv(env []string) []string {
	get := func(key string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == key {
				return v
			}
		}
		return ""
	}
	locale := ""
	for _, key := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if locale = get(key); locale != "" {
			break
		}
	}
	if strings.HasPrefix(locale, "C.") && get("LANGUAGE") == "" {
		return append(env, "LANGUAGE=en")
	}
	return env
}

// hasDisplay reports whether a window can be shown.
func hasDisplay() bool {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" {
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}
