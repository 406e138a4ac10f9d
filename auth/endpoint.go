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

	"github.com/tokentray/tokentray/client/nextstep"
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

// resolution is what resolving the connection learnt beyond the
// metadata itself, guarded by Keeper.mu.
type resolution struct {
	// secret is whether a client secret was stored when last read: the
	// authentication method Status shows depends on it.
	secret secretSeen
	// metadataErr is why the issuer's metadata was last not read, nil
	// once it is; failedAt is when, so that a connection that goes on
	// without it does not wait for a dead issuer at every request.
	metadataErr error
	failedAt    time.Time
}

type secretSeen int

const (
	secretUnknown secretSeen = iota
	secretStored
	secretNotStored
)

// discoveryRetry is how long after a failed read of the metadata it is not
// tried again, when the connection can go on without fresh metadata (the
// last read, or its own URLs). One that cannot tries at every request.
const discoveryRetry = 10 * time.Minute

// Resolution is how the connection authenticates now and what its issuer's
// metadata did for it, for Status.
type Resolution struct {
	// AuthMethod is the token_endpoint_auth_method in use with the
	// client secret stored now (or not); empty while it is not known
	// whether one is stored and that decides it.
	AuthMethod string `json:"auth_method,omitempty"`
	// AuthMethodFrom says who chose it: "config", "provider",
	// "metadata" (from the server's list) or "default".
	AuthMethodFrom string `json:"auth_method_from,omitempty"`
	// MetadataWarning says why the issuer's metadata could not be read
	// while the connection goes on without it (its own URLs, or the last
	// metadata read); the device and revocation endpoints, PAR and the
	// server's methods may then be unknown.
	MetadataWarning string `json:"metadata_warning,omitempty"`
}

// resolved is the connection with the endpoints and authentication methods
// that its issuer's metadata adds, when it discovers them. Metadata is
// fetched once a day (discoveryMaxAge). When the issuer cannot be reached,
// the last metadata fetched is used, or, before any was, the connection's
// own URLs when they are enough to sign in and refresh: then the failure
// is a warning (Status.MetadataWarning), not an error.
func (k *Keeper) resolved(ctx context.Context) (*Connection, error) {
	if !k.conn.Discover {
		return k.conn, nil
	}
	now := k.opt.Clock.Now()
	k.mu.Lock()
	md, at, id, failedAt := k.metadata, k.metadataAt, k.identity, k.res.failedAt
	k.mu.Unlock()
	canGoOn := md != nil || k.conn.coveredWithoutMetadata()
	if (md == nil || now.Sub(at) > discoveryMaxAge) && (!canGoOn || now.Sub(failedAt) >= discoveryRetry) {
		fresh, ident, err := k.discover(ctx)
		k.mu.Lock()
		switch {
		case err == nil:
			md, id = fresh, ident
			k.metadata, k.metadataAt, k.identity = fresh, now, ident
			k.res.metadataErr, k.res.failedAt = nil, time.Time{}
		case ctx.Err() == nil:
			// A caller that gave up (a status with a deadline) is not
			// the issuer failing.
			k.res.metadataErr, k.res.failedAt = err, now
		}
		k.mu.Unlock()
		switch {
		case err == nil:
		case md != nil:
			k.log.Warn("issuer metadata not refreshed; using the last", "err", err)
		case canGoOn:
			k.log.Warn("issuer metadata not read; using the configured URLs", "err", err)
		default:
			return nil, err
		}
	}
	c := *k.conn
	if md != nil {
		applyDiscovered(&c, md, id)
	}
	return &c, nil
}

// coveredWithoutMetadata reports whether the connection's own URLs are
// enough to sign in and refresh, as a generic connection without an issuer
// needs them (internal/config): its issuer's metadata then only adds.
func (c *Connection) coveredWithoutMetadata() bool {
	needsAuthURL := c.Grant == GrantAuthorizationCode && (c.Endpoints.DeviceAuthURL == "" || c.RedirectURI.Raw != "")
	return c.Handle == "" && c.Endpoints.TokenURL != "" && (c.Endpoints.AuthURL != "" || !needsAuthURL)
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
// its endpoints, and whether a client secret is stored, so that Status
// shows the URLs and the authentication method in use before the first
// refresh needs them. A missing secret is not its error: the request that
// needs one says so.
func (k *Keeper) Resolve(ctx context.Context) error {
	if _, err := k.clientSecret(ctx); err != nil && !errors.Is(err, ErrCredentialsRefused) {
		k.log.Debug("client secret not read", "err", err)
	}
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

// resolutionLocked is Status's view of the authentication method and the
// metadata, from the secret last seen stored or not.
func (k *Keeper) resolutionLocked() Resolution {
	c := *k.conn
	if k.metadata != nil && k.conn.Discover {
		applyDiscovered(&c, k.metadata, k.identity)
	}
	var r Resolution
	switch k.res.secret {
	case secretStored, secretNotStored:
		r.AuthMethod, r.AuthMethodFrom = c.authMethodFrom(k.res.secret == secretStored)
	default:
		with, from := c.authMethodFrom(true)
		if without, _ := c.authMethodFrom(false); with == without {
			r.AuthMethod, r.AuthMethodFrom = with, from
		}
	}
	if k.res.metadataErr != nil && k.conn.Discover {
		r.MetadataWarning = k.res.metadataErr.Error()
	}
	return r
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
		Next: &nextstep.Step{Kind: nextstep.CheckIssuer, Connection: k.conn.Name, URL: k.conn.Endpoints.Issuer}}
	return k.recordFailure(current, te)
}

// clientSecret reads the stored client secret. A connection that cannot
// authenticate without one gets ErrCredentialsRefused when none is stored,
// before any request is sent (and before a browser opens for a sign-in).
// A method that the issuer's metadata decides is checked once it is read
// (Connection.forSecret).
func (k *Keeper) clientSecret(ctx context.Context) (Secret, error) {
	s, err := k.opt.Store.ClientSecret(ctx, k.conn.Name)
	switch {
	case err == nil:
		k.noteSecret(secretStored)
	case errors.Is(err, ErrNotStored):
		k.noteSecret(secretNotStored)
	}
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
		return "", missingSecret(k.conn.Name, why)
	}
	return s, err
}

func (k *Keeper) noteSecret(seen secretSeen) {
	k.mu.Lock()
	k.res.secret = seen
	k.mu.Unlock()
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
		RefreshTokenSince: now, LastRefresh: now, LastRefreshOK: true, LastRefreshBy: k.opt.Instance, GrantSince: now,
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
