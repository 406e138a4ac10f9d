package wake

import (
	"context"
	"time"
)

// Jumps calls onWake when the wall clock has moved ahead of the monotonic
// clock by more than slack since its last look, which it takes every
// interval until ctx ends: the monotonic clock stops while the machine is
// suspended, the wall clock does not. It is the fallback where there is no
// logind: one look every interval for the whole process, however many
// keepers it runs.
func Jumps(ctx context.Context, interval, slack time.Duration, onWake func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// Round(0) drops the monotonic reading: the wall clock's elapsed time.
			if jumped(now.Round(0).Sub(last.Round(0)), now.Sub(last), slack) {
				onWake()
			}
			last = now
		}
	}
}

// jumped reports whether the wall clock moved more than slack further than
// the monotonic clock in the same interval.
func jumped(wall, monotonic, slack time.Duration) bool { return wall-monotonic > slack }
