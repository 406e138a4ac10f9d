package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/tokennow"
)

type tokenOptions struct {
	minValid func() (time.Duration, error)
	json     bool
}

// tokenFrom asks the running tokentray for a token (it is the one
// refresher), or, when none runs, gets it here under the file lock.
// The result is also `tokentray token --json`; it never holds the refresh token.
// A token handed out although its refresh failed comes with one line on
// stderr that says so and when it expires.
func tokenFrom(ctx context.Context, e *env, name string, minValid time.Duration) (*apitype.Token, error) {
	var tok *apitype.Token
	err := e.with(func(b backend) error {
		var err error
		tok, err = b.Token(ctx, name, minValid)
		return err
	})
	if err != nil {
		return nil, err
	}
	printWarning(e.streams, name, tok)
	return tok, nil
}

// printWarning says, on stderr, that tok was handed out although the
// refresh it called for failed, and when it expires.
func printWarning(io streams, name string, tok *apitype.Token) {
	if w := tokennow.Warning(name, tok.Warning, tok.ExpiresAt, tok.ExpiresIn); w != "" {
		fmt.Fprintln(io.err, w)
	}
}

// minValidFlag adds --min-valid to c. Left out, it asks for the default
// margin, which fits every token lifetime; given, it is a promise that the
// token lasts that long, or the command fails.
func minValidFlag(c *cobra.Command) func() (time.Duration, error) {
	var d time.Duration
	c.Flags().DurationVar(&d, "min-valid", 0, "the token must stay valid at least this long (default: 2m, or less where the provider's tokens live shorter)")
	return func() (time.Duration, error) {
		if !c.Flags().Changed("min-valid") {
			return auth.DefaultMinValid, nil
		}
		if d < 0 {
			return 0, usageError{fmt.Errorf("--min-valid must not be negative, got %s", d)}
		}
		return d, nil
	}
}

func newTokenCmd(envFor envGetter) *cobra.Command {
	var o tokenOptions
	c := &cobra.Command{
		Use:   "token NAME",
		Short: "Print a valid access token (refreshing first if needed)",
		Long: `Prints an access token of NAME, and nothing else, to stdout. Refreshes first when the
token would not last the margin, or when tokentray's own scheduled refresh falls inside it
(some providers revoke the old access token at each refresh). The refresh is locked
against every other tokentray process, so scripts never race the rotation.

Without --min-valid the margin is 2 minutes, or less where the provider's tokens live
shorter, and during an outage the token held is printed while it is valid, with a warning
on stderr. With --min-valid the token lasts at least that long, or the command fails
(exit 4 when the provider cannot be reached, 2 when no token of this provider lives that
long).`,
		Example: `  curl -H "Authorization: Bearer $(tokentray token procore)" https://api.procore.com/rest/v1.0/me
  tokentray token procore --min-valid 10m --json | jq -r .expires_at`,
		Args: oneName,
		RunE: func(c *cobra.Command, args []string) error {
			minValid, err := o.minValid()
			if err != nil {
				return err
			}
			e, err := envFor(c)
			if err != nil {
				return err
			}
			tok, err := tokenFrom(c.Context(), e, args[0], minValid)
			if err != nil {
				return err
			}
			out := e.streams.out
			if !o.json {
				_, err = fmt.Fprintln(out, tok.AccessToken)
				return err
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(tok)
		},
	}
	o.minValid = minValidFlag(c)
	c.Flags().BoolVar(&o.json, "json", false, "print JSON with the token, its type, expiry and the API base")
	return c
}
