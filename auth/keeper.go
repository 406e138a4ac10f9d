package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// State is a connection's state, as in DESIGN.md.
type State string

const (
	StateConnected    State = "connected"
	StateRefreshing   State = "refreshing"
	StateDegraded     State = "degraded"
	StateNeedsReauth  State = "needs_reauth"
	StateDisconnected State = "disconnected"
)

// EventKind names what happened.
type EventKind string

const (
	EventState         EventKind = "state"          // the state changed (From → To)
	EventRefreshed     EventKind = "refreshed"      // a refresh succeeded and was saved
	EventRefreshFailed EventKind = "refresh_failed" // a refresh failed (Error, Hint)
	EventSignedIn      EventKind = "signed_in"
	EventSignedOut     EventKind = "signed_out"
	// EventAccessExpired: the access token expired while no new one could be
	// had (degraded): scripts now fail, a person should hear of it.
	EventAccessExpired EventKind = "access_expired"
	// EventRestored: the keyring lost the tokens (an item deleted outside
	// tokentray) and the keeper wrote back the ones it held (Error says so).
	EventRestored EventKind = "restored"
)

// Event is one thing that happened to a connection. Events carry no tokens.
type Event struct {
	Connection string    `json:"connection"`
	Time       time.Time `json:"time"`
	Kind       EventKind `json:"kind"`
	From       State     `json:"from,omitempty"`
	To         State     `json:"to,omitempty"`
	Error      string    `json:"error,omitempty"`
	Hint       string    `json:"hint,omitempty"`
}

// Status is a snapshot of one connection, for people and scripts.
type Status struct {
	Name              string    `json:"name"`
	Grant             Grant     `json:"grant"`
	State             State     `json:"state"`
	Usable            bool      `json:"usable"` // a valid access token is held now
	AccessObtained    time.Time `json:"access_obtained,omitzero"`
	AccessExpiry      time.Time `json:"access_expiry,omitzero"`
	LifetimeGuessed   bool      `json:"lifetime_guessed,omitempty"`
	NextRefresh       time.Time `json:"next_refresh,omitzero"`
	LastRefresh       time.Time `json:"last_refresh,omitzero"`
	LastRefreshOK     bool      `json:"last_refresh_ok"`
	HasRefreshToken   bool      `json:"has_refresh_token"`
	RefreshTokenSince time.Time `json:"refresh_token_since,omitzero"`
	LastError         string    `json:"last_error,omitempty"`
	Hint              string    `json:"hint,omitempty"`
	// LastCheck is the last "who am I" call against the API, if any.
	LastCheck *CheckResult `json:"last_check,omitempty"`
}

// KeeperOptions are a Keeper's dependencies. Store and Locker are required.
type KeeperOptions struct {
	Store  Store
	Locker Locker
	Clock  Clock
	// HTTPClient talks to the token and revocation endpoints.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// RequestTimeout bounds one call to the token endpoint (default 30 s).
	RequestTimeout time.Duration
	// LockTimeout bounds the wait for another process's refresh (default 2 min).
	LockTimeout time.Duration
	// Jitter returns a number in [0,1); tests make it fixed.
	Jitter func() float64
	// Browser is used by Login.
	OpenBrowser func(url string) error
	ShowURL     func(url string)
	// OnTokens is called after new tokens were saved (refresh, sign-in) and
	// with nil after a sign-out, outside the keeper's lock: the export file.
	OnTokens func(t *TokenSet)
}

// Backoff bounds for transient failures.
const (
	backoffBase = 5 * time.Second
	backoffMax  = 5 * time.Minute
	// pollInterval is the longest the scheduler sleeps before it looks at
	// the wall clock again: after a suspend, a refresh that fell due while
	// asleep starts within this interval of waking.
	pollInterval = 30 * time.Second
)

