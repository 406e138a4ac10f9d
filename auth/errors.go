package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/safetext"
)

// Sentinel errors that callers map to exit codes and API responses.
var (
	// ErrNeedsSignIn: no usable refresh token; a person must sign in again.
	ErrNeedsSignIn = errors.New("sign-in needed")
	// ErrUnreachable: the provider could not be reached and no valid access
	// token is held.
	ErrUnreachable = errors.New("provider unreachable")
	// ErrCredentialsRefused: a client-credentials connection (a service
	// account) has no usable client secret; a person must fix it. It is an
	// ErrNeedsSignIn, for the exit code, without the words "sign in".
	ErrCredentialsRefused error = personNeeded("the client's credentials need fixing")
	// ErrSignInBusy: another kind of sign-in of the connection is waiting
	// for a person.
	ErrSignInBusy = errors.New("another sign-in is in progress")
	// ErrNoSignIn: the connection has no sign-in of the kind asked for (a
	// service account has none with a code).
	ErrNoSignIn = errors.New("nobody signs it in that way")
)

// steppedError carries what a person does next along with an error.
type steppedError struct {
	err  error
	next *nextstep.Step
}

func (e *steppedError) Error() string { return e.err.Error() }
func (e *steppedError) Unwrap() error { return e.err }

// withStep attaches next to err; a nil next leaves err as it is.
func withStep(err error, next *nextstep.Step) error {
	if next == nil {
		return err
	}
	return &steppedError{err: err, next: next}
}

// NextStepOf returns what a person does next about err, nil when it does
// not say. The core names the step; every surface says it in its own
// words (internal/humanize: the CLI's "hint:" line and the API's "hint"
// name the command, the dashboard's "What to do" its button).
func NextStepOf(err error) *nextstep.Step {
	var h *steppedError
	if errors.As(err, &h) {
		return h.next
	}
	var te *TokenError
	if errors.As(err, &te) {
		return te.Next
	}
	return nil
}

// step is a next step about the connection called name.
func step(kind nextstep.Kind, name string) *nextstep.Step {
	return &nextstep.Step{Kind: kind, Connection: name}
}

// stepWith is a next step with its cause.
func stepWith(kind nextstep.Kind, name, cause string) *nextstep.Step {
	return &nextstep.Step{Kind: kind, Connection: name, Cause: cause}
}

// credentialsRefused is an ErrCredentialsRefused in its own words, without
// the sentinel's text appended.
type credentialsRefused string

func (e credentialsRefused) Error() string { return string(e) }
func (e credentialsRefused) Is(target error) bool {
	return target == ErrCredentialsRefused || target == ErrNeedsSignIn
}

// personNeeded is an ErrNeedsSignIn with its own words.
type personNeeded string

func (e personNeeded) Error() string        { return string(e) }
func (e personNeeded) Is(target error) bool { return target == ErrNeedsSignIn }

// Class says what a failure means for the connection.
type Class int

const (
	// Transient failures (network, timeout, 429, 5xx) are retried with backoff.
	Transient Class = iota
	// Permanent failures (the grant or the client was rejected) need a person.
	Permanent
)

// TokenError is a failed call to the token endpoint, classified and explained.
// Its message never contains a token or the response body, and the server's
// words in it (Code, Description) are cleaned of escape sequences and
// control characters (internal/safetext): it is shown on terminals.
type TokenError struct {
	Op          string // "refresh", "code exchange", "client credentials"
	Class       Class
	Status      int    // HTTP status, 0 when no response arrived
	Code        string // RFC 6749 error code, when the server sent one
	Description string // the server's error_description, if any
	RetryAfter  time.Duration
	// MaybeProcessed is true when the request may have reached the server
	// although no usable answer came back. With single-use refresh tokens
	// the presented token may now be dead.
	MaybeProcessed bool
	Next           *nextstep.Step // the likely cause and what to do
	Err            error          // the underlying error, for errors.Is/As
}

