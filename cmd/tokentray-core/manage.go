package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize"
)

func newRefreshCmd(envFor envGetter) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh NAME",
		Short: "Refresh NAME's access token now",
		Args:  oneName,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			var st apitype.Status
			err = e.with(func(b backend) error {
				conn, err := b.Refresh(c.Context(), args[0])
				if err == nil {
					st = conn.Status
				}
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.streams.err, "Refreshed %s. The access token is valid for %s.\n", args[0], humanize.Duration(st.AccessExpiry.Sub(e.clock.Now())))
			return nil
		},
	}
}

func newLogoutCmd(envFor envGetter) *cobra.Command {
	var localOnly bool
	c := &cobra.Command{
		Use:   "logout NAME",
		Short: "Revoke NAME's tokens at the provider and forget them",
		Long: `Revokes NAME's refresh token at the provider (RFC 7009), then deletes the tokens from
the keyring. If the provider cannot be reached the tokens are kept; --local-only
forgets them here without telling the provider. The client secret stays.`,
		Args: oneName,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			var out *apitype.SignedOut
			err = e.with(func(b backend) error {
				var err error
				out, err = b.Logout(c.Context(), args[0], localOnly)
				return err
			})
			if err != nil {
				return err
			}
			if out.Revoked {
				fmt.Fprintf(e.streams.err, "Signed out of %s: the provider revoked the refresh token, and the tokens are deleted here.\n", args[0])
			} else {
				fmt.Fprintf(e.streams.err, "Signed out of %s here; nothing was revoked at the provider: %s.\n", args[0], out.NotRevoked)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&localOnly, "local-only", false, "do not contact the provider; only delete the tokens here")
	return c
}

func newSecretCmd(envFor envGetter) *cobra.Command {
	return &cobra.Command{
		Use:   "secret NAME",
		Short: "Read NAME's client secret from stdin into the keyring",
		Long: `Reads the client secret of NAME from standard input (without echo on a terminal) and
keeps it in the OS keyring. It never goes into the config file.`,
		Example: `  tokentray secret procore-sandbox            # prompts
  printf %s "$SECRET" | tokentray secret procore-sandbox`,
		Args: oneName,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			// The name must be configured; whoever runs says so.
			if err := e.with(func(b backend) error {
				_, err := b.Connection(c.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			secret, err := readSecret(e.streams, args[0])
			if err != nil {
				return err
			}
			var st apitype.Status
			if err := e.with(func(b backend) error {
				conn, err := b.SetClientSecret(c.Context(), args[0], auth.Secret(secret))
				if err == nil {
					st = conn.Status
				}
				return err
			}); err != nil {
				return err
			}
			switch {
			case st.State == apitype.StateClientRefused:
				return fmt.Errorf("the provider still refuses the client of %s: %s", args[0], st.LastError)
			case st.State == apitype.StateConnected && st.LastRefreshOK:
				fmt.Fprintf(e.streams.err, "The provider accepted the client: %s is connected again with the kept refresh token (no sign-in needed).\n", args[0])
			}
			return nil
		},
	}
}

func readSecret(io streams, name string) (string, error) {
	var secret string
	if io.inTerminal && io.readSecret != nil {
		fmt.Fprintf(io.err, "Client secret for %s (input hidden): ", name)
		s, err := io.readSecret()
		fmt.Fprintln(io.err)
		if err != nil {
			return "", fmt.Errorf("read the secret: %w", err)
		}
		secret = s
	} else {
		line, err := bufio.NewReader(io.in).ReadString('\n')
		if err != nil && line == "" {
			return "", usageError{errors.New("no secret on stdin: pipe it in, e.g. printf %s \"$SECRET\" | tokentray secret " + name)}
		}
		secret = line
	}
	secret = strings.TrimRight(secret, "\r\n")
	if strings.TrimSpace(secret) == "" {
		return "", usageError{errors.New("the secret is empty: paste the Client Secret from the provider's developer portal")}
	}
	if strings.TrimSpace(secret) != secret {
		return "", usageError{errors.New("the secret starts or ends with spaces, which is almost certainly a copy-paste slip; paste it again without them")}
	}
	return secret, nil
}
