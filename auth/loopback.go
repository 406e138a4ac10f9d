package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/safetext"
)

//go:embed pages/page.html
var pageFS embed.FS

// pageTemplate is parsed when first needed: every process links it, few
// sign in.
var pageTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.ParseFS(pageFS, "pages/page.html"))
})

// DefaultLoginTimeout is how long a sign-in waits for the browser.
const DefaultLoginTimeout = 5 * time.Minute

// ErrLoginTimeout means nobody completed the sign-in in time.
var ErrLoginTimeout = errors.New("sign-in timed out")

// AuthorizationError is an error the provider sent to the redirect URI
// (RFC 6749 §4.1.2.1), such as access_denied.
type AuthorizationError struct {
	Code        string
	Description string
}

func (e *AuthorizationError) Error() string {
	if e.Description != "" {
		return fmt.Sprintf("the provider refused the sign-in: %s (%s)", e.Code, e.Description)
	}
	return "the provider refused the sign-in: " + e.Code
}

// authorizationError is the error in a redirect's query q, in the
// provider's words, cleaned: they reach terminals and the event log.
func authorizationError(q url.Values) *AuthorizationError {
	return &AuthorizationError{Code: safetext.Clean(q.Get("error")), Description: safetext.Clean(q.Get("error_description"))}
}

// LoopbackFlow is one browser sign-in: authorization code with PKCE S256 and
// a one-time state (RFC 8252, RFC 9700), the callback caught on a loopback
// listener that exists only while the sign-in is in progress.
type LoopbackFlow struct {
	Conn   *Connection
	Secret Secret
	// OpenBrowser opens the authorize URL in the system browser. A failure
	// is reported through ShowURL's caller; the sign-in still waits, because
	// the person can paste the printed URL.
	OpenBrowser func(url string) error
	// ShowURL is told the authorize URL before the browser opens, so it can
	// be printed for a person whose browser did not open.
	ShowURL func(url string)
	// Timeout bounds the wait for the browser (DefaultLoginTimeout if zero).
	Timeout time.Duration
	Clock   Clock
	// HTTPClient is used for the code exchange.
	HTTPClient *http.Client
	// Paste supplies the address the browser landed on after signing in
	// (or, for OOBRedirectURI, the code the provider showed): for an https
	// redirect URI that tokentray cannot listen on, and for every sign-in
	// with PasteOnly.
	Paste io.Reader
	// PasteOnly signs in by Paste even with a loopback redirect URI: the
	// browser runs on another machine, where the callback address does not
	// load, and its address bar holds what is to be pasted.
	PasteOnly bool
	// DPoPKey, if set, is the key the tokens are to be bound to: its
	// thumbprint goes in the authorization request (dpop_jkt, RFC 9449
	// §10), and HTTPClient signs the token requests with it.
	DPoPKey *DPoPKey
}

// runPaste completes a sign-in whose redirect URI is a web server: the
// person pastes the address the browser landed on, and its state is
// checked exactly as the loopback callback's would be.
func (f *LoopbackFlow) runPaste(ctx context.Context, cfg *oauth2.Config, authURL, state, verifier string) (*oauth2.Token, error) {
	if f.ShowURL != nil {
		f.ShowURL(authURL)
	}
	if f.OpenBrowser != nil {
		_ = f.OpenBrowser(authURL)
	}
	line, err := bufio.NewReader(f.Paste).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("no address was pasted: %w", err)
	}
	line = strings.TrimSpace(line)
	if f.Conn.RedirectURI.OOB && !strings.ContainsAny(line, ":/?&=") {
		// The code alone, as the provider's page shows it. There is no
		// state to compare; PKCE binds the code to this sign-in's verifier.
		return f.exchangePasted(ctx, cfg, line, verifier)
	}
	u, err := url.Parse(line)
	if err != nil || u.RawQuery == "" {
		return nil, errors.New("paste the whole address from the browser's address bar, including its ?code= and &state= parts")
	}
	q := u.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		return nil, errors.New("the pasted address belongs to another sign-in (its state does not match); start again and paste the address from this sign-in")
	}
	if err := checkIssuer(q, f.Conn); err != nil {
		return nil, err
	}
	if code := q.Get("error"); code != "" {
		return nil, authorizationError(q)
	}
	if q.Get("code") == "" {
		return nil, errors.New("the pasted address has no code")
	}
	return f.exchangePasted(ctx, cfg, q.Get("code"), verifier)
}

