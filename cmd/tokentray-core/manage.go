package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/proxy/proxykey"
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
			fmt.Fprintln(e.streams.err, signedOutText(args[0], out))
			return nil
		},
	}
	c.Flags().BoolVar(&localOnly, "local-only", false, "do not contact the provider; only delete the tokens here")
	return c
}

// signedOutText says what a sign-out did: at the provider, and where the
// tokens were deleted (here, or the shared store, for every instance).
func signedOutText(name string, out *apitype.SignedOut) string {
	where := "the tokens are deleted here"
	if s := out.Shared; s != nil {
		where = "the tokens are deleted from the shared store, so every instance is signed out"
		if len(s.Instances) > 0 {
			where += " (" + strings.Join(s.Instances, ", ") + ")"
		}
	}
	if out.Revoked {
		return fmt.Sprintf("Signed out of %s: the provider revoked the refresh token, and %s.", name, where)
	}
	return fmt.Sprintf("Signed out of %s; nothing was revoked at the provider (%s), and %s.", name, out.NotRevoked, where)
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

func newProxyKeyCmd(envFor envGetter) *cobra.Command {
	var rotate, caCert bool
	c := &cobra.Command{
		Use:   "proxy-key NAME [--rotate | --cacert]",
		Short: "Print the key of NAME's proxy port (proxy_port); --cacert the CA to trust",
		Long: `Prints the key that clients of NAME's loopback proxy port (proxy_port in its table) send
in the Tokentray-Proxy-Key header. It is made the first time it is asked for, and kept in a
file only you can read ($XDG_STATE_HOME/tokentray/NAME.proxy-key). --rotate replaces it: a
client with the old key is refused from its next request on.

The port speaks HTTPS. --cacert prints the certificate (PEM) of the CA that its clients must
trust, instead of any other (httpx's verify=, Node's ca:, curl's --cacert): should a process
of another user hold the port before tokentray, their TLS handshake then fails before the
key or the request is sent. The CA is tokentray's own and serves every port; its key was
thrown away once it had signed the ports' certificate
($XDG_STATE_HOME/tokentray/proxy-port-tls.pem). Both are made anew when that file is
missing or broken, or 30 days before they end (they last 10 years).`,
		Example: `  tokentray proxy-key procore --cacert > procore-ca.pem
  curl --cacert procore-ca.pem -H "Tokentray-Proxy-Key: $(tokentray proxy-key procore)" https://127.0.0.1:8799/rest/v1.0/me
  tokentray proxy-key procore --rotate`,
		Args: oneName,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			if rotate && caCert {
				return usageError{errors.New("--rotate and --cacert do not go together: --rotate replaces the key, --cacert prints the CA (which every port shares)")}
			}
			cfg, err := e.config()
			if err != nil {
				return err
			}
			conn, err := cfg.Lookup(args[0])
			if err != nil {
				return err
			}
			if conn.ProxyPort == 0 {
				return usageError{fmt.Errorf("%s has no proxy port: set proxy_port = 8799 (or another free port) in its [[connection]] table, or call its API through the socket (see the README)", args[0])}
			}
			keys, err := proxykey.Open()
			if err != nil {
				return err
			}
			if caCert {
				id, err := keys.TLS()
				if err != nil {
					return err
				}
				_, err = e.streams.out.Write(id.CAPEM)
				return err
			}
			get := keys.Get
			if rotate {
				get = keys.Rotate
			}
			key, err := get(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(e.streams.out, key)
			return nil
		},
	}
	c.Flags().BoolVar(&rotate, "rotate", false, "replace the key: clients with the old one are refused")
	// --cacert, as curl names the option it goes to: it is the CA's
	// certificate, not the port's (--cert would be), and curl's --cert is a
	// client certificate.
	c.Flags().BoolVar(&caCert, "cacert", false, "print the CA certificate (PEM) that clients of the port must trust")
	return c
}

// newManCmd writes the man pages, one per command, made from the commands
// themselves so that they cannot drift from --help. Hidden: packages call
// it when they are built.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := c.Root()
			root.DisableAutoGenTag = true // the same pages for the same source
			return doc.GenManTree(root, &doc.GenManHeader{Title: "TOKENTRAY", Section: "1", Source: versionLine(),
				Manual: "tokentray manual"}, args[0])
		},
	}
}
