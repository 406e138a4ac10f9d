package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/demoprovider"
	"github.com/tokentray/tokentray/internal/events"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/service"
)

type demoOptions struct {
	terminal       bool
	lifetime       time.Duration
	breakAfter     time.Duration
	noBrowser      bool
	untilRefreshes int
}

// newDemoCmd runs tokentray against the embedded demo provider, with no
// set-up: tokens live in memory only, never in the keyring.
func newDemoCmd(io streams, opener func(string) error) *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Try tokentray against a built-in demo OAuth server (no set-up, nothing saved)",
		Long: `Starts a small OAuth 2.0 server inside tokentray on 127.0.0.1 (PKCE, single-use
rotating refresh tokens, short-lived access tokens), signs in through your browser, and
keeps the connection fresh: in the tray (green icon, live countdown in the dashboard),
or in this terminal with --terminal or without a display. Demo tokens stay in memory.

"Break the refresh token" in the tray menu (or --break-after) revokes the grant at the
demo server, as an admin revoking the app would. The tray refreshes at once: watch it fail
and the icon turn red, then re-authenticate (the notification, or the tray menu). In the
terminal the next scheduled refresh fails; press Enter to sign in again.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.lifetime < time.Second {
				return usageError{fmt.Errorf("--lifetime must be at least 1s, got %s", o.lifetime)}
			}
			if o.noBrowser {
				opener = nil
			}
			if !o.terminal && hasDisplay() {
				return demoTray(c.Context(), io, opener, o)
			}
			return demoRun(c.Context(), io, opener, o)
		},
	}
	c.Flags().BoolVar(&o.terminal, "terminal", false, "show the demo in this terminal instead of the tray (the default without a display)")
	c.Flags().DurationVar(&o.lifetime, "lifetime", 2*time.Minute, "access token lifetime at the demo server")
	c.Flags().DurationVar(&o.breakAfter, "break-after", 0, "revoke the grant at the demo server this long after the first sign-in (0: never)")
	c.Flags().BoolVar(&o.noBrowser, "no-browser", false, "only print the sign-in URL")
	c.Flags().IntVar(&o.untilRefreshes, "until-refreshes", 0, "exit after this many refreshes (0: run until Ctrl-C)")
	_ = c.Flags().MarkHidden("until-refreshes")
	return c
}

// demoSetup starts the demo provider and returns it with the demo
// connection and an empty in-memory store that holds the client secret.
func demoSetup(o demoOptions) (*demoprovider.Server, *auth.Connection, *auth.MemoryStore, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, nil, nil, err
	}
	redirect := fmt.Sprintf("http://localhost:%d/callback", port)
	srv := &demoprovider.Server{AccessTTL: o.lifetime, RedirectURI: redirect}
	base, err := srv.Start()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("start the demo provider: %w", err)
	}
	ru, err := auth.ParseRedirectURI(redirect)
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	generic, _ := auth.LookupPreset("generic")
	conn := &auth.Connection{
		Name: "demo", Provider: generic, Environment: "built-in", Grant: auth.GrantAuthorizationCode, ClientID: demoprovider.ClientID,
		RedirectURI: ru, RefreshAt: auth.DefaultRefreshAt, Scopes: []string{"demo.read"},
		Endpoints: auth.Endpoints{AuthURL: base + "/authorize", TokenURL: base + "/token", RevokeURL: base + "/revoke",
			APIBase: base + "/api", CheckURL: base + "/api/me"},
	}
	store := auth.NewMemoryStore()
	_ = store.SetClientSecret(context.Background(), conn.Name, demoprovider.ClientSecret)
	return srv, conn, store, nil
}

// demoService is the running tokentray of the demo: its one connection,
// kept in memory, and the local API where scripts get its tokens. Its
// errors go to stderr (another tokentray serving the socket, say).
func demoService(stderr io.Writer, conn *auth.Connection, store auth.Store, opener func(string) error, showURL func(string)) *service.Service {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	return service.New(service.Options{Role: service.Demo, Config: &config.Config{Path: "(demo)", Connections: []*auth.Connection{conn}},
		Store: store, OpenBrowser: opener, ShowURL: showURL, SocketPath: apiclient.DefaultPath(), Log: log})
}

func demoRun(ctx context.Context, io streams, opener func(string) error, o demoOptions) error {
	srv, conn, store, err := demoSetup(o)
	if err != nil {
		return err
	}
	defer srv.Close()
	base := srv.URL()
	clock := auth.SystemClock{}
	out := io.out
	svc := demoService(io.err, conn, store, func(url string) error {
		if opener != nil {
			if err := opener(url); err != nil {
				fmt.Fprintf(out, "Could not open a browser (%v): open the URL yourself.\n", err)
			}
		}
		return nil
	}, func(url string) {
		fmt.Fprintf(out, "Sign in to the demo provider in your browser (it opens by itself; if not, open this URL on this machine):\n\n  %s\n\n", url)
	})
	k := svc.Keeper(conn.Name)
	fmt.Fprintf(out, "tokentray demo: a demo OAuth server runs at %s; access tokens live %s.\n", base, o.lifetime)
	fmt.Fprintln(out, "Nothing is saved: demo tokens stay in memory. Press Ctrl-C to quit.")
	keeperEvents, unsubscribe := k.Subscribe()
	defer unsubscribe()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Scripts are what the demo is for: they get fresh tokens from it as
	// from the tray.
	if err := svc.Start(runCtx, nil); err != nil {
		return err
	}
	if svc.Served() {
		fmt.Fprintf(out, "Scripts get its tokens as from the tray: tokentray token demo (or curl --unix-socket %s http://tokentray/v1/connections/demo/token).\n", apiclient.DefaultPath())
	}
	if err := k.Login(ctx, auth.LoginOptions{}); err != nil {
		stop()
		svc.Wait()
		return err
	}
	done := make(chan struct{})
	go func() { svc.Wait(); close(done) }()

	enter := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(io.in)
		for sc.Scan() {
			select {
			case enter <- struct{}{}:
			default:
			}
		}
	}()
	// --break-after counts from the first sign-in: however long a person
	// (or a busy machine's browser) takes to sign in, the demo is seen
	// connected before it breaks.
	var breakC <-chan time.Time
	breakArmed := o.breakAfter <= 0
	live := isTerminalWriter(out)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	refreshes := 0
	fmt.Fprintln(out, demoLine(k.Status(), clock.Now(), refreshes))
	for {
		select {
		case <-ctx.Done():
			stop()
			<-done
			fmt.Fprintln(out, "\nBye.")
			return nil
		case <-breakC:
			srv.BreakRefreshTokens()
			clearLine(out, live)
			fmt.Fprintf(out, "%s  the demo provider revoked the grant (as an admin would); the next refresh will fail\n", stamp(clock.Now()))
		case <-enter:
			if st := k.Status(); st.State == auth.StateNeedsReauth || st.State == auth.StateDisconnected {
				if err := k.Login(ctx, auth.LoginOptions{}); err != nil && !errors.Is(err, context.Canceled) {
					fmt.Fprintf(out, "Sign-in failed: %v\n", err)
				}
			}
		case e := <-keeperEvents:
			if e.Kind == auth.EventSignedIn && !breakArmed {
				breakArmed, breakC = true, time.After(o.breakAfter)
			}
			clearLine(out, live)
			if msg := events.EventText(e); msg != "" {
				fmt.Fprintf(out, "%s  %s\n", stamp(e.Time), msg)
				if hint := humanize.Advice(e.Next, e.Hint, humanize.Terminal); hint != "" && e.Kind == auth.EventRefreshFailed {
					fmt.Fprintf(out, "           hint: %s\n", hint)
				}
			}
			if e.Kind == auth.EventRefreshed {
				refreshes++
				if o.untilRefreshes > 0 && refreshes >= o.untilRefreshes {
					stop()
					<-done
					fmt.Fprintf(out, "Done after %d refreshes; the demo server saw %d refresh requests.\n", refreshes, srv.Stats().Refreshes)
					return nil
				}
			}
			if e.Kind == auth.EventState && e.To == auth.StateNeedsReauth {
				fmt.Fprintln(out, "           press Enter to sign in again")
			}
		case <-ticker.C:
			if live {
				fmt.Fprint(out, "\r\033[K"+demoLine(k.Status(), clock.Now(), refreshes))
			}
		}
	}
}

func demoLine(st auth.Status, now time.Time, refreshes int) string {
	left := "no token"
	bar := ""
	if !st.AccessExpiry.IsZero() {
		left = humanize.Duration(st.AccessExpiry.Sub(now)) + " left"
		if !st.Usable {
			left = "expired"
		}
		bar = " " + progressBar(st, now)
	}
	next := ""
	if !st.NextRefresh.IsZero() {
		next = "  next refresh in " + humanize.Duration(max(0, st.NextRefresh.Sub(now)))
	}
	return fmt.Sprintf("demo  %-12s  access token %s%s%s  (refreshes: %d)", st.State, left, bar, next, refreshes)
}

// progressBar shows how much of the access token's lifetime is used.
func progressBar(st auth.Status, now time.Time) string {
	const width = 20
	lifetime := st.AccessExpiry.Sub(st.AccessObtained)
	if lifetime <= 0 {
		return ""
	}
	used := float64(now.Sub(st.AccessObtained)) / float64(lifetime)
	n := int(min(max(used, 0), 1) * width)
	return "[" + strings.Repeat("█", n) + strings.Repeat("░", width-n) + "]"
}

func stamp(t time.Time) string { return t.Local().Format("15:04:05") }

func clearLine(w io.Writer, live bool) {
	if live {
		fmt.Fprint(w, "\r\033[K")
	}
}

// isTerminalWriter reports whether w is a terminal, where a live status line
// can be redrawn in place.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the demo: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
