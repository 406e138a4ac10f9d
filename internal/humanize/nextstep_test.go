package humanize

import (
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// Each surface says a step in its own words: the terminal (and so the
// API's "hint", the log and on_alert) names the command to run; a window
// names its button, never a command line it has a button for.
func TestAStepIsSaidForEachSurface(t *testing.T) {
	end := time.Date(2026, 12, 1, 10, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		name             string
		step             nextstep.Step
		terminal, window string
	}{
		{"a dead refresh token", nextstep.Step{Kind: nextstep.SignInAgain, Connection: "e2e"},
			"Sign in again with `tokentray login e2e`.", "Sign in again."},
		{"a dead refresh token, with its cause", nextstep.Step{Kind: nextstep.SignInAgain, Connection: "p", Cause: "The refresh token is no longer valid (revoked, expired, or already used)."},
			"The refresh token is no longer valid (revoked, expired, or already used). Sign in again with `tokentray login p`.",
			"The refresh token is no longer valid (revoked, expired, or already used). Sign in again."},
		{"never signed in", nextstep.Step{Kind: nextstep.SignIn, Connection: "p"}, "Sign in with `tokentray login p`.", "Sign in."},
		{"an end ahead", nextstep.Step{Kind: nextstep.SignInBefore, Connection: "x", At: end},
			"Sign in again before Tue 1 Dec 2026 10:00 " + end.Format("MST") + " with `tokentray login x`: a new sign-in starts a new refresh token.",
			"Sign in again before Tue 1 Dec 2026 10:00 " + end.Format("MST") + ": a new sign-in starts a new refresh token."},
		{"a reset ahead", nextstep.Step{Kind: nextstep.SignInAfter, Connection: "m", At: end},
			"A sign-in before Tue 1 Dec 2026 10:00 " + end.Format("MST") + " does not help: sign in again after it with `tokentray login m`.",
			"A sign-in before Tue 1 Dec 2026 10:00 " + end.Format("MST") + " does not help: sign in again after it."},
		{"no client secret", nextstep.Step{Kind: nextstep.StoreSecret, Connection: "svc"},
			"Store the client secret with `tokentray secret svc` (from the app's settings at the provider), then try again.",
			"Store the client secret (from the app's settings at the provider) with Edit, then try again."},
		{"a refused client, the refresh token kept", nextstep.Step{Kind: nextstep.FixClient, Connection: "p", KeepsRefreshToken: true},
			"Set the client secret with `tokentray secret p`, or fix client_id and token_endpoint_auth_method in the config. The refresh token is kept: no new sign-in is needed once the client is accepted.",
			"Set the client secret, or fix client_id and token_endpoint_auth_method, with Edit. The refresh token is kept: no new sign-in is needed once the client is accepted."},
		{"no device endpoint", nextstep.Step{Kind: nextstep.SetDeviceAuthURL, Connection: "gh"},
			"Set device_auth_url in the config if the provider has one, or sign in with `tokentray login gh --paste` (a browser on any machine).",
			"Set device_auth_url with Edit if the provider has one, or sign in with a browser."},
		{"a service account", nextstep.Step{Kind: nextstep.Refresh, Connection: "svc"},
			"It fetches its tokens itself: `tokentray refresh svc`.", "It fetches its tokens itself: Refresh now."},
		{"no refresh token from the sign-in", nextstep.Step{Kind: nextstep.AskOfflineAccess, Connection: "g", Cause: "The server issued no refresh token, so a new sign-in will be needed when the access token expires."},
			"The server issued no refresh token, so a new sign-in will be needed when the access token expires. Usually fixed by asking for offline access: add \"offline_access\" to scopes (OpenID Connect servers; some want \"offline\"), or the provider's own parameter in auth_params (Google: access_type = \"offline\"; Dropbox: token_access_type = \"offline\"); then sign in again.",
			"The server issued no refresh token, so a new sign-in will be needed when the access token expires. Usually fixed by asking for offline access: add \"offline_access\" to scopes (OpenID Connect servers; some want \"offline\"), or the provider's own parameter in auth_params (Google: access_type = \"offline\"; Dropbox: token_access_type = \"offline\"); then sign in again."},
		{"a token endpoint out of reach", nextstep.Step{Kind: nextstep.CheckNetwork, Connection: "p", Cause: "The token endpoint could not be reached.", Setting: "token_url", URL: "https://id.example/token"},
			"The token endpoint could not be reached. Check the network, a proxy, or token_url (https://id.example/token); then try again.",
			"The token endpoint could not be reached. Check the network, a proxy, or token_url (https://id.example/token); then try again."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextStep(&tc.step, Terminal); got != tc.terminal {
				t.Errorf("terminal:\n got %q\nwant %q", got, tc.terminal)
			}
			if got := NextStep(&tc.step, Window); got != tc.window {
				t.Errorf("window:\n got %q\nwant %q", got, tc.window)
			}
		})
	}
}

