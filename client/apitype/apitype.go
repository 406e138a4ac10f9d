// Package apitype holds the wire types of tokentray's local API: the JSON
// bodies, the error codes and the exit codes they carry. The server, the
// CLI, the window process and the Go client all use these types, and this
// package imports nothing of tokentray but client/nextstep (the vocabulary
// of next steps, itself a leaf), so a change in the core can never change
// the contract by accident, and a program using the client links only
// these two and the standard library.
//
// Advice comes twice: "next", the step as data (a nextstep.Step), for a
// client to say in its own words, and "hint", the same step said for a
// terminal, which scripts and older clients read. An older tokentray
// sends "hint" alone, and a client shows it as it is.
package apitype

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// Exit codes of the CLI, also carried in every API error (DESIGN.md): they
// are a contract with users' scripts.
const (
	ExitOK = 0
	// ExitFailure is anything else: the keyring unavailable, I/O.
	ExitFailure = 1
	// ExitUsage is a usage or config error.
	ExitUsage = 2
	// ExitPersonMustAct: a person must sign in again or fix the client.
	ExitPersonMustAct = 3
	// ExitUnreachable: the provider cannot be reached and no valid token is held.
	ExitUnreachable = 4
)

// Error codes of the API, in Error.Code.
const (
	CodeNotFound            = "not_found"            // no such endpoint
	CodeUnknownConnection   = "unknown_connection"   // no connection of that name
	CodeBadRequest          = "bad_request"          // a parameter is malformed
	CodeForbidden           = "forbidden"            // the caller is another user
	CodeMinValidUnmeetable  = "min_valid_unmeetable" // no token of this provider lives that long
	CodeClientRefused       = "client_refused"       // the provider refused the client id, secret or method
	CodeNeedsSignIn         = "needs_sign_in"        // a person must sign in
	CodeProviderUnreachable = "provider_unreachable" // and no token valid long enough is held
	CodeTimeout             = "timeout"              // a sign-in or request ran out of time
	CodeInvalidConfig       = "invalid_config"       // a connection's settings are not valid
	CodeCheckFailed         = "check_failed"         // a test sign-in got tokens the API refused
	CodeHeadless            = "headless"             // a window or a browser was asked of tokentray serve, which has none
	CodeRemoteConnection    = "remote_connection"    // the connection is kept on a [[remote]] server: ask there
	CodeAPIUnreachable      = "api_unreachable"      // the proxy could not reach the connection's API
	CodeStoreUnreachable    = "store_unreachable"    // a shared store's database did not answer, and no token valid long enough is held
	CodeTokenBound          = "token_bound"          // a DPoP-bound token is useless bare: call the API through the proxy
	CodeInternal            = "internal"             // anything else
)

// ExitCodeOf is the exit code that goes with an error code.
func ExitCodeOf(code string) int {
	switch code {
	case CodeNotFound, CodeUnknownConnection, CodeBadRequest, CodeMinValidUnmeetable, CodeInvalidConfig, CodeRemoteConnection, CodeTokenBound:
		return ExitUsage
	case CodeClientRefused, CodeNeedsSignIn:
		return ExitPersonMustAct
	case CodeProviderUnreachable, CodeAPIUnreachable, CodeStoreUnreachable:
		return ExitUnreachable
	}
	return ExitFailure
}

// Error is the body of every error answer. ExitCode has the CLI's meaning.
type Error struct {
	Code     string `json:"error"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
	// Fields are the settings at fault in an invalid_config answer, by
	// config key, each with what to change.
	Fields map[string]string `json:"fields,omitempty"`

	// Next is the step that Hint says, when the server names one.
	Next *nextstep.Step `json:"next,omitempty"`
}

// Error is the message: a running tokentray's refusals are errors in the
// process that makes them too, so that one answer goes to the socket and
// to a command that works without one.
func (e *Error) Error() string { return e.Message }

// Endpoints are the URLs a connection uses.
type Endpoints struct {
	AuthURL   string `json:"auth_url,omitempty"`
	TokenURL  string `json:"token_url,omitempty"`
	RevokeURL string `json:"revoke_url,omitempty"`
	APIBase   string `json:"api_base,omitempty"`
	CheckURL  string `json:"check_url,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	// DeviceAuthURL is where a sign-in with a device code starts.
	DeviceAuthURL string `json:"device_auth_url,omitempty"`
	TokenInfoURL  string `json:"token_info_url,omitempty"`
	PARURL        string `json:"par_url,omitempty"`
}

