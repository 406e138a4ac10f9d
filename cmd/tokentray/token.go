package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/internal/localapi"
)

type tokenOptions struct {
	minValid time.Duration
	json     bool
}

// tokenFrom asks the running tray for a token (the tray is the one
// refresher), or, when none runs, gets it here under the file lock.
// The result is also `tokentray token --json`; it never holds the refresh token.
func tokenFrom(ctx context.Context, e *env, name string, minValid time.Duration) (*localapi.Token, error) {
	var tok *localapi.Token
	asked, err := e.askTray(func(c *localapi.Client) error {
		var err error
		tok, err = c.Token(ctx, name, minValid)
		return err
	})
	if asked {
		return tok, err
	}
	k, err := e.keeper(ctx, name)
	if err != nil {
		return nil, err
	}
	t, err := k.Token(ctx, minValid)
	if err != nil {
		return nil, err
	}
	return &localapi.Token{AccessToken: t.AccessToken.Reveal(), TokenType: t.TokenType, ExpiresAt: t.Expiry().UTC(),
		ExpiresIn: int64(t.Expiry().Sub(e.clock.Now()) / time.Second), APIBase: k.Connection().Endpoints.APIBase}, nil
}

func newTokenCmd(envFor envGetter) *cobra.Command {
	var o tokenOptions
	c := &cobra.Command{
		Use:   "token NAME",
		Short: "Print a valid access token (refreshing first if needed)",
		Long: `Prints an access token of NAME that stays valid for at least --min-valid, and
nothing else, to stdout. Refreshes first when the token is near its end; the refresh
is locked against every other tokentray process, so scripts never race the rotation.`,
		Example: `  curl -H "Authorization: Bearer $(tokentray token procore)" https://api.procore.com/rest/v1.0/me
  tokentray token procore --min-valid 10m --json | jq -r .expires_at`,
		Args: oneName,
		RunE: func(c *cobra.Command, args []string) error {
			if o.minValid < 0 {
				return usageError{fmt.Errorf("--min-valid must not be negative, got %s", o.minValid)}
			}
			e, err := envFor(c)
			if err != nil {
				return err
			}
			tok, err := tokenFrom(c.Context(), e, args[0], o.minValid)
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
	c.Flags().DurationVar(&o.minValid, "min-valid", 2*time.Minute, "the token must stay valid at least this long")
	c.Flags().BoolVar(&o.json, "json", false, "print JSON with the token, its type, expiry and the API base")
	return c
}
