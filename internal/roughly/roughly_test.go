package roughly

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		58*24*time.Hour + 3*time.Hour: "58 days", 47 * time.Hour: "47 hours", 119 * time.Minute: "119 minutes",
	} {
		if got := Duration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
