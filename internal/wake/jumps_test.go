package wake

import (
	"testing"
	"time"
)

func TestAWallClockAheadOfTheMonotonicOneIsASuspend(t *testing.T) {
	for _, tc := range []struct {
		wall, monotonic time.Duration
		want            bool
	}{
		{30 * time.Second, 30 * time.Second, false},               // an ordinary interval
		{31 * time.Second, 30 * time.Second, false},               // NTP slewing, within the slack
		{10*time.Minute + 30*time.Second, 30 * time.Second, true}, // ten minutes asleep
		{-time.Hour, 30 * time.Second, false},                     // the clock set back is no suspend
	} {
		if got := jumped(tc.wall, tc.monotonic, 5*time.Second); got != tc.want {
			t.Errorf("wall %s, monotonic %s: %t", tc.wall, tc.monotonic, got)
		}
	}
}
