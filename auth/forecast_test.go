package auth

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// runKeeper runs r.k until the test ends.
func runKeeper(t *testing.T, r *rig) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.k.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// parkUntil moves the fake clock from one deadline the parked scheduler
// waits for to the next, until stop says so (asked each time it has
// parked), and fails if a deadline falls after until.
func parkUntil(t *testing.T, r *rig, until time.Time, stop func() bool) {
	t.Helper()
	for {
		if !r.clock.BlockUntil(1, 30*time.Second) {
			t.Fatalf("the scheduler did not park (now %v)", r.clock.Now())
		}
		if stop() {
			return
		}
		next := r.clock.Deadlines()[0]
		if next.After(until) {
			t.Fatalf("parked until %v, after %v", next, until)
		}
		r.clock.Set(next)
	}
}

// eventSeen reports whether a kind of event is waiting, taking the others.
func eventSeen(r *rig, kind EventKind) bool {
	for {
		select {
		case e := <-r.events:
			if e.Kind == kind {
				return true
			}
		default:
			return false
		}
	}
}

// An absolute end (Atlassian's 365 days, Google's 7 days in Testing): a
// person hears of it once, refresh_token_warning before it, however many
// refreshes and restarts come between.
func TestAFixedRefreshTokenEndIsToldOnceAtTheWarningTime(t *testing.T) {
	r := newRigWith(t, func(o *KeeperOptions) { o.MaxSleep = 24 * time.Hour })
	r.conn.RefreshTokenRule = RefreshTokenRule{Absolute: 30 * day, About: "30 days after sign-in"}
	// Not at a whole day: the scheduler, parked a day at most, must wake
	// for the warning itself.
	r.conn.RefreshTokenWarning = 7*day + 5*time.Hour
	r.srv.lifetime = int((10 * day).Seconds()) // refreshes every 8 days
	rt := r.srv.issueRefreshToken()
	r.store.put(r.conn.Name, &TokenSet{AccessToken: "at-0", RefreshToken: Secret(rt), ObtainedAt: t0, Lifetime: 10 * day,
		RefreshTokenSince: t0, GrantSince: t0})
	if err := r.k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	end := t0.Add(30 * day)
	warnAt := end.Add(-r.conn.RefreshTokenWarning)
	if st := r.k.Status(); !st.RefreshTokenEnd.Equal(end) || st.RefreshTokenRenewable || st.RefreshTokenEnding {
		t.Fatalf("forecast %v renewable=%t ending=%t, want %v, fixed, not yet ending", st.RefreshTokenEnd, st.RefreshTokenRenewable, st.RefreshTokenEnding, end)
	}
	runKeeper(t, r)
	told := 0
	parkUntil(t, r, warnAt, func() bool {
		if eventSeen(r, EventRefreshTokenExpiring) {
			told++
		}
		return told > 0
	})
	if now := r.clock.Now(); !now.Equal(warnAt) {
		t.Fatalf("told at %v, want at %v (7 days 5 hours before %v)", now, warnAt, end)
	}
	st := r.k.Status()
	if !st.RefreshTokenEnding || st.Next == nil || *st.Next != (nextstep.Step{Kind: nextstep.SignInBefore, Connection: r.conn.Name, At: end}) {
		t.Fatalf("status after the warning: ending=%t next %+v", st.RefreshTokenEnding, st.Next)
	}
	// Kept with the tokens at once, not only at the next refresh.
	if got := r.store.stored(r.conn.Name).EndWarned; !SameEnd(got, end) {
		t.Fatalf("the stored tokens say the end told of was %v, want %v", got, end)
	}
	// On through the refresh at 24 days, to a day before the end: no
	// second warning.
	parkUntil(t, r, end, func() bool {
		if eventSeen(r, EventRefreshTokenExpiring) {
			t.Fatalf("told again at %v", r.clock.Now())
		}
		return r.clock.Now().After(end.Add(-day))
	})
	if r.srv.refreshCount() < 2 {
		t.Fatalf("%d refreshes in 29 days of 10-day tokens", r.srv.refreshCount())
	}
	// A restart knows it was told: the refresh after the warning kept it.
	k2 := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock, MaxSleep: 24 * time.Hour})
	if err := k2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := k2.Status(); !st.RefreshTokenEnding {
		t.Fatalf("after a restart the warning is forgotten: %+v", st)
	}
	if _, at := k2.endToTellLocked(); !at.IsZero() {
		t.Fatalf("after a restart it would be told again at %v", at)
	}
}

