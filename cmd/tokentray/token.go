package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

type tokenOptions struct {
	minValid time.Duration
	json     bool
}

// tokenJSON is `tokentray token --json`: the access token and what a script
// needs to use it. The refresh token is never printed.
type tokenJSON struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresIn   int64     `json:"expires_in"`
	APIBase     string    `json:"api_base,omitempty"`
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
			k, err := e.keeper(c.Context(), args[0])
			if err != nil {
				return err
			}
			t, err := k.Token(c.Context(), o.minValid)
			if err != nil {
				return err
			}
			out := e.streams.out
			if !o.json {
				_, err = fmt.Fprintln(out, t.AccessToken.Reveal())
				return err
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(tokenJSON{
				AccessToken: t.AccessToken.Reveal(), TokenType: t.TokenType, ExpiresAt: t.Expiry().UTC(),
				ExpiresIn: int64(t.Expiry().Sub(e.clock.Now()) / time.Second), APIBase: k.Connection().Endpoints.APIBase,
			})
		},
	}
	c.Flags().DurationVar(&o.minValid, "min-valid", 2*time.Minute, "the token must stay valid at least this long")
	c.Flags().BoolVar(&o.json, "json", false, "print JSON with the token, its type, expiry and the API base")
	return c
}
