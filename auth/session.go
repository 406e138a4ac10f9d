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
)

// LoginOptions tune one sign-in.
type LoginOptions struct {
	Timeout time.Duration // DefaultLoginTimeout if zero
	// Paste supplies the landing address for an https redirect URI.
	Paste io.Reader
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
	k.mu.Lock()
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
	k.signIn = f
	k.mu.Unlock()
	err := k.login(ctx, o)
	k.mu.Lock()
	f.err = err
	k.signIn, k.signInURL = nil, ""
	k.mu.Unlock()
	close(f.done)
	return err
}

func (k *Keeper) login(ctx context.Context, o LoginOptions) error {
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
		return k.refresh(ctx, true, 0)
	}
	flow := &LoopbackFlow{
		Conn: k.conn, Secret: secret, OpenBrowser: k.opt.OpenBrowser,
		ShowURL: func(url string) {
			k.mu.Lock()
			k.signInURL = url
			k.mu.Unlock()
			if k.opt.ShowURL != nil {
				k.opt.ShowURL(url)
			}
		},
		Timeout: o.Timeout, Clock: k.opt.Clock, HTTPClient: k.opt.HTTPClient, Paste: o.Paste,
	}
	tok, err := flow.Run(ctx)
	if err != nil {
		return fmt.Errorf("sign in %s: %w", k.conn.Name, err)
	}
	now := k.opt.Clock.Now()
	next := k.tokenSetFrom(tok, nil, now)
	next.LastRefresh, next.LastRefreshOK = time.Time{}, false

	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	defer cancel()
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	if err != nil {
		return fmt.Errorf("sign in %s: %w", k.conn.Name, err)
	}
	defer unlock()
	if err := k.opt.Store.SaveTokens(context.WithoutCancel(ctx), k.conn.Name, next); err != nil {
		return fmt.Errorf("signed in, but the tokens could not be saved, so the sign-in is lost: %w", err)
	}
	k.mu.Lock()
	k.loaded = true
	k.token, k.unsaved = next, nil
	k.failures, k.lastErr, k.errText, k.hint = 0, nil, "", ""
	k.setStateLocked(StateConnected)
	k.emitLocked(Event{Kind: EventSignedIn})
	k.mu.Unlock()
	k.tokensSaved(next)
	return nil
}

// ErrRevokeFailed means the provider could not be told to revoke the tokens;
// they were kept so that the sign-out can be retried.
var ErrRevokeFailed = errors.New("revocation at the provider failed")

// Logout revokes the refresh token at the provider (RFC 7009), then deletes
// the tokens from the store. If revocation fails the tokens are kept, unless
// localOnly is set, which skips the provider and only forgets them here.
func (k *Keeper) Logout(ctx context.Context, localOnly bool) error {
	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	defer cancel()
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	if err != nil {
		return fmt.Errorf("sign out %s: %w", k.conn.Name, err)
	}
	defer unlock()
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil && !errors.Is(err, ErrNotStored) {
		return fmt.Errorf("sign out %s: %w", k.conn.Name, err)
	}
	k.mu.Lock()
	if k.unsaved != nil {
		stored = k.unsaved
	}
	k.mu.Unlock()
	if stored != nil && !localOnly && k.conn.Endpoints.RevokeURL != "" {
		if err := k.revoke(ctx, stored); err != nil {
			return fmt.Errorf("sign out %s: %w: %w; the tokens are kept: run it again when the provider is reachable, or use --local-only to forget them here anyway", k.conn.Name, ErrRevokeFailed, err)
		}
	}
	if err := k.opt.Store.DeleteTokens(ctx, k.conn.Name); err != nil {
		return fmt.Errorf("sign out %s: %w", k.conn.Name, err)
	}
	k.mu.Lock()
	k.loaded = true
	k.token, k.unsaved = nil, nil
	k.failures, k.lastErr, k.errText, k.hint = 0, nil, "", ""
	k.setStateLocked(StateDisconnected)
	k.emitLocked(Event{Kind: EventSignedOut})
	k.mu.Unlock()
	k.tokensSaved(nil)
	return nil
}

// revoke sends the refresh token (or the access token when there is none)
// to the revocation endpoint, with the provider's client authentication.
func (k *Keeper) revoke(ctx context.Context, t *TokenSet) error {
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
	inHeader := k.conn.Provider.AuthStyle == oauth2.AuthStyleInHeader
	form := url.Values{"token": {token.Reveal()}, "token_type_hint": {hint}}
	if !inHeader {
		form.Set("client_id", k.conn.ClientID)
		if secret != "" {
			form.Set("client_secret", secret.Reveal())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.opt.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.conn.Endpoints.RevokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revocation URL %s: %w", k.conn.Endpoints.RevokeURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if inHeader {
		req.SetBasicAuth(url.QueryEscape(k.conn.ClientID), url.QueryEscape(secret.Reveal()))
	}
	resp, err := k.opt.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", k.conn.Endpoints.RevokeURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	// RFC 7009 §2.2: 200 also for tokens that were already invalid.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d", k.conn.Endpoints.RevokeURL, resp.StatusCode)
	}
	return nil
}
