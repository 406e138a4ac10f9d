package duration

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// String is what humanize.Duration printed with fmt, for every kind of
// duration: seconds, minutes, hours, days, negative, and the extremes.
func TestStringIsWhatFmtPrinted(t *testing.T) {
	withFmt := func(d time.Duration) string {
		neg := d < 0
		if neg {
			d = -d
		}
		d = d.Round(time.Second)
		h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
		var out string
		switch {
		case h >= 48:
			out = fmt.Sprintf("%d d %d h", h/24, h%24)
		case h > 0:
			out = fmt.Sprintf("%d h %02d m", h, m)
		case m > 0:
			out = fmt.Sprintf("%d m %02d s", m, s)
		default:
			out = fmt.Sprintf("%d s", s)
		}
		if neg {
			return out + " ago"
		}
		return out
	}
	ds := []time.Duration{0, 499 * time.Millisecond, 1499 * time.Millisecond, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for s := time.Duration(0); s < 100*time.Hour; s += 7*time.Second + 300*time.Millisecond {
		ds = append(ds, s, -s)
	}
	for _, d := range ds {
		if got, want := String(d), withFmt(d); got != want {
			t.Errorf("String(%d) = %q, want %q", d, got, want)
		}
	}
}

func TestApprox(t *testing.T) {
	for d, want := range map[time.Duration]string{
		58*24*time.Hour + 3*time.Hour: "58 days", 47 * time.Hour: "47 hours", 119 * time.Minute: "119 minutes",
	} {
		if got := Approx(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