func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(" failed: ")
	switch {
	case e.Code != "":
		b.WriteString(e.Code)
		if e.Description != "" {
			b.WriteString(" (" + e.Description + ")")
		}
		if e.Status != 0 {
			fmt.Fprintf(&b, ", HTTP %d", e.Status)
		}
	case e.Status != 0:
		fmt.Fprintf(&b, "HTTP %d %s", e.Status, http.StatusText(e.Status))
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("unknown error")
	}
	return b.String()
}

func (e *TokenError) Unwrap() error { return e.Err }

// permanentCodes are the RFC 6749 §5.2 errors after which retrying cannot help.
var permanentCodes = map[string]bool{
	"invalid_grant":          true,
	"invalid_client":         true,
	"unauthorized_client":    true,
	"unsupported_grant_type": true,
	"invalid_scope":          true,
	"invalid_request":        true,
}

// classify turns an error from x/oauth2 into a TokenError.
func classify(op string, err error, conn *Connection) *TokenError {
	te := &TokenError{Op: op, Class: Transient, Err: err}
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		// Every token endpoint answer passes here: cleaned here, its words
		// are safe in every message, step and log line built from them.
		te.Code = safetext.Clean(re.ErrorCode)
		te.Description = safetext.Clean(re.ErrorDescription)
		if conn != nil && conn.Provider != nil {
			if std, ok := conn.Provider.ErrorCodes[te.Code]; ok {
				// The provider's own code, by the standard one it means.
				te.Code, te.Description = std, strings.TrimSuffix(te.Code+": "+te.Description, ": ")
			}
		}
		if re.Response != nil {
			te.Status = re.Response.StatusCode
			te.RetryAfter = parseRetryAfter(re.Response.Header.Get("Retry-After"))
		}
		// Keep the message free of the body (it can be a whole HTML page).
		te.Err = errors.New("token endpoint returned an error")
		switch {
		case permanentCodes[te.Code]:
			te.Class = Permanent
		case te.Status == http.StatusUnauthorized && te.Code == "":
			te.Class = Permanent
			te.Code = "invalid_client"
		case te.Status == http.StatusTooManyRequests || te.Status >= 500 || te.Status == 0:
			te.Class = Transient
			te.MaybeProcessed = te.Status >= 500
		case te.Status >= 400:
			// A 4xx without a recognised code: the server understood and refused.
			te.Class = Permanent
		}
	case errors.Is(err, context.Canceled):
		te.Err = err
	case isTimeout(err):
		te.MaybeProcessed = true
		te.Err = errors.New("no answer from the token endpoint in time")
	case isNetwork(err):
		// A reset or EOF after the request was written may mean the server
		// processed it; a refused connection means it never arrived.
		te.MaybeProcessed = !isConnRefused(err)
	default:
		// A 200 whose body was not a token (garbage, truncated, no
		// access_token): the server processed the request.
		te.MaybeProcessed = true
		te.Err = fmt.Errorf("the token endpoint's answer was not a usable token (%s)", redactOAuthMessage(err))
	}
	te.Next = diagnose(te, conn)
	return te
}

// redactOAuthMessage keeps x/oauth2's short parse errors and drops anything
// that could echo a response body. What is left can still hold the
// server's words (its status line's reason phrase), so it is cleaned.
func redactOAuthMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	return safetext.Clean(msg)
}

