// Package roughly writes times the way a person reads them at a glance: a
// long duration to the nearest day, hour or minute, and the date of a
// refresh token's foreseen end. The core's messages and every surface say
// them the same way. It imports only the standard library, so that the
// core (auth) and the front program link it without any wording.
package roughly

import (
	"strconv"
	"time"
)

// Duration says d to the nearest day, hour or minute: "6 days",
// "20 hours", "12 minutes" (at least one minute).
func Duration(d time.Duration) string {
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