// Keeper keeps one connection's tokens fresh. It is the only thing that
// refreshes: the tray, the CLI and the socket API all ask it. All methods are
// safe for concurrent use.
type Keeper struct {
	conn *Connection
	opt  KeeperOptions
	log  *slog.Logger

	mu        sync.Mutex
	token     *TokenSet // as saved in the store; nil when none
	unsaved   *TokenSet // newer than token, not yet saved: its refresh token is the live one
	state     State
	lastErr   *TokenError
	errText   string // last error for people, also for non-token errors
	hint      string
	failures  int
	retryAt   time.Time
	expired   bool // EventAccessExpired was sent for the current degradation
	flight    *flight
	subs      map[int]chan Event
	nextSub   int
	loaded    bool
	lastCheck CheckResult
	signIn    *flight // the sign-in waiting for the browser, if any
	signInURL string  // its authorize URL, to open again
	// kick wakes the scheduler when the tokens or the state change (a
	// sign-in, a refresh by a caller), so it recomputes its next deadline.
	kick chan struct{}
}

type flight struct {
	done chan struct{}
	err  error
}

// NewKeeper returns a keeper for conn. Call Load (or Run) before use.
func NewKeeper(conn *Connection, opt KeeperOptions) *Keeper {
	if opt.Clock == nil {
		opt.Clock = SystemClock{}
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = 30 * time.Second
	}
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = 2 * time.Minute
	}
	if opt.Jitter == nil {
		opt.Jitter = rand.Float64
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{conn: conn, opt: opt, log: log.With("connection", conn.Name), state: StateDisconnected, subs: map[int]chan Event{}, kick: make(chan struct{}, 1)}
}

// Connection returns the keeper's connection.
func (k *Keeper) Connection() *Connection { return k.conn }

// Load reads the stored tokens and sets the initial state.
func (k *Keeper) Load(ctx context.Context) error {
	t, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil && !errors.Is(err, ErrNotStored) {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loaded = true
	k.adoptLocked(t)
	return nil
}

// adoptLocked takes t (possibly nil) as the saved token set and derives the state.
func (k *Keeper) adoptLocked(t *TokenSet) {
	k.token = t
	switch {
	case t == nil:
		k.setStateLocked(StateDisconnected)
	case t.Dead:
		k.errText, k.hint = t.LastError, "Sign in again with `tokentray login "+k.conn.Name+"`."
		k.setStateLocked(StateNeedsReauth)
	case t.RefreshToken == "" && k.conn.Grant != GrantClientCredentials && !t.ValidFor(k.opt.Clock.Now(), 0):
		k.errText, k.hint = "the access token expired and there is no refresh token", "Sign in again with `tokentray login "+k.conn.Name+"`."
		k.setStateLocked(StateNeedsReauth)
	default:
		if k.state != StateDegraded {
			k.setStateLocked(StateConnected)
		}
	}
}

// Subscribe returns a channel of the keeper's events and a function that ends
// the subscription. A subscriber that falls more than 64 events behind loses
// events; Status always has the current truth.
func (k *Keeper) Subscribe() (<-chan Event, func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := k.nextSub
	k.nextSub++
	ch := make(chan Event, 64)
	k.subs[id] = ch
	return ch, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if c, ok := k.subs[id]; ok {
			delete(k.subs, id)
			close(c)
		}
	}
}

func (k *Keeper) emitLocked(e Event) {
	select {
	case k.kick <- struct{}{}:
	default:
	}
	e.Connection = k.conn.Name
	e.Time = k.opt.Clock.Now()
	for _, ch := range k.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (k *Keeper) setStateLocked(s State) {
	if k.state == s {
		return
	}
	from := k.state
	k.state = s
	if s != StateDegraded {
		k.expired = false
	}
	k.log.Info("state", "from", from, "to", s)
	k.emitLocked(Event{Kind: EventState, From: from, To: s, Error: k.errTextIfBad(s), Hint: k.hintIfBad(s)})
}

func (k *Keeper) errTextIfBad(s State) string {
	if s == StateDegraded || s == StateNeedsReauth {
		return k.errText
	}
	return ""
}

func (k *Keeper) hintIfBad(s State) string {
	if s == StateDegraded || s == StateNeedsReauth {
		return k.hint
	}
	return ""
}

// Status returns a snapshot of the connection.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.opt.Clock.Now()
	st := Status{Name: k.conn.Name, Grant: k.conn.Grant, State: k.state}
	if t := k.currentLocked(); t != nil {
		st.Usable = t.ValidFor(now, 0)
		st.AccessObtained = t.ObtainedAt
		st.AccessExpiry = t.Expiry()
		st.LifetimeGuessed = t.LifetimeGuessed
		st.HasRefreshToken = t.RefreshToken != "" && !t.Dead
		st.RefreshTokenSince = t.RefreshTokenSince
		st.LastRefresh = t.LastRefresh
		st.LastRefreshOK = t.LastRefreshOK
	}
	st.NextRefresh = k.nextDueLocked()
	if !k.lastCheck.Time.IsZero() {
		c := k.lastCheck
		st.LastCheck = &c
	}
	if k.state == StateDegraded || k.state == StateNeedsReauth {
		st.LastError, st.Hint = k.errText, k.hint
	} else if t := k.currentLocked(); t != nil && !t.LastRefreshOK && t.LastError != "" {
		st.LastError = t.LastError
	}
	return st
}

