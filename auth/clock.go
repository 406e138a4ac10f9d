package auth

import "time"

// Clock is the keeper's view of time. Every wait in package auth goes through
// a Clock so that tests can move time instead of sleeping.
//
// Implementations must return wall-clock times from Now (no monotonic
// reading): deadlines are compared against the wall clock so that a laptop
// that slept through a refresh time notices it on wake. Go's monotonic clock
// stops during suspend on Linux and macOS.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current wall-clock time without a monotonic reading.
func (SystemClock) Now() time.Time { return time.Now().Round(0) }

// After waits for d on the runtime's timer. Callers re-check Now afterwards
// rather than trusting that d of wall time has passed.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