// An idle rule (Xero's 60 days unused, Microsoft's 90): the keeper
// refreshes before the refresh token dies of disuse, even when the access
// token alone would not call for it yet, and no person hears of it.
func TestAnIdleRuleRefreshKeepsTheConnectionAliveWithoutAPerson(t *testing.T) {
	r := newRigWith(t, func(o *KeeperOptions) { o.MaxSleep = 24 * time.Hour })
	r.conn.RefreshTokenRule = RefreshTokenRule{Idle: 10 * day, About: "10 days unused"}
	r.srv.lifetime = int((30 * day).Seconds())
	rt := r.srv.issueRefreshToken()
	r.store.put(r.conn.Name, &TokenSet{AccessToken: "at-0", RefreshToken: Secret(rt), ObtainedAt: t0, Lifetime: 30 * day, RefreshTokenSince: t0})
	if err := r.k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	renewAt := t0.Add(9 * day) // the last tenth of the 10 days
	if st := r.k.Status(); !st.NextRefresh.Equal(renewAt) || !st.RefreshTokenRenewable {
		t.Fatalf("next refresh %v (renewable=%t), want %v: before the idle end, not at 80%% of the 30-day token", st.NextRefresh, st.RefreshTokenRenewable, renewAt)
	}
	runKeeper(t, r)
	parkUntil(t, r, renewAt, func() bool { return r.srv.refreshCount() == 1 })
	r.waitFor(EventRefreshed, "")
	if st := r.k.Status(); !st.RefreshTokenEnd.Equal(renewAt.Add(10 * day)) {
		t.Fatalf("after the refresh the end is %v, want %v", st.RefreshTokenEnd, renewAt.Add(10*day))
	}
	if eventSeen(r, EventRefreshTokenExpiring) {
		t.Fatal("a person was told of an end that a refresh moved")
	}
	r.noReuse()
}

// While refreshes fail, an idle end is no longer moved: a person hears of
// it before it comes.
func TestAnIdleEndIsToldWhenRefreshesKeepFailing(t *testing.T) {
	r := newRig(t)
	r.conn.RefreshTokenRule = RefreshTokenRule{Idle: 10 * day, About: "10 days unused"}
	r.signedIn()
	r.clock.Advance(5 * day)
	r.srv.then(replyInvalidClient)
	_ = r.k.Refresh(context.Background())
	r.waitFor(EventState, StateClientRefused)
	r.k.mu.Lock()
	r.k.noteEndLocked(r.clock.Now())
	r.k.mu.Unlock()
	e := r.waitFor(EventRefreshTokenExpiring, "")
	if !strings.Contains(e.Error, "about 5 days") || !strings.Contains(e.Error, "10 days unused") {
		t.Fatalf("told %q", e.Error)
	}
}

// The server's word (refresh_token_expires_in, as a number or a string)
// comes first; a new refresh token whose end does not move is one of a
// grant with a fixed end.
func TestTheServersRefreshTokenLifetimeIsKeptAndAFixedEndIsRecognised(t *testing.T) {
	r := newRig(t)
	end := t0.Add(100 * day)
	r.srv.extra = func() map[string]any {
		// Intuit's name, as a string: a refresh token that ends at end.
		return map[string]any{"x_refresh_token_expires_in": strconv.Itoa(int(end.Sub(r.clock.Now()).Seconds()))}
	}
	r.signedIn()
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := r.k.Status()
	if !st.RefreshTokenEnd.Equal(end) || !st.RefreshTokenRenewable || !strings.Contains(st.RefreshTokenEndAbout, "server") {
		t.Fatalf("after the first answer: end %v renewable=%t (%s), want %v, renewable until seen otherwise", st.RefreshTokenEnd, st.RefreshTokenRenewable, st.RefreshTokenEndAbout, end)
	}
	r.clock.Advance(time.Hour)
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.k.Status(); !st.RefreshTokenEnd.Equal(end) || st.RefreshTokenRenewable {
		t.Fatalf("a new refresh token with the same end: end %v renewable=%t, want fixed", st.RefreshTokenEnd, st.RefreshTokenRenewable)
	}
	// A refresh token whose end moves with each refresh (GitHub's 6 months).
	r.srv.extra = func() map[string]any { return map[string]any{"refresh_token_expires_in": 15897600} }
	r.clock.Advance(time.Hour)
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.k.Status(); !st.RefreshTokenEnd.Equal(r.clock.Now().Add(15897600*time.Second)) || !st.RefreshTokenRenewable {
		t.Fatalf("a moving end: %v renewable=%t", st.RefreshTokenEnd, st.RefreshTokenRenewable)
	}
}

// A server that says how many seconds are left to a fixed end (the answer
// read some milliseconds later each time) is told of once, not at every
// refresh.
func TestAFixedEndCountedDownInSecondsIsToldOnce(t *testing.T) {
	r := newRig(t)
	end := t0.Add(5 * day)
	r.srv.extra = func() map[string]any {
		return map[string]any{"refresh_token_expires_in": int(end.Sub(r.clock.Now()).Seconds())}
	}
	r.signedIn()
	told := 0
	for i := range 6 {
		r.clock.Advance(time.Hour + 370*time.Millisecond)
		if err := r.k.Refresh(context.Background()); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		r.k.mu.Lock()
		r.k.noteEndLocked(r.clock.Now())
		r.k.mu.Unlock()
		if eventSeen(r, EventRefreshTokenExpiring) {
			told++
		}
	}
	if told != 1 {
		t.Fatalf("told %d times of one end", told)
	}
	if st := r.k.Status(); !st.RefreshTokenEnding || st.RefreshTokenRenewable {
		t.Fatalf("status: ending=%t renewable=%t", st.RefreshTokenEnding, st.RefreshTokenRenewable)
	}
}