// currentLocked is the newest token set, saved or not.
func (k *Keeper) currentLocked() *TokenSet {
	if k.unsaved != nil {
		return k.unsaved
	}
	return k.token
}

// nextDueLocked is when the scheduler should act next; zero for never.
func (k *Keeper) nextDueLocked() time.Time {
	switch k.state {
	case StateDegraded:
		return k.retryAt
	case StateConnected, StateRefreshing:
		t := k.token
		if t == nil {
			if k.conn.Grant == GrantClientCredentials {
				return k.opt.Clock.Now()
			}
			return time.Time{}
		}
		return k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	}
	return time.Time{}
}

// Run keeps the connection fresh until ctx ends: it refreshes at refresh_at
// of each token's lifetime, retries transient failures with backoff and
// jitter, and looks at the wall clock at least every 30 s so that a refresh
// that fell due during a suspend happens right after wake. On return, an
// in-flight refresh has finished and been saved.
func (k *Keeper) Run(ctx context.Context) error {
	k.mu.Lock()
	loaded := k.loaded
	k.mu.Unlock()
	if !loaded {
		if err := k.Load(ctx); err != nil {
			return err
		}
	}
	defer k.waitFlight()
	for {
		now := k.opt.Clock.Now()
		k.mu.Lock()
		due := k.lookLocked(now)
		k.mu.Unlock()
		if !due.IsZero() && !now.Before(due) {
			if err := k.refresh(ctx, false, 0); err != nil && ctx.Err() == nil {
				k.log.Warn("scheduled refresh failed", "err", err)
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		wait := pollInterval
		if !due.IsZero() && due.Sub(now) < wait {
			wait = due.Sub(now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-k.kick:
		case <-k.opt.Clock.After(wait):
		}
	}
}

// lookLocked is the scheduler's look at the connection: it announces an
// access token that expired while degraded and returns when to act next.
//
// A kick sent before or during this look is answered by it, so it is drained
// last: without the drain every refresh this loop makes would wake it once
// more, and drained before noteExpiryLocked the loop's own access_expired
// event would wake it once more. Such a spurious wake-up re-reads the clock
// and re-parks; a test (or anything) that moves the clock in between sees a
// park with no refresh at a due point. Kicks from changes are sent under
// k.mu, so draining here, under it, cannot miss one that comes after the look.
func (k *Keeper) lookLocked(now time.Time) time.Time {
	due := k.nextDueLocked()
	k.noteExpiryLocked(now)
	select {
	case <-k.kick:
	default:
	}
	return due
}

// Wake tells the scheduler that the machine has just resumed from suspend:
// it looks at the wall clock now instead of at its next poll, so a refresh
// that fell due while asleep starts at once.
func (k *Keeper) Wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// noteExpiryLocked sends EventAccessExpired once when the access token dies
// while the connection cannot get a new one.
func (k *Keeper) noteExpiryLocked(now time.Time) {
	if k.state != StateDegraded || k.expired {
		return
	}
	if t := k.currentLocked(); t == nil || !t.ValidFor(now, 0) {
		k.expired = true
		k.emitLocked(Event{Kind: EventAccessExpired, From: k.state, To: k.state, Error: k.errText, Hint: k.hint})
	}
}

func (k *Keeper) waitFlight() {
	k.mu.Lock()
	f := k.flight
	k.mu.Unlock()
	if f != nil {
		<-f.done
	}
}

// Token returns an access token valid for at least minValid. It refreshes
// first when the token is past its refresh point or would not last minValid;
// when that refresh fails transiently but the current token still lasts
// minValid, the current token is returned.
func (k *Keeper) Token(ctx context.Context, minValid time.Duration) (*TokenSet, error) {
	for attempt := 0; ; attempt++ {
		k.mu.Lock()
		if !k.loaded {
			k.mu.Unlock()
			if err := k.Load(ctx); err != nil {
				return nil, err
			}
			continue
		}
		now := k.opt.Clock.Now()
		t, state := k.token, k.state
		dueAt := k.nextDueLocked()
		k.mu.Unlock()

		if t != nil && minValid >= t.Lifetime {
			// No refresh can help; do not spend a refresh token finding out.
			return nil, k.unavailableError(t, minValid)
		}
		validEnough := t.ValidFor(now, minValid)
		due := !dueAt.IsZero() && !now.Before(dueAt)
		if validEnough && (!due || attempt > 0) {
			c := *t
			return &c, nil
		}
		if attempt > 0 {
			return nil, k.unavailableError(t, minValid)
		}
		switch state {
		case StateDegraded:
			// Respect the backoff: a burst of callers must not hammer a
			// provider that is failing.
			if k.retryPending(now) {
				if validEnough {
					c := *t
					return &c, nil
				}
				return nil, k.unavailableError(t, minValid)
			}
		case StateDisconnected:
			if k.conn.Grant != GrantClientCredentials {
				return nil, fmt.Errorf("%s is not signed in: run `tokentray login %s`: %w", k.conn.Name, k.conn.Name, ErrNeedsSignIn)
			}
		case StateNeedsReauth:
			if validEnough {
				c := *t
				return &c, nil
			}
			return nil, k.unavailableError(t, minValid)
		}
		if err := k.refresh(ctx, false, minValid); err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
}

func (k *Keeper) retryPending(now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return now.Before(k.retryAt)
}

// unavailableError explains why no token lasting minValid can be had.
func (k *Keeper) unavailableError(t *TokenSet, minValid time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t != nil && minValid >= t.Lifetime {
		return fmt.Errorf("%s: the provider issues access tokens valid for %s, so --min-valid %s can never be met; ask for less", k.conn.Name, t.Lifetime.Round(time.Second), minValid)
	}
	switch {
	case k.conn.Grant == GrantClientCredentials && (k.state == StateNeedsReauth || k.state == StateDisconnected):
		return fmt.Errorf("%s has no access token: %s: %w", k.conn.Name, orUnknown(k.errText), ErrCredentialsRefused)
	case k.state == StateNeedsReauth || k.state == StateDisconnected:
		return fmt.Errorf("%s needs a new sign-in (%s): run `tokentray login %s`: %w", k.conn.Name, orUnknown(k.errText), k.conn.Name, ErrNeedsSignIn)
	case k.state == StateDegraded:
		if k.lastErr != nil {
			return fmt.Errorf("%s: no valid access token and %s: %w", k.conn.Name, k.lastErr.Error(), ErrUnreachable)
		}
		return fmt.Errorf("%s: no valid access token: %s", k.conn.Name, orUnknown(k.errText))
	}
	return fmt.Errorf("%s: no access token valid for %s could be obtained", k.conn.Name, minValid)
}

func orUnknown(s string) string {
	if s == "" {
		return "reason unknown"
	}
	return s
}

// Refresh refreshes now, unless another process refreshed since this keeper
// last looked (its result is taken instead). Concurrent calls share one
// refresh.
func (k *Keeper) Refresh(ctx context.Context) error {
	k.mu.Lock()
	loaded := k.loaded
	k.mu.Unlock()
	if !loaded {
		if err := k.Load(ctx); err != nil {
			return err
		}
	}
	return k.refresh(ctx, true, 0)
}

// refresh joins the in-flight refresh or starts one. The refresh itself runs
// detached from ctx: a caller that stops waiting must not cancel a request
// that the server may already have processed, since that would lose the
// rotated refresh token.
//
// A refresh that is not forced states its need: a token valid for minValid
// and not yet due. It ends without a call when the current token meets that
// need by the time it holds the lock, so a caller who saw the old token just
// before a shared refresh finished does not start a second one.
func (k *Keeper) refresh(ctx context.Context, force bool, minValid time.Duration) error {
	k.mu.Lock()
	f := k.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		k.flight = f
		if k.state == StateConnected {
			k.setStateLocked(StateRefreshing)
		}
		go func() {
			err := k.doRefresh(force, minValid)
			k.mu.Lock()
			f.err = err
			k.flight = nil
			k.mu.Unlock()
			close(f.done)
		}()
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *Keeper) doRefresh(force bool, minValid time.Duration) error {
	ctx := context.Background()
	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	cancel()
	if err != nil {
		return k.localFailure(fmt.Errorf("wait for another tokentray refreshing %s: %w", k.conn.Name, err), "Another tokentray process holds the refresh lock; if none is running, remove the stale lock file.")
	}
	defer unlock()

	// A newer token set that could not be saved holds the live refresh
	// token: save it before anything else, and never refresh past it.
	k.mu.Lock()
	unsaved := k.unsaved
	k.mu.Unlock()
	if unsaved != nil {
		if err := k.opt.Store.SaveTokens(ctx, k.conn.Name, unsaved); err != nil {
			return k.localFailure(fmt.Errorf("the new tokens are still not saved: %w", err), "tokentray holds the only copy of the new refresh token in memory and keeps retrying; unlock or start the keyring, and do not quit tokentray until this clears.")
		}
		k.mu.Lock()
		k.unsaved = nil
		k.failures = 0
		k.adoptLocked(unsaved)
		k.setStateLocked(StateConnected)
		k.emitLocked(Event{Kind: EventRefreshed})
		k.mu.Unlock()
		k.tokensSaved(unsaved)
		return nil
	}

	// Re-read: another process (a CLI without the tray, or a second
	// keeper) may have refreshed while this one waited for the lock.
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if errors.Is(err, ErrNotStored) {
		stored, err = k.restoreDeleted(ctx, err)
	}
	switch {
	case errors.Is(err, ErrNotStored):
		if k.conn.Grant != GrantClientCredentials {
			k.mu.Lock()
			k.adoptLocked(nil)
			k.mu.Unlock()
			return fmt.Errorf("%s is not signed in (signed out elsewhere?): run `tokentray login %s`: %w", k.conn.Name, k.conn.Name, ErrNeedsSignIn)
		}
	case err != nil:
		// Without reading the keyring we cannot know the live refresh token,
		// and a refresh now could not be saved either: wait for the keyring.
		return k.localFailure(err, "The keyring could not be read; tokentray retries. Unlock or start the keyring.")
	}
	now := k.opt.Clock.Now()
	k.mu.Lock()
	if changedElsewhere(k.token, stored) {
		k.log.Info("adopting tokens refreshed by another process")
		k.adoptLocked(stored)
		if stored != nil && !stored.Dead && stored.ValidFor(now, 0) &&
			(force || now.Before(k.conn.refreshAt(stored.ObtainedAt, stored.Lifetime))) {
			k.failures = 0
			k.setStateLocked(StateConnected)
			k.mu.Unlock()
			return nil
		}
	}
	current := k.token
	if !force && current != nil && !current.Dead && current.ValidFor(now, minValid) &&
		now.Before(k.conn.refreshAt(current.ObtainedAt, current.Lifetime)) {
		if k.state == StateRefreshing {
			k.setStateLocked(StateConnected)
		}
		k.mu.Unlock()
		return nil // already fresh enough: someone refreshed a moment ago
	}
	k.mu.Unlock()

	if current != nil && current.Dead {
		return fmt.Errorf("%s: the refresh token was rejected earlier: %w", k.conn.Name, ErrNeedsSignIn)
	}
	if k.conn.Grant != GrantClientCredentials && (current == nil || current.RefreshToken == "") {
		k.mu.Lock()
		k.errText, k.hint = "there is no refresh token", "Sign in again with `tokentray login "+k.conn.Name+"`."
		if current != nil {
			k.setStateLocked(StateNeedsReauth)
		}
		k.mu.Unlock()
		return fmt.Errorf("%s has no refresh token: run `tokentray login %s`: %w", k.conn.Name, k.conn.Name, ErrNeedsSignIn)
	}

	secret, err := k.clientSecret(ctx)
	if err != nil {
		return k.localFailure(err, "")
	}
	tok, err := k.callTokenEndpoint(ctx, current, secret)
	if err != nil {
		return k.refreshFailed(current, err)
	}
	next := k.tokenSetFrom(tok, current, now)
	return k.saveRefreshed(ctx, next)
}

// restoreDeleted handles a keyring that no longer has the tokens this keeper
// holds. Sign-outs go through the keeper, so an item that vanished was
// deleted by hand or by a keyring tool: the held refresh token is still
// live, and writing it back is what keeps the connection. With nothing live
// held it returns notStored unchanged.
func (k *Keeper) restoreDeleted(ctx context.Context, notStored error) (*TokenSet, error) {
	k.mu.Lock()
	held := k.token
	k.mu.Unlock()
	if held == nil || held.Dead || held.RefreshToken == "" {
		return nil, notStored
	}
	if err := k.opt.Store.SaveTokens(ctx, k.conn.Name, held); err != nil {
		return nil, fmt.Errorf("the keyring item of %s was deleted outside tokentray and writing it back failed: %w", k.conn.Name, err)
	}
	msg := "the keyring item was deleted outside tokentray; the tokens held in memory were written back (to sign out, use `tokentray logout " + k.conn.Name + "`)"
	k.log.Warn(msg)
	k.mu.Lock()
	k.emitLocked(Event{Kind: EventRestored, Error: msg})
	k.mu.Unlock()
	return held, nil
}

// changedElsewhere reports whether the store holds something other than
// what this keeper last saw.
func changedElsewhere(mine, stored *TokenSet) bool {
	if mine == nil || stored == nil {
		return mine != stored
	}
	return mine.RefreshToken != stored.RefreshToken || mine.AccessToken != stored.AccessToken || mine.Dead != stored.Dead
}

func (k *Keeper) clientSecret(ctx context.Context) (Secret, error) {
	s, err := k.opt.Store.ClientSecret(ctx, k.conn.Name)
	if errors.Is(err, ErrNotStored) {
		switch {
		case k.conn.Grant == GrantClientCredentials:
			return "", fmt.Errorf("no client secret is stored for %s: run `tokentray secret %s` and paste the service account's client secret (client credentials need one)", k.conn.Name, k.conn.Name)
		case k.conn.Provider.SecretRequired:
			return "", fmt.Errorf("no client secret is stored for %s: run `tokentray secret %s` and paste the client secret from the provider (%s needs one)", k.conn.Name, k.conn.Name, k.conn.Provider.Name)
		}
		return "", nil
	}
	return s, err
}

func (k *Keeper) callTokenEndpoint(ctx context.Context, current *TokenSet, secret Secret) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, k.opt.RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, k.opt.HTTPClient)
	if k.conn.Grant == GrantClientCredentials {
		cc := clientcredentials.Config{
			ClientID: k.conn.ClientID, ClientSecret: secret.Reveal(), TokenURL: k.conn.Endpoints.TokenURL,
			Scopes: k.conn.Scopes, AuthStyle: k.conn.Provider.AuthStyle,
		}
		return cc.Token(ctx)
	}
	cfg := k.conn.oauthConfig(secret.Reveal())
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: current.RefreshToken.Reveal()}).Token()
}

