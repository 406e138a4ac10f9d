// Package duration writes durations, and the date a refresh token ends at,
// the way tokentray shows them to people, in a package that links nothing
// but strconv and time: `tokentray token NAME` (cmd/tokentray) prints one
// in its warning, and every package that program links is initialised on
// every call; and the core (auth) says a forecast with them without
// linking any of the surfaces' wording (internal/humanize).
package duration

import (
	"strconv"
	"time"
)

// String prints 1 h 12 m, 4 m 05 s or 12 s; a negative duration ends in "ago".
func String(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	var out string
	switch {
	case h >= 48:
		out = strconv.Itoa(h/24) + " d " + strconv.Itoa(h%24) + " h"
	case h > 0:
		out = strconv.Itoa(h) + " h " + two(m) + " m"
	case m > 0:
		out = strconv.Itoa(m) + " m " + two(s) + " s"
	default:
		out = strconv.Itoa(s) + " s"
	}
	if neg {
		return out + " ago"
	}
	return out
}

// two is fmt's %02d.
func two(n int) string {
	if 0 <= n && n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// Approx says a long duration to the nearest day, hour or minute: "6 days",
// "20 hours", "12 minutes" (at least one minute).
func Approx(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return strconv.Itoa(int(d.Hours()/24+0.5)) + " days"
	case d >= 2*time.Hour:
		return strconv.Itoa(int(d.Hours()+0.5)) + " hours"
	}
	return strconv.Itoa(max(int(d.Minutes()+0.5), 1)) + " minutes"
}

// EndDate is how a refresh token's foreseen end is written, in messages
// and in the steps that turn on it: "Mon 2 Feb 2026 09:00 CET".
func EndDate(t time.Time) string { return t.Local().Format("Mon 2 Jan 2006 15:04 MST") }
