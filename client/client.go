// Package client gives Go programs on this machine access tokens from the
// running tokentray, so that they never refresh on their own and never race
// the rotation of a single-use refresh token.
//
//	c := client.New()
//	api := c.HTTPClient("procore") // adds the token; one refresh and retry on a 401
//	resp, err := api.Get("https://api.procore.com/rest/v1.0/me")
//
// It talks to the running tokentray over its local socket ($XDG_RUNTIME_DIR/tokentray/api.sock).
package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/internal/apiclient"
)

// Errors callers can test with errors.Is.
var (
	// ErrNotRunning: no tokentray is running for this user.
	ErrNotRunning = apiclient.ErrNotRunning
	// ErrNeedsSignIn: a person must sign the connection in again.
	ErrNeedsSignIn = apiclient.ErrNeedsSignIn
	// ErrClientRefused: the provider refused the client id, secret or
	// authentication method; a person must fix the client settings.
	ErrClientRefused = apiclient.ErrClientRefused
	// ErrUnreachable: the provider cannot be reached and no valid token is held.
	ErrUnreachable = apiclient.ErrUnreachable
)

// DefaultMinValid asks for tokentray's default margin: 2 minutes, or less
// where the provider's tokens live shorter.
const DefaultMinValid = apiclient.DefaultMinValid

// Client reaches the running tokentray.
type Client struct {
	api *apiclient.Client
	// MinValid is how long a token handed out must stay valid. The default,
	// DefaultMinValid, is a margin that fits every token lifetime, and during
	// an outage still hands out a token that is valid.
	MinValid time.Duration
}

// New returns a client for the default socket.
func New() *Client { return NewAt(apiclient.DefaultPath()) }

// NewAt returns a client for the socket at path.
func NewAt(path string) *Client {
	return &Client{api: apiclient.New(path), MinValid: DefaultMinValid}
}

// TokenSource is an oauth2.TokenSource for the named connection. Each Token
// call asks the tray, which holds and refreshes the token; wrap it in
// oauth2.ReuseTokenSource to ask less often.
func (c *Client) TokenSource(ctx context.Context, name string) oauth2.TokenSource {
	return &tokenSource{ctx: ctx, c: c, name: name}
}

type tokenSource struct {
	ctx  context.Context
	c    *Client
	name string
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	t, err := s.c.api.Token(s.ctx, s.name, s.c.MinValid)
	if err != nil {
		return nil, fmt.Errorf("token of %s from tokentray: %w", s.name, err)
	}
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, Expiry: t.ExpiresAt}, nil
}

// HTTPClient returns an *http.Client whose requests carry the connection's
// access token. On a 401 it asks the tray for one refresh (shared with every
// other caller that saw the same token refused) and retries once; a second
// 401 is returned to the caller as it came.
func (c *Client) HTTPClient(name string) *http.Client {
	return &http.Client{Transport: &Transport{Client: c, Name: name}}
}

// Transport adds the token and retries once after a refresh on a 401.
type Transport struct {
	Client *Client
	Name   string
	// Base is the underlying transport (http.DefaultTransport if nil).
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tok, err := t.Client.api.Token(req.Context(), t.Name, t.Client.MinValid)
	if err != nil {
		return nil, fmt.Errorf("token of %s from tokentray: %w", t.Name, err)
	}
	resp, err := base.RoundTrip(withToken(req, tok.AccessToken))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be sent twice
	}
	if err := t.Client.api.RefreshStale(req.Context(), t.Name, tok.AccessToken); err != nil {
		return resp, nil // the caller sees the 401; the tray has alerted a person if needed
	}
	fresh, err := t.Client.api.Token(req.Context(), t.Name, t.Client.MinValid)
	if err != nil {
		return resp, nil
	}
	retry := withToken(req, fresh.AccessToken)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	_ = resp.Body.Close()
	return base.RoundTrip(retry)
}

func withToken(req *http.Request, token string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