// CheckResult is the last "who am I" call against a connection's API.
type CheckResult struct {
	Time   time.Time `json:"time"`
	Status int       `json:"status,omitempty"` // HTTP status; 0 when no answer came
	Who    string    `json:"who,omitempty"`
	Error  string    `json:"error,omitempty"`
	Hint   string    `json:"hint,omitempty"`
	// TokenInfo is what the server said of the token at its token-info
	// URL (Procore's /oauth/token/info), when it has one.
	TokenInfo *TokenInfo `json:"token_info,omitempty"`

	// Next is the step that Hint says, when the server names one.
	Next *nextstep.Step `json:"next,omitempty"`
}

// TokenInfo is what a server says of an access token.
type TokenInfo struct {
	// ExpiresIn is the token's seconds left as the server counted them.
	ExpiresIn       int64    `json:"expires_in,omitempty"`
	Scopes          []string `json:"scopes,omitempty"`
	ResourceOwnerID string   `json:"resource_owner_id,omitempty"`
	ApplicationUID  string   `json:"application_uid,omitempty"`
	Error           string   `json:"error,omitempty"`
}

// OK reports whether the API accepted the token.
func (c CheckResult) OK() bool { return c.Status >= 200 && c.Status < 300 }

// States of a connection, in Status.State.
const (
	StateDisconnected  = "disconnected"
	StateConnected     = "connected"
	StateRefreshing    = "refreshing"
	StateDegraded      = "degraded"
	StateNeedsReauth   = "needs_reauth"
	StateClientRefused = "client_refused"
	// StateUnreachable: the tokentray of a remote (NAME@REMOTE) could not
	// be asked; it keeps refreshing on its own meanwhile.
	StateUnreachable = "unreachable"
	// StateInvalidConfig: the connection's [[connection]] table cannot be
	// used as it is (Problems says what to change); the others run on.
	StateInvalidConfig = "invalid_config"
)

