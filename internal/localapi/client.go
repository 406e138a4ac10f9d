package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// Client talks to the running tray over its socket.
type Client struct {
	Path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Path: path, http: &http.Client{Transport: &http.Transport{DialContext: dialer(path), DisableCompression: true}}}
}

// APIError is an error answer of the API. It unwraps to the auth sentinel
// of the same meaning, so callers map it to exit codes as they do locally.
type APIError struct{ Body Error }

func (e *APIError) Error() string { return e.Body.Message }

// Unwrap gives errors.Is its meaning.
func (e *APIError) Unwrap() error {
	switch e.Body.Code {
	case "min_valid_unmeetable":
		return auth.ErrMinValidUnmeetable
	case "client_refused":
		return auth.ErrCredentialsRefused
	case "needs_sign_in":
		return auth.ErrNeedsSignIn
	case "provider_unreachable":
		return auth.ErrUnreachable
	}
	return nil
}

// ExitCode is the CLI exit code the server chose.
func (e *APIError) ExitCode() int { return e.Body.ExitCode }

// Hint is the server's advice, if any.
func (e *APIError) Hint() string { return e.Body.Hint }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := "http://tokentray" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isNotRunning(err) {
			return ErrNotRunning
		}
		return fmt.Errorf("ask the running tokentray (%s): %w", c.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer of the running tokentray: %w", err)
	}
	if resp.StatusCode >= 400 {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Code == "" {
			return fmt.Errorf("the running tokentray answered HTTP %d", resp.StatusCode)
		}
		return &APIError{Body: e}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("the running tokentray's answer is not what this version expects: %w", err)
		}
	}
	return nil
}

// isNotRunning: no socket, or nobody listening on it. Anything else, such
// as "permission denied", is a real error and must be seen.
func isNotRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// Connections lists every connection's status.
func (c *Client) Connections(ctx context.Context) ([]Connection, error) {
	var out []Connection
	return out, c.do(ctx, http.MethodGet, "/v1/connections", nil, &out)
}

// Connection returns one connection's status.
func (c *Client) Connection(ctx context.Context, name string) (*Connection, error) {
	var out Connection
	return &out, c.do(ctx, http.MethodGet, "/v1/connections/"+url.PathEscape(name), nil, &out)
}

// Token returns an access token of name valid for at least minValid, or
// for the server's default margin with auth.DefaultMinValid.
func (c *Client) Token(ctx context.Context, name string, minValid time.Duration) (*Token, error) {
	var out Token
	q := url.Values{}
	if minValid != auth.DefaultMinValid {
		q.Set("min_valid", minValid.String())
	}
	return &out, c.do(ctx, http.MethodGet, "/v1/connections/"+url.PathEscape(name)+"/token", q, &out)
}

// Refresh refreshes name now.
func (c *Client) Refresh(ctx context.Context, name string) (*Connection, error) {
	var out Connection
	return &out, c.do(ctx, http.MethodPost, "/v1/connections/"+url.PathEscape(name)+"/refresh", nil, &out)
}

// RefreshStale refreshes name unless its access token is no longer the one
// that was refused (someone refreshed already).
func (c *Client) RefreshStale(ctx context.Context, name, refusedToken string) error {
	return c.do(ctx, http.MethodPost, "/v1/connections/"+url.PathEscape(name)+"/refresh", url.Values{"stale": {TokenHash(refusedToken)}}, nil)
}

// Login signs name in through the tray and waits for the outcome.
func (c *Client) Login(ctx context.Context, name string, timeout time.Duration) (*Connection, error) {
	var out Connection
	return &out, c.do(ctx, http.MethodPost, "/v1/connections/"+url.PathEscape(name)+"/login", url.Values{"wait": {"true"}, "timeout": {timeout.String()}}, &out)
}

// Logout signs name out through the tray.
func (c *Client) Logout(ctx context.Context, name string, localOnly bool) (*SignedOut, error) {
	q := url.Values{}
	if localOnly {
		q.Set("local_only", "true")
	}
	var out SignedOut
	return &out, c.do(ctx, http.MethodPost, "/v1/connections/"+url.PathEscape(name)+"/logout", q, &out)
}

// ShowDashboard asks the tray to bring its dashboard up.
func (c *Client) ShowDashboard(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/dashboard", nil, nil)
}
