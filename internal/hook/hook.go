// Package hook runs the on_alert command: a shell command that gets one
// alert as JSON on stdin, when a connection needs a sign-in, stays without a
// valid token, or recovers. It is how an admin hears at 2 AM (a Slack
// webhook, an e-mail). A hook that fails or hangs is logged and killed,
// never fatal: tokentray keeps the connections alive either way.
package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/alerts"
)

// DefaultTimeout bounds one run of a hook.
const DefaultTimeout = 30 * time.Second

// Payload is what the hook reads on stdin.
type Payload struct {
	alerts.Alert
	Provider    string `json:"provider,omitempty"`
	Environment string `json:"environment,omitempty"`
}

// Runner runs hooks.
type Runner struct {
	Timeout time.Duration
	Log     *slog.Logger
	// Claim says whether this instance runs the hook of a keeper's alert,
	// when several share the connection's store: the one that claims the
	// alert's occurrence first (alerts.Claimer). nil: always.
	Claim func(ctx context.Context, a alerts.Alert) bool
}

// Run runs command with p on stdin and returns its failure, if any, with
// the start of its stderr.
func (r *Runner) Run(ctx context.Context, command string, p Payload) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := shell(ctx, command)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.Env = append(os.Environ(), "TOKENTRAY_ALERT="+string(p.Kind), "TOKENTRAY_CONNECTION="+p.Connection)
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("on_alert for %s: no end within %s; killed", p.Connection, timeout)
	case err != nil:
		return fmt.Errorf("on_alert for %s: %v%s", p.Connection, err, excerpt(stderr.String()))
	}
	return nil
}

func excerpt(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return ": " + s
}

func shell(ctx context.Context, command string) *exec.Cmd {
	if runtime.GOOS == "windows" {
		return exec.CommandContext(ctx, "cmd", "/C", command)
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	killGroup(cmd)
	return cmd
}

// RunAndLog runs the hook and logs its outcome. A hook cut short because
// tokentray is quitting was stopped, not failed, and is not logged as such.
func (r *Runner) RunAndLog(ctx context.Context, command string, p Payload) {
	err := r.Run(ctx, command, p)
	switch {
	case r.Log == nil || ctx.Err() != nil:
	case err != nil:
		r.Log.Warn("alert hook failed", "connection", p.Connection, "err", err)
	default:
		r.Log.Info("alert hook ran", "connection", p.Connection, "kind", p.Kind)
	}
}

// Watch runs command (none if "") on the alerts of k's connection until
// ctx ends.
func Watch(ctx context.Context, k *auth.Keeper, command string, r *Runner) {
	if command == "" {
		return
	}
	events, stop := k.Subscribe()
	go func() {
		<-ctx.Done()
		stop()
	}()
	conn := k.Connection()
	tracker := alerts.NewTracker()
	// A keeper that failed before this subscription (it runs already) is
	// told of all the same.
	seed, seeded := tracker.Seed(k.Status(), time.Now())
	seed.Generation = k.Generation()
	run := func(a alerts.Alert) {
		if r.Claim != nil && !r.Claim(ctx, a) {
			return // another instance runs it
		}
		r.RunAndLog(ctx, command, Payload{Alert: a, Provider: conn.Provider.Name, Environment: conn.Environment})
	}
	go func() {
		if seeded {
			go run(seed)
		}
		for e := range events {
			if a, ok := tracker.Observe(e); ok {
				go run(a)
			}
		}
	}()
}
