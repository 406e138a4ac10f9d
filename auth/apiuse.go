package auth

import (
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// What calls made with a connection's tokens (the local API's proxy) tell
// its keeper: whether the API takes the token, and how much of its rate
// limit is left. Each is said once per change, not once per call.
const (
	// EventAPIRefused: the API refused an access token that a refresh had
	// just replaced (Error says what it answered). Once per change.
	EventAPIRefused EventKind = "api_refused"
	// EventAPIAccepted: the API takes the token again after refusing it.
	EventAPIAccepted EventKind = "api_accepted"
	// EventRateLimit: the API reported its rate limit (Status.RateLimit);
	// at most every rateLimitEvery, sooner when little is left.
	EventRateLimit EventKind = "rate_limit"
)

// rateLimitEvery is how often a rate limit that changes with every call is
// told to followers (the dashboard), unless it runs low.
const rateLimitEvery = 30 * time.Second

// RateLimit is an API's rate limit as it reported it on the last call
// (Procore: X-Rate-Limit-Limit, -Remaining, -Reset).
type RateLimit struct {
	Limit     int       `json:"limit"`
	Remaining int       `json:"remaining"`
	Reset     time.Time `json:"reset,omitzero"`
	// Time is when it was reported.
	Time time.Time `json:"time"`
}

// low reports whether little is left: a tenth of the limit or less.
func (r RateLimit) low() bool { return r.Limit > 0 && r.Remaining*10 <= r.Limit }

// APIRefused records that the API refused an access token after a refresh
// replaced it: no new token helps, a person must look (the API base of
// another environment, an app without the API's permission).
func (k *Keeper) APIRefused(detail string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.apiRefused == detail {
		return
	}
	first := k.apiRefused == ""
	k.apiRefused = detail
	if first {
		k.emitLocked(Event{Kind: EventAPIRefused, Error: detail,
			Next: stepWith(nextstep.CheckAPIBase, k.conn.Name, "The API refuses even a fresh token.")})
	}
}

// APIAccepted records that the API took the token.
func (k *Keeper) APIAccepted() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.apiRefused == "" {
		return
	}
	k.apiRefused = ""
	k.emitLocked(Event{Kind: EventAPIAccepted})
}

// RateLimited records the API's rate limit as its last answer reported it.
func (k *Keeper) RateLimited(rl RateLimit) {
	k.mu.Lock()
	defer k.mu.Unlock()
	was := k.rateLimit
	k.rateLimit = &rl
	if was == nil || rl.Time.Sub(k.rateToldAt) >= rateLimitEvery || (rl.low() && !was.low()) || rl.Limit != was.Limit {
		k.rateToldAt = rl.Time
		k.emitLocked(Event{Kind: EventRateLimit})
	}
}
