package humanize

import (
	"fmt"
	"strings"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize/duration"
)

// Level is a colour of the tray icon and of a connection's dot.
type Level int

const (
	// Grey: nothing is signed in.
	Grey Level = iota
	// Green: every connection holds a valid access token.
	Green
	// Red: some connection needs a person or has no valid token.
	Red
)

func (l Level) String() string {
	switch l {
	case Green:
		return "green"
	case Red:
		return "red"
	}
	return "grey"
}

// Overall is the colour of a set of connections: grey when none is signed
// in, green when every one is usable, red otherwise. A remote connection
// that cannot be seen now counts neither way: its server keeps refreshing
// it, and not knowing is no reason to call a person.
func Overall(sts []apitype.Status) Level {
	signedIn := 0
	for _, st := range sts {
		if st.State != apitype.StateDisconnected && st.State != apitype.StateUnreachable {
			signedIn++
		}
	}
	if signedIn == 0 {
		return Grey
	}
	for _, st := range sts {
		if ConnectionLevel(st) != Green && st.State != apitype.StateUnreachable {
			return Red
		}
	}
	return Green
}

// ConnectionLevel is one connection's colour.
func ConnectionLevel(st apitype.Status) Level {
	switch {
	case st.State == apitype.StateDisconnected, st.State == apitype.StateUnreachable:
		return Grey
	case st.State == apitype.StateNeedsReauth || st.State == apitype.StateClientRefused || !st.Usable:
		return Red
	}
	return Green
}

// service reports whether st is a client-credentials connection (a service
// account: no person signs it in).
func service(st apitype.Status) bool { return st.Grant == "client_credentials" }

// Summary is a connection's state in a few words, as the tray menu shows it:
// "1 h 12 m left", "sign-in needed", "retrying, 40 m left", "1 h 12 m left,
// refresh token about 58 days left". It changes at most once a minute
// while nothing happens.
func Summary(st apitype.Status, now time.Time) string {
	left := ""
	if st.Usable {
		left = Coarse(st.AccessExpiry.Sub(now)) + " left"
	}
	switch st.State {
	case apitype.StateDisconnected:
		if service(st) {
			return "no token yet"
		}
		return "not signed in"
	case apitype.StateNeedsReauth:
		if service(st) {
			return "credentials refused"
		}
		return "sign-in needed"
	case apitype.StateClientRefused:
		return "client refused: fix the secret"
	case apitype.StateRefreshing:
		return "refreshing…"
	case apitype.StateUnreachable:
		return Unreachable(st, now)
	case apitype.StateInvalidConfig:
		return "config error: fix its table"
	case apitype.StateDegraded:
		if left == "" {
			return "token expired, retrying"
		}
		return "retrying, " + left
	}
	if left == "" {
		return "token expired"
	}
	if st.RefreshTokenEnding || (!st.RefreshTokenEnd.IsZero() && !st.RefreshTokenRenewable) {
		// An end no refresh moves (told once by a notification when it
		// nears): a person will have to sign in, so the menu says when.
		// A renewable one is tokentray's business, and goes unsaid.
		return left + ", refresh token " + RefreshTokenLeft(st, now)
	}
	return left
}

// Unreachable says since when a remote connection's server could not be
// asked: "moby-1 unreachable since 02:10".
func Unreachable(st apitype.Status, now time.Time) string {
	who := st.Remote
	if who == "" {
		who = "server"
	}
	if st.UnreachableSince.IsZero() {
		return who + " unreachable"
	}
	since := st.UnreachableSince.In(now.Location())
	layout := "15:04"
	if y, m, d := since.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		layout = "Jan 2 15:04"
	}
	return who + " unreachable since " + since.Format(layout)
}

// RateLimit is what the API said of its rate limit on the last call
// through the proxy: "412 of 600 requests left until 14:00"; "" when it
// said nothing.
func RateLimit(rl *apitype.RateLimit, now time.Time) string {
	if rl == nil {
		return ""
	}
	s := fmt.Sprintf("%d of %d requests left", rl.Remaining, rl.Limit)
	if rl.Reset.After(now) {
		s += " until " + rl.Reset.In(now.Location()).Format("15:04")
	}
	return s
}

// NextSummary is the first time after now at which Summary of st may
// read differently while nothing happens (the turn of a minute left, the
// expiry), or the zero time when it stays as it is.
func NextSummary(st apitype.Status, now time.Time) time.Time {
	if !st.Usable || !st.AccessExpiry.After(now) {
		return time.Time{}
	}
	// The minutes left are rounded down: they turn just after the time left
	// is a whole number of minutes.
	return now.Add(st.AccessExpiry.Sub(now)%time.Minute + time.Millisecond)
}

// MenuLine is a connection's line in the tray menu.
func MenuLine(st apitype.Status, now time.Time) string {
	return fmt.Sprintf("%s — %s", st.Name, Summary(st, now))
}

