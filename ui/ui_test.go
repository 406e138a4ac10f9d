package ui

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

var now = time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)

// scene is a set of keepers in chosen states on a fake clock, without a
// network: tokens are put straight into a memory store.
type scene struct {
	clock   *fakeclock.Clock
	store   *auth.MemoryStore
	keepers []*auth.Keeper
}

func newScene(t *testing.T) *scene {
	return &scene{clock: fakeclock.New(now), store: auth.NewMemoryStore()}
}

func (s *scene) add(t *testing.T, name, env string, tokens *auth.TokenSet) *auth.Keeper {
	procore, _ := auth.LookupPreset("procore")
	ru, _ := auth.ParseRedirectURI("http://localhost:9876/callback")
	ep, _ := procore.Resolve(env, auth.Endpoints{TokenURL: "http://127.0.0.1:1/token"})
	conn := &auth.Connection{Name: name, Provider: procore, Environment: env, ClientID: "id", RedirectURI: ru, RefreshAt: 0.8, Endpoints: ep}
	if tokens != nil {
		_ = s.store.SaveTokens(context.Background(), name, tokens, auth.AnyGeneration)
	}
	k := auth.NewKeeper(conn, auth.KeeperOptions{Store: s.store, Locker: &auth.ProcessLocker{}, Clock: s.clock, Jitter: func() float64 { return 0 }})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.keepers = append(s.keepers, k)
	return k
}

func tokens(obtained time.Time) *auth.TokenSet {
	return &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt", ObtainedAt: obtained,
		Lifetime: 90 * time.Minute, RefreshTokenSince: obtained.Add(-50 * time.Hour), LastRefresh: obtained, LastRefreshOK: true}
}

// TestMain pins the zone: the dashboard shows local clock times, and golden
// images must not depend on where the tests run.
func TestMain(m *testing.M) {
	time.Local = time.UTC
	m.Run()
}

// dashboard is the windows fed with the scene's connections as the event
// stream carries them, and the dashboard drawn in a window.
func (s *scene) dashboard(t *testing.T) (*Windows, fyne.Window) {
	a := test.NewTempApp(t)
	a.Settings().SetTheme(test.Theme())
	ws := NewWindows(a, nil, Options{Clock: s.clock})
	for _, k := range s.keepers {
		c := op.Describe(k)
		ws.apply(apitype.Event{Type: apitype.EventStatus, Connection: c.Name, Status: &c})
	}
	ws.dash.update(ws.Connections(), s.clock.Now())
	w := test.NewTempWindow(t, ws.dash.content)
	w.Resize(fyne.NewSize(820, 420+380*float32(len(s.keepers))))
	return ws, w
}

func TestDashboardConnected(t *testing.T) {
	s := newScene(t)
	s.add(t, "procore-sandbox", "sandbox", tokens(now.Add(-18*time.Minute)))
	tr, w := s.dashboard(t)
	tr.dash.addLog("13:42:00  procore-sandbox  refreshed: new access token and a new (rotated) refresh token, saved first")
	test.AssertImageMatches(t, "dashboard_connected.png", w.Canvas().Capture())
	if got := tr.dash.header.Text; got != "Connected: the access token is valid and kept fresh" {
		t.Fatalf("header %q", got)
	}
}

func TestDashboardNeedsReauthShowsErrorAndHint(t *testing.T) {
	s := newScene(t)
	s.add(t, "procore-sandbox", "sandbox", tokens(now.Add(-10*time.Minute)))
	dead := tokens(now.Add(-100 * time.Minute))
	dead.Dead, dead.LastError = true, "refresh failed: invalid_grant (The provided authorization grant is invalid), HTTP 400"
	dead.LastRefresh, dead.LastRefreshOK = now.Add(-28*time.Minute), false
	s.add(t, "procore", "production", dead)
	tr, w := s.dashboard(t)
	test.AssertImageMatches(t, "dashboard_needs_reauth.png", w.Canvas().Capture())
	if got := tr.dash.header.Text; got != "procore needs attention" {
		t.Fatalf("header %q", got)
	}
	c := tr.dash.cards[1]
	if errText, _ := c.errText.Get(); !strings.Contains(errText, "invalid_grant") || !c.errLabel.Visible() {
		t.Fatalf("error not shown: %q", errText)
	}
	// The card's own Sign in button is beside it: no command line.
	if hint, _ := c.hint.Get(); hint != "What to do: Sign in again." {
		t.Fatalf("hint %q", hint)
	}
	if c.reauth.Text != "Sign in" || c.reauth.Importance != widget.HighImportance || !c.refresh.Disabled() || !c.copyTok.Disabled() {
		t.Fatal("a connection that needs a sign-in must offer Sign in first and disable what cannot work")
	}
}

