package auth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/safetext"
)

// Secret is a credential string. It prints as [redacted] in every fmt verb
// and log line; Reveal is the one way to read it, so each use is visible.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String redacts.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts, for %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue redacts, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Format redacts for every verb, including %s, %v, %q and %x.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// DefaultLifetime is assumed for an access token whose response carried no
// expires_in. It is short on purpose: refreshing early is cheap, holding a
// dead token is not.
const DefaultLifetime = time.Hour

// TokenSet is what is kept for one connection: the tokens and the facts the
// schedule and the status need. Times are wall-clock times measured on this
// machine at receipt, never the server's clock.
type TokenSet struct {
	AccessToken  Secret
	TokenType    string
	RefreshToken Secret
	Scope        string
	// ObtainedAt is when the access token was received.
	ObtainedAt time.Time
	// Lifetime is expires_in as received, or DefaultLifetime when absent.
	Lifetime time.Duration
	// LifetimeGuessed is true when the server sent no expires_in.
	LifetimeGuessed bool
	// RefreshTokenSince is when the current refresh token was received.
	RefreshTokenSince time.Time
	// RefreshTokenExpiry is when the server said the refresh token dies
	// (refresh_token_expires_in); zero when it said nothing.
	RefreshTokenExpiry time.Time
	// RefreshTokenExpiryFixed: a refresh brought a new refresh token that
	// ends no later than the old one, so refreshing does not move the end.
	RefreshTokenExpiryFixed bool
	// GrantSince is when the person signed in: where a grant's absolute
	// lifetime starts. Zero for tokens kept by an older tokentray.
	GrantSince time.Time
	// EndWarned is the foreseen end of the refresh token that a person was
	// told of, so that it is told once, also across restarts.
	EndWarned time.Time
	// DPoPKey is the connection's DPoP key (DPoPKey.Marshal), to which
	// these tokens are bound; empty without DPoP.
	DPoPKey Secret
	// Dead is set when the server rejected the refresh token for good; the
	// access token may still be valid until Expiry.
	Dead bool
	// LastError is the last failure shown to people, kept across restarts.
	LastError string
	// LastRefresh is the time of the last refresh attempt and its outcome;
	// LastRefreshBy the instance that made it, when several machines share
	// the store (KeeperOptions.Instance), empty on one machine.
	LastRefresh   time.Time
	LastRefreshOK bool
	LastRefreshBy string
	// LastNext is what a person does about LastError.
	LastNext *nextstep.Step
	// LastHint is the advice that went with LastError as an older
	// tokentray kept it, in words; read, never written.
	LastHint string
	// RetryAt is when a failed refresh may be tried again (the backoff or
	// the provider's Retry-After), so that every process respects it.
	RetryAt time.Time
	// RefusedClient is set when the provider refused the client (its id,
	// secret or authentication method): a fingerprint of the client settings
	// it refused, never the secret. Those settings are not tried again; new
	// ones are, with the kept refresh token.
	RefusedClient string
	// Promised is when the latest window promised to a caller with an
	// explicit min-valid ends, for this access token; the scheduled refresh
	// waits for it (handout.go). Kept with the tokens so that every process
	// (the CLI without a running tokentray) keeps it too.
	//
	// Promised and PromiseVersion are bookkeeping, not tokens: a write that
	// changes only them (Keeper.keepPromise) is not a new token set. The
	// keeper's test for one (changedElsewhere) ignores them, and a store
	// that versions token sets for compare-and-set must not move that
	// version for them. PromiseVersion counts the promise writes instead.
	Promised       time.Time
	PromiseVersion uint64

	// Generation is the tokens' generation: it moves with each new set of
	// tokens and with nothing else (see Store). Zero on a set never stored.
	Generation uint64
	// Version is the stored item's version, given by the store at each
	// write (see Store). Zero on a set never stored.
	Version uint64
}

// failedLast reports whether the last refresh attempt, made after these
// tokens were received, failed.
func (t *TokenSet) failedLast() bool {
	return !t.LastRefreshOK && t.LastError != "" && !t.LastRefresh.Before(t.ObtainedAt)
}

// Expiry is when the access token stops working.
func (t *TokenSet) Expiry() time.Time { return t.ObtainedAt.Add(t.Lifetime) }

// ValidFor reports whether the access token is still valid for at least d
// after now.
func (t *TokenSet) ValidFor(now time.Time, d time.Duration) bool {
	return t != nil && t.AccessToken != "" && now.Add(d).Before(t.Expiry())
}

// String never shows a token.
func (t *TokenSet) String() string {
	if t == nil {
		return "<no tokens>"
	}
	return fmt.Sprintf("tokens(type=%s, expires=%s, refresh=%t)", t.TokenType, t.Expiry().Format(time.RFC3339), t.RefreshToken != "")
}

// LogValue never shows a token.
func (t *TokenSet) LogValue() slog.Value { return slog.StringValue(t.String()) }