// A window has a button for everything but a sign-in by pasting: it says
// no command line it has a button for.
func TestAWindowNamesNoCommandItHasAButtonFor(t *testing.T) {
	for _, kind := range kinds {
		if kind == nextstep.SignInPasting {
			continue
		}
		s := NextStep(&nextstep.Step{Kind: kind, Connection: "p", Setting: "scopes"}, Window)
		for _, cmd := range []string{"tokentray login", "tokentray secret", "tokentray refresh", "tokentray logout"} {
			if strings.Contains(s, cmd) {
				t.Errorf("%s in a window: %q", kind, s)
			}
		}
	}
}

// kinds are all the kinds of step there are.
var kinds = []nextstep.Kind{nextstep.SignIn, nextstep.SignInAgain, nextstep.SignInBefore, nextstep.SignInAfter, nextstep.SignInPasting,
	nextstep.SignInWithCode, nextstep.FinishSignIn, nextstep.SetDeviceAuthURL, nextstep.RetrySignIn, nextstep.StoreSecret, nextstep.FixClient,
	nextstep.EnableGrant, nextstep.CheckSetting, nextstep.SetCheckURL, nextstep.AskOfflineAccess, nextstep.Refresh, nextstep.SignOutIfMeant,
	nextstep.UseProxy, nextstep.Wait, nextstep.CheckNetwork, nextstep.CheckIssuer, nextstep.CheckAPIBase, nextstep.UnlockKeyring,
	nextstep.KeepRunning, nextstep.StaleLock}

func TestEveryKindIsSaidOnEverySurface(t *testing.T) {
	for _, kind := range kinds {
		for _, on := range []Surface{Terminal, Window} {
			if NextStep(&nextstep.Step{Kind: kind, Connection: "p"}, on) == "" {
				t.Errorf("%s is not said on surface %d", kind, on)
			}
		}
	}
}

// What an older tokentray sent or kept (a "hint" and no step) is shown as
// it came, and so is the hint beside a step of a kind added after this
// tokentray was built; a step this tokentray knows is said for the surface.
func TestAdviceFallsBackToTheWordsThatCame(t *testing.T) {
	older := "Sign in again with `tokentray login agent`."
	for _, tc := range []struct {
		name string
		next *nextstep.Step
		hint string
		on   Surface
		want string
	}{
		{"from an older tokentray, in a window", nil, older, Window, older},
		{"from an older tokentray, in a terminal", nil, older, Terminal, older},
		{"a kind added since", &nextstep.Step{Kind: "rotate_the_moon", Connection: "agent"}, "Rotate the moon.", Window, "Rotate the moon."},
		{"a known step, in a window", &nextstep.Step{Kind: nextstep.SignInAgain, Connection: "agent"}, older, Window, "Sign in again."},
		{"a known step, in a terminal", &nextstep.Step{Kind: nextstep.SignInAgain, Connection: "agent@moby"}, older, Terminal, "Sign in again with `tokentray login agent@moby`."},
		{"nothing", nil, "", Window, ""},
	} {
		if got := Advice(tc.next, tc.hint, tc.on); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
