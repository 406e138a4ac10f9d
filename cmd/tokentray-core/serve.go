package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/service"
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

// serveRun is the headless keeper: the running tokentray without a tray.
func serveRun(ctx context.Context, e *env, stderr io.Writer) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	store, locker, err := e.storage()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	svc := service.New(service.Options{Role: service.Serve, Config: cfg, Store: store, Locker: locker, Clock: e.clock, Log: log,
		SocketPath: apiclient.DefaultPath()})
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := svc.Start(ctx, nil); err != nil {
		return err
	}
	log.Info("serving", "connections", len(cfg.Connections), "config", cfg.Path, "store", cfg.Store, "socket", apiclient.DefaultPath())
	select {
	case <-ctx.Done():
	case err = <-svc.APIStopped():
		log.Error("the local API stopped", "err", err)
		stop()
	}
	svc.Wait()
	log.Info("stopped")
	return err
}
