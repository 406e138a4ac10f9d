package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
)

// Pushed authorization requests (RFC 9126): the authorization request's
// parameters go to the authorization server directly, with the client
// authenticated (and, with DPoP, a proof on the request), and the browser
// carries only the request_uri it answers with. Servers of high-security
// profiles (FAPI, the AT Protocol) require it.

// parTimeout bounds the push.
const parTimeout = 30 * time.Second

// pushAuthorization pushes the parameters of authURL (as x/oauth2 built
// it) and returns the URL the browser opens instead:
// {authorize endpoint}?client_id=…&request_uri=….
func pushAuthorization(ctx context.Context, client *http.Client, conn *Connection, secret Secret, authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, parTimeout)
	defer cancel()
	resp, body, err := postAuthenticated(ctx, client, conn.Endpoints.PARURL, conn, secret, u.Query())
	if err != nil {
		return "", parFailed(conn, &TokenError{Op: "pushed authorization request", Class: Transient, Err: unwrapURLError(err),
			Next: &nextstep.Step{Kind: nextstep.CheckNetwork, Connection: conn.Name, Cause: "The pushed authorization endpoint could not be reached.", Setting: "par_url", URL: conn.Endpoints.PARURL}})
	}
	var out struct {
		RequestURI       string `json:"request_uri"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode < 200 || resp.StatusCode > 299 || out.RequestURI == "" {
		re := &oauth2.RetrieveError{Response: resp, Body: body, ErrorCode: out.Error, ErrorDescription: out.ErrorDescription}
		if out.Error == "" && resp.StatusCode < 300 {
			return "", parFailed(conn, &TokenError{Op: "pushed authorization request", Class: Permanent, Status: resp.StatusCode,
				Err: errors.New("the answer has no request_uri")})
		}
		return "", parFailed(conn, classify("pushed authorization request", re, conn))
	}
	// The authorize URL's own query (an Azure B2C policy, ?p=…) stays.
	q := url.Values{}
	if own, err := url.Parse(conn.Endpoints.AuthURL); err == nil {
		q = own.Query()
	}
	q.Set("client_id", conn.ClientID)
	q.Set("request_uri", out.RequestURI)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// parFailed is a failed push as the sign-in reports it: nothing was opened
// in the browser.
func parFailed(conn *Connection, te *TokenError) error {
	if te.Class == Permanent && te.Code != "invalid_grant" {
		return fmt.Errorf("%s: %w: %w", conn.Name, te, ErrCredentialsRefused)
	}
	return fmt.Errorf("%s: %w: %w", conn.Name, te, ErrUnreachable)
}
