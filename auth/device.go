package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/safetext"
)

// The device authorization grant (RFC 8628): for a machine without a
// browser, the person types a short code on a page of the provider, on any
// device, while this machine asks the token endpoint whether they are done.
// Nothing comes back to this machine but the tokens.

// DeviceCode is what a person needs to finish a device sign-in elsewhere.
type DeviceCode struct {
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	// VerificationURIComplete has the code in it already, when the
	// provider offers one (a link or QR code to open).
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	Expires                 time.Time `json:"expires"`
}

// deviceAuthTimeout bounds the request for a device code.
const deviceAuthTimeout = 30 * time.Second

// defaultDeviceTimeout is how long a sign-in with a code waits when the
// provider did not say how long its code lives (RFC 8628 makes expires_in
// required; 15 minutes is the common value).
const defaultDeviceTimeout = 15 * time.Minute

// deviceSignIn asks for a device code, shows it and waits for the person.
func (k *Keeper) deviceSignIn(ctx context.Context, conn *Connection, secret Secret, key *DPoPKey, o LoginOptions) (*oauth2.Token, error) {
	if conn.Endpoints.DeviceAuthURL == "" {
		return nil, withStep(fmt.Errorf("sign in %s: the provider offers no device sign-in (no device authorization endpoint is known): %w", k.conn.Name, ErrNeedsSignIn),
			step(nextstep.SetDeviceAuthURL, k.conn.Name))
	}
	client := k.tokenHTTP(conn, key)
	da, err := requestDeviceCode(ctx, client, conn, secret)
	if err != nil {
		te := classify("device authorization", err, conn)
		if te.Class == Permanent && te.Code != "invalid_grant" {
			return nil, fmt.Errorf("sign in %s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
		}
		return nil, fmt.Errorf("sign in %s: %w: %w", k.conn.Name, te, ErrUnreachable)
	}
	code := DeviceCode{UserCode: da.UserCode, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete, Expires: da.Expiry}
	if o.ShowCode != nil {
		o.ShowCode(code)
	}
	// Without a timeout of its own, the sign-in waits as long as the code
	// is valid (15 to 30 minutes at the big providers): a person who is
	// slower than a browser sign-in's five minutes still gets in.
	timeout := o.Timeout
	switch {
	case timeout > 0:
	case !da.Expiry.IsZero():
		timeout = time.Until(da.Expiry) + 5*time.Second
	default:
		timeout = defaultDeviceTimeout
	}
	// x/oauth2 polls at the server's interval (and slower after a
	// slow_down) until the code expires; a person is on the other side, so
	// the real clock is the right one.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	cfg := conn.oauthConfig(secret)
	tok, err := cfg.DeviceAccessToken(ctx, da)
	// x/oauth2 stops polling at the first failure of any kind; a network
	// hiccup or a 5xx must not cost the person the sign-in they are in the
	// middle of: poll on (each call waits an interval first) until the
	// code expires.
	for err != nil && ctx.Err() == nil && classify("device sign-in", err, conn).Class == Transient {
		k.log.Warn("device sign-in: polling failed; polling on", "err", redactOAuthMessage(err))
		tok, err = cfg.DeviceAccessToken(ctx, da)
	}
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, context.DeadlineExceeded) && !da.Expiry.IsZero() && !time.Now().Before(da.Expiry):
		return nil, withStep(fmt.Errorf("sign in %s: the code %s expired before the sign-in was finished: %w", k.conn.Name, da.UserCode, ErrLoginTimeout), codeExpired(k.conn.Name))
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("sign in %s: nobody entered the code %s within %s: %w", k.conn.Name, da.UserCode, timeout, ErrLoginTimeout)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "access_denied":
			return nil, withStep(fmt.Errorf("sign in %s: the sign-in was refused on the provider's page (access_denied): %w", k.conn.Name, ErrNeedsSignIn),
				stepWith(nextstep.RetrySignIn, k.conn.Name, "The access was not allowed on the provider's page; allow it there this time."))
		case "expired_token":
			return nil, withStep(fmt.Errorf("sign in %s: the code %s expired before the sign-in was finished: %w", k.conn.Name, da.UserCode, ErrLoginTimeout), codeExpired(k.conn.Name))
		}
	}
	te := classify("device sign-in", err, conn)
	if te.Class == Permanent {
		return nil, fmt.Errorf("sign in %s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
	}
	return nil, fmt.Errorf("sign in %s: %w: %w", k.conn.Name, te, ErrUnreachable)
}