// Status is one connection's state, as `tokentray status --json` prints it.
type Status struct {
	Name            string    `json:"name"`
	Grant           string    `json:"grant"`
	State           string    `json:"state"`
	Usable          bool      `json:"usable"` // a valid access token is held now
	AccessObtained  time.Time `json:"access_obtained,omitzero"`
	AccessExpiry    time.Time `json:"access_expiry,omitzero"`
	LifetimeGuessed bool      `json:"lifetime_guessed,omitempty"`
	NextRefresh     time.Time `json:"next_refresh,omitzero"`
	LastRefresh     time.Time `json:"last_refresh,omitzero"`
	LastRefreshOK   bool      `json:"last_refresh_ok"`
	// LastRefreshBy is the instance (`instance`) that made the last
	// refresh, when several machines share the store.
	LastRefreshBy     string       `json:"last_refresh_by,omitempty"`
	HasRefreshToken   bool         `json:"has_refresh_token"`
	RefreshTokenSince time.Time    `json:"refresh_token_since,omitzero"`
	LastError         string       `json:"last_error,omitempty"`
	Hint              string       `json:"hint,omitempty"`
	LastCheck         *CheckResult `json:"last_check,omitempty"`
	Endpoints         Endpoints    `json:"endpoints"`
	// AuthMethod is the token_endpoint_auth_method in use with the client
	// secret stored now, and AuthMethodFrom who chose it: "config",
	// "provider", "metadata" (from the server's list) or "default".
	AuthMethod     string `json:"auth_method,omitempty"`
	AuthMethodFrom string `json:"auth_method_from,omitempty"`
	// MetadataWarning says why the issuer's metadata could not be read
	// while the connection goes on without it.
	MetadataWarning string `json:"metadata_warning,omitempty"`
	// Remote names the [[remote]] server whose tokentray keeps this
	// connection (NAME@REMOTE); empty for a connection kept here.
	Remote string `json:"remote,omitempty"`
	// APIRefused says what the API answered when it refused a fresh
	// token (a call through the proxy); empty while it takes the token.
	APIRefused string `json:"api_refused,omitempty"`
	// RateLimit is the API's rate limit as the last proxied call saw it.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// Waiting is how many API calls through the proxy wait for a sign-in.
	Waiting int `json:"waiting_requests,omitempty"`
	// UnreachableSince is when the remote's tokentray stopped answering
	// (State is then "unreachable"; the rest is what it said last).
	UnreachableSince time.Time `json:"unreachable_since,omitzero"`
	// RefreshTokenEnd is when the refresh token is expected to die (the
	// server's word, else the provider's rule); zero when unknown.
	RefreshTokenEnd time.Time `json:"refresh_token_end,omitzero"`
	// RefreshTokenEndAbout says what RefreshTokenEnd rests on.
	RefreshTokenEndAbout string `json:"refresh_token_end_about,omitempty"`
	// RefreshTokenRenewable: each refresh moves the end, and tokentray
	// refreshes in time: no person is needed while refreshes work.
	RefreshTokenRenewable bool `json:"refresh_token_renewable,omitempty"`
	// RefreshTokenEnding: the end is within refresh_token_warning and no
	// refresh will move it; a person was told (refresh_token_expiring).
	RefreshTokenEnding bool `json:"refresh_token_ending,omitempty"`
	// Shared is who is at the store, for a connection kept in a store that
	// several instances share (store = "postgres"); nil on one machine,
	// and when the store did not answer in time.
	Shared *Shared `json:"shared,omitempty"`
	// Problems are what to change in the table of a connection in
	// invalid_config, by config key ("" for the table as a whole).
	Problems map[string]string `json:"problems,omitempty"`

	// Next is the step that Hint says, when the server names one.
	Next *nextstep.Step `json:"next,omitempty"`
}

// Shared is who is at a shared store now, for one connection. Each name is
// an instance's `instance` setting.
type Shared struct {
	// Instance is the instance that answers.
	Instance string `json:"instance"`
	// Instances are the instances serving from the store now (each has a
	// connection to its database), sorted.
	Instances []string `json:"instances"`
	// LeaseHolder is the instance refreshing the connection now.
	LeaseHolder string `json:"lease_holder,omitempty"`
	// IntentBy and IntentAt are a refresh intent not settled: that
	// instance presented the refresh token (or was about to) at IntentAt
	// and has committed nothing yet. It lasts a moment; a longer one is of
	// an instance that died or paused mid-refresh, and the next holder
	// waits out the rescue window before it refreshes.
	IntentBy string    `json:"refresh_intent_by,omitempty"`
	IntentAt time.Time `json:"refresh_intent_at,omitzero"`
}

// RateLimit is an API's rate limit as it reported it on the last call
// through the proxy (Procore: X-Rate-Limit-Limit, -Remaining, -Reset).
type RateLimit struct {
	Limit     int       `json:"limit"`
	Remaining int       `json:"remaining"`
	Reset     time.Time `json:"reset,omitzero"`
	// Time is when it was reported.
	Time time.Time `json:"time"`
}

// Connection is one entry of GET /v1/connections.
type Connection struct {
	Status
	Provider    string `json:"provider"`
	Environment string `json:"environment,omitempty"`
	APIBase     string `json:"api_base,omitempty"`
	// CodeSignIn: the connection has no redirect URI, so it signs in with a
	// code entered on any device (RFC 8628, `login --device`), also when a
	// desktop signs a server's connection in.
	CodeSignIn bool `json:"code_sign_in,omitempty"`
}

