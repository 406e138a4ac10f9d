//go:build e2e

package e2e

// A second real authorization server: Ory Hydra (built by .ci/hydra-build
// from the version pinned in internal/e2e/hydra/go.mod). Its defaults differ
// from oidc-provider's where it matters to tokentray: clients authenticate
// with client_secret_basic unless registered otherwise, each refresh revokes
// the previous access token, refresh tokens rotate with no grace period (a
// reused one revokes the whole chain), and redirect URIs match exactly.
//
// startHydra runs `hydra serve all --dev` with an in-memory database on free
// loopback ports, a login and consent app that signs in "e2e-user" and grants
// whatever is asked without a page, and two registered clients.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hydraSubject is the user the login app signs in.
const hydraSubject = "e2e-user"

type hydraOptions struct {
	// AccessTokenTTL is Hydra's ttl.access_token; default 20 s.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is ttl.refresh_token; default Hydra's (720 h).
	RefreshTokenTTL time.Duration
}

type hydraClient struct {
	ID, Secret string
	// JSON is the client as Hydra stores it (GET /admin/clients/{id}).
	JSON map[string]any
}

type hydraServer struct {
	t testing.TB
	// Public and Admin are the two APIs' base URLs, without a trailing slash.
	Public, Admin string
	// Issuer is what Hydra announces in discovery and in tokens: Public + "/".
	Issuer string
	// Redirect is the browser client's only redirect URI,
	// http://localhost:CallbackPort/callback; nothing listens there.
	Redirect     string
	CallbackPort int
	// Browser is a confidential authorization_code + refresh_token client
	// (client_secret_basic, Hydra's default); Service a client_credentials one.
	Browser, Service hydraClient
	// LogPath is Hydra's stdout and stderr; printed when the test fails.
	LogPath string
	// Logins and Consents count the challenges the login app accepted.
	Logins, Consents atomic.Int32

	http *http.Client
	stop func()
}

// hydraBinary is Hydra's path from E2E_HYDRA.
func hydraBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("E2E_HYDRA")
	if bin == "" {
		t.Fatal("E2E_HYDRA is not set: build Ory Hydra with `.ci/hydra-build` (it prints the binary's path) " +
			"and run the tests with E2E_HYDRA=$(.ci/hydra-build); .ci/test does both")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("E2E_HYDRA=%s is not an executable (%v): build it with .ci/hydra-build", bin, err)
	}
	return bin
}

func startHydra(t testing.TB, opt hydraOptions) *hydraServer {
	t.Helper()
	bin := hydraBinary(t)
	if opt.AccessTokenTTL == 0 {
		opt.AccessTokenTTL = 20 * time.Second
	}
	dir := t.TempDir()
	publicPort, adminPort, cbPort := freePort(t), freePort(t), freePort(t)
	h := &hydraServer{
		t:            t,
		Public:       fmt.Sprintf("http://127.0.0.1:%d", publicPort),
		Admin:        fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		CallbackPort: cbPort,
		Redirect:     fmt.Sprintf("http://localhost:%d/callback", cbPort),
		LogPath:      filepath.Join(dir, "hydra.log"),
		http:         &http.Client{Timeout: 10 * time.Second},
	}
	h.Issuer = h.Public + "/"

	login := httptest.NewServer(http.HandlerFunc(h.serveLoginConsent))
	t.Cleanup(login.Close)

	ttl := map[string]any{"access_token": opt.AccessTokenTTL.String()}
	if opt.RefreshTokenTTL != 0 {
		ttl["refresh_token"] = opt.RefreshTokenTTL.String()
	}
	cfg := map[string]any{
		// Needs the sqlite build tag: "memory" is SQLite in memory.
		"dsn": "memory",
		"serve": map[string]any{
			"public": map[string]any{"host": "127.0.0.1", "port": publicPort},
			"admin":  map[string]any{"host": "127.0.0.1", "port": adminPort},
		},
		"urls": map[string]any{
			"self":    map[string]any{"issuer": h.Issuer, "public": h.Issuer, "admin": h.Admin + "/"},
			"login":   login.URL + "/login",
			"consent": login.URL + "/consent",
		},
		"ttl":     ttl,
		"secrets": map[string]any{"system": []string{"tokentray-e2e-hydra-system-secret"}},
		"oauth2":  map[string]any{"expose_internal_errors": true},
		"log":     map[string]any{"level": "info", "format": "text"},
		"sqa":     map[string]any{"opt_out": true},
	}
	cfgPath := filepath.Join(dir, "hydra.json")
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(h.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	// --dev allows the http issuer and http redirect URIs and drops the
	// Secure flag from Hydra's cookies.
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out", "--config", cfgPath)
	// Hydra reads configuration from the environment too: give it none of ours.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start hydra: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = logFile.Close() }()
	// Cleanups run last-registered first: stop Hydra, then show its log.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(h.LogPath)
			t.Logf("hydra log (%s):\n%s", h.LogPath, out)
		}
	})
	var stopOnce sync.Once
	h.stop = func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(h.stop)

	deadline := time.Now().Add(60 * time.Second)
	for !h.ready() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("hydra exited before it was ready: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("hydra was not ready after 60 s")
		}
	}

	h.Browser = h.CreateClient(map[string]any{
		"client_name":    "tokentray-e2e",
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"},
		"scope":          "openid offline_access offline",
		"redirect_uris":  []string{h.Redirect},
	})
	if m := h.Browser.JSON["token_endpoint_auth_method"]; m != "client_secret_basic" {
		t.Fatalf("hydra registered the browser client with token_endpoint_auth_method %v, want its default client_secret_basic", m)
	}
	h.Service = h.CreateClient(map[string]any{
		"client_name": "tokentray-e2e-service",
		"grant_types": []string{"client_credentials"},
		"scope":       "api",
	})
	return h
}