func (f *LoopbackFlow) exchangePasted(ctx context.Context, cfg *oauth2.Config, code, verifier string) (*oauth2.Token, error) {
	if f.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, f.HTTPClient)
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, classify("code exchange", err, f.Conn)
	}
	return tok, nil
}

type callbackResult struct {
	token *oauth2.Token
	err   error
}

// Run performs the sign-in and returns the token response. It returns when
// the callback has been handled, the timeout passes or ctx is cancelled; the
// listener is closed before Run returns.
func (f *LoopbackFlow) Run(ctx context.Context) (*oauth2.Token, error) {
	ru := f.Conn.RedirectURI
	paste := !ru.Loopback || f.PasteOnly
	if paste && f.Paste == nil {
		if ru.Loopback {
			return nil, withStep(errors.New("a sign-in by pasting needs a terminal to paste into"), step(nextstep.SignInPasting, f.Conn.Name))
		}
		return nil, withStep(fmt.Errorf("redirect URI %s is not one tokentray can listen on, so the provider sends the browser elsewhere "+
			"(a redirect URI of the form http://localhost:PORT/callback is)", ru.Raw), step(nextstep.SignInPasting, f.Conn.Name))
	}
	clock := f.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultLoginTimeout
	}

	state := randomString(32)
	verifier := oauth2.GenerateVerifier()
	cfg := f.Conn.oauthConfig(f.Secret)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for k, v := range f.Conn.authParams() {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if f.DPoPKey != nil {
		opts = append(opts, oauth2.SetAuthURLParam("dpop_jkt", f.DPoPKey.Thumbprint()))
	}
	authURL := cfg.AuthCodeURL(state, opts...)
	if f.Conn.Endpoints.PARURL != "" {
		pushed, err := pushAuthorization(ctx, f.HTTPClient, f.Conn, f.Secret, authURL)
		if err != nil {
			return nil, err
		}
		authURL = pushed
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exchangeCtx := ctx
	if f.HTTPClient != nil {
		exchangeCtx = context.WithValue(ctx, oauth2.HTTPClient, f.HTTPClient)
	}

	if paste {
		return f.runPaste(ctx, cfg, authURL, state, verifier)
	}
	listeners, err := listenLoopback(ru)
	if err != nil {
		return nil, err
	}
	h := &callbackHandler{
		conn:    f.Conn,
		state:   state,
		results: make(chan callbackResult, 1),
		exchange: func(code string) (*oauth2.Token, error) {
			return cfg.Exchange(exchangeCtx, code, oauth2.VerifierOption(verifier))
		},
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Serve(l)
		}()
	}
	defer func() {
		// Let the last page reach the browser, then close the port.
		shutdownCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		_ = srv.Shutdown(shutdownCtx)
		wg.Wait()
	}()

	if f.ShowURL != nil {
		f.ShowURL(authURL)
	}
	if f.OpenBrowser != nil {
		if err := f.OpenBrowser(authURL); err != nil && f.ShowURL == nil {
			return nil, fmt.Errorf("open the browser: %w", err)
		}
	}

	select {
	case r := <-h.results:
		return r.token, r.err
	case <-clock.After(timeout):
		h.finish()
		return nil, fmt.Errorf("%w: no callback reached %s within %s; start the sign-in again", ErrLoginTimeout, ru.Raw, timeout)
	case <-ctx.Done():
		h.finish()
		return nil, fmt.Errorf("sign-in cancelled: %w", ctx.Err())
	}
}