// Tooltip is the tray's hover text: one line per connection.
func Tooltip(sts []apitype.Status, now time.Time) string {
	if len(sts) == 0 {
		return "tokentray: no connections"
	}
	s := "tokentray"
	for _, st := range sts {
		s += "\n" + MenuLine(st, now)
	}
	return s
}

// Expiry is the access token's time left for `status`: "4 m 05 s left",
// "expired 2 m ago", "none".
func Expiry(st apitype.Status, now time.Time) string {
	switch {
	case st.AccessExpiry.IsZero():
		return "none"
	case st.Usable:
		label := Duration(st.AccessExpiry.Sub(now)) + " left"
		if st.LifetimeGuessed {
			label += " (estimated)"
		}
		return label
	default:
		return "expired " + Duration(st.AccessExpiry.Sub(now))
	}
}

// NextRefresh is when the next refresh comes, for `status`.
func NextRefresh(st apitype.Status, now time.Time) string {
	switch {
	case st.State == apitype.StateNeedsReauth || st.State == apitype.StateDisconnected:
		return "sign-in needed"
	case st.NextRefresh.IsZero():
		return "-"
	case !st.NextRefresh.After(now):
		return "due now"
	default:
		return "in " + Duration(st.NextRefresh.Sub(now))
	}
}

// LastRefresh is the last refresh and its outcome, as the dashboard and
// `status` say it: "2 minutes ago · ok", with the instance that made it
// when several machines share the store ("2 minutes ago by moby-2 · ok").
func LastRefresh(st apitype.Status, now time.Time) string {
	switch {
	case st.State == apitype.StateDisconnected:
		return "—"
	case st.LastRefresh.IsZero():
		return "none since sign-in"
	}
	s := Ago(st.LastRefresh, now)
	if st.LastRefreshBy != "" {
		s += " by " + st.LastRefreshBy
	}
	if st.LastRefreshOK {
		return s + " · ok"
	}
	return s + " · failed"
}

// RefreshTokenLeft is how long the refresh token is expected to live, as
// `status`, the menu and the dashboard say it: "about 58 days left";
// "" when nobody knows.
func RefreshTokenLeft(st apitype.Status, now time.Time) string {
	if st.RefreshTokenEnd.IsZero() {
		return ""
	}
	d := st.RefreshTokenEnd.Sub(now)
	if d <= 0 {
		return "its foreseen end has passed"
	}
	return "about " + duration.Approx(d) + " left"
}

// RefreshToken is the forecast with what it rests on, for the dashboard
// and `status`: "refresh token: about 58 days left (Xero: a refresh token
// unused for 60 days dies; each refresh renews it)".
func RefreshToken(st apitype.Status, now time.Time) string {
	left := RefreshTokenLeft(st, now)
	if left == "" {
		return ""
	}
	s := "refresh token: " + left
	switch {
	case st.RefreshTokenRenewable && st.RefreshTokenEndAbout != "":
		s += " (" + st.RefreshTokenEndAbout + "; each refresh renews it)"
	case st.RefreshTokenRenewable:
		s += " (each refresh renews it)"
	case st.RefreshTokenEndAbout != "":
		s += " (" + st.RefreshTokenEndAbout + ")"
	}
	return s
}

// Instances are the instances at a shared store, as `status` and the
// dashboard say them: "moby-1 (this one), moby-2, moby-3"; "" when the
// connection's store is not shared (or did not tell).
func Instances(st apitype.Status) string {
	sh := st.Shared
	if sh == nil {
		return ""
	}
	var names []string
	here := false
	for _, n := range sh.Instances {
		if n == sh.Instance {
			n, here = n+" (this one)", true
		}
		names = append(names, n)
	}
	s := strings.Join(names, ", ")
	if !here && sh.Instance != "" {
		s = strings.TrimPrefix(s+"; this one ("+sh.Instance+") is not listening to the store", "; ")
	}
	return s
}

// SharedRefresh is what is under way at a shared store for the connection:
// "being refreshed by moby-2 now", or an intent left uncommitted by an
// instance that died or paused mid-refresh; "" when nothing is.
func SharedRefresh(st apitype.Status, now time.Time) string {
	sh := st.Shared
	switch {
	case sh == nil:
		return ""
	case sh.LeaseHolder != "" && (sh.IntentBy == "" || sh.IntentBy == sh.LeaseHolder):
		return "being refreshed by " + sh.LeaseHolder + " now"
	case sh.IntentBy != "":
		s := "a refresh by " + sh.IntentBy + " left uncommitted (" + Ago(sh.IntentAt, now) + "): it died or paused mid-refresh, and the next refresh waits out the rescue window"
		if sh.LeaseHolder != "" {
			s += "; " + sh.LeaseHolder + " holds the lease now"
		}
		return s
	}
	return ""
}
