// Package nextstep is the vocabulary of what a person does next about a
// connection: the core (auth) names the step and its facts, and each
// surface says it in its own words (internal/humanize): the terminal names
// the command to run, the dashboard points at the button beside the text.
// The wire carries the step as it is ("next" beside the phrased "hint"),
// so that a client phrases it for its own surface too.
//
// It imports only the standard library's time, so that the core, the wire
// types and the smallest client can all link it.
package nextstep

import "time"

// Kind names a next step. Its values are a contract on the wire: a kind is
// added, never renamed. A client that meets a kind it does not know shows
// the "hint" that came with it instead.
type Kind string

const (
	// SignIn: the connection was never signed in, or was signed out.
	SignIn Kind = "sign_in"
	// SignInAgain: the refresh token is dead, missing or of no use (its
	// DPoP key lost); a new sign-in gets a new one.
	SignInAgain Kind = "sign_in_again"
	// SignInBefore: the refresh token ends at At and no refresh moves it;
	// a sign-in before then starts a new one.
	SignInBefore Kind = "sign_in_before"
	// SignInAfter: the refresh token ends at At (an environment reset):
	// a sign-in before then does not help, one after it does.
	SignInAfter Kind = "sign_in_after"
	// SignInPasting: the browser cannot come back to this machine: sign
	// in with a browser anywhere and paste the address it lands on.
	SignInPasting Kind = "sign_in_pasting"
	// SignInWithCode: the connection has no redirect URI, so a browser
	// sign-in cannot come back: sign in with a code (RFC 8628), or
	// register a redirect URI.
	SignInWithCode Kind = "sign_in_with_code"
	// FinishSignIn: another sign-in of the connection waits for a person;
	// finish it, or let it time out, then sign in again.
	FinishSignIn Kind = "finish_sign_in"
	// SetDeviceAuthURL: a sign-in with a code was asked for, but no device
	// authorization endpoint is known: set device_auth_url, or sign in by
	// pasting.
	SetDeviceAuthURL Kind = "set_device_auth_url"
	// RetrySignIn: the sign-in with a code ran out or was declined; Cause
	// says which, and what to do differently.
	RetrySignIn Kind = "retry_sign_in"
	// StoreSecret: no client secret is stored and the client needs one.
	StoreSecret Kind = "store_secret"
	// FixClient: the provider refused the client (its id, secret or
	// authentication method). Cause is the diagnosis, when there is one;
	// KeepsRefreshToken says no sign-in is needed once it is fixed.
	FixClient Kind = "fix_client"
	// EnableGrant: the client may not use this grant type; it is enabled
	// in the app's settings at the provider.
	EnableGrant Kind = "enable_grant"
	// CheckSetting: the provider or the API refused what Setting asks for
	// (Cause says what was refused).
	CheckSetting Kind = "check_setting"
	// SetCheckURL: an API check was asked for, but no check_url is set.
	SetCheckURL Kind = "set_check_url"
	// AskOfflineAccess: the sign-in brought no refresh token; asking for
	// offline access fixes that at most providers.
	AskOfflineAccess Kind = "ask_offline_access"
	// Refresh: a service account fetches its tokens itself, by a refresh.
	Refresh Kind = "refresh"
	// SignOutIfMeant: the tokens were written back after the keyring lost
	// them; whoever meant to sign out does so through tokentray.
	SignOutIfMeant Kind = "sign_out_if_meant"
	// UseProxy: the token is DPoP-bound, useless bare: call the API
	// through tokentray, which adds the proof.
	UseProxy Kind = "use_proxy"
	// Wait: nothing to do; tokentray retries by itself (Cause says why).
	Wait Kind = "wait"
	// CheckNetwork: a server did not answer: the network, a proxy, or the
	// URL in Setting (URL) is at fault. Cause says which server.
	CheckNetwork Kind = "check_network"
	// CheckIssuer: the issuer's metadata could not be read; tokentray
	// retries. The issuer (URL), the network, or auth_url and token_url
	// set by hand.
	CheckIssuer Kind = "check_issuer"
	// CheckAPIBase: the API refuses a fresh token: api_base is likely of
	// another environment than the sign-in (Cause names both, when known),
	// or the app may not use this API.
	CheckAPIBase Kind = "check_api_base"
	// UnlockKeyring: the keyring could not be read or written.
	UnlockKeyring Kind = "unlock_keyring"
	// KeepRunning: the new tokens are not saved yet; this tokentray holds
	// the only copy of the refresh token and must not be quit.
	KeepRunning Kind = "keep_running"
	// StaleLock: another process holds the connection's refresh lock.
	StaleLock Kind = "stale_lock"
)

// Step is what a person does next about a connection, with the facts a
// surface needs to say it. Its JSON is part of the local API ("next") and
// of what the store keeps ("last_next").
type Step struct {
	Kind Kind `json:"kind"`
	// Connection is the connection the step is about, by the name a person
	// uses for it here (NAME@REMOTE for a server's).
	Connection string `json:"connection,omitempty"`
	// Cause is what happened, said before the step, in words that hold on
	// every surface: they name no command line and no button. It may hold
	// the provider's own words (cleaned, internal/safetext).
	Cause string `json:"cause,omitempty"`
	// At is the time the step turns on: the refresh token's foreseen end
	// (SignInBefore, SignInAfter).
	At time.Time `json:"at,omitzero"`
	// Setting is the config key at fault (CheckSetting, CheckNetwork), and
	// URL the address in question (CheckNetwork, CheckIssuer).
	Setting string `json:"setting,omitempty"`
	URL     string `json:"url,omitempty"`
	// KeepsRefreshToken: the refresh token is kept, so no sign-in is
	// needed once the client is accepted (FixClient).
	KeepsRefreshToken bool `json:"keeps_refresh_token,omitempty"`
}

// With returns s with cause said before its own cause.
func (s Step) With(cause string) Step {
	switch {
	case cause == "":
	case s.Cause == "":
		s.Cause = cause
	default:
		s.Cause = cause + " " + s.Cause
	}
	return s
}
