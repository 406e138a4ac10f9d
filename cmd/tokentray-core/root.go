package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRootCmd(io streams, d deps) *cobra.Command {
	var g globalOptions
	root := &cobra.Command{
		Use:   "tokentray",
		Short: "Keep OAuth 2.0 connections alive and hand fresh tokens to scripts",
		Long: `tokentray keeps OAuth 2.0 connections (Procore, or any OAuth 2.0 provider) signed in:
it refreshes access tokens before they expire, saves every rotated refresh token in
the OS keyring, and hands valid access tokens to scripts and agents.

Without a command, tokentray starts the system-tray app: a green, red or grey icon,
a menu per connection and a dashboard with live countdowns.

Exit codes: 0 ok, 2 usage or config error, 3 sign-in needed,
4 provider unreachable and no valid token, 1 anything else (e.g. keyring unavailable).`,
		Example: `  printf %s "$SECRET" | tokentray secret procore-sandbox
  tokentray login procore-sandbox
  curl -H "Authorization: Bearer $(tokentray token procore-sandbox)" https://sandbox.procore.com/rest/v1.0/me`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q (see `tokentray --help`)", args[0])}
			}
			return nil
		},
	}
	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(io.out)
	root.SetErr(io.err)
	root.SetIn(io.in)
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "config file (default: the user config dir's tokentray/config.toml)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what tokentray does to stderr (never tokens)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())}
	})

	envFor := func(c *cobra.Command) (*env, error) { return d.env(c.Context(), g, io) }
	root.RunE = func(c *cobra.Command, _ []string) error { return trayRun(c, envFor) }
	root.AddCommand(
		newLoginCmd(envFor),
		newTokenCmd(envFor),
		newStatusCmd(envFor),
		newRefreshCmd(envFor),
		newLogoutCmd(envFor),
		newSecretCmd(envFor),
		newExecCmd(envFor),
		newDemoCmd(io, d.openBrowser),
		newServeCmd(envFor),
		newEventsCmd(envFor),
		newProxyKeyCmd(envFor),
		newStoreCmd(envFor),
		newManCmd(),
	)
	return root
}

type envGetter func(c *cobra.Command) (*env, error)

// oneName is an Args validator whose error is a usage error.
func oneName(c *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("%s needs exactly one connection name, got %d (usage: %s)", c.Name(), len(args), c.UseLine())}
	}
	return nil
}
