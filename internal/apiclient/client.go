// Package apiclient talks to the running tokentray (the resident process,
// `serve` or a demo) over its local socket. The CLI, the window process and
// the Go client package use it; it imports only the wire types, so none of
// them links the core, the keyring or a toolkit through it.
package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/apiclient/socket"
)

// Errors callers test with errors.Is. An *APIError unwraps to the one of
// its meaning.
var (
	// ErrNotRunning: no tokentray answers on the socket.
	ErrNotRunning = errors.New("no tokentray is running")
	// ErrNeedsSignIn: a person must sign the connection in again.
	ErrNeedsSignIn = errors.New("sign-in needed")
	// ErrClientRefused: the provider refused the client id, secret or method.
	ErrClientRefused = errors.New("client credentials refused")
	// ErrUnreachable: the provider cannot be reached and no valid token is held.
	ErrUnreachable = errors.New("provider unreachable")
	// ErrMinValidUnmeetable: no token of the provider lives that long.
	ErrMinValidUnmeetable = errors.New("min_valid can never be met")
)

// DefaultMinValid asks for the server's default margin (auth.DefaultMinValid:
// the same value, so that it passes through unchanged).
const DefaultMinValid time.Duration = -1

// Client talks to the running tokentray over its socket.
type Client struct {
	Path string
	http *http.Client
}

// DefaultPath is where the running tokentray listens (socket.Path).
func DefaultPath() string { return socket.Path() }

// New returns a client for the socket at path.
func New(path string) *Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, path) }
	return &Client{Path: path, http: &http.Client{Transport: &http.Transport{DialContext: dial, DisableCompression: true}}}
}

// APIError is an error answer of the API.
type APIError struct{ Body apitype.Error }

func (e *APIError) Error() string { return e.Body.Message }

// Unwrap gives errors.Is its meaning.
func (e *APIError) Unwrap() error {
	switch e.Body.Code {
	case apitype.CodeMinValidUnmeetable:
		return ErrMinValidUnmeetable
	case apitype.CodeClientRefused:
		return ErrClientRefused
	case apitype.CodeNeedsSignIn:
		return ErrNeedsSignIn
	case apitype.CodeProviderUnreachable:
		return ErrUnreachable
	}
	return nil
}

// ExitCode is the CLI exit code the server chose.
func (e *APIError) ExitCode() int { return e.Body.ExitCode }

// Hint is the server's advice, if any, said for a terminal.
func (e *APIError) Hint() string { return e.Body.Hint }

// Next is the step that Hint says, when the server names one (an older
// tokentray sends Hint alone).
func (e *APIError) Next() *nextstep.Step { return e.Body.Next }

// request sends one request; in is the JSON body, if any.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, in any) (*http.Response, error) {
	u := "http://tokentray" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var unsafe *socket.UnsafeError
		if errors.As(err, &unsafe) {
			return nil, unsafe
		}
		if socket.IsNotRunning(err) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("ask the running tokentray (%s): %w", c.Path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("read the answer of the running tokentray: %w", err)
		}
		return nil, errorAnswer(resp.StatusCode, b)
	}
	return resp, nil
}

// errorAnswer is the error of an answer with HTTP status >= 400.
func errorAnswer(status int, body []byte) error {
	var e apitype.Error
	if json.Unmarshal(body, &e) != nil || e.Code == "" {
		return fmt.Errorf("the running tokentray answered HTTP %d", status)
	}
	return &APIError{Body: e}
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	resp, err := c.request(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer of the running tokentray: %w", err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("the running tokentray's answer is not what this version expects: %w", err)
		}
	}
	return nil
}

func connPath(name string, rest string) string {
	return "/v1/connections/" + url.PathEscape(name) + rest
}

// Connections lists every connection's status.
func (c *Client) Connections(ctx context.Context) ([]apitype.Connection, error) {
	var out []apitype.Connection
	return out, c.do(ctx, http.MethodGet, "/v1/connections", nil, nil, &out)
}

// Connection returns one connection's status.
func (c *Client) Connection(ctx context.Context, name string) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodGet, connPath(name, ""), nil, nil, &out)
}

// Token returns an access token of name valid for at least minValid, or
// for the server's default margin with DefaultMinValid.
func (c *Client) Token(ctx context.Context, name string, minValid time.Duration) (*apitype.Token, error) {
	var out apitype.Token
	q := url.Values{}
	if minValid != DefaultMinValid {
		q.Set("min_valid", minValid.String())
	}
	return &out, c.do(ctx, http.MethodGet, connPath(name, "/token"), q, nil, &out)
}

// Refresh refreshes name now.
func (c *Client) Refresh(ctx context.Context, name string) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/refresh"), nil, nil, &out)
}

// RefreshStale refreshes name unless its access token is no longer the one
// that was refused (someone refreshed already).
func (c *Client) RefreshStale(ctx context.Context, name, refusedToken string) error {
	return c.do(ctx, http.MethodPost, connPath(name, "/refresh"), url.Values{"stale": {apitype.TokenHash(refusedToken)}}, nil, nil)
}

// Login signs name in through the running tokentray and waits for the
// outcome.
func (c *Client) Login(ctx context.Context, name string, timeout time.Duration) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/login"), url.Values{"wait": {"true"}, "timeout": {timeout.String()}}, nil, &out)
}