// diagnose names the likely cause of a failed token call and what to do.
func diagnose(te *TokenError, conn *Connection) *nextstep.Step {
	urls := ""
	if conn != nil {
		var in []string
		for _, u := range []struct{ what, url string }{{"authorize", conn.Endpoints.AuthURL}, {"token", conn.Endpoints.TokenURL},
			{"API", conn.Endpoints.APIBase}, {"redirect URI", conn.RedirectURI.Raw}} {
			if u.url != "" {
				in = append(in, u.what+" "+u.url)
			}
		}
		if len(in) > 0 {
			urls = " URLs in use: " + strings.Join(in, ", ") + "."
		}
	}
	name := connName(conn)
	isProcore := conn != nil && conn.Provider != nil && conn.Provider.Name == "procore"
	switch te.Code {
	case "invalid_client":
		if isProcore {
			return stepWith(nextstep.FixClient, name, "Procore did not accept the client (\"unknown client\"). Usually the app is registered in another environment "+
				"(the developer sandbox has its own credentials; production and the monthly sandbox share theirs), the client "+
				"secret is wrong, or the redirect URI differs from the one "+
				"registered in the Developer Portal (port, path and trailing slash must match exactly)."+urls)
		}
		return stepWith(nextstep.FixClient, name, "The provider did not accept the client: check the client id, the client secret, "+
			"and that the token URL belongs to the same environment as the client."+methodHint(te, conn)+urls)
	case "invalid_grant":
		switch te.Op {
		case "code exchange":
			return stepWith(nextstep.SignInAgain, name, "The authorization code was refused: it expired, was already used, or the redirect URI differs from the one used to sign in."+urls)
		default:
			return stepWith(nextstep.SignInAgain, name, "The refresh token is no longer valid (revoked, expired, or already used).")
		}
	case "unauthorized_client":
		return stepWith(nextstep.EnableGrant, name, "The client is not allowed this grant type.")
	case "invalid_scope":
		return &nextstep.Step{Kind: nextstep.CheckSetting, Connection: name, Cause: "The provider refused the requested scopes.", Setting: "scopes"}
	}
	switch {
	case te.Status == http.StatusTooManyRequests:
		return stepWith(nextstep.Wait, name, "The provider is rate limiting, and said how long to wait.")
	case te.Status >= 500:
		return stepWith(nextstep.Wait, name, "The provider had a server error.")
	case te.Status == 0 && te.Code == "" && te.Err != nil && isNetwork(te.Err):
		return &nextstep.Step{Kind: nextstep.CheckNetwork, Connection: name, Cause: "The token endpoint could not be reached.", Setting: "token_url", URL: tokenURL(conn)}
	}
	return nil
}

// methodHint says which client authentication method was used, and which
// one the server asked for when its error text names one: servers register
// confidential clients with one method and refuse the other.
func methodHint(te *TokenError, conn *Connection) string {
	if conn == nil || (conn.Provider != nil && conn.Provider.AuthMethod != "") {
		return "" // the preset's method is the provider's documented one
	}
	method, used := conn.method, conn.method
	switch {
	case method == "":
		// Not decided for a request: the connection's own, or the
		// default with a secret.
		method, used = conn.AuthMethod, conn.AuthMethod
		if method == "" {
			method, used = AuthMethodBasic, AuthMethodBasic+" (the default with a client secret)"
		}
	case conn.AuthMethod == "" && len(conn.AuthMethodsSupported) > 0:
		used = method + " (chosen from the server's metadata)"
	case conn.AuthMethod == "" && method == AuthMethodNone:
		used = method + " (the default without a client secret)"
	case conn.AuthMethod == "":
		used = method + " (the default with a client secret)"
	}
	desc := strings.ToLower(te.Description)
	var named []string
	for _, m := range AuthMethods {
		if m != method && strings.Contains(desc, m) {
			named = append(named, m)
		}
	}
	// Only a method named outright counts: many servers' standard text
	// mentions "unsupported authentication method" for every failure,
	// a wrong secret included.
	if len(named) == 1 {
		return " The server's answer names " + named[0] + ": this connection sent " + used + "; set token_endpoint_auth_method = \"" + named[0] + "\" in its config table."
	}
	return " This connection authenticates with " + used + supported(conn) + "; if the client is registered with another method, set token_endpoint_auth_method."
}

func supported(conn *Connection) string {
	if len(conn.AuthMethodsSupported) == 0 {
		return ""
	}
	return " (the server supports " + strings.Join(conn.AuthMethodsSupported, ", ") + ")"
}

func connName(c *Connection) string {
	if c == nil {
		return "NAME"
	}
	return c.Name
}

func tokenURL(c *Connection) string {
	if c == nil {
		return "?"
	}
	return c.Endpoints.TokenURL
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset")
}

func isConnRefused(err error) bool {
	return strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host")
}
