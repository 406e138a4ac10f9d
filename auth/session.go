package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
)

// LoginOptions tune one sign-in.
type LoginOptions struct {
	Timeout time.Duration // DefaultLoginTimeout if zero
	// Paste supplies the landing address (or an out-of-band code) where
	// tokentray cannot catch the callback itself; see LoopbackFlow.
	Paste io.Reader
	// PasteOnly signs in by Paste even with a loopback redirect URI: the
	// browser is on another machine.
	PasteOnly bool
	// ShowURL, if set, is told this sign-in's authorize URL (as well as
	// KeeperOptions.ShowURL).
	ShowURL func(url string)
	// Device signs in with RFC 8628's device authorization grant: the
	// person enters a code shown by ShowCode on the provider's page, on
	// any device. No browser opens here and no redirect URI is used.
	Device   bool
	ShowCode func(DeviceCode)
}

// Login signs the connection in through the browser (or, for a
// client-credentials connection, fetches a token) and saves the tokens.
// The refresh lock is not held while the browser is open: a sign-in can take
// minutes and must not block the scheduled refreshes of other processes.
//
// Only one sign-in per connection runs at a time: a second call while one
// waits for the browser opens that same sign-in page again (a person who
// closed the tab clicks again) and waits for its outcome.
func (k *Keeper) Login(ctx context.Context, o LoginOptions) error {
	if o.Device && k.conn.Grant == GrantClientCredentials {
		return withStep(fmt.Errorf("%s is a service account (client credentials): %w", k.conn.Name, ErrNoSignIn), step(nextstep.Refresh, k.conn.Name))
	}
	k.mu.Lock()
	if f := k.signIn; f != nil && o.Device != k.signInDevice {
		k.mu.Unlock()
		other := "through the browser"
		if k.signInDevice {
			other = "with a code"
		}
		return withStep(fmt.Errorf("%s: a sign-in %s is already waiting: %w", k.conn.Name, other, ErrSignInBusy), step(nextstep.FinishSignIn, k.conn.Name))
	}
	if f := k.signIn; f != nil {
		url := k.signInURL
		k.mu.Unlock()
		if url != "" && k.opt.OpenBrowser != nil {
			_ = k.opt.OpenBrowser(url)
		}
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	k.signIn, k.signInDevice = f, o.Device
	k.mu.Unlock()
	err := k.login(ctx, o)
	k.mu.Lock()
	f.err = err
	k.signIn, k.signInURL, k.signInDevice = nil, "", false
	k.mu.Unlock()
	close(f.done)
	return err
}

func (k *Keeper) login(ctx context.Context, o LoginOptions) error {
	// Everything that can be known before the browser opens is checked
	// first: a sign-in that fails only after the person finished it wastes
	// their time, and an authorization code.
	secret, err := k.clientSecret(ctx)
	if err != nil {
		return err
	}
	if k.conn.Grant == GrantClientCredentials {
		k.mu.Lock()
		k.loaded = true
		k.token = nil
		k.setStateLocked(StateConnected)
		k.mu.Unlock()
		return k.refresh(ctx, true, 0, nil)
	}
	conn, err := k.resolved(ctx)
	if err != nil {
		return fmt.Errorf("sign in %s: %w: %w", k.conn.Name, err, ErrUnreachable)
	}
	// The method the server's metadata leaves, with the secret stored now:
	// a confidential one without a secret fails only at the code exchange.
	if conn, err = conn.forSecret(secret); err != nil {
		return err
	}
	// A sign-in starts a new grant: with DPoP, bound to a new key.
	key, kept, err := k.dpopKeyFor(nil)
	if err != nil {
		return fmt.Errorf("sign in %s: make a DPoP key: %w", k.conn.Name, err)
	}
	var tok *oauth2.Token
	if !o.Device && conn.RedirectURI.Raw == "" {
		return withStep(fmt.Errorf("sign in %s: no redirect_uri is configured: %w", k.conn.Name, ErrNeedsSignIn), step(nextstep.SignInWithCode, k.conn.Name))
	}
	if o.Device {
		tok, err = k.deviceSignIn(ctx, conn, secret, key, o)
		if err != nil {
			return err
		}
		return k.signedIn(ctx, tok, kept)
	}
	if err := k.preflight(ctx, conn); err != nil {
		return err
	}
	flow := &LoopbackFlow{
		Conn: conn, Secret: secret, OpenBrowser: k.opt.OpenBrowser,
		ShowURL: func(url string) {
			k.mu.Lock()
			k.signInURL = url
			k.mu.Unlock()
			if k.opt.ShowURL != nil {
				k.opt.ShowURL(url)
			}
			if o.ShowURL != nil {
				o.ShowURL(url)
			}
		},
		Timeout: o.Timeout, Clock: k.opt.Clock, HTTPClient: k.tokenHTTP(conn, key), Paste: o.Paste, PasteOnly: o.PasteOnly,
		DPoPKey: key,
	}
	tok, err = flow.Run(ctx)
	if te := (*TokenError)(nil); errors.As(err, &te) && te.Class == Permanent && te.Code != "invalid_grant" {
		// The client was refused: a person must fix its settings (exit 3).
		return fmt.Errorf("sign in %s: %w: %w", k.conn.Name, err, ErrCredentialsRefused)
	}
	if err != nil {
		return fmt.Errorf("sign in %s: %w", k.conn.Name, err)
	}
	return k.signedIn(ctx, tok, kept)
}

// signedIn saves the tokens of a sign-in, as the start of a new grant,
// with the DPoP key they are bound to.
func (k *Keeper) signedIn(ctx context.Context, tok *oauth2.Token, dpopKey Secret) error {
	k.mu.Lock()
	id := k.identity
	k.mu.Unlock()
	if sub, _ := tok.Extra("sub").(string); id != nil && sub != id.DID {
		// A server may sign in any account it hosts: the tokens must be
		// the handle's account's (AT Protocol: the sub is its DID).
		return fmt.Errorf("sign in %s: %w: %s is %s, the tokens are for %q", k.conn.Name, errWrongAccount, id.Handle, id.DID, sub)
	}
	now := k.opt.Clock.Now()
	next := k.tokenSetFrom(tok, nil, now)
	next.LastRefresh, next.LastRefreshOK, next.DPoPKey = time.Time{}, false, dpopKey

	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	defer cancel()
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	if err != nil {
		return fmt.Errorf("sign in %s: %w", k.conn.Name, err)
	}
	defer unlock()
	// A sign-in starts a new grant on purpose: it replaces whatever is
	// stored (the store reads that itself), with a generation of its own,
	// taken from the clock (NextGeneration).
	k.mu.Lock()
	prev := StoredGeneration(k.currentLocked())
	k.mu.Unlock()
	next.Generation = NextGeneration(prev, now)
	if err := k.opt.Store.SaveTokens(context.WithoutCancel(ctx), k.conn.Name, next, AnyGeneration); err != nil {
		return fmt.Errorf("signed in, but the tokens could not be saved, so the sign-in is lost: %w", err)
	}
	k.mu.Lock()
	k.loaded = true
	k.token, k.unsaved = next, nil
	k.failures, k.lastErr = 0, nil
	k.adviseLocked("", nil)
	k.setStateLocked(StateConnected)
	k.emitLocked(Event{Kind: EventSignedIn})
	k.mu.Unlock()
	k.tokensSaved(next)
	return nil
}

// ErrRevokeFailed means the provider could not be told to revoke the tokens;
// they were kept so that the sign-out can be retried.
var ErrRevokeFailed = errors.New("revocation at the provider failed")

// SignOut says what a sign-out did at the provider.
type SignOut struct {
	// Revoked: the provider was told to revoke the refresh token.
	Revoked bool `json:"revoked"`
	// NotRevoked says why nothing was revoked, when nothing was: the
	// refresh token then stays valid at the provider until it expires.
	NotRevoked string `json:"not_revoked,omitempty"`
}

// Logout revokes the refresh token at the provider (RFC 7009), then deletes
// the tokens from the store. If revocation fails the tokens are kept, unless
// localOnly is set, which skips the provider and only forgets them here.
func (k *Keeper) Logout(ctx context.Context, localOnly bool) (SignOut, error) {
	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	defer cancel()
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	if err != nil {
		return SignOut{}, fmt.Errorf("sign out %s: %w", k.conn.Name, err)
	}
	defer unlock()
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil && !errors.Is(err, ErrNotStored) {
		return SignOut{}, fmt.Errorf("sign out %s: %w", k.conn.Name, err)
	}
	k.mu.Lock()
	if k.unsaved != nil {
		stored = k.unsaved
	}
	k.mu.Unlock()
	var out SignOut
	switch {
	case stored == nil:
		out.NotRevoked = "no tokens were stored"
	case localOnly:
		out.NotRevoked = "--local-only: the provider was not contacted, so the refresh token stays valid there until it expires"
	default:
		conn, err := k.resolved(ctx)
		if err != nil {
			return SignOut{}, fmt.Errorf("sign out %s: %w: %w; the tokens are kept: run it again when the provider is reachable, or use --local-only to forget them here anyway", k.conn.Name, ErrRevokeFailed, err)
		}
		if conn.Endpoints.RevokeURL == "" {
			out.NotRevoked = "the provider has no revocation endpoint configured (revoke_url), so the refresh token stays valid there until it expires; " +
				"to end it now, remove the app's access in your account at the provider, or set revoke_url if it has an RFC 7009 endpoint"
			break
		}
		if err := k.revoke(ctx, conn, stored); err != nil {
			return SignOut{}, fmt.Errorf("sign out %s: %w: %w; the tokens are kept: run it again when the provider is reachable, or use --local-only to forget them here anyway", k.conn.Name, ErrRevokeFailed, err)
		}
		out.Revoked = true
	}
	if err := k.opt.Store.DeleteTokens(ctx, k.conn.Name); err != nil {
		return SignOut{}, fmt.Errorf("sign out %s: %w", k.conn.Name, err)
	}
	k.mu.Lock()
	k.loaded = true
	k.token, k.unsaved = nil, nil
	k.failures, k.lastErr = 0, nil
	k.adviseLocked("", nil)
	k.setStateLocked(StateDisconnected)
	k.emitLocked(Event{Kind: EventSignedOut, Error: out.NotRevoked})
	k.mu.Unlock()
	k.tokensSaved(nil)
	return out, nil
}

// revoke sends the refresh token (or the access token when there is none)
// to the revocation endpoint, with the client authentication of the token
// endpoint.
func (k *Keeper) revoke(ctx context.Context, conn *Connection, t *TokenSet) error {
	token, hint := t.RefreshToken, "refresh_token"
	if token == "" || t.Dead {
		token, hint = t.AccessToken, "access_token"
	}
	if token == "" {
		return nil
	}
	secret, err := k.clientSecret(ctx)
	if err != nil {
		return err
	}
	if conn, err = conn.forSecret(secret); err != nil {
		return err
	}
	method := conn.authMethod(secret)
	form := url.Values{"token": {token.Reveal()}, "token_type_hint": {hint}}
	if method != AuthMethodBasic {
		form.Set("client_id", conn.ClientID)
		if method == AuthMethodPost {
			form.Set("client_secret", secret.Reveal())
		}
	}
	revokeURL := conn.Endpoints.RevokeURL
	ctx, cancel := context.WithTimeout(ctx, k.opt.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, revokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revocation URL %s: %w", revokeURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if method == AuthMethodBasic {
		req.SetBasicAuth(url.QueryEscape(conn.ClientID), url.QueryEscape(secret.Reveal()))
	}
	resp, err := k.post.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", revokeURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	// RFC 7009 §2.2: 200 also for tokens that were already invalid.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d", revokeURL, resp.StatusCode)
	}
	return nil
}

