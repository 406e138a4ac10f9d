package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// StateClientRefused: the provider refused the client (invalid_client,
	// unauthorized_client, …): its id, secret or authentication method is
	// wrong. The refresh token is kept: it is still good once the client
	// settings are fixed, so no sign-in is needed then.
	StateClientRefused State = "client_refused"
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
	// EventRecorded: a failed refresh's outcome was saved with the tokens
	// (the last refresh, a dead refresh token): the status changed, with
	// nothing new to tell a person.
	EventRecorded EventKind = "recorded"
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
	// Endpoints are the URLs in use, including those discovered from the
	// issuer once its metadata was read.
	Endpoints Endpoints `json:"endpoints"`
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
	// MaxSleep is the longest the scheduler sleeps before it looks at the
	// wall clock again (default 30 s): Go's timers stop while the machine
	// is suspended. A process that calls Wake after every suspend itself,
	// with one watch for all its keepers, sets it long, so that an idle
	// keeper wakes only when something is due.
	MaxSleep time.Duration
	// OnlyHolder says that this keeper hands out every access token of its
	// connection (the tray, the demo: everyone else asks it), so it knows
	// what it promised. Without it (a CLI process), any other process may
	// have handed out the current token until its scheduled refresh.
	OnlyHolder bool
}

// Backoff bounds for transient failures.
const (
	backoffBase = 5 * time.Second
	backoffMax  = 5 * time.Minute
	// pollInterval is the longest the scheduler sleeps before it looks at
	// the wall clock again, unless KeeperOptions.MaxSleep says otherwise:
	// after a suspend, a refresh that fell due while asleep starts within
	// this interval of waking.
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
	// metadata is the issuer's, for a connection that discovers its
	// endpoints, and when it was fetched.
	metadata   *Metadata
	metadataAt time.Time
	// promisedUntil is how long the access token promisedFor was promised
	// to callers (OnlyHolder): no caller's refresh may revoke it before.
	promisedFor   Secret
	promisedUntil time.Time
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
	if opt.MaxSleep <= 0 {
		opt.MaxSleep = pollInterval
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
	if t != nil && t.RefusedClient != "" {
		// Refused earlier: if the client settings changed since (a new
		// secret, client id or method), the kept refresh token gets its try.
		if secret, err := k.opt.Store.ClientSecret(ctx, k.conn.Name); err == nil || errors.Is(err, ErrNotStored) {
			if k.clientFingerprint(secret) != t.RefusedClient {
				fixed := *t
				fixed.RefusedClient = ""
				t = &fixed
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loaded = true
	k.adoptLocked(t)
	return nil
}

// adoptLocked takes t (possibly nil) as the saved token set and derives the
// state, including the outcome of the last refresh as recorded in the store
// by whichever process made it.
func (k *Keeper) adoptLocked(t *TokenSet) {
	k.token = t
	now := k.opt.Clock.Now()
	switch {
	case t == nil:
		k.setStateLocked(StateDisconnected)
	case t.Dead:
		k.errText, k.hint = t.LastError, signInHint(k.conn.Name)
		k.setStateLocked(StateNeedsReauth)
	case t.RefusedClient != "":
		k.errText, k.hint = t.LastError, t.LastHint
		k.setStateLocked(StateClientRefused)
	case t.RefreshToken == "" && k.conn.Grant != GrantClientCredentials && !t.ValidFor(now, 0):
		k.errText, k.hint = "the access token expired and there is no refresh token", signInHint(k.conn.Name)
		k.setStateLocked(StateNeedsReauth)
	case t.failedLast():
		k.errText, k.hint = t.LastError, t.LastHint
		k.retryAt = t.RetryAt
		k.setStateLocked(StateDegraded)
	default:
		if k.state != StateDegraded {
			k.setStateLocked(StateConnected)
		}
	}
}

// signInHint is the advice when a connection needs a new sign-in.
func signInHint(name string) string {
	return "Sign in again with `tokentray login " + name + "`."
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

// bad reports whether s carries an error and advice for a person.
func bad(s State) bool {
	return s == StateDegraded || s == StateNeedsReauth || s == StateClientRefused
}

func (k *Keeper) errTextIfBad(s State) string {
	if bad(s) {
		return k.errText
	}
	return ""
}

func (k *Keeper) hintIfBad(s State) string {
	if bad(s) {
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
	t := k.currentLocked()
	switch {
	case bad(k.state):
		st.LastError, st.Hint = k.errText, k.hint
	case t != nil && !t.LastRefreshOK && t.LastError != "":
		st.LastError = t.LastError
	case t != nil && t.RefreshToken == "" && k.conn.Grant == GrantAuthorizationCode:
		st.Hint = NoRefreshTokenHint
	}
	st.Endpoints = k.endpointsLocked()
	return st
}

// NoRefreshTokenHint explains a sign-in that brought no refresh token.
const NoRefreshTokenHint = "The server issued no refresh token, so a new sign-in will be needed when the access token expires. " +
	"Usually fixed by asking for offline access: add \"offline_access\" to scopes (OpenID Connect servers; some want \"offline\"), " +
	"or the provider's own parameter in auth_params (Google: access_type = \"offline\"; Dropbox: token_access_type = \"offline\"); then sign in again."

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
// jitter, and looks at the wall clock at least every MaxSleep (30 s) so that
// a refresh that fell due during a suspend happens right after wake. On return, an
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
	if k.conn.Discover {
		// Off the loop: an issuer that does not answer must not hold up a
		// refresh that is due.
		go func() {
			if err := k.Resolve(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("issuer metadata not read; the next refresh tries again", "err", err)
			}
		}()
	}
	for {
		now := k.opt.Clock.Now()
		k.mu.Lock()
		due := k.lookLocked(now)
		expires := k.expiryNewsLocked()
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
		wait := k.opt.MaxSleep
		if !due.IsZero() && due.Sub(now) < wait {
			wait = due.Sub(now)
		}
		if !expires.IsZero() && expires.Sub(now) < wait {
			wait = expires.Sub(now)
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
// expiryNewsLocked is when the access token expires while degraded and its
// expiry was not yet announced: news of its own (EventAccessExpired), which
// may come before the next retry. Zero otherwise.
func (k *Keeper) expiryNewsLocked() time.Time {
	if t := k.currentLocked(); k.state == StateDegraded && !k.expired && t != nil {
		return t.Expiry()
	}
	return time.Time{}
}

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

// DefaultMinValid asks Token for the default margin instead of a duration
// the caller chose: the smaller of 2 minutes and the part of the token's
// lifetime after its refresh point. Unlike a fixed 2 minutes it fits every
// lifetime, so a plain `tokentray token NAME` works with 30 s tokens too.
const DefaultMinValid time.Duration = -1

// defaultMargin is the most DefaultMinValid asks for.
const defaultMargin = 2 * time.Minute

// ErrMinValidUnmeetable means the caller asked for a token that stays valid
// longer than the provider's tokens live: a mistake in the request, not a
// failure of the connection.
var ErrMinValidUnmeetable = errors.New("min-valid longer than the token lifetime")

// Handout is an access token handed to a caller.
type Handout struct {
	TokenSet
	// Warning is set when the token is handed out although the refresh it
	// called for did not happen (a failed refresh, a refused client, a
	// sign-in needed): it is still valid, but for less than was asked.
	Warning string
}

// margin is the validity a request for minValid asks of t.
func (k *Keeper) margin(t *TokenSet, minValid time.Duration) time.Duration {
	if minValid != DefaultMinValid {
		return minValid
	}
	if t == nil || t.Lifetime <= 0 {
		return defaultMargin
	}
	f := k.conn.RefreshAt
	if f <= 0 || f >= 1 {
		f = DefaultRefreshAt
	}
	return min(defaultMargin, time.Duration(float64(t.Lifetime)*(1-f)))
}

// meets reports whether t can be handed to a caller who needs it for d: it
// is valid that long, and the scheduled refresh does not fall inside that
// window. Some servers revoke the previous access token at every refresh, so
// a token handed out just before tokentray's own refresh would die early.
// A need as long as the time from a refresh to the next (refresh_at of the
// lifetime) has the scheduled refresh inside its window even with a new
// token: refreshing cannot help it, validity is all it can have.
func (k *Keeper) meets(t *TokenSet, now time.Time, d time.Duration) bool {
	if t == nil || !t.ValidFor(now, d) {
		return false
	}
	refreshAt := k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	return now.Add(d).Before(refreshAt) || d >= refreshAt.Sub(t.ObtainedAt)
}

// Token returns an access token that stays valid for at least minValid, or
// for the default margin with DefaultMinValid. It refreshes first when the
// token would not last that long, or when the scheduled refresh falls
// within that time (the new token is handed out instead). Such a refresh
// waits until the tokens handed out before have had the time they were
// promised: some servers revoke the previous access token at every refresh.
//
// When no such token can be had (an outage, a refused client, a sign-in
// needed):
//   - with DefaultMinValid, the held token is handed out while it is valid
//     at all, with a Warning that says why it was not refreshed;
//   - with an explicit minValid, the held token is handed out only if it
//     lasts minValid; otherwise the error says why (ErrUnreachable,
//     ErrNeedsSignIn, ErrCredentialsRefused).
//
// A minValid no token of this provider can meet is ErrMinValidUnmeetable,
// unless a sign-in is needed anyway, which is said first.
func (k *Keeper) Token(ctx context.Context, minValid time.Duration) (*Handout, error) {
	k.mu.Lock()
	loaded := k.loaded
	k.mu.Unlock()
	if !loaded {
		if err := k.Load(ctx); err != nil {
			return nil, err
		}
	}
	held := false // waited for earlier promises once already
	for attempt := 0; ; attempt++ {
		k.mu.Lock()
		now := k.opt.Clock.Now()
		t, state := k.token, k.state
		waiting := state == StateDegraded && now.Before(k.retryAt)
		k.mu.Unlock()
		need := k.margin(t, minValid)

		if state == StateDisconnected && k.conn.Grant != GrantClientCredentials {
			return nil, fmt.Errorf("%s is not signed in: run `tokentray login %s`: %w", k.conn.Name, k.conn.Name, ErrNeedsSignIn)
		}
		if t != nil && minValid != DefaultMinValid && minValid >= t.Lifetime {
			if state == StateNeedsReauth {
				return nil, k.unavailableError(t, 0)
			}
			// No refresh can help; do not spend a refresh token finding out.
			return nil, fmt.Errorf("%s: the provider issues access tokens valid for %s, so --min-valid %s can never be met; ask for less, or leave --min-valid out for a margin that fits: %w",
				k.conn.Name, t.Lifetime.Round(time.Second), minValid, ErrMinValidUnmeetable)
		}
		if k.meets(t, now, need) {
			k.promise(t, now.Add(need))
			return &Handout{TokenSet: *t}, nil
		}
		// One refresh try, unless the connection cannot refresh now: the
		// grant is dead, or a failing provider asked for time (a burst of
		// callers must not hammer it).
		if attempt == 0 && state != StateNeedsReauth && !waiting {
			// A refresh revokes the current access token at some servers:
			// when the current token would do but for the scheduled refresh
			// inside the window, first let the tokens handed out before run
			// their course. A caller that needs more than the token has left
			// is served at once.
			if end := k.promisesEnd(t, now); !held && t.ValidFor(now, need) && end.After(now) {
				held = true
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-k.opt.Clock.After(end.Sub(now)):
				}
				attempt-- // waiting was not the try
				continue
			}
			if err := k.refresh(ctx, false, need); err != nil && ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		switch {
		case t.ValidFor(now, need):
			// Valid long enough; only the scheduled refresh inside the window
			// could not be avoided (it failed, or the caller asks for more than
			// the time between two refreshes).
			k.promise(t, now.Add(need))
			return &Handout{TokenSet: *t, Warning: k.warning()}, nil
		case minValid == DefaultMinValid && t.ValidFor(now, 0):
			k.promise(t, t.Expiry())
			return &Handout{TokenSet: *t, Warning: k.warning()}, nil
		}
		return nil, k.unavailableError(t, need)
	}
}

// promise records that t was handed out to be valid until end.
func (k *Keeper) promise(t *TokenSet, end time.Time) {
	if !k.opt.OnlyHolder {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.promisedFor != t.AccessToken {
		k.promisedFor, k.promisedUntil = t.AccessToken, time.Time{}
	}
	// The scheduled refresh comes at its time whatever was promised; only a
	// refresh a caller asks for earlier waits for the promises.
	if r := k.conn.refreshAt(t.ObtainedAt, t.Lifetime); end.After(r) {
		end = r
	}
	if end.After(k.promisedUntil) {
		k.promisedUntil = end
	}
}

// promisesEnd is when every promise made for the access token of t ends:
// what this keeper promised, when it hands out every token; otherwise its
// scheduled refresh, up to which any process may have handed it out. Zero
// when t is not valid (nothing to keep).
func (k *Keeper) promisesEnd(t *TokenSet, now time.Time) time.Time {
	if !t.ValidFor(now, 0) {
		return time.Time{}
	}
	if !k.opt.OnlyHolder {
		return k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.promisedFor != t.AccessToken {
		return time.Time{}
	}
	return k.promisedUntil
}

// warning says why the token handed out was not refreshed; empty when the
// connection is fine.
func (k *Keeper) warning() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch k.state {
	case StateDegraded, StateNeedsReauth, StateClientRefused:
		return orUnknown(k.errText)
	}
	return ""
}

// unavailableError explains why no token lasting minValid can be had.
func (k *Keeper) unavailableError(t *TokenSet, minValid time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return withHint(k.unavailableLocked(t, minValid), k.hint)
}

func (k *Keeper) unavailableLocked(t *TokenSet, minValid time.Duration) error {
	switch {
	case k.state == StateClientRefused || (k.conn.Grant == GrantClientCredentials && (k.state == StateNeedsReauth || k.state == StateDisconnected)):
		return fmt.Errorf("%s has no usable access token: %s: %w", k.conn.Name, orUnknown(k.errText), ErrCredentialsRefused)
	case k.state == StateNeedsReauth || k.state == StateDisconnected:
		return fmt.Errorf("%s needs a new sign-in (%s): run `tokentray login %s`: %w", k.conn.Name, orUnknown(k.errText), k.conn.Name, ErrNeedsSignIn)
	case k.state == StateDegraded:
		valid := "no valid access token"
		if t.ValidFor(k.opt.Clock.Now(), 0) {
			valid = fmt.Sprintf("the access token held expires at %s, sooner than the %s asked for,", t.Expiry().Format(time.RFC3339), minValid)
		}
		return fmt.Errorf("%s: %s and the last refresh failed: %s: %w", k.conn.Name, valid, orUnknown(k.errText), ErrUnreachable)
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
	if !force && current != nil && !current.Dead && k.meets(current, now, minValid) {
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
		k.errText, k.hint = "there is no refresh token", signInHint(k.conn.Name)
		if current != nil {
			k.setStateLocked(StateNeedsReauth)
		}
		k.mu.Unlock()
		return fmt.Errorf("%s has no refresh token: run `tokentray login %s`: %w", k.conn.Name, k.conn.Name, ErrNeedsSignIn)
	}

	secret, err := k.clientSecret(ctx)
	if errors.Is(err, ErrCredentialsRefused) {
		return k.clientRefused(err.Error(), "")
	}
	if err != nil {
		return k.localFailure(err, "")
	}
	fingerprint := k.clientFingerprint(secret)
	if current != nil && current.RefusedClient == fingerprint {
		// The provider refused exactly these client settings: sending them
		// again cannot help, and some providers count every refresh call
		// against the refresh token.
		k.mu.Lock()
		k.errText, k.hint = current.LastError, current.LastHint
		k.setStateLocked(StateClientRefused)
		k.mu.Unlock()
		return withHint(fmt.Errorf("%s: %s: %w", k.conn.Name, orUnknown(current.LastError), ErrCredentialsRefused), current.LastHint)
	}
	conn, err := k.resolved(ctx)
	if err != nil {
		return k.discoveryFailed(current, err)
	}
	tok, err := k.callTokenEndpoint(ctx, conn, current, secret)
	if err != nil {
		return k.refreshFailed(ctx, conn, current, fingerprint, err)
	}
	next := k.tokenSetFrom(tok, current, now)
	return k.saveRefreshed(ctx, next)
}

// clientFingerprint names the client settings a request is made with,
// without revealing the secret: a refused client is not tried again with the
// same ones, and is tried as soon as any of them changes.
func (k *Keeper) clientFingerprint(secret Secret) string {
	sum := sha256.Sum256([]byte(k.conn.ClientID + "\x00" + k.conn.AuthMethod + "\x00" + secret.Reveal()))
	return hex.EncodeToString(sum[:12])
}

// resolved is the connection with the endpoints and authentication method
// that its issuer's metadata adds, when it discovers them. Metadata is
// fetched once a day; when the issuer cannot be reached, the last metadata
// fetched is used.
func (k *Keeper) resolved(ctx context.Context) (*Connection, error) {
	if !k.conn.Discover {
		return k.conn, nil
	}
	k.mu.Lock()
	md, at := k.metadata, k.metadataAt
	k.mu.Unlock()
	if md == nil || k.opt.Clock.Now().Sub(at) > discoveryMaxAge {
		fresh, err := Discover(ctx, k.opt.HTTPClient, k.conn.Endpoints.Issuer)
		switch {
		case err == nil:
			md = fresh
			k.mu.Lock()
			k.metadata, k.metadataAt = fresh, k.opt.Clock.Now()
			k.mu.Unlock()
		case md == nil:
			return nil, err
		default:
			k.log.Warn("issuer metadata not refreshed; using the last", "err", err)
		}
	}
	c := *k.conn
	md.apply(&c)
	return &c, nil
}

// Resolve reads the issuer's metadata now, for a connection that discovers
// its endpoints, so that Status shows the URLs in use before the first
// refresh needs them. Connections that set their URLs return at once.
func (k *Keeper) Resolve(ctx context.Context) error {
	_, err := k.resolved(ctx)
	return err
}

// Endpoints are the URLs the connection uses: its own, and those its
// issuer's metadata added once they were fetched.
func (k *Keeper) Endpoints() Endpoints {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.endpointsLocked()
}

func (k *Keeper) endpointsLocked() Endpoints {
	if k.metadata == nil || !k.conn.Discover {
		return k.conn.Endpoints
	}
	c := *k.conn
	k.metadata.apply(&c)
	return c.Endpoints
}

// discoveryFailed records a failure to read the issuer's metadata: the
// provider is unreachable, as for a failed refresh.
func (k *Keeper) discoveryFailed(current *TokenSet, err error) error {
	te := &TokenError{Op: k.opName(), Class: Transient, Err: err,
		Hint: "tokentray retries. Check the issuer URL (" + k.conn.Endpoints.Issuer + ") and the network, or set auth_url and token_url in the config."}
	return k.recordFailure(current, te)
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

// clientSecret reads the stored client secret. A connection that cannot
// authenticate without one gets ErrCredentialsRefused when none is stored,
// before any request is sent (and before a browser opens for a sign-in).
func (k *Keeper) clientSecret(ctx context.Context) (Secret, error) {
	s, err := k.opt.Store.ClientSecret(ctx, k.conn.Name)
	if errors.Is(err, ErrNotStored) {
		if !k.conn.SecretRequired() {
			return "", nil // a public client
		}
		why := "its token_endpoint_auth_method is " + k.conn.AuthMethod
		switch {
		case k.conn.Grant == GrantClientCredentials:
			why = "client credentials need one"
		case k.conn.Provider != nil && k.conn.Provider.SecretRequired:
			why = k.conn.Provider.Name + " needs one"
		}
		return "", credentialsRefused(fmt.Sprintf("no client secret is stored for %s (%s): run `tokentray secret %s` and paste the client secret from the provider",
			k.conn.Name, why, k.conn.Name))
	}
	return s, err
}

func (k *Keeper) callTokenEndpoint(ctx context.Context, conn *Connection, current *TokenSet, secret Secret) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, k.opt.RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, tokenClient(k.opt.HTTPClient, conn))
	cfg := conn.oauthConfig(secret)
	if conn.Grant == GrantClientCredentials {
		cc := clientcredentials.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.Endpoint.TokenURL,
			Scopes: conn.Scopes, AuthStyle: cfg.Endpoint.AuthStyle,
		}
		return cc.Token(ctx)
	}
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

// refreshFailed records a failed token call. invalid_grant kills the
// refresh token; the client's own problems (invalid_client and the other
// permanent errors) keep it for when the client settings are fixed;
// transient failures are retried with backoff and jitter.
func (k *Keeper) refreshFailed(ctx context.Context, conn *Connection, current *TokenSet, fingerprint string, err error) error {
	te := classify(k.opName(), err, conn)
	k.mu.Lock()
	prevMaybeProcessed := k.lastErr != nil && k.lastErr.MaybeProcessed
	k.mu.Unlock()
	switch {
	case te.Class == Permanent && te.Code == "invalid_grant":
		return k.grantRejected(current, te, prevMaybeProcessed)
	case te.Class == Permanent:
		k.mu.Lock()
		k.lastErr = te
		k.mu.Unlock()
		_ = k.clientRefused(te.Error(), te.Hint)
		if current != nil {
			refused := *current
			refused.RefusedClient, refused.LastHint = fingerprint, te.Hint
			k.record(ctx, &refused, te.Error())
		}
		return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
	}
	return k.recordFailure(current, te)
}

// grantRejected: the refresh token is dead. It is recorded as such, so that
// every process and a restart know a sign-in is needed.
func (k *Keeper) grantRejected(current *TokenSet, te *TokenError, prevMaybeProcessed bool) error {
	k.mu.Lock()
	k.lastErr = te
	k.errText, k.hint = te.Error(), te.Hint
	if prevMaybeProcessed {
		k.hint = "The previous refresh reached the provider but its answer was lost, and the provider has since retired that refresh token (it is single-use). " + k.hint
	}
	k.failures = 0
	k.setStateLocked(StateNeedsReauth)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Hint: k.hint})
	k.mu.Unlock()
	k.log.Warn("refresh rejected", "err", te)
	if current != nil && k.conn.Grant != GrantClientCredentials {
		dead := *current
		dead.Dead = true
		k.record(context.Background(), &dead, te.Error())
	}
	if k.conn.Grant == GrantClientCredentials {
		return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
	}
	return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrNeedsSignIn)
}

// clientRefused puts the connection in StateClientRefused: a person must fix
// the client settings or secret; the refresh token is kept.
func (k *Keeper) clientRefused(errText, hint string) error {
	if hint == "" {
		hint = "Set the client secret with `tokentray secret " + k.conn.Name + "`, or fix client_id and token_endpoint_auth_method in the config."
		if k.conn.Grant != GrantClientCredentials {
			hint += " The refresh token is kept: no new sign-in is needed once the client is accepted."
		}
	}
	k.mu.Lock()
	k.failures = 0
	k.errText, k.hint = errText, hint
	k.setStateLocked(StateClientRefused)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: errText, Hint: hint})
	k.mu.Unlock()
	k.log.Warn("client refused", "err", errText)
	return withHint(fmt.Errorf("%s: %s: %w", k.conn.Name, errText, ErrCredentialsRefused), hint)
}

// recordFailure records a transient failure: degraded, retried with backoff
// and jitter, never sooner than the provider's Retry-After.
func (k *Keeper) recordFailure(current *TokenSet, te *TokenError) error {
	now := k.opt.Clock.Now()
	k.mu.Lock()
	k.lastErr = te
	k.errText, k.hint = te.Error(), te.Hint
	k.failures++
	delay := k.backoffLocked(te.RetryAfter)
	k.retryAt = now.Add(delay)
	retryAt := k.retryAt
	k.setStateLocked(StateDegraded)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Hint: k.hint})
	k.mu.Unlock()
	k.log.Warn("refresh failed; retrying", "err", te, "retry_in", delay)
	if current != nil {
		failed := *current
		failed.LastHint, failed.RetryAt = te.Hint, retryAt
		k.record(context.Background(), &failed, te.Error())
	}
	return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrUnreachable)
}

// record saves the outcome of a failed refresh with the tokens it leaves
// unchanged, so that `tokentray status` in any process tells the truth. It
// runs under the refresh lock, on the token set just read from the store.
func (k *Keeper) record(ctx context.Context, t *TokenSet, errText string) {
	t.LastError, t.LastRefresh, t.LastRefreshOK = errText, k.opt.Clock.Now(), false
	if err := k.opt.Store.SaveTokens(context.WithoutCancel(ctx), k.conn.Name, t); err != nil {
		k.log.Warn("could not record the failed refresh", "err", err)
		return
	}
	k.mu.Lock()
	k.token = t
	k.emitLocked(Event{Kind: EventRecorded, From: k.state, To: k.state})
	k.mu.Unlock()
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
