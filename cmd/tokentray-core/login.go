package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/remote"
	"github.com/tokentray/tokentray/internal/safetext"
)

type loginOptions struct {
	timeout   time.Duration
	noBrowser bool
	paste     bool
	// relay is --paste for a tokentray on another machine (login
	// NAME@REMOTE there): JSON lines on stdout instead of words.
	relay bool
	// device signs in with a code typed on any device (RFC 8628).
	device bool
}

func newLoginCmd(envFor envGetter) *cobra.Command {
	var o loginOptions
	c := &cobra.Command{
		Use:   "login NAME",
		Short: "Sign in through the browser and keep the tokens in the keyring",
		Long: `Signs NAME in: opens the system browser at the provider's sign-in page and catches
the callback on the registered http://localhost:PORT redirect URI (PKCE and state
protect it). The browser must run on this machine. The URL is printed too, for when
no browser opens.

With --paste (a server, or any machine without a browser), open the printed URL in a
browser anywhere; after the sign-in it goes to the redirect URI, which does not load
there: paste the whole address from its address bar (or, for the out-of-band redirect
urn:ietf:wg:oauth:2.0:oob, the code the provider shows). The state and PKCE are checked
as for the loopback sign-in, and the code is exchanged here: the tokens never leave
this machine.

With --device (RFC 8628's device authorization grant, where the provider offers it:
GitHub, Microsoft, Google), tokentray shows a short code and a URL: open the URL on
any device, phone included, and enter the code. No redirect URI is used, so a
connection that only ever signs in this way needs none. For NAME@REMOTE, the
tokentray there asks for the code and keeps the tokens.`,
		Args: oneName,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			return loginRun(c, e, args[0], o)
		},
	}
	c.Flags().DurationVar(&o.timeout, "timeout", auth.DefaultLoginTimeout, "how long to wait for the browser sign-in (with --device: as long as the code is valid)")
	c.Flags().BoolVar(&o.noBrowser, "no-browser", false, "only print the sign-in URL; do not open a browser")
	c.Flags().BoolVar(&o.paste, "paste", false, "sign in with a browser on another machine: open the printed URL there, then paste the address it lands on (or the code)")
	c.Flags().BoolVar(&o.device, "device", false, "sign in with a code entered on any device (RFC 8628): for servers and machines without a browser")
	c.Flags().BoolVar(&o.relay, "relay", false, "--paste for the tokentray of another machine (`tokentray login NAME@REMOTE` there): JSON lines on stdout")
	_ = c.Flags().MarkHidden("relay")
	return c
}

func loginRun(c *cobra.Command, e *env, name string, o loginOptions) error {
	if o.timeout <= 0 {
		return usageError{fmt.Errorf("--timeout must be positive, got %s", o.timeout)}
	}
	if o.relay && !o.device {
		o.paste = true // --relay alone: the desktop's browser, its address pasted here
	}
	if o.device && o.paste {
		return usageError{fmt.Errorf("--device and --paste are two ways to sign in without a browser here: choose one")}
	}
	if o.device && !c.Flags().Changed("timeout") {
		o.timeout = 0 // as long as the code is valid
	}
	if remoteName, ok := remoteConnection(name); ok && !o.relay {
		return remoteLogin(c, e, name, remoteName, o)
	}
	return e.with(func(b backend) error {
		conn, err := b.Login(c.Context(), name, o)
		switch {
		case err != nil:
		case o.relay:
			err = json.NewEncoder(e.streams.out).Encode(conn)
		default:
			printSignedIn(e.streams, name, conn.Status, e.clock.Now())
		}
		return err
	})
}

// Login signs name in from this process: the browser opens here, the
// callback comes here (or its address is pasted), and the tokens are saved.
func (l inProcess) Login(ctx context.Context, name string, o loginOptions) (*apitype.Connection, error) {
	e, io := l.e, l.e.streams
	resolved, err := e.lookup(name)
	if err != nil {
		return nil, err
	}
	conn := resolved.Auth
	opener := e.opener
	if o.noBrowser || o.paste || o.device {
		opener = nil
	}
	opts, err := e.keeperOptions(resolved)
	if err != nil {
		return nil, err
	}
	opts.OpenBrowser = func(url string) error {
		if opener == nil {
			return nil
		}
		if err := opener(url); err != nil {
			fmt.Fprintf(io.err, "Could not open a browser (%v); open the URL above yourself.\n", err)
		}
		return nil
	}
	opts.ShowURL = func(url string) {
		if o.relay {
			_ = json.NewEncoder(io.out).Encode(apitype.PasteSignIn{AuthorizeURL: url, RedirectURI: conn.RedirectURI.Raw})
			return
		}
		if o.paste {
			printPasteInstructions(io, conn.Name, url, conn.RedirectURI.Raw)
			return
		}
		fmt.Fprintf(io.err, "Signing in to %s (%s). Open this URL in a browser on this machine if none opens:\n\n  %s\n\n",
			conn.Name, strings.TrimSpace(conn.Provider.Name+" "+conn.Environment), url)
		if conn.RedirectURI.Loopback {
			fmt.Fprintf(io.err, "Waiting up to %s for the sign-in to reach %s …\n", o.timeout, conn.RedirectURI.Raw)
		} else {
			fmt.Fprintf(io.err, "After signing in, paste the whole address the browser lands on (%s?code=…) and press Enter:\n", conn.RedirectURI.Raw)
		}
	}
	k := auth.NewKeeper(conn, opts)
	showCode := func(c auth.DeviceCode) {
		code := apitype.DeviceSignIn{UserCode: c.UserCode, VerificationURI: c.VerificationURI,
			VerificationURIComplete: c.VerificationURIComplete, Expires: c.Expires}
		if o.relay {
			_ = json.NewEncoder(io.out).Encode(code)
			return
		}
		printDeviceCode(io, conn.Name, code, e.clock.Now())
	}
	if err := k.Login(ctx, auth.LoginOptions{Timeout: o.timeout, Paste: io.in, PasteOnly: o.paste, Device: o.device, ShowCode: showCode}); err != nil {
		return nil, err
	}
	out := op.Describe(k)
	return &out, nil
}