func TestDashboardNothingSignedIn(t *testing.T) {
	s := newScene(t)
	s.add(t, "procore", "production", nil)
	tr, w := s.dashboard(t)
	test.AssertImageMatches(t, "dashboard_disconnected.png", w.Canvas().Capture())
	if got := tr.dash.header.Text; got != "Nothing is signed in yet" {
		t.Fatalf("header %q", got)
	}
}

func TestDashboardCountdownTicks(t *testing.T) {
	s := newScene(t)
	s.add(t, "p", "sandbox", tokens(now.Add(-18*time.Minute)))
	tr, _ := s.dashboard(t)
	first, _ := tr.dash.cards[0].countdown.Get()
	s.clock.Advance(time.Second)
	tr.dash.update(tr.Connections(), s.clock.Now())
	second, _ := tr.dash.cards[0].countdown.Get()
	if !strings.HasPrefix(first, "1:12:00 left") || !strings.HasPrefix(second, "1:11:59 left") {
		t.Fatalf("countdown %q then %q", first, second)
	}
	if tr.dash.cards[0].bar.used < 0.19 || tr.dash.cards[0].bar.used > 0.21 {
		t.Fatalf("lifetime used %.2f, want 0.20", tr.dash.cards[0].bar.used)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// The event log shows the lines of the stream: a change with something to
// say as well as the app's own lines.
func TestTheEventLogShowsWhatTheStreamSays(t *testing.T) {
	s := newScene(t)
	k := s.add(t, "p", "sandbox", tokens(now))
	ws, _ := s.dashboard(t)
	c := op.Describe(k)
	ws.apply(apitype.Event{Time: now, Type: apitype.EventStatus, Connection: "p", Kind: "refresh_failed", Text: "refresh failed: invalid_grant", Status: &c})
	ws.apply(apitype.Event{Time: now, Type: apitype.EventLog, Text: "tokentray will start at login"})
	lines, _ := ws.dash.log.Get()
	if got := strings.Join(lines, "\n"); got != "14:00:00  tokentray will start at login\n14:00:00  p  refresh failed: invalid_grant" {
		t.Fatalf("the event log:\n%s", got)
	}
}

// A server out of reach is said as such: its connections are neither
// working nor failing as far as the desktop can tell.
func TestTheHeadlineSaysWhichServersCannotBeReached(t *testing.T) {
	up := apitype.Status{Name: "a", State: apitype.StateConnected, Usable: true}
	away := apitype.Status{Name: "b@moby", State: apitype.StateUnreachable, Remote: "moby"}
	away2 := apitype.Status{Name: "c@moby", State: apitype.StateUnreachable, Remote: "moby"}
	red := apitype.Status{Name: "d", State: apitype.StateNeedsReauth}
	for _, tc := range []struct {
		sts  []apitype.Status
		want string
	}{
		{[]apitype.Status{up, away}, "Connected: the access token is valid and kept fresh · moby cannot be reached"},
		{[]apitype.Status{away, away2}, "moby cannot be reached (each keeps refreshing on its own)"},
		{[]apitype.Status{up, red, away}, "d needs attention · moby cannot be reached"},
		{[]apitype.Status{up, up}, "All 2 connections are working"},
	} {
		if got := headline(tc.sts, humanize.Overall(tc.sts)); got != tc.want {
			t.Errorf("headline %q, want %q", got, tc.want)
		}
	}
}

// What the proxy saw is on the card: the API's rate limit beside the
// check, and an API that refuses even a fresh token as the card's error.
func TestDashboardShowsTheRateLimitAndAnAPIThatRefusesTheToken(t *testing.T) {
	s := newScene(t)
	s.add(t, "procore", "production", tokens(now.Add(-10*time.Minute)))
	s.keepers[0].RateLimited(auth.RateLimit{Limit: 3600, Remaining: 412, Reset: now.Add(30 * time.Minute), Time: now})
	s.keepers[0].APIRefused("GET /rest/v1.0/me answered HTTP 401 to a token refreshed just before")
	tr, _ := s.dashboard(t)
	c := tr.dash.cards[0]
	if check, _ := c.check.Get(); !strings.HasSuffix(check, " · 412 of 3600 requests left until 14:30") {
		t.Fatalf("API row %q", check)
	}
	if errText, _ := c.errText.Get(); !strings.HasPrefix(errText, "The API refuses its token: GET /rest/v1.0/me") || !c.errLabel.Visible() {
		t.Fatalf("error %q", errText)
	}
}

// A refresh token that comes to a foreseen end no refresh can move (the
// monthly sandbox's overwrite): the card says when and why, and what to do.
func TestDashboardForeseesTheRefreshTokensEnd(t *testing.T) {
	s := newScene(t)
	monthly := tokens(now.Add(-18 * time.Minute))
	monthly.GrantSince = now.Add(-20 * 24 * time.Hour)
	monthly.EndWarned = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) // told already
	s.add(t, "procore-monthly", "monthly-sandbox", monthly)
	tr, w := s.dashboard(t)
	test.AssertImageMatches(t, "dashboard_refresh_token_ending.png", w.Canvas().Capture())
	c := tr.dash.cards[0]
	if errText, _ := c.errText.Get(); !strings.Contains(errText, "refresh token: about 8 days left") || !strings.Contains(errText, "monthly sandbox") {
		t.Fatalf("the card says %q", errText)
	}
	if hint, _ := c.hint.Get(); !strings.Contains(hint, "after it") {
		t.Fatalf("hint %q", hint)
	}
	if age, _ := c.rtAge.Get(); !strings.Contains(age, "about 8 days left") {
		t.Fatalf("refresh token line %q", age)
	}
}

// A connection that three servers share: the dashboard names them, this
// one marked, and the one refreshing it now.
func TestDashboardSaysWhoSharesAConnection(t *testing.T) {
	s := newScene(t)
	shared := tokens(now.Add(-18 * time.Minute))
	shared.LastRefreshBy = "moby-2"
	s.add(t, "procore", "production", shared)
	a := test.NewTempApp(t)
	a.Settings().SetTheme(test.Theme())
	ws := NewWindows(a, nil, Options{Clock: s.clock})
	c := op.Describe(s.keepers[0])
	c.Shared = &apitype.Shared{Instance: "moby-1", Instances: []string{"moby-1", "moby-2", "moby-3"}, LeaseHolder: "moby-3", IntentBy: "moby-3", IntentAt: now.Add(-time.Second)}
	ws.apply(apitype.Event{Type: apitype.EventStatus, Connection: c.Name, Status: &c})
	ws.dash.update(ws.Connections(), s.clock.Now())
	w := test.NewTempWindow(t, ws.dash.content)
	w.Resize(fyne.NewSize(820, 800))
	test.AssertImageMatches(t, "dashboard_shared.png", w.Canvas().Capture())
	card := ws.dash.cards[0]
	if got, _ := card.shared.Get(); got != "moby-1 (this one), moby-2, moby-3 · being refreshed by moby-3 now" {
		t.Fatalf("shared store row: %q", got)
	}
	if last, _ := card.last.Get(); !strings.Contains(last, "by moby-2 · ok") {
		t.Fatalf("last refresh: %q", last)
	}
	for _, o := range card.sharedRow {
		if !o.Visible() {
			t.Fatal("the shared store row is hidden")
		}
	}

	// On one machine the row is not there.
	c.Shared = nil
	one := NewWindows(a, nil, Options{Clock: s.clock})
	one.apply(apitype.Event{Type: apitype.EventStatus, Connection: c.Name, Status: &c})
	one.dash.update(one.Connections(), s.clock.Now())
	for _, o := range one.dash.cards[0].sharedRow {
		if o.Visible() {
			t.Fatal("the shared store row is shown for a connection of one machine")
		}
	}
}

// sharedAPI answers Connections with who is at a shared store; the rest of
// the API is not used.
type sharedAPI struct {
	Backend
	shared *apitype.Shared
}

func (a sharedAPI) Connections(context.Context) ([]apitype.Connection, error) {
	return []apitype.Connection{{Status: apitype.Status{Name: "procore", Shared: a.shared}}}, nil
}

// The event stream does not carry who is at a shared store: the dashboard
// asks the API, and keeps the answer across the stream's statuses.
func TestTheDashboardAsksWhoIsAtASharedStore(t *testing.T) {
	s := newScene(t)
	s.add(t, "procore", "production", tokens(now.Add(-18*time.Minute)))
	a := test.NewTempApp(t)
	sh := &apitype.Shared{Instance: "moby-1", Instances: []string{"moby-1", "moby-2"}}
	ws := NewWindows(a, sharedAPI{shared: sh}, Options{Clock: s.clock})
	c := op.Describe(s.keepers[0])
	ws.apply(apitype.Event{Type: apitype.EventStatus, Connection: c.Name, Status: &c})
	if !ws.lookShared() {
		t.Fatal("lookShared says no connection is shared")
	}
	ws.apply(apitype.Event{Type: apitype.EventStatus, Connection: c.Name, Status: &c}) // a refresh, say
	if got := ws.Connections()[0].Shared; got != sh {
		t.Fatalf("after a status from the stream: shared %+v; want the API's answer kept", got)
	}
	if (&Windows{api: sharedAPI{}, ctx: context.Background()}).lookShared() {
		t.Fatal("lookShared says a connection of one machine is shared")
	}
}
