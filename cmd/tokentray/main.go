// Command tokentray keeps OAuth 2.0 connections alive and hands fresh access
// tokens to people, scripts and agents. See the README for the contracts.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/browser"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/localapi"
)

func main() {
	if code, done := tokenNow(os.Args[1:], systemStreams()); done {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], systemStreams(), deps{env: newEnv, openBrowser: browser.Open})
	stop()
	os.Exit(code)
}

// tokenNow answers the plain `tokentray token NAME` that scripts run in
// loops from the running tokentray, before anything else is set up: one
// request on the socket, the token printed. With nothing running, or any
// other command line, it is not done, and run does the work.
func tokenNow(args []string, io streams) (code int, done bool) {
	if len(args) != 2 || args[0] != "token" || strings.HasPrefix(args[1], "-") {
		return 0, false
	}
	tok, err := apiclient.New(apiclient.DefaultPath()).TokenNow(args[1], apiclient.DefaultMinValid)
	var ae *apiclient.APIError
	switch {
	case err == nil:
		printWarning(io, args[1], tok)
		fmt.Fprintln(io.out, tok.AccessToken)
		return apitype.ExitOK, true
	case errors.As(err, &ae):
		return report(io, err), true
	}
	return 0, false // not running, or not answering as expected: the long way says why
}

// run executes one command line and returns the exit code. Errors go to
// stderr; only requested data goes to stdout.
func run(ctx context.Context, args []string, io streams, d deps) int {
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

// report tells what went wrong, with the hint that came with it, and
// returns the exit code.
func report(io streams, err error) int {
	fmt.Fprintln(io.err, "tokentray: "+err.Error())
	var ae *apiclient.APIError
	switch {
	case auth.HintOf(err) != "":
		fmt.Fprintln(io.err, "hint: "+auth.HintOf(err))
	case errors.As(err, &ae) && ae.Hint() != "":
		fmt.Fprintln(io.err, "hint: "+ae.Hint())
	}
	return exitCode(err)
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
	switch {
	case errors.As(err, &ae) && ae.ExitCode() != 0:
		return ae.ExitCode()
	case errors.As(err, &ue), errors.As(err, &ve), errors.Is(err, config.ErrNoFile):
		return apitype.ExitUsage
	}
	_, e := localapi.ErrorOf(err)
	return e.ExitCode
}