// tokenSetFrom builds the new token set from a token response received at
// now. A response without a refresh token keeps the old one.
func (k *Keeper) tokenSetFrom(tok *oauth2.Token, prev *TokenSet, now time.Time) *TokenSet {
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	if lifetime <= 0 && !tok.Expiry.IsZero() {
		// Form-encoded responses only set Expiry, from the real clock just now.
		lifetime = time.Until(tok.Expiry).Round(time.Second)
	}
	guessed := lifetime <= 0
	if guessed {
		lifetime = DefaultLifetime
	}
	ts := &TokenSet{
		AccessToken: Secret(tok.AccessToken), TokenType: tok.TokenType,
		RefreshToken: Secret(tok.RefreshToken), ObtainedAt: now, Lifetime: lifetime, LifetimeGuessed: guessed,
		RefreshTokenSince: now, LastRefresh: now, LastRefreshOK: true,
	}
	if s, ok := tok.Extra("scope").(string); ok {
		ts.Scope = s
	}
	if prev != nil {
		if ts.RefreshToken == "" {
			ts.RefreshToken = prev.RefreshToken
		}
		if ts.RefreshToken == prev.RefreshToken && !prev.RefreshTokenSince.IsZero() {
			ts.RefreshTokenSince = prev.RefreshTokenSince
		}
		if ts.Scope == "" {
			ts.Scope = prev.Scope
		}
	}
	if ts.RefreshToken == "" {
		ts.RefreshTokenSince = time.Time{}
	}
	return ts
}

