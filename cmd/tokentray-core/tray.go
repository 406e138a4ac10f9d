package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

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
	"github.com/tokentray/tokentray/internal/proxy/proxykey"
	"github.com/tokentray/tokentray/internal/resident"
	"github.com/tokentray/tokentray/internal/sibling"
	"github.com/tokentray/tokentray/internal/wake"
	"github.com/tokentray/tokentray/internal/windowreq"
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
	store, err := e.openStore()
	if err != nil {
		return err
	}
	runner := &hook.Runner{Log: e.log}
	f := fleet.New(e.cfg, fleet.Options{
		Store: store,
		Log:   e.log,
		NewKeeper: func(conn *config.Resolved) *auth.Keeper {
			o, _ := e.keeperOptions(conn) // the store is open
			o.OnlyHolder = true           // while the resident process runs, every token comes from it
			o.MaxSleep = residentMaxSleep
			return auth.NewKeeper(conn.Auth, o)
		},
		NewTestKeeper: func(conn *auth.Connection, store auth.Store) *auth.Keeper {
			return auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}, Clock: e.clock, Logger: e.log, OpenBrowser: e.opener})
		},
		Started: func(ctx context.Context, k *auth.Keeper, conn *config.Resolved) {
			hook.Watch(ctx, k, conn.AlertCommand, runner)
		},
	})
	opt := resident.Options{Clock: e.clock, Log: e.log, Editable: true,
		Remotes:     func() []config.Remote { return f.Config().Remotes },
		ControlDir:  filepath.Dir(apiclient.DefaultPath()),
		OpenBrowser: e.opener,
	}
	if entry, err := autostart.ForThisExecutable(appID, "tokentray"); err == nil {
		opt.Autostart = entry
	} else {
		e.log.Info("start at login is not offered", "err", err)
	}
	return runResident(c.Context(), f, opt, func(r *resident.Resident) {
		tellBroken(c.Context(), f, runner, e.log, r.Problem)
		f.Watch(c.Context(), configLookInterval, func(err error) {
			r.Problem(fmt.Sprintf("the config file was changed but not applied: %v", err))
		})
	})
}

// configLookInterval is how often the config file is looked at where its
// directory cannot be watched (it does not exist yet).
const configLookInterval = 10 * time.Second

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

// runResident runs the resident process for f until ctx ends or Quit is
// chosen: the keepers, the local API, alerts, and the tray drawn with
// fyne.io/systray alone. Windows are the window process
// (tokentray-window), started when a person asks for one. It returns once every
// keeper has finished (an in-flight refresh is saved first). afterStart
// runs once the keepers and the API run, before the tray is drawn.
func runResident(ctx context.Context, f *fleet.Fleet, opt resident.Options, afterStart func(*resident.Resident)) error {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	windows := &resident.Windows{Log: opt.Log, Command: windowCommand}
	if _, err := sibling.Find(windowProgram, windowRole); err != nil {
		fmt.Fprintf(os.Stderr, "tokentray: %v\n", err)
	}
	defer windows.Close()
	opt.Windows = windows
	if opt.Notifier == nil {
		opt.Notifier = notify.New("tokentray", opt.Log)
		defer opt.Notifier.Close()
	}
	r := resident.New(f, opt)
	windows.Problem = r.Problem
	r.Start(ctx)
	var editable localapi.Editable
	if opt.Editable {
		editable = f
	}
	api := &localapi.Server{Hub: r.Hub(), Connections: editable, Clock: opt.Clock, ShowDashboard: r.ShowDashboard, Remotes: r.RemoteActions()}
	if serveAPI(ctx, api, opt.Log) {
		servePorts(ctx, api, f, func(connection, text string) { r.Problem(connection + ": " + text) })
	}
	watchResume(ctx, func() {
		for _, k := range f.Keepers() {
			k.Wake()
		}
		r.RetryRemotes()
	}, opt.Log)
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

// serveAPI serves the local API s on the user's socket, so that the CLI
// and scripts ask this process instead of refreshing themselves. When
// another tokentray already serves it (a demo next to the real tray), this
// one runs without it. It reports whether the API is served.
func serveAPI(ctx context.Context, s *localapi.Server, log *slog.Logger) bool {
	path := apiclient.DefaultPath()
	l, err := localapi.Listen(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tokentray: the local API is not served: %v\n", err)
		return false
	}
	go func() {
		if err := s.Serve(ctx, l); err != nil && log != nil {
			log.Error("local API stopped", "err", err)
		}
	}()
	return true
}

// servePorts opens the loopback proxy ports of f's connections that have a
// proxy_port, following the config, until ctx ends. Their keys are read
// from their files at each request: a rotation applies at once.
func servePorts(ctx context.Context, api *localapi.Server, f *fleet.Fleet, problem func(connection, text string)) {
	var mu sync.Mutex
	var opened *proxykey.Keys
	keys := func() (*proxykey.Keys, error) { // opened when first needed
		mu.Lock()
		defer mu.Unlock()
		if opened == nil {
			k, err := proxykey.Open()
			if err != nil {
				return nil, err
			}
			opened = k
		}
		return opened, nil
	}
	p := &localapi.Ports{Server: api, Problem: problem,
		Key: func(name string) (string, error) {
			k, err := keys()
			if err != nil {
				return "", err
			}
			return k.Get(name)
		},
		TLS: func() (*tls.Certificate, error) {
			k, err := keys()
			if err != nil {
				return nil, err
			}
			t, err := k.TLS()
			if err != nil {
				return nil, err
			}
			return &t.Certificate, nil
		}}
	p.Sync(f.Keepers())
	f.OnChange(func() { p.Sync(f.Keepers()) })
	go func() {
		<-ctx.Done()
		p.Close()
	}()
}

// watchResume calls wakeUp (every keeper, every remote) when the machine
// resumes from suspend: on logind's signal, or, without logind, when the
// wall clock has run ahead of the monotonic one (looked at every 30 s, once
// for the whole process). The resident process's keepers sleep until their
// next due time (residentMaxSleep), so this is what catches up after a
// suspend.
func watchResume(ctx context.Context, wakeUp func(), log *slog.Logger) {
	wakeAll := func() {
		log.Info("resumed from suspend: checking every connection now")
		wakeUp()
	}
	conn, err := dbus.ConnectSystemBus()
	if err == nil {
		err = wake.Watch(ctx, conn, wakeAll)
	}
	if err != nil {
		log.Info("resume from suspend is noticed by the wall clock (within 30 s)", "err", err)
		if conn != nil {
			conn.Close()
		}
		go wake.Jumps(ctx, 30*time.Second, 5*time.Second, wakeAll)
		return
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
}

// residentMaxSleep is how long a keeper of the resident process sleeps at
// most between looks at the wall clock: watchResume wakes them after a
// suspend, so an idle keeper wakes only when something is due.
const residentMaxSleep = 24 * time.Hour
