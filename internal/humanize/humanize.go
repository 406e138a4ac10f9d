// Package humanize is tokentray's wording for people: states, times and
// durations the same in the terminal, the tray and the windows, and each
// next step (client/nextstep) said for its surface: the terminal names the
// command to run, a window the button beside the text.
package humanize

import (
	"fmt"
	"time"

	"github.com/tokentray/tokentray/internal/humanize/duration"
)

// Duration prints 1 h 12 m, 4 m 05 s or 12 s; a negative duration ends in "ago".
func Duration(d time.Duration) string { return duration.String(d) }

// Clock prints a countdown as H:MM:SS or M:SS, for a display ticking each second.
func Clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// Ago prints when t was, for a display that must not change every second:
// its clock time (with the date when it was not today) and how long ago to
// the minute: "08:15:43, just now", "08:15:43, 4 m ago",
// "Nov 28 08:15, 2 d 3 h ago"; "never" for zero t.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	at := t.Local().Format("15:04:05")
	if y, m, d := t.Local().Date(); y != now.Local().Year() || m != now.Local().Month() || d != now.Local().Day() {
		at = t.Local().Format("Jan 2 15:04")
	}
	if ago := now.Sub(t); ago >= time.Minute {
		return at + ", " + Coarse(ago) + " ago"
	}
	return at + ", just now"
}

// Coarse prints a duration to the minute, for text that must not change
// every second (a tray menu): "1 h 12 m", "4 m", "< 1 m".
func Coarse(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "< 1 m"
	case d < time.Hour:
		return fmt.Sprintf("%d m", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %02d m", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}