// saveRefreshed writes the new tokens to the store before anyone sees them.
func (k *Keeper) saveRefreshed(ctx context.Context, next *TokenSet) error {
	if err := k.opt.Store.SaveTokens(ctx, k.conn.Name, next); err != nil {
		k.mu.Lock()
		k.unsaved = next
		k.mu.Unlock()
		k.log.Error("new tokens could not be saved; holding them in memory", "err", err)
		return k.localFailure(fmt.Errorf("refreshed, but the new tokens could not be saved: %w", err),
			"tokentray holds the only copy of the new refresh token in memory and keeps retrying; unlock or start the keyring, and do not quit tokentray until this clears.")
	}
	k.mu.Lock()
	k.token = next
	k.failures, k.lastErr, k.errText, k.hint = 0, nil, "", ""
	k.setStateLocked(StateConnected)
	k.emitLocked(Event{Kind: EventRefreshed})
	k.mu.Unlock()
	k.log.Info("refreshed", "tokens", next)
	k.tokensSaved(next)
	return nil
}

// tokensSaved tells OnTokens about tokens that are now in the store.
func (k *Keeper) tokensSaved(t *TokenSet) {
	if k.opt.OnTokens != nil {
		k.opt.OnTokens(t)
	}
}

// refreshFailed records a failed token call: permanent failures need a
// person, transient ones are retried with backoff and jitter.
func (k *Keeper) refreshFailed(current *TokenSet, err error) error {
	te := classify(k.opName(), err, k.conn)
	now := k.opt.Clock.Now()
	k.mu.Lock()
	prevMaybeProcessed := k.lastErr != nil && k.lastErr.MaybeProcessed
	k.lastErr = te
	k.errText, k.hint = te.Error(), te.Hint
	if te.Class == Permanent && te.Code == "invalid_grant" && prevMaybeProcessed {
		k.hint = "The previous refresh reached the provider but its answer was lost, and the provider has since retired that refresh token (it is single-use). " + k.hint
	}
	if te.Class == Permanent {
		k.failures = 0
		k.setStateLocked(StateNeedsReauth)
		k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Hint: k.hint})
		k.mu.Unlock()
		k.log.Warn("refresh rejected", "err", te)
		if current != nil && k.conn.Grant != GrantClientCredentials {
			dead := *current
			dead.Dead, dead.LastError, dead.LastRefresh, dead.LastRefreshOK = true, te.Error(), now, false
			if err := k.opt.Store.SaveTokens(context.Background(), k.conn.Name, &dead); err != nil {
				k.log.Warn("could not record the rejected refresh token", "err", err)
			} else {
				k.mu.Lock()
				k.token = &dead
				k.mu.Unlock()
			}
		}
		if k.conn.Grant == GrantClientCredentials {
			return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
		}
		return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrNeedsSignIn)
	}
	k.failures++
	delay := k.backoffLocked(te.RetryAfter)
	k.retryAt = now.Add(delay)
	k.setStateLocked(StateDegraded)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Hint: k.hint})
	k.mu.Unlock()
	k.log.Warn("refresh failed; retrying", "err", te, "retry_in", delay)
	return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrUnreachable)
}

func (k *Keeper) opName() string {
	if k.conn.Grant == GrantClientCredentials {
		return "client credentials"
	}
	return "refresh"
}

// localFailure records a failure on this machine (keyring, lock, missing
// secret): the connection is degraded and retried, the grant is untouched.
func (k *Keeper) localFailure(err error, hint string) error {
	now := k.opt.Clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failures++
	k.retryAt = now.Add(k.backoffLocked(0))
	k.lastErr = nil
	k.errText, k.hint = err.Error(), hint
	if k.state != StateNeedsReauth && k.state != StateDisconnected {
		k.setStateLocked(StateDegraded)
	}
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Hint: k.hint})
	return err
}

// backoffLocked is exponential from 5 s to 5 min with jitter in [d/2, d),
// and never shorter than a server's Retry-After.
func (k *Keeper) backoffLocked(retryAfter time.Duration) time.Duration {
	d := backoffBase
	for i := 1; i < k.failures && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	d = d/2 + time.Duration(k.opt.Jitter()*float64(d/2))
	return max(d, min(retryAfter, time.Hour))
}