// listenLoopback opens the registered port. "localhost" listens on both
// 127.0.0.1 and ::1, because browsers may resolve it to either; ::1 is
// skipped only where the machine has no IPv6 loopback at all.
func listenLoopback(ru RedirectURI) ([]net.Listener, error) {
	port := strconv.Itoa(ru.Port)
	var addrs []string
	switch ru.Host {
	case "localhost", "LOCALHOST", "Localhost":
		addrs = []string{"127.0.0.1:" + port, "[::1]:" + port}
	default:
		addrs = []string{net.JoinHostPort(ru.Host, port)}
	}
	var ls []net.Listener
	for i, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			optionalIPv6 := i > 0 && (isErrno(err, syscall.EADDRNOTAVAIL, wsaEADDRNOTAVAIL) || isErrno(err, syscall.EAFNOSUPPORT, wsaEAFNOSUPPORT))
			if optionalIPv6 {
				continue
			}
			for _, open := range ls {
				_ = open.Close()
			}
			if isErrno(err, syscall.EADDRINUSE, wsaEADDRINUSE) {
				which := fmt.Sprintf("`ss -ltnp 'sport = :%d'`", ru.Port)
				if runtime.GOOS == "windows" {
					which = fmt.Sprintf("`netstat -ano | findstr :%d`", ru.Port)
				}
				return nil, fmt.Errorf("port %d is already in use on %s, and the registered redirect URI %s requires exactly that port: "+
					"close the program using it (another sign-in, or %s shows which), or register a different port with the provider and change redirect_uri to match",
					ru.Port, a, ru.Raw, which)
			}
			return nil, fmt.Errorf("listen for the sign-in callback on %s: %w", a, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// Winsock's numbers for the errors a listener meets: on Windows, Go's
// syscall.EADDRINUSE, EADDRNOTAVAIL and EAFNOSUPPORT are numbers of Go's own,
// which no Windows call returns.
const (
	wsaEAFNOSUPPORT  = syscall.Errno(10047)
	wsaEADDRINUSE    = syscall.Errno(10048)
	wsaEADDRNOTAVAIL = syscall.Errno(10049)
)

// isErrno reports whether err is errno, or on Windows its Winsock number wsa.
func isErrno(err error, errno, wsa syscall.Errno) bool {
	return errors.Is(err, errno) || runtime.GOOS == "windows" && errors.Is(err, wsa)
}

// callbackHandler serves the redirect URI. Only the first callback with the
// right state ends the sign-in; everything else gets a page that says what
// happened and leaves the sign-in waiting, so a stale tab or a hostile page
// cannot cancel a person's sign-in.
type callbackHandler struct {
	conn     *Connection
	state    string
	exchange func(code string) (*oauth2.Token, error)
	results  chan callbackResult

	mu   sync.Mutex
	used bool
}

// finish marks the sign-in over so that late callbacks are refused.
func (h *callbackHandler) finish() {
	h.mu.Lock()
	h.used = true
	h.mu.Unlock()
}

type page struct {
	OK         bool
	Outcome    string
	Title      string
	Message    string
	Detail     string
	Hint       string
	Connection string
}

func (h *callbackHandler) render(w http.ResponseWriter, status int, p page) {
	p.Connection = h.conn.Name
	renderPage(w, status, p)
}

// renderPage writes a page of the sign-in listener: never cached, sending
// no referrer, running no script.
func renderPage(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_ = pageTemplate().Execute(w, p)
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.EscapedPath() != h.conn.RedirectURI.Path {
		h.render(w, http.StatusNotFound, page{Outcome: "not-found", Title: "Nothing here",
			Message: "This is tokentray's sign-in listener. It only answers the registered callback path.",
			Detail:  "Callback path: " + h.conn.RedirectURI.Path})
		return
	}
	if r.Method != http.MethodGet {
		h.render(w, http.StatusMethodNotAllowed, page{Outcome: "bad-method", Title: "Unexpected request",
			Message: "The sign-in callback must be a GET redirect from the provider."})
		return
	}
	q := r.URL.Query()
	gotState := q.Get("state")
	if gotState == "" || subtle.ConstantTimeCompare([]byte(gotState), []byte(h.state)) != 1 {
		h.render(w, http.StatusBadRequest, page{Outcome: "bad-state", Title: "This sign-in link is not the current one",
			Message: "The callback did not carry the security code (state) of the sign-in tokentray is waiting for, so it was ignored.",
			Hint:    "It may come from an older sign-in tab. Start the sign-in again from tokentray and use the page it opens."})
		return
	}

	h.mu.Lock()
	if h.used {
		h.mu.Unlock()
		h.render(w, http.StatusConflict, page{Outcome: "already-used", Title: "This sign-in has ended",
			Message: "tokentray is no longer waiting for this sign-in (it was completed, timed out or cancelled). You can close this tab."})
		return
	}
	h.used = true
	h.mu.Unlock()

	// A response from another server is refused even when it is an error:
	// RFC 9207 mix-up defence.
	if err := checkIssuer(q, h.conn); err != nil {
		h.render(w, http.StatusBadRequest, page{Outcome: "wrong-issuer", Title: "Sign-in refused",
			Message: "The answer names a different authorization server (iss) than the one tokentray sent you to, so it was refused.",
			Detail:  err.Error(),
			Hint:    "If this really is your provider, set issuer in the connection's config to the value it sends, then sign in again."})
		h.results <- callbackResult{err: err}
		return
	}

	if code := q.Get("error"); code != "" {
		err := authorizationError(q)
		h.render(w, http.StatusOK, authorizationErrorPage(err, h.conn))
		h.results <- callbackResult{err: err}
		return
	}
	code := q.Get("code")
	if code == "" {
		err := errors.New("the provider's callback carried neither a code nor an error")
		h.render(w, http.StatusBadRequest, page{Outcome: "no-code", Title: "Sign-in failed",
			Message: "The provider redirected back without an authorization code.", Hint: "Start the sign-in again from tokentray."})
		h.results <- callbackResult{err: err}
		return
	}
	tok, err := h.exchange(code)
	if err != nil {
		te := classify("code exchange", err, h.conn)
		h.render(w, http.StatusOK, page{Outcome: "exchange-failed", Title: "Sign-in failed",
			Message: "The provider accepted the sign-in, but exchanging the code for tokens failed.",
			Detail:  te.Error(), Hint: pageHint(te)})
		h.results <- callbackResult{err: te}
		return
	}
	h.render(w, http.StatusOK, page{OK: true, Outcome: "signed-in", Title: "Signed in",
		Message: "tokentray now holds the tokens and keeps them fresh. You can close this tab."})
	h.results <- callbackResult{token: tok}
}

// pageHint is what a sign-in's page in the browser says about err: the
// cause the core names, in words that hold on every surface. The step
// itself is said where the sign-in was started, in that surface's words.
func pageHint(err error) string {
	if s := NextStepOf(err); s != nil {
		return s.Cause
	}
	return ""
}

// ErrWrongIssuer means the authorization response named another server.
var ErrWrongIssuer = errors.New("the authorization response came from another issuer")

// checkIssuer applies RFC 9207: an `iss` in the authorization response must
// be the issuer the request was sent to. With an issuer configured the match
// is exact (the RFC's simple string comparison); without one, the `iss` must
// share the authorize URL's scheme, host and port, which still stops a
// response from another server. A response without `iss` is accepted:
// most providers, Procore among them, do not send it.
func checkIssuer(q url.Values, conn *Connection) error {
	if !q.Has("iss") {
		return nil
	}
	iss := q.Get("iss")
	if want := conn.Endpoints.Issuer; want != "" {
		if iss != want {
			return fmt.Errorf("%w: iss %q, but %s's issuer is %q", ErrWrongIssuer, iss, conn.Name, want)
		}
		return nil
	}
	got, err := url.Parse(iss)
	authURL, err2 := url.Parse(conn.Endpoints.AuthURL)
	if err != nil || err2 != nil || got.Scheme != authURL.Scheme || !strings.EqualFold(got.Host, authURL.Host) {
		return fmt.Errorf("%w: iss %q is not on the authorize URL's server %s; if it is your provider's real issuer, set issuer = %q for %s",
			ErrWrongIssuer, iss, conn.Endpoints.AuthURL, iss, conn.Name)
	}
	return nil
}

func authorizationErrorPage(err *AuthorizationError, conn *Connection) page {
	p := page{Outcome: "provider-error", Title: "Sign-in was not completed", Message: err.Error()}
	switch err.Code {
	case "access_denied":
		p.Title = "Access was not granted"
		p.Message = "The sign-in was declined, so tokentray did not get access."
		p.Hint = "If that was a mistake, start the sign-in again and choose Allow."
	case "invalid_scope":
		p.Hint = "The provider refused the requested scopes: check `scopes` for this connection."
	case "unauthorized_client", "invalid_client", "invalid_request":
		p.Hint = fmt.Sprintf("Check that the client id belongs to this environment and that the redirect URI registered with the provider is exactly %s.", conn.RedirectURI.Raw)
	default:
		p.Hint = "Start the sign-in again; if it keeps failing, check the connection's settings."
	}
	if err.Description != "" {
		p.Detail = "Provider said: " + err.Description
	}
	return p
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
