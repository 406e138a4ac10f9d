package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// exitCodeError carries a child's exit code through cobra.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("the command exited with %d", e.code) }

func newExecCmd(envFor envGetter) *cobra.Command {
	var minValid func() (time.Duration, error)
	c := &cobra.Command{
		Use:   "exec NAME -- COMMAND [ARGS...]",
		Short: "Run a command with a valid access token in its environment",
		Long: `Runs COMMAND with an access token of NAME (valid as for "tokentray token") in
an environment variable (token_env in the config; by default PROCORE_ACCESS_TOKEN for
Procore connections and ACCESS_TOKEN otherwise) and the API base next to it
(PROCORE_API_BASE, API_BASE). The command never refreshes on its own and never sees the
refresh token. tokentray exits with the command's exit code.`,
		Example: `  tokentray exec procore -- python3 sync_projects.py
  tokentray exec procore -- sh -c 'curl -H "Authorization: Bearer $PROCORE_ACCESS_TOKEN" "$PROCORE_API_BASE/rest/v1.0/me"'`,
		Args: func(c *cobra.Command, args []string) error {
			if c.ArgsLenAtDash() != 1 || len(args) < 2 {
				return usageError{errors.New("put the connection name, then --, then the command: tokentray exec NAME -- COMMAND [ARGS...]")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			minValid, err := minValid()
			if err != nil {
				return err
			}
			e, err := envFor(c)
			if err != nil {
				return err
			}
			name := args[0]
			tok, err := tokenFrom(c.Context(), e, name, minValid)
			if err != nil {
				return err
			}
			// token_env is the config file's; without a readable file, the
			// provider's names.
			tokenEnv := ""
			if cfg, err := e.config(); err == nil {
				if r, err := cfg.Resolve(name); err == nil {
					tokenEnv = r.TokenEnv
				}
			}
			tokenVar, baseVar := envNames(tok.Provider, tokenEnv)
			return runWithToken(args[1:], []string{
				tokenVar + "=" + tok.AccessToken,
				baseVar + "=" + tok.APIBase,
				"TOKENTRAY_CONNECTION=" + name,
			}, e.streams)
		},
	}
	minValid = minValidFlag(c)
	return c
}

// envNames are the variables for the token and the API base: token_env and
// its _API_BASE sibling, or names that follow the provider.
func envNames(provider, tokenEnv string) (string, string) {
	if tokenEnv != "" {
		return tokenEnv, strings.TrimSuffix(strings.TrimSuffix(tokenEnv, "_TOKEN"), "_ACCESS") + "_API_BASE"
	}
	if provider == "procore" {
		return "PROCORE_ACCESS_TOKEN", "PROCORE_API_BASE"
	}
	return "ACCESS_TOKEN", "API_BASE"
}

// runWithToken runs argv with extra environment, its standard streams
// passed through and SIGINT/SIGTERM forwarded, and returns its exit code.
func runWithToken(argv, extra []string, io streams) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return usageError{fmt.Errorf("cannot run %q: %w", argv[0], err)}
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = append(os.Environ(), extra...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = io.in, io.out, io.err
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		for s := range signals {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitCodeError{ee.ExitCode()}
	}
	return err
}
