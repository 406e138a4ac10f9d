package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/hook"
	"github.com/tokentray/tokentray/internal/localapi"
)

func newServeCmd(envFor envGetter) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Keep the connections alive without a display: for servers and agents (systemd)",
		Long: `Runs the keepers, the local API (the socket that tokentray token, status and the
agents' scripts use), the export files and the on_alert hooks, with no tray, no
windows and no notifications: a person hears of a connection that needs them through
on_alert. Logs go to stderr as key=value lines (the journal, under systemd), never a
token. SIGTERM stops it after any refresh under way is saved.

On a machine without a Secret Service, set store = "file" at the top of the config.
See the README's "Servers and agents" for the systemd unit.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			return serveRun(c.Context(), e, c.ErrOrStderr())
		},
	}
}

// serveRun is the headless keeper: the resident process without a tray.
func serveRun(ctx context.Context, e *env, stderr io.Writer) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	store, err := e.openStore()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e.log = log
	e.opener = nil // no browser here: a sign-in is `tokentray login NAME --paste`, or from a desktop
	runner := &hook.Runner{Log: log}
	f := fleet.New(cfg, fleet.Options{
		Store: store,
		Log:   log,
		NewKeeper: func(conn *config.Resolved) *auth.Keeper {
			o, _ := e.keeperOptions(conn) // the store is open
			o.OnlyHolder = true           // while it runs, every token comes from it
			o.MaxSleep = residentMaxSleep
			return auth.NewKeeper(conn.Auth, o)
		},
		Started: func(ctx context.Context, k *auth.Keeper, conn *config.Resolved) {
			hook.Watch(ctx, k, conn.AlertCommand, runner)
		},
	})
	hub := localapi.NewHub(e.clock)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	l, err := localapi.Listen(apiclient.DefaultPath())
	if err != nil {
		return fmt.Errorf("serve the local API: %w", err)
	}
	f.Start(ctx)
	tellBroken(ctx, f, runner, log, nil)
	follow := func() { hub.SetKeepers(f.Keepers()) }
	follow()
	f.OnChange(follow)
	go logEvents(ctx, hub, log)
	served := make(chan error, 1)
	api := &localapi.Server{Hub: hub, Connections: f, Clock: e.clock, Headless: true}
	go func() { served <- api.Serve(ctx, l) }()
	servePorts(ctx, api, f, func(connection, text string) { log.Error(text, "connection", connection) })
	watchResume(ctx, func() {
		for _, k := range f.Keepers() {
			k.Wake()
		}
	}, log)
	f.Watch(ctx, configLookInterval, func(err error) {
		log.Error("the config file was changed but not applied", "err", err)
	})
	log.Info("serving", "connections", len(cfg.Connections), "config", cfg.Path, "store", cfg.Store, "socket", apiclient.DefaultPath())
	select {
	case <-ctx.Done():
	case err = <-served:
		log.Error("the local API stopped", "err", err)
		stop()
	}
	f.Wait()
	hub.Close()
	log.Info("stopped")
	return err
}

// logEvents writes what happens to the connections to the log, a line each
// (the keepers log their state changes and failures themselves).
func logEvents(ctx context.Context, hub *localapi.Hub, log *slog.Logger) {
	events, stop := hub.Subscribe()
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
		log.Info(e.Text, attrs...)
	}
}

// tellBroken tells of each [[connection]] table that cannot be used, once
// per breakage: in the log, through notify where there is a desktop, and
// with the file's top-level on_alert (kind invalid_config; the table's
// own on_alert may be what is broken). The other connections run on.
func tellBroken(ctx context.Context, f *fleet.Fleet, runner *hook.Runner, log *slog.Logger, notify func(text string)) {
	f.OnBroken(func(b config.Broken) {
		cfg := f.Config()
		log.Error("a connection cannot be used until its table is fixed; the others run on", "connection", b.Label, "problems", b.Problems.Error(), "config", cfg.Path)
		if notify != nil {
			notify(b.Error())
		}
		if cfg.OnAlert == "" {
			return
		}
		name := b.Name
		if name == "" {
			name = b.Label
		}
		a := alerts.Alert{Connection: name, Kind: alerts.InvalidConfig, To: apitype.StateInvalidConfig, Error: b.Error(),
			Hint: "fix its [[connection]] table in " + cfg.Path, Time: time.Now()}
		go runner.RunAndLog(ctx, cfg.OnAlert, hook.Payload{Alert: a})
	})
}
