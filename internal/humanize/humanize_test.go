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

func TestAgoChangesOnceAMinute(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 30, 0, 0, time.Local)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(-30 * time.Second), "09:29:30, just now"},
		{now.Add(-4*time.Minute - 30*time.Second), "09:25:30, 4 m ago"},
		{now.Add(-2*24*time.Hour - 3*time.Hour), "Nov 28 06:30, 2 d 3 h ago"},
	} {
		if got := Ago(tc.t, now); got != tc.want {
			t.Errorf("Ago(%v) = %q, want %q", tc.t, got, tc.want)
		}
		// A second later it reads the same (no minute turned here).
		if later := Ago(tc.t, now.Add(time.Second)); later != tc.want {
			t.Errorf("Ago(%v) a second later = %q, want %q", tc.t, later, tc.want)
		}
	}
}