// SetClientSecret stores name's client secret in the running tokentray's
// store; a client that was refused is tried again.
func (c *Client) SetClientSecret(ctx context.Context, name string, secret string) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodPut, connPath(name, "/client_secret"), nil, apitype.ClientSecret{ClientSecret: secret}, &out)
}

// StartPasteLogin starts a sign-in of name in the running tokentray that
// completes with the address the browser lands on (PasteLogin): for a
// browser on another machine. It waits up to timeout for that address.
func (c *Client) StartPasteLogin(ctx context.Context, name string, timeout time.Duration) (*apitype.PasteSignIn, error) {
	var out apitype.PasteSignIn
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/login"), url.Values{"paste": {"true"}, "timeout": {timeout.String()}}, nil, &out)
}

// PasteLogin completes the sign-in StartPasteLogin began with the address
// the browser landed on (or an out-of-band code).
func (c *Client) PasteLogin(ctx context.Context, name, address string) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/login/paste"), nil, apitype.Pasted{Address: address}, &out)
}

// StartDeviceLogin starts a sign-in of name with a code (RFC 8628) in the
// running tokentray and returns the code to show; a second call while it
// waits returns the same code.
func (c *Client) StartDeviceLogin(ctx context.Context, name string, timeout time.Duration) (*apitype.DeviceSignIn, error) {
	var out apitype.DeviceSignIn
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/login"), url.Values{"device": {"true"}, "timeout": {timeout.String()}}, nil, &out)
}

// WaitDeviceLogin waits for the sign-in StartDeviceLogin began to end.
func (c *Client) WaitDeviceLogin(ctx context.Context, name string) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodGet, connPath(name, "/login/device"), nil, nil, &out)
}

// Check calls name's API check URL now; the connection's LastCheck has
// the outcome.
func (c *Client) Check(ctx context.Context, name string) (*apitype.Connection, error) {
	var out apitype.Connection
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/check"), nil, nil, &out)
}

// StartLogin starts the browser sign-in of name and does not wait for it.
func (c *Client) StartLogin(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, connPath(name, "/login"), nil, nil, nil)
}

// Logout signs name out through the running tokentray.
func (c *Client) Logout(ctx context.Context, name string, localOnly bool) (*apitype.SignedOut, error) {
	q := url.Values{}
	if localOnly {
		q.Set("local_only", "true")
	}
	var out apitype.SignedOut
	return &out, c.do(ctx, http.MethodPost, connPath(name, "/logout"), q, nil, &out)
}

// ShowEditor asks the running tokentray to open name's editor.
func (c *Client) ShowEditor(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, connPath(name, "/editor"), nil, nil, nil)
}

// ShowDashboard asks the running tokentray to bring its dashboard up.
func (c *Client) ShowDashboard(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/dashboard", nil, nil, nil)
}

// Events follows GET /v1/events: it calls f with every event until ctx
// ends, the stream ends (the server stopped: ErrNotRunning... or io.EOF), or
// f returns an error.
func (c *Client) Events(ctx context.Context, f func(apitype.Event) error) error {
	resp, err := c.request(ctx, http.MethodGet, "/v1/events", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e apitype.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("the running tokentray's event is not what this version expects: %w", err)
		}
		if err := f(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("the event stream of the running tokentray broke: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return io.EOF
}

// Config returns the config file the running tokentray runs.
func (c *Client) Config(ctx context.Context) (*apitype.Config, error) {
	var out apitype.Config
	return &out, c.do(ctx, http.MethodGet, "/v1/config", nil, nil, &out)
}

// ConfigConnection returns name's config table and whether a client secret
// is stored for it.
func (c *Client) ConfigConnection(ctx context.Context, name string) (*apitype.ConfiguredConnection, error) {
	var out apitype.ConfiguredConnection
	return &out, c.do(ctx, http.MethodGet, "/v1/config/connections/"+url.PathEscape(name), nil, nil, &out)
}

// SaveConnection writes a connection into the config file and runs it:
// replacing names the connection edited, "" adds one.
func (c *Client) SaveConnection(ctx context.Context, replacing string, s apitype.SaveConnection) (*apitype.Saved, error) {
	var out apitype.Saved
	if replacing == "" {
		return &out, c.do(ctx, http.MethodPost, "/v1/config/connections", nil, s, &out)
	}
	return &out, c.do(ctx, http.MethodPut, "/v1/config/connections/"+url.PathEscape(replacing), nil, s, &out)
}

// RemoveConnection signs name out, forgets its client secret and takes it
// out of the config file; localOnly does not ask the provider to revoke.
func (c *Client) RemoveConnection(ctx context.Context, name string, localOnly bool) (*apitype.Saved, error) {
	q := url.Values{}
	if localOnly {
		q.Set("local_only", "true")
	}
	var out apitype.Saved
	return &out, c.do(ctx, http.MethodDelete, "/v1/config/connections/"+url.PathEscape(name), q, nil, &out)
}

// TestSignIn signs in once with a connection as the editor has it and
// waits for the outcome; nothing is saved.
func (c *Client) TestSignIn(ctx context.Context, t apitype.TestSignIn) (*apitype.Tested, error) {
	var out apitype.Tested
	return &out, c.do(ctx, http.MethodPost, "/v1/config/test", nil, t, &out)
}