// Token is the body of GET /v1/connections/NAME/token.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresIn   int64     `json:"expires_in"`
	APIBase     string    `json:"api_base,omitempty"`
	// Provider is the connection's provider preset ("procore", "generic").
	Provider string `json:"provider,omitempty"`
	// Warning is set when the token is handed out although the refresh it
	// called for failed: it is still valid, until ExpiresAt.
	Warning string `json:"warning,omitempty"`
}

// SignedOut is the body of POST /v1/connections/NAME/logout.
type SignedOut struct {
	Connection
	// Revoked: the provider was told to revoke the refresh token.
	Revoked bool `json:"revoked"`
	// NotRevoked says why nothing was revoked, when nothing was.
	NotRevoked string `json:"not_revoked,omitempty"`
}

// Event types, in Event.Type.
const (
	// EventStatus: a connection's state or times changed; Status is set.
	// The stream starts with one for every connection.
	EventStatus = "status"
	// EventRemoved: a connection was removed from the config.
	EventRemoved = "removed"
	// EventLog: a line of the event log, about a connection or the app.
	EventLog = "log"
	// EventReady ends the stream's opening snapshot: every connection's
	// status and the recent log lines were sent.
	EventReady = "ready"
)

// Event is one line of GET /v1/events, a stream of JSON lines.
type Event struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// Connection is the connection's name; empty for the app's own lines.
	Connection string `json:"connection,omitempty"`
	// Kind is what happened to the connection (a status event): "refreshed",
	// "refresh_failed", "signed_in", …, or empty for a change of the set.
	Kind string `json:"kind,omitempty"`
	// Text is the line for people (log events, and status events with
	// something to say).
	Text   string      `json:"text,omitempty"`
	Status *Connection `json:"status,omitempty"`
}

// PasteSignIn is the answer of POST /v1/connections/NAME/login?paste=true:
// the sign-in waits, on the server, for the address the browser lands on.
type PasteSignIn struct {
	// AuthorizeURL is to be opened in a browser on any machine.
	AuthorizeURL string `json:"authorize_url"`
	// RedirectURI is where the browser lands after the sign-in (it need
	// not load there); its address, or the code for an out-of-band
	// redirect URI, goes to POST …/login/paste.
	RedirectURI string `json:"redirect_uri"`
}

// DeviceSignIn is the answer of POST /v1/connections/NAME/login?device=true:
// a sign-in with a code (RFC 8628), finished on any device. GET
// /v1/connections/NAME/login/device waits for its outcome.
type DeviceSignIn struct {
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	// VerificationURIComplete has the code in it, when the provider
	// offers one.
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	Expires                 time.Time `json:"expires,omitzero"`
}

// ClientSecret is the body of PUT /v1/connections/NAME/client_secret.
type ClientSecret struct {
	ClientSecret string `json:"client_secret"`
}

// Pasted is the body of POST /v1/connections/NAME/login/paste.
type Pasted struct {
	Address string `json:"address"`
}

// TokenHash names an access token without revealing it: the first 16 hex
// digits of its SHA-256. POST …/refresh?stale=HASH refreshes only while the
// token of that hash is still the current one.
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return hex.EncodeToString(sum[:8])
}