// storedTokenSet is the keyring representation. It is the only place token
// values are serialized, and it is written only to the OS keyring.
type storedTokenSet struct {
	Version           int            `json:"v"`
	AccessToken       string         `json:"access_token,omitempty"`
	TokenType         string         `json:"token_type,omitempty"`
	RefreshToken      string         `json:"refresh_token,omitempty"`
	Scope             string         `json:"scope,omitempty"`
	ObtainedAt        time.Time      `json:"obtained_at"`
	LifetimeSeconds   int64          `json:"lifetime_s"`
	LifetimeGuessed   bool           `json:"lifetime_guessed,omitempty"`
	RefreshTokenSince time.Time      `json:"refresh_token_since,omitzero"`
	RefreshTokenEnd   time.Time      `json:"refresh_token_end,omitzero"`
	RefreshTokenFixed bool           `json:"refresh_token_end_fixed,omitempty"`
	GrantSince        time.Time      `json:"grant_since,omitzero"`
	EndWarned         time.Time      `json:"end_warned,omitzero"`
	DPoPKey           string         `json:"dpop_key,omitempty"`
	Dead              bool           `json:"dead,omitempty"`
	LastError         string         `json:"last_error,omitempty"`
	LastRefresh       time.Time      `json:"last_refresh,omitzero"`
	LastRefreshOK     bool           `json:"last_refresh_ok,omitempty"`
	LastRefreshBy     string         `json:"last_refresh_by,omitempty"`
	LastHint          string         `json:"last_hint,omitempty"`
	LastNext          *nextstep.Step `json:"last_next,omitempty"`
	RetryAt           time.Time      `json:"retry_at,omitzero"`
	RefusedClient     string         `json:"refused_client,omitempty"`
	// Promise is bookkeeping apart from the tokens, with its own version.
	Promise *storedPromise `json:"promise,omitempty"`
	// Generation and ItemVersion are absent in what a tokentray wrote
	// before they were kept: generation 1 (StoredGeneration), version 0.
	Generation  uint64 `json:"generation,omitempty"`
	ItemVersion uint64 `json:"item_version,omitempty"`
}

// storedPromise is TokenSet.Promised with its write count.
type storedPromise struct {
	Until   time.Time `json:"until,omitzero"`
	Version uint64    `json:"v"`
}

// MarshalTokenSet encodes t for a store, with its generation and version.
func MarshalTokenSet(t *TokenSet) ([]byte, error) {
	var promise *storedPromise
	if !t.Promised.IsZero() || t.PromiseVersion != 0 {
		promise = &storedPromise{Until: t.Promised.UTC(), Version: t.PromiseVersion}
	}
	return json.Marshal(storedTokenSet{
		Version:           1,
		AccessToken:       t.AccessToken.Reveal(),
		TokenType:         t.TokenType,
		RefreshToken:      t.RefreshToken.Reveal(),
		Scope:             t.Scope,
		ObtainedAt:        t.ObtainedAt.UTC(),
		LifetimeSeconds:   int64(t.Lifetime / time.Second),
		LifetimeGuessed:   t.LifetimeGuessed,
		RefreshTokenSince: t.RefreshTokenSince.UTC(),
		RefreshTokenEnd:   t.RefreshTokenExpiry.UTC(),
		RefreshTokenFixed: t.RefreshTokenExpiryFixed,
		GrantSince:        t.GrantSince.UTC(),
		EndWarned:         t.EndWarned.UTC(),
		DPoPKey:           t.DPoPKey.Reveal(),
		Dead:              t.Dead,
		LastError:         t.LastError,
		LastRefresh:       t.LastRefresh.UTC(),
		LastRefreshOK:     t.LastRefreshOK,
		LastRefreshBy:     t.LastRefreshBy,
		LastHint:          t.LastHint,
		LastNext:          t.LastNext,
		RetryAt:           t.RetryAt.UTC(),
		RefusedClient:     t.RefusedClient,
		Promise:           promise,
		Generation:        t.Generation,
		ItemVersion:       t.Version,
	})
}

// UnmarshalTokenSet decodes what MarshalTokenSet wrote. The error never
// quotes the input, which holds tokens.
func UnmarshalTokenSet(b []byte) (*TokenSet, error) {
	var s storedTokenSet
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stored token set is not valid JSON (%d bytes)", len(b))
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("stored token set has version %d; this tokentray reads version 1 (was it written by a newer tokentray?)", s.Version)
	}
	var promise storedPromise
	if s.Promise != nil {
		promise = *s.Promise
	}
	// LastError and LastHint are cleaned as they are now when they come in
	// (internal/safetext): an older tokentray kept the provider's words raw.
	// So is LastNext, which holds them too (its cause).
	safetext.CleanAll(s.LastNext)
	return &TokenSet{
		AccessToken:             Secret(s.AccessToken),
		TokenType:               s.TokenType,
		RefreshToken:            Secret(s.RefreshToken),
		Scope:                   s.Scope,
		ObtainedAt:              s.ObtainedAt,
		Lifetime:                time.Duration(s.LifetimeSeconds) * time.Second,
		LifetimeGuessed:         s.LifetimeGuessed,
		RefreshTokenSince:       s.RefreshTokenSince,
		RefreshTokenExpiry:      s.RefreshTokenEnd,
		RefreshTokenExpiryFixed: s.RefreshTokenFixed,
		GrantSince:              s.GrantSince,
		EndWarned:               s.EndWarned,
		DPoPKey:                 Secret(s.DPoPKey),
		Dead:                    s.Dead,
		LastError:               safetext.Clean(s.LastError),
		LastRefresh:             s.LastRefresh,
		LastRefreshOK:           s.LastRefreshOK,
		LastRefreshBy:           safetext.Clean(s.LastRefreshBy),
		LastHint:                safetext.Clean(s.LastHint),
		LastNext:                s.LastNext,
		RetryAt:                 s.RetryAt,
		RefusedClient:           s.RefusedClient,
		Promised:                promise.Until,
		PromiseVersion:          promise.Version,
		Generation:              s.Generation,
		Version:                 s.ItemVersion,
	}, nil
}

// keepNext records next as the step that goes with LastError; the words of
// an older tokentray, if t had them, give way to it.
func (t *TokenSet) keepNext(next *nextstep.Step) {
	t.LastNext, t.LastHint = next, ""
}