// requestDeviceCode asks the device authorization endpoint for a code. The
// client authenticates as at the token endpoint (RFC 8628 §3.1), which
// x/oauth2's DeviceAuth does not do.
func requestDeviceCode(ctx context.Context, client *http.Client, conn *Connection, secret Secret) (*oauth2.DeviceAuthResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, deviceAuthTimeout)
	defer cancel()
	form := url.Values{"client_id": {conn.ClientID}}
	if s := conn.scopes(); len(s) > 0 {
		form.Set("scope", strings.Join(s, " "))
	}
	// The connection's own parameters (an audience, a resource); not a
	// preset's, which are for the browser's authorization request.
	for name, v := range conn.AuthParams {
		if !form.Has(name) {
			form.Set(name, v)
		}
	}
	sent := time.Now()
	resp, body, err := postAuthenticated(ctx, client, conn.Endpoints.DeviceAuthURL, conn, secret, form)
	if err != nil {
		return nil, err
	}
	var da struct {
		DeviceCode              string      `json:"device_code"`
		UserCode                string      `json:"user_code"`
		VerificationURI         string      `json:"verification_uri"`
		VerificationURL         string      `json:"verification_url"` // Google's spelling
		VerificationURIComplete string      `json:"verification_uri_complete"`
		ExpiresIn               json.Number `json:"expires_in"`
		Interval                json.Number `json:"interval"`
		Error                   string      `json:"error"`
		ErrorDescription        string      `json:"error_description"`
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		// GitHub without Accept: JSON (asked for above, but a proxy may drop it).
		v, _ := url.ParseQuery(string(body))
		da.DeviceCode, da.UserCode, da.VerificationURI = v.Get("device_code"), v.Get("user_code"), v.Get("verification_uri")
		da.ExpiresIn, da.Interval, da.Error, da.ErrorDescription = json.Number(v.Get("expires_in")), json.Number(v.Get("interval")), v.Get("error"), v.Get("error_description")
	} else if err := json.Unmarshal(body, &da); err != nil && resp.StatusCode < 300 {
		return nil, fmt.Errorf("the device authorization endpoint's answer is not JSON (HTTP %d)", resp.StatusCode)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 || da.Error != "" {
		return nil, &oauth2.RetrieveError{Response: resp, Body: body, ErrorCode: da.Error, ErrorDescription: da.ErrorDescription}
	}
	if da.VerificationURI == "" {
		da.VerificationURI = da.VerificationURL
	}
	// The code and the page are shown on the terminal and in a
	// notification, as the provider wrote them.
	da.UserCode = safetext.Clean(da.UserCode)
	da.VerificationURI, da.VerificationURIComplete = safetext.Clean(da.VerificationURI), safetext.Clean(da.VerificationURIComplete)
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, errors.New("the device authorization endpoint's answer lacks device_code, user_code or verification_uri")
	}
	out := &oauth2.DeviceAuthResponse{DeviceCode: da.DeviceCode, UserCode: da.UserCode, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete}
	if n, err := strconv.ParseInt(da.ExpiresIn.String(), 10, 64); err == nil && n > 0 {
		out.Expiry = sent.Add(time.Duration(n) * time.Second)
	}
	if n, err := strconv.ParseInt(da.Interval.String(), 10, 64); err == nil && n > 0 {
		out.Interval = n
	}
	return out, nil
}

// postAuthenticated POSTs form to one of the authorization server's
// endpoints (device authorization, pushed authorization), with the client
// authenticated as at its token endpoint, and reads the answer.
func postAuthenticated(ctx context.Context, client *http.Client, endpoint string, conn *Connection, secret Secret, form url.Values) (*http.Response, []byte, error) {
	method := conn.authMethod(secret)
	if method == AuthMethodPost {
		form.Set("client_secret", secret.Reveal())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == AuthMethodBasic {
		req.SetBasicAuth(url.QueryEscape(conn.ClientID), url.QueryEscape(secret.Reveal()))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

// codeExpired is the step after a code that ran out before it was entered.
func codeExpired(name string) *nextstep.Step {
	return stepWith(nextstep.RetrySignIn, name, "The code ran out before it was entered; a new sign-in shows a new one, to enter within its time.")
}