// Stop kills Hydra and waits until it has exited: its ports refuse
// connections from then on, as a server that is down does. Its in-memory
// database is gone with it.
func (h *hydraServer) Stop() { h.stop() }

func (h *hydraServer) ready() bool {
	for _, base := range []string{h.Admin, h.Public} {
		resp, err := h.http.Get(base + "/health/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// CreateClient registers a client through the admin API; Hydra picks its id
// and secret. The secret is only in the creation's answer.
func (h *hydraServer) CreateClient(body map[string]any) hydraClient {
	h.t.Helper()
	var created map[string]any
	if err := h.adminJSON(http.MethodPost, "/admin/clients", body, &created); err != nil {
		h.t.Fatalf("register client: %v", err)
	}
	c := hydraClient{}
	c.ID, _ = created["client_id"].(string)
	c.Secret, _ = created["client_secret"].(string)
	if c.ID == "" {
		h.t.Fatalf("register client: no client_id in %v", created)
	}
	if err := h.adminJSON(http.MethodGet, "/admin/clients/"+url.PathEscape(c.ID), nil, &c.JSON); err != nil {
		h.t.Fatalf("read client %s: %v", c.ID, err)
	}
	return c
}

// Introspect asks the admin API about a token: "active", "scope", "exp", …
func (h *hydraServer) Introspect(token string) map[string]any {
	h.t.Helper()
	resp, err := h.http.PostForm(h.Admin+"/admin/oauth2/introspect", url.Values{"token": {token}})
	if err != nil {
		h.t.Fatalf("introspect: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("introspect: HTTP %d, %v", resp.StatusCode, err)
	}
	return out
}

// adminJSON sends body (if any) as JSON to the admin API and decodes the answer into out.
func (h *hydraServer) adminJSON(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.Admin+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// serveLoginConsent is the login and consent app: it accepts every login
// challenge for hydraSubject and grants every consent challenge exactly the
// requested scopes and audience, remembering nothing, with no page.
func (h *hydraServer) serveLoginConsent(w http.ResponseWriter, r *http.Request) {
	var redirect struct {
		To string `json:"redirect_to"`
	}
	var err error
	switch r.URL.Path {
	case "/login":
		challenge := r.URL.Query().Get("login_challenge")
		err = h.adminJSON(http.MethodPut, "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(challenge),
			map[string]any{"subject": hydraSubject, "remember": false}, &redirect)
		if err == nil {
			h.Logins.Add(1)
		}
	case "/consent":
		challenge := url.QueryEscape(r.URL.Query().Get("consent_challenge"))
		var req struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		err = h.adminJSON(http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+challenge, nil, &req)
		if err == nil {
			err = h.adminJSON(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+challenge,
				map[string]any{"grant_scope": nonNil(req.Scope), "grant_access_token_audience": nonNil(req.Audience), "remember": false}, &redirect)
		}
		if err == nil {
			h.Consents.Add(1)
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err == nil && redirect.To == "" {
		err = errors.New("hydra answered without redirect_to")
	}
	if err != nil {
		h.t.Logf("hydra login/consent app: %s: %v", r.URL.Path, err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, redirect.To, http.StatusFound)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hydraBrowser follows a sign-in through Hydra and the login and consent app
// with a cookie jar, as a browser would, and stops at the first redirect to
// the callback port (which it does not request). It returns that redirect's
// URL, or, when the flow ends elsewhere (Hydra's error page), the last URL
// requested and an error with the page's status.
func (h *hydraServer) hydraBrowser(authURL string) (*url.URL, error) {
	h.t.Helper()
	jar, _ := cookiejar.New(nil)
	var callback *url.URL
	c := &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Port() == fmt.Sprint(h.CallbackPort) {
				callback = req.URL
				return http.ErrUseLastResponse
			}
			if len(via) > 20 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	resp, err := c.Get(authURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if callback != nil {
		return callback, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
	return resp.Request.URL, fmt.Errorf("sign-in ended at %s with HTTP %d: %s", resp.Request.URL.Redacted(), resp.StatusCode,
		strings.Join(strings.Fields(string(body)), " "))
}