// printPasteInstructions says how a sign-in by pasting goes.
func printPasteInstructions(io streams, name, authURL, redirectURI string) {
	fmt.Fprintf(io.err, "Signing in to %s. Open this URL in a browser on any machine and sign in:\n\n  %s\n\n", name, authURL)
	if redirectURI == auth.OOBRedirectURI {
		fmt.Fprintf(io.err, "The provider then shows a code: paste it here and press Enter:\n")
		return
	}
	fmt.Fprintf(io.err, "The browser then goes to %s?code=…, which need not load there: paste the whole address from its address bar here and press Enter:\n", redirectURI)
}

// printDeviceCode says how to finish a sign-in with a code.
func printDeviceCode(io streams, name string, c apitype.DeviceSignIn, now time.Time) {
	fmt.Fprintf(io.err, "Signing in to %s. On any device, open\n\n  %s\n\nand enter the code\n\n  %s\n\n", name, c.VerificationURI, c.UserCode)
	if c.VerificationURIComplete != "" {
		fmt.Fprintf(io.err, "(or open %s, which has the code in it)\n", c.VerificationURIComplete)
	}
	if !c.Expires.IsZero() {
		fmt.Fprintf(io.err, "Waiting for the sign-in; the code is valid for %s …\n", humanize.Duration(c.Expires.Sub(now)))
	}
}

// printSignedIn tells how long the sign-in lasts, and says so plainly when
// the server issued no refresh token.
func printSignedIn(io streams, name string, st apitype.Status, now time.Time) {
	left := humanize.Duration(st.AccessExpiry.Sub(now))
	if st.Grant == string(auth.GrantAuthorizationCode) && !st.HasRefreshToken {
		fmt.Fprintf(io.err, "Signed in to %s, but the server issued no refresh token: the access token is valid for %s, and then a new sign-in is needed.\nhint: %s\n",
			name, left, humanize.NextStep(auth.NoRefreshToken(name), humanize.Terminal))
		return
	}
	fmt.Fprintf(io.err, "Signed in to %s. The access token is valid for %s; tokentray refreshes it before then.\n", name, left)
}

// remoteConnection splits NAME@REMOTE: a connection of the tokentray on
// the machine of a [[remote]] table. Connection names have no "@".
func remoteConnection(arg string) (remoteName string, ok bool) {
	_, remoteName, ok = strings.Cut(arg, "@")
	return remoteName, ok
}

// remoteLogin signs NAME@REMOTE in with this machine's browser; the
// tokentray there keeps the sign-in's secrets and the tokens.
func remoteLogin(c *cobra.Command, e *env, arg, remoteName string, o loginOptions) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	rc, err := cfg.Remote(remoteName)
	if err != nil {
		return usageError{err}
	}
	name, _, _ := strings.Cut(arg, "@")
	r := remote.Remote{Remote: rc, ControlDir: filepath.Dir(apiclient.DefaultPath())}
	if o.device {
		// The tokentray there asks for the code and keeps the tokens; its
		// words (the code, the URL) come through ssh's stderr.
		args := []string{"login", name, "--device"}
		if o.timeout > 0 {
			args = append(args, "--timeout", o.timeout.String())
		}
		cmd := r.Command(c.Context(), args...)
		// The server's words reach this terminal: line by line, cleaned.
		out := safetext.NewLines(e.streams.err)
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		_ = out.Close()
		if err != nil {
			if cmd.ProcessState == nil {
				return fmt.Errorf("run ssh for %s: %w", remoteName, err)
			}
			return &remote.Error{Remote: remoteName, ExitCode: cmd.ProcessState.ExitCode(), Stderr: "the sign-in with a code failed (see above)"}
		}
		return nil
	}
	opener := e.opener
	if o.noBrowser {
		opener = nil
	}
	show := func(url string) {
		fmt.Fprintf(e.streams.err, "Signing in to %s on %s (it keeps the tokens). Open this URL in a browser on this machine if none opens:\n\n  %s\n\n", name, remoteName, url)
	}
	conn, err := r.Login(c.Context(), name, opener, show, o.timeout)
	if err != nil {
		return err
	}
	printSignedIn(e.streams, arg, conn.Status, e.clock.Now())
	return nil
}