// preflight checks, before the browser opens, that the authorization and
// token endpoints answer at all: with a server that is down the browser
// would show "connection refused" and the sign-in would wait out its whole
// timeout. Any HTTP answer will do; only no answer fails.
func (k *Keeper) preflight(ctx context.Context, conn *Connection) error {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	client := *k.opt.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, ep := range []struct{ what, key, url string }{{"authorization", "auth_url", conn.Endpoints.AuthURL}, {"token", "token_url", conn.Endpoints.TokenURL}} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url, nil)
		if err != nil {
			return fmt.Errorf("sign in %s: the %s URL %q: %w", k.conn.Name, ep.what, ep.url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			te := &TokenError{Op: "sign-in", Class: Transient, Err: fmt.Errorf("the %s endpoint %s does not answer: %w", ep.what, ep.url, unwrapURLError(err)),
				Next: &nextstep.Step{Kind: nextstep.CheckNetwork, Connection: k.conn.Name, Setting: ep.key, URL: ep.url,
					Cause: "Nothing was opened in the browser: the provider's " + ep.what + " endpoint does not answer (is the provider up?)."}}
			return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrUnreachable)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
	}
	return nil
}

// preflightTimeout bounds the whole pre-sign-in check.
const preflightTimeout = 10 * time.Second

// unwrapURLError drops net/http's "Get \"URL\":" prefix, which the message
// around it already says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
