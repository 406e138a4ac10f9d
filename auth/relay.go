package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// Relay is the desktop's half of a sign-in that another tokentray prepared
// (the one on a server, which keeps the PKCE verifier and the state): it
// catches the browser's callback on the registered loopback redirect URI,
// as a local sign-in does, and hands the callback's address to the other
// tokentray, which checks the state and exchanges the code. The browser's
// page says how that ended. Nothing of the sign-in is kept here.
type Relay struct {
	// Name is what the pages call the connection ("procore on moby-1").
	Name string
	// RedirectURI is where the provider sends the browser; it must be a
	// loopback one.
	RedirectURI RedirectURI
	// AuthorizeURL is the other tokentray's sign-in URL; its state is the
	// one a callback must carry.
	AuthorizeURL string
	// OpenBrowser opens AuthorizeURL.
	OpenBrowser func(url string) error
	// Forward hands the callback's address on and returns the outcome.
	Forward func(ctx context.Context, callback string) error
	// Timeout bounds the wait for the browser (DefaultLoginTimeout if zero).
	Timeout time.Duration
	Clock   Clock
}

// Run waits for the callback and returns Forward's outcome.
func (r *Relay) Run(ctx context.Context) error {
	if !r.RedirectURI.Loopback {
		there, _, _ := strings.Cut(r.Name, "@") // its name on the server
		return withStep(fmt.Errorf("the redirect URI %s is not a loopback one, so the browser cannot be caught on this machine", r.RedirectURI.Raw),
			stepWith(nextstep.SignInPasting, there, "The sign-in is then made on the server that keeps the connection."))
	}
	// The URL comes from the other machine: it is opened here only if it
	// is a web page (a server that was taken over could send any scheme).
	if err := CheckBrowserURL(r.AuthorizeURL); err != nil {
		return fmt.Errorf("the sign-in URL the other tokentray sent: %w", err)
	}
	au, err := url.Parse(r.AuthorizeURL)
	if err != nil || au.Query().Get("state") == "" {
		return fmt.Errorf("the sign-in URL %q carries no state", r.AuthorizeURL)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultLoginTimeout
	}
	listeners, err := listenLoopback(r.RedirectURI)
	if err != nil {
		return err
	}
	clock := r.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &relayHandler{relay: r, ctx: ctx, state: au.Query().Get("state"), done: make(chan error, 1)}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(l) }()
	}
	defer func() {
		shutdown, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = srv.Shutdown(shutdown) // the page of the outcome is written first
		wg.Wait()
	}()
	if r.OpenBrowser != nil {
		_ = r.OpenBrowser(r.AuthorizeURL)
	}
	select {
	case err := <-h.done:
		return err
	case <-clock.After(timeout):
		return fmt.Errorf("%w: no sign-in reached %s within %s", ErrLoginTimeout, r.RedirectURI.Raw, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

type relayHandler struct {
	relay *Relay
	ctx   context.Context
	state string
	done  chan error

	mu   sync.Mutex
	used bool
}

func (h *relayHandler) render(w http.ResponseWriter, status int, p page) {
	p.Connection = h.relay.Name
	renderPage(w, status, p)
}

func (h *relayHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.EscapedPath() != h.relay.RedirectURI.Path || r.Method != http.MethodGet {
		h.render(w, http.StatusNotFound, page{Outcome: "not-found", Title: "Nothing here",
			Message: "This is tokentray's sign-in listener. It only answers the registered callback path.",
			Detail:  "Callback path: " + h.relay.RedirectURI.Path})
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("state")), []byte(h.state)) != 1 {
		h.render(w, http.StatusBadRequest, page{Outcome: "bad-state", Title: "This sign-in link is not the current one",
			Message: "The callback did not carry the security code (state) of the sign-in tokentray is waiting for, so it was ignored.",
			Hint:    "It may come from an older sign-in tab. Start the sign-in again from tokentray and use the page it opens."})
		return
	}
	h.mu.Lock()
	used := h.used
	h.used = true
	h.mu.Unlock()
	if used {
		h.render(w, http.StatusConflict, page{Outcome: "already-used", Title: "This sign-in has ended",
			Message: "tokentray is no longer waiting for this sign-in. You can close this tab."})
		return
	}
	callback := (&url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}).String()
	err := h.relay.Forward(h.ctx, callback)
	if err != nil {
		h.render(w, http.StatusOK, page{Outcome: "relay-failed", Title: "Sign-in failed",
			Message: "The sign-in reached this machine, but the tokentray that keeps the connection did not complete it.",
			Detail:  err.Error(), Hint: pageHint(err)})
	} else {
		h.render(w, http.StatusOK, page{OK: true, Outcome: "signed-in", Title: "Signed in",
			Message: "The tokentray that keeps this connection holds the tokens now and keeps them fresh. You can close this tab."})
	}
	h.done <- err
}
