// Package duration writes a duration the way tokentray shows it to people
// (humanize.Duration), in a package that links nothing but strconv and
// time: `tokentray token NAME` (cmd/tokentray) prints one in its warning,
// and every package that program links is initialised on every call.
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
