package humanize

import (
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/humanize/duration"
)

// Surface is where a next step is said.
type Surface int

const (
	// Terminal is the command line, the log, the on_alert payload and the
	// API's "hint" field (scripts and older clients read it): a step names
	// the command to run.
	Terminal Surface = iota
	// Window is the dashboard, the tray and notifications: the button for
	// the step is beside the text, so it names the button, not a command.
	Window
)

// Advice is what to show as the next step: next said for the surface, or,
// when there is no next step or one this tokentray does not know, hint as
// it came (an older tokentray's words, kept in the store or sent by a
// [[remote]] server; a newer one's for a kind added since).
func Advice(next *nextstep.Step, hint string, on Surface) string {
	if s := NextStep(next, on); s != "" {
		return s
	}
	return hint
}

// NextStep says s for a surface: its cause, then what to do. "" for nil
// and for a kind this tokentray does not know.
func NextStep(s *nextstep.Step, on Surface) string {
	if s == nil {
		return ""
	}
	do := step(*s, on)
	if do == "" {
		return ""
	}
	if s.Cause == "" {
		return do
	}
	return s.Cause + " " + do
}

// step is what to do, without the cause.
func step(s nextstep.Step, on Surface) string {
	name, term := s.Connection, on == Terminal
	// in names the place to change a setting: the config file from a
	// terminal, the editor (its Edit button) from a window.
	in := " in the config"
	if !term {
		in = " with Edit"
	}
	switch s.Kind {
	case nextstep.SignIn:
		if term {
			return "Sign in with `tokentray login " + name + "`."
		}
		return "Sign in."
	case nextstep.SignInAgain:
		if term {
			return "Sign in again with `tokentray login " + name + "`."
		}
		return "Sign in again."
	case nextstep.SignInBefore:
		if term {
			return "Sign in again before " + duration.EndDate(s.At) + " with `tokentray login " + name + "`: a new sign-in starts a new refresh token."
		}
		return "Sign in again before " + duration.EndDate(s.At) + ": a new sign-in starts a new refresh token."
	case nextstep.SignInAfter:
		if term {
			return "A sign-in before " + duration.EndDate(s.At) + " does not help: sign in again after it with `tokentray login " + name + "`."
		}
		return "A sign-in before " + duration.EndDate(s.At) + " does not help: sign in again after it."
	case nextstep.SignInPasting:
		// No button does this: the window, too, names the command.
		return "Sign in with `tokentray login " + name + " --paste` in a terminal: it gives the address to open in a browser on any machine, and asks for the address that browser lands on (or the code)."
	case nextstep.SignInWithCode:
		if term {
			return "Sign in with a code instead: `tokentray login " + name + " --device`; or register a redirect URI with the provider and set redirect_uri."
		}
		return "Sign in with a code instead; or register a redirect URI with the provider and set redirect_uri with Edit."
	case nextstep.FinishSignIn:
		return "Finish that one, or wait until it times out; then sign in again."
	case nextstep.SetDeviceAuthURL:
		if term {
			return "Set device_auth_url in the config if the provider has one, or sign in with `tokentray login " + name + " --paste` (a browser on any machine)."
		}
		return "Set device_auth_url with Edit if the provider has one, or sign in with a browser."
	case nextstep.RetrySignIn:
		return "Run the sign-in again."
	case nextstep.StoreSecret:
		if term {
			return "Store the client secret with `tokentray secret " + name + "` (from the app's settings at the provider), then try again."
		}
		return "Store the client secret (from the app's settings at the provider) with Edit, then try again."
	case nextstep.FixClient:
		var do string
		switch {
		case term && s.Cause != "":
			do = "A new client secret is stored with `tokentray secret " + name + "`."
		case term:
			do = "Set the client secret with `tokentray secret " + name + "`, or fix client_id and token_endpoint_auth_method in the config."
		case s.Cause != "":
			do = "Fix the client's settings with Edit."
		default:
			do = "Set the client secret, or fix client_id and token_endpoint_auth_method, with Edit."
		}
		if s.KeepsRefreshToken {
			do += " The refresh token is kept: no new sign-in is needed once the client is accepted."
		}
		return do
	case nextstep.EnableGrant:
		return "Enable this grant type for the app at the provider."
	case nextstep.CheckSetting:
		if term {
			return "Check `" + s.Setting + "`" + in + "."
		}
		return "Check " + s.Setting + in + "."
	case nextstep.SetCheckURL:
		return "Set check_url" + in + " to a cheap GET that needs the token, e.g. a /me endpoint."
	case nextstep.AskOfflineAccess:
		return "Usually fixed by asking for offline access: add \"offline_access\" to scopes (OpenID Connect servers; some want \"offline\"), " +
			"or the provider's own parameter in auth_params (Google: access_type = \"offline\"; Dropbox: token_access_type = \"offline\"); then sign in again."
	case nextstep.Refresh:
		if term {
			return "It fetches its tokens itself: `tokentray refresh " + name + "`."
		}
		return "It fetches its tokens itself: Refresh now."
	case nextstep.SignOutIfMeant:
		if term {
			return "To sign out, use `tokentray logout " + name + "`."
		}
		return "To sign out, use Sign out."
	case nextstep.UseProxy:
		return "Call the API through tokentray, which adds the proof to each request: " +
			"curl --unix-socket \"$XDG_RUNTIME_DIR/tokentray/api.sock\" http://tokentray/v1/connections/" + name + "/api/PATH " +
			"(see the README's \"Calling the API through tokentray\")."
	case nextstep.Wait:
		return "tokentray retries by itself."
	case nextstep.CheckNetwork:
		what := "the network, a proxy, or " + s.Setting
		if s.URL != "" {
			what += " (" + s.URL + ")"
		}
		return "Check " + what + "; then try again."
	case nextstep.CheckIssuer:
		return "tokentray retries. Check the issuer URL (" + s.URL + ") and the network, or set auth_url and token_url" + in + "."
	case nextstep.CheckAPIBase:
		return "Check that api_base is of the same environment as the sign-in, and that the app may use this API."
	case nextstep.UnlockKeyring:
		return "tokentray retries. Unlock or start the keyring."
	case nextstep.KeepRunning:
		return "tokentray holds the only copy of the new refresh token in memory and keeps retrying; unlock or start the keyring, and do not quit tokentray until this clears."
	case nextstep.StaleLock:
		return "Another tokentray process holds the refresh lock; if none is running, remove the stale lock file."
	}
	return ""
}
