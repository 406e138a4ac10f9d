// Command tokentray-core is the whole of tokentray's command line, which
// the small front program (cmd/tokentray) hands every command to but the
// plain `token NAME` of scripts: the running tokentray in its roles (the
// tray, `serve`, the demo; internal/service), and every other command,
// which asks the running tokentray over its socket or, when none runs,
// does the work in its own process with the same operations (internal/op).
// See the README for the contracts.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/tokentray/tokentray/internal/remote"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/activation"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/browser"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/tokennow"
)

func init() {
	// Started by Explorer (the Start menu entry, start at login), cobra
	// would say "This is a command line tool" and exit: there, with no
	// command, this program is the tray, as it means to be.
	cobra.MousetrapHelpText = ""
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], systemStreams(), deps{env: newEnv, openBrowser: browser.Open})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code. Errors go to
// stderr; only requested data goes to stdout.
func run(ctx context.Context, args []string, io streams, d deps) int {
	if len(args) == 1 && activation.Is(args[0]) {
		return activate(ctx, io, args[0])
	}
	root := newRootCmd(io, d)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return apitype.ExitOK
	}
	var child exitCodeError
	if errors.As(err, &child) {
		return child.code // exec: the command's own exit code, no message of ours
	}
	return report(io, err)
}

// report tells what went wrong, with what to do next, and returns the
// exit code.
func report(io streams, err error) int {
	tokennow.PrintError(io.err, err.Error(), hintOf(err))
	return exitCode(err)
}

// hintOf is what to do about err, said for a terminal: the core's step, or
// the one the running tokentray named, or, from one that names none (an
// older one; a socket refused), its advice as it came.
func hintOf(err error) string {
	next := auth.NextStepOf(err)
	var stepped interface{ Next() *nextstep.Step } // the running tokentray's answer; a failed API check
	if next == nil && errors.As(err, &stepped) {
		next = stepped.Next()
	}
	hint := ""
	var hinted interface{ Hint() string }
	if errors.As(err, &hinted) {
		hint = hinted.Hint()
	}
	return humanize.Advice(next, hint, humanize.Terminal)
}

// deps are the outside things commands use; tests replace them.
type deps struct {
	env         envFactory
	openBrowser func(url string) error
}

// usageError is a mistake in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode is the exit code for err (apitype's contract): the running
// tokentray's own choice when it answered, else the one the API would give.
func exitCode(err error) int {
	var ue usageError
	var ve *config.ValidationError
	var ae *apiclient.APIError
	var re *remote.Error
	switch {
	case errors.As(err, &ae) && ae.ExitCode() != 0:
		return ae.ExitCode()
	case errors.As(err, &re) && re.ExitCode != 255 && re.ExitCode > 0:
		return re.ExitCode // the remote tokentray's own: the same meanings
	case errors.As(err, &ue), errors.As(err, &ve), errors.Is(err, config.ErrNoFile):
		return apitype.ExitUsage
	}
	return op.ErrorOf(err).ExitCode
}
