package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The token endpoint: the connection as discovered, the client secret, the
// request, and the token set made of its answer. What the answer means for
// the connection is failures.go's; when to ask is keeper.go's.

// clientFingerprint names the client settings a request is made with,
// without revealing the secret: a refused client is not tried again with the
// same ones, and is tried as soon as any of them changes.
func (k *Keeper) clientFingerprint(secret Secret) string {
	sum := sha256.Sum256([]byte(k.conn.ClientID + "\x00" + k.conn.AuthMethod + "\x00" + secret.Reveal()))
	return hex.EncodeToString(sum[:12])
}

// resolved is the connection with the endpoints and authentication method
// that its issuer's metadata adds, when it discovers them. Metadata is
// fetched once a day; when the issuer cannot be reached, the last metadata
// fetched is used.
func (k *Keeper) resolved(ctx context.Context) (*Connection, error) {
	if !k.conn.Discover {
		return k.conn, nil
	}
	k.mu.Lock()
	md, at, id := k.metadata, k.metadataAt, k.identity
	k.mu.Unlock()
	if md == nil || k.opt.Clock.Now().Sub(at) > discoveryMaxAge {
		fresh, ident, err := k.discover(ctx)
		switch {
		case err == nil:
			md, id = fresh, ident
			k.mu.Lock()
			k.metadata, k.metadataAt, k.identity = fresh, k.opt.Clock.Now(), ident
			k.mu.Unlock()
		case md == nil:
			return nil, err
		default:
			k.log.Warn("issuer metadata not refreshed; using the last", "err", err)
		}
	}
	c := *k.conn
	applyDiscovered(&c, md, id)
	return &c, nil
}

// discover reads the issuer's metadata; for an AT Protocol handle, the
// issuer is found from the handle first.
func (k *Keeper) discover(ctx context.Context) (*Metadata, *Identity, error) {
	issuer := k.conn.Endpoints.Issuer
	var id *Identity
	if k.conn.Handle != "" {
		var err error
		if id, err = ResolveIdentity(ctx, k.opt.HTTPClient, k.conn.Handle); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
		}
		issuer = id.Issuer
	}
	md, err := Discover(ctx, k.opt.HTTPClient, issuer)
	return md, id, err
}

// applyDiscovered fills c's endpoints from md, and from the account id
// (its personal data server is the API) when there is one.
func applyDiscovered(c *Connection, md *Metadata, id *Identity) {
	if id != nil {
		e := &c.Endpoints
		if e.APIBase == "" {
			e.APIBase = id.PDS
		}
		if e.CheckURL == "" {
			e.CheckURL = id.PDS + "/xrpc/com.atproto.server.getSession"
		}
	}
	md.apply(c)
}

// Resolve reads the issuer's metadata now, for a connection that discovers
// its endpoints, so that Status shows the URLs in use before the first
// refresh needs them. Connections that set their URLs return at once.
func (k *Keeper) Resolve(ctx context.Context) error {
	_, err := k.resolved(ctx)
	return err
}

// Endpoints are the URLs the connection uses: its own, and those its
// issuer's metadata added once they were fetched.
func (k *Keeper) Endpoints() Endpoints {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.endpointsLocked()
}

func (k *Keeper) endpointsLocked() Endpoints {
	if k.metadata == nil || !k.conn.Discover {
		return k.conn.Endpoints
	}
	c := *k.conn
	applyDiscovered(&c, k.metadata, k.identity)
	return c.Endpoints
}

// discoveryFailed records a failure to read the issuer's metadata: the
// provider is unreachable, as for a failed refresh.
func (k *Keeper) discoveryFailed(current *TokenSet, err error) error {
	te := &TokenError{Op: k.opName(), Class: Transient, Err: err,
		Hint: "tokentray retries. Check the issuer URL (" + k.conn.Endpoints.Issuer + ") and the network, or set auth_url and token_url in the config."}
	return k.recordFailure(current, te)
}

// clientSecret reads the stored client secret. A connection that cannot
// authenticate without one gets ErrCredentialsRefused when none is stored,
// before any request is sent (and before a browser opens for a sign-in).
func (k *Keeper) clientSecret(ctx context.Context) (Secret, error) {
	s, err := k.opt.Store.ClientSecret(ctx, k.conn.Name)
	if errors.Is(err, ErrNotStored) {
		if !k.conn.SecretRequired() {
			return "", nil // a public client
		}
		why := "its token_endpoint_auth_method is " + k.conn.AuthMethod
		switch {
		case k.conn.Grant == GrantClientCredentials:
			why = "client credentials need one"
		case k.conn.Provider != nil && k.conn.Provider.SecretRequired:
			why = k.conn.Provider.Name + " needs one"
		}
		return "", credentialsRefused(fmt.Sprintf("no client secret is stored for %s (%s): run `tokentray secret %s` and paste the client secret from the provider",
			k.conn.Name, why, k.conn.Name))
	}
	return s, err
}

func (k *Keeper) callTokenEndpoint(ctx context.Context, conn *Connection, current *TokenSet, secret Secret, key *DPoPKey) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, k.opt.RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, k.tokenHTTP(conn, key))
	cfg := conn.oauthConfig(secret)
	if conn.Grant == GrantClientCredentials {
		cc := clientcredentials.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.Endpoint.TokenURL,
			Scopes: conn.scopes(), AuthStyle: cfg.Endpoint.AuthStyle,
		}
		return cc.Token(ctx)
	}
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: current.RefreshToken.Reveal()}).Token()
}

// tokenSetFrom builds the new token set from a token response received at
// now. A response without a refresh token keeps the old one.
func (k *Keeper) tokenSetFrom(tok *oauth2.Token, prev *TokenSet, now time.Time) *TokenSet {
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	if lifetime <= 0 && !tok.Expiry.IsZero() {
		// Form-encoded responses only set Expiry, from the real clock just now.
		lifetime = time.Until(tok.Expiry).Round(time.Second)
	}
	guessed := lifetime <= 0
	if guessed {
		lifetime = k.conn.accessLifetime()
	}
	ts := &TokenSet{
		AccessToken: Secret(tok.AccessToken), TokenType: tok.TokenType,
		RefreshToken: Secret(tok.RefreshToken), ObtainedAt: now, Lifetime: lifetime, LifetimeGuessed: guessed,
		RefreshTokenSince: now, LastRefresh: now, LastRefreshOK: true, GrantSince: now,
	}
	if s, ok := tok.Extra("scope").(string); ok {
		ts.Scope = s
	}
	if prev != nil {
		if ts.RefreshToken == "" {
			ts.RefreshToken = prev.RefreshToken
		}
		if ts.RefreshToken == prev.RefreshToken && !prev.RefreshTokenSince.IsZero() {
			ts.RefreshTokenSince = prev.RefreshTokenSince
		}
		if ts.Scope == "" {
			ts.Scope = prev.Scope
		}
		// A refresh continues the grant of the sign-in before it, with
		// the key its tokens are bound to.
		ts.GrantSince, ts.DPoPKey = prev.GrantSince, prev.DPoPKey
	}
	noteRefreshTokenEnd(ts, prev, refreshTokenLifetime(tok), now)
	ts.EndWarned = k.endWarned(ts)
	if ts.RefreshToken == "" {
		ts.RefreshTokenSince, ts.RefreshTokenExpiry = time.Time{}, time.Time{}
	}
	return ts
}