// ConnectionConfig is one [[connection]] table of the config file, with
// the config file's key names (README, Config reference). No secret is in
// it: the client secret travels only in SaveConnection and TestSignIn.
type ConnectionConfig struct {
	Name          string            `json:"name"`
	Provider      string            `json:"provider"`
	Environment   string            `json:"environment,omitempty"`
	Grant         string            `json:"grant,omitempty"`
	ClientID      string            `json:"client_id,omitempty"`
	RedirectURI   string            `json:"redirect_uri,omitempty"`
	Scopes        []string          `json:"scopes,omitempty"`
	RefreshAt     *float64          `json:"refresh_at,omitempty"`
	ExportFile    string            `json:"export_file,omitempty"`
	TokenEnv      string            `json:"token_env,omitempty"`
	OnAlert       string            `json:"on_alert,omitempty"`
	AuthURL       string            `json:"auth_url,omitempty"`
	TokenURL      string            `json:"token_url,omitempty"`
	RevokeURL     string            `json:"revoke_url,omitempty"`
	DeviceAuthURL string            `json:"device_auth_url,omitempty"`
	TokenInfoURL  string            `json:"token_info_url,omitempty"`
	PARURL        string            `json:"par_url,omitempty"`
	DPoP          bool              `json:"dpop,omitempty"`
	Handle        string            `json:"handle,omitempty"`
	APIBase       string            `json:"api_base,omitempty"`
	CheckURL      string            `json:"check_url,omitempty"`
	Issuer        string            `json:"issuer,omitempty"`
	AuthMethod    string            `json:"token_endpoint_auth_method,omitempty"`
	AuthParams    map[string]string `json:"auth_params,omitempty"`
	TokenParams   map[string]string `json:"token_params,omitempty"`
	APIHeaders    map[string]string `json:"api_headers,omitempty"`
	ProxyPort     int               `json:"proxy_port,omitempty"`
	// The providers' settings (tenant, company_id) and refresh-token
	// lives, as written ("90d").
	Tenant               string `json:"tenant,omitempty"`
	CompanyID            string `json:"company_id,omitempty"`
	RefreshTokenIdle     string `json:"refresh_token_idle,omitempty"`
	RefreshTokenLifetime string `json:"refresh_token_lifetime,omitempty"`
	RefreshTokenWarning  string `json:"refresh_token_warning,omitempty"`
	AccessTokenLifetime  string `json:"access_token_lifetime,omitempty"`
	RequestTimeout       string `json:"request_timeout,omitempty"`
}

// Config is the body of GET /v1/config: the config file the running
// tokentray runs, and whether each connection has a client secret stored.
type Config struct {
	Path        string             `json:"path"`
	Connections []ConnectionConfig `json:"connections"`
}

// ConfiguredConnection is the body of GET /v1/config/connections/NAME.
type ConfiguredConnection struct {
	Connection ConnectionConfig `json:"connection"`
	// SecretStored says whether a client secret is stored; its value never
	// leaves the running tokentray. False with SecretError set when the
	// store did not answer.
	SecretStored bool   `json:"client_secret_stored"`
	SecretError  string `json:"client_secret_error,omitempty"`
}

// SaveConnection is the body of PUT /v1/config/connections/NAME (edit NAME,
// which Connection may rename) and POST /v1/config/connections (add).
type SaveConnection struct {
	Connection ConnectionConfig `json:"connection"`
	// Secret is a new client secret; empty keeps the stored one.
	Secret string `json:"client_secret,omitempty"`
	// TestID is a test sign-in of exactly this connection and secret: its
	// tokens are kept, so that no second sign-in is needed.
	TestID string `json:"test_id,omitempty"`
}

// Saved is the answer to a save or a removal. Problem is set when the
// config file was written but the keyring could not be brought in line.
type Saved struct {
	Path    string `json:"path"`
	Problem string `json:"problem,omitempty"`
}

// TestSignIn is the body of POST /v1/config/test: sign in once with a
// connection as the editor has it, without saving anything.
type TestSignIn struct {
	// Replacing is the connection being edited, whose stored client secret
	// is used when Secret is empty.
	Replacing  string           `json:"replacing,omitempty"`
	Connection ConnectionConfig `json:"connection"`
	Secret     string           `json:"client_secret,omitempty"`
}

// Tested is the answer to a test sign-in that got tokens. Check is the API
// check's result when the connection has a check URL.
type Tested struct {
	TestID string       `json:"test_id"`
	Check  *CheckResult `json:"check,omitempty"`
	// AuthMethod is how the client authenticated at the token endpoint,
	// and AuthMethodFrom who chose it (as in Status).
	AuthMethod     string `json:"auth_method,omitempty"`
	AuthMethodFrom string `json:"auth_method_from,omitempty"`
}
