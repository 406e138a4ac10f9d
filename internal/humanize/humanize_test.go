package humanize

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		12 * time.Second:              "12 s",
		4*time.Minute + 5*time.Second: "4 m 05 s",
		72 * time.Minute:              "1 h 12 m",
		-90 * time.Second:             "1 m 30 s ago",
		50*time.Hour + 10*time.Minute: "2 d 2 h",
		1499 * time.Millisecond:       "1 s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
	if got := Clock(72*time.Minute + 5*time.Second); got != "1:12:05" {
		t.Errorf("Clock = %q", got)
	}
	if got := Clock(-time.Second); got != "0:00" {
		t.Errorf("Clock(negative) = %q", got)
	}
}
