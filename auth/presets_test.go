package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// recorded is one token answer in the shape a provider's documentation
// (or a captured exchange) shows it.
type recorded struct {
	contentType string
	body        string
}

const jsonType, formType = "application/json", "application/x-www-form-urlencoded"

// refreshWith refreshes a connection of preset p once against a token
// endpoint that answers ans, and returns the keeper, the request it got and
// the refresh's error.
func refreshWith(t *testing.T, p *Preset, ans recorded) (*Keeper, *http.Request, error) {
	t.Helper()
	var (
		mu  sync.Mutex
		got *http.Request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		got = r
		mu.Unlock()
		w.Header().Set("Content-Type", ans.contentType)
		_, _ = w.Write([]byte(ans.body))
	}))
	t.Cleanup(srv.Close)
	conn := &Connection{Name: p.Name, Provider: p, Environment: p.DefaultEnvironment, Grant: GrantAuthorizationCode, ClientID: "client-1",
		RefreshAt: 0.8, Endpoints: Endpoints{TokenURL: srv.URL + "/token"}}
	store := newMemStore()
	_ = store.SetClientSecret(context.Background(), conn.Name, "s3cret")
	store.put(conn.Name, &TokenSet{AccessToken: "old-access", RefreshToken: "old-refresh", ObtainedAt: t0.Add(-time.Hour), Lifetime: time.Hour,
		RefreshTokenSince: t0.Add(-time.Hour), GrantSince: t0.Add(-time.Hour)})
	k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, Clock: fakeclock.New(t0)})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := k.Refresh(context.Background())
	mu.Lock()
	defer mu.Unlock()
	return k, got, err
}

// Each provider's token answers, as documented, give the right lifetimes
// and refresh-token ends; its errors the right state.
func TestPresetsReadTheirProvidersTokenAnswers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		preset    *Preset
		answer    recorded
		lifetime  time.Duration // 0: not checked
		guessed   bool
		rtEnd     time.Duration // from now; 0: none said
		keepsRT   bool          // the answer has no refresh token: the old one stays
		state     State
		checkReq  func(r *http.Request) string
		errorCode string
	}{
		{name: "GitHub in JSON, as asked", preset: &github,
			answer:   recorded{jsonType, `{"access_token":"ghu_abc","expires_in":28800,"refresh_token":"ghr_def","refresh_token_expires_in":15897600,"token_type":"bearer","scope":""}`},
			lifetime: 8 * time.Hour, rtEnd: 15897600 * time.Second, state: StateConnected,
			checkReq: func(r *http.Request) string {
				if r.Header.Get("Accept") != "application/json" {
					return "no Accept: application/json"
				}
				if r.PostForm.Get("client_secret") != "s3cret" {
					return "the secret not in the form"
				}
				return ""
			}},
		{name: "GitHub form-encoded", preset: &github,
			answer:   recorded{formType, `access_token=ghu_abc&expires_in=28800&refresh_token=ghr_def&refresh_token_expires_in=15897600&scope=&token_type=bearer`},
			lifetime: 8 * time.Hour, rtEnd: 15897600 * time.Second, state: StateConnected},
		{name: "GitHub's refused refresh token, HTTP 200", preset: &github,
			answer: recorded{formType, `error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com`},
			state:  StateNeedsReauth, errorCode: "bad_refresh_token"},
		{name: "GitHub's refused client, HTTP 200", preset: &github,
			answer: recorded{jsonType, `{"error":"incorrect_client_credentials","error_description":"The client_id and/or client_secret passed are incorrect."}`},
			state:  StateClientRefused, errorCode: "incorrect_client_credentials"},
		{name: "Microsoft v1 expires_in as a string", preset: &entra,
			answer:   recorded{jsonType, `{"token_type":"Bearer","scope":"User.Read","expires_in":"3599","ext_expires_in":"3599","access_token":"eyJ0","refresh_token":"0.AXo"}`},
			lifetime: 3599 * time.Second, state: StateConnected},
		{name: "Salesforce without expires_in", preset: &salesforce,
			answer:   recorded{jsonType, `{"access_token":"00Dxx!AQ","signature":"c2ln","scope":"refresh_token api","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","issued_at":"1764460800000"}`},
			lifetime: 15 * time.Minute, guessed: true, keepsRT: true, state: StateConnected},
		{name: "Intuit's x_refresh_token_expires_in", preset: &intuit,
			answer:   recorded{jsonType, `{"token_type":"bearer","expires_in":3600,"refresh_token":"AB11","x_refresh_token_expires_in":8726400,"access_token":"eyJl"}`},
			lifetime: time.Hour, rtEnd: 8726400 * time.Second, state: StateConnected,
			checkReq: func(r *http.Request) string {
				if id, secret, ok := r.BasicAuth(); !ok || id != "client-1" || secret != "s3cret" {
					return "no HTTP Basic client authentication"
				}
				return ""
			}},
		{name: "Slack with rotation", preset: &slack,
			answer:   recorded{jsonType, `{"ok":true,"app_id":"A1","access_token":"xoxe.xoxb-1","expires_in":43200,"refresh_token":"xoxe-1-abc","token_type":"bot","scope":"chat:write","bot_user_id":"U1","team":{"id":"T1","name":"Acme"}}`},
			lifetime: 12 * time.Hour, state: StateConnected},
		{name: "Slack's refused refresh token, HTTP 200", preset: &slack,
			answer: recorded{jsonType, `{"ok":false,"error":"invalid_refresh_token"}`},
			state:  StateNeedsReauth, errorCode: "invalid_refresh_token"},
		{name: "Slack's refused secret, HTTP 200", preset: &slack,
			answer: recorded{jsonType, `{"ok":false,"error":"bad_client_secret"}`},
			state:  StateClientRefused, errorCode: "bad_client_secret"},
		{name: "Xero", preset: &xero,
			answer:   recorded{jsonType, `{"id_token":"eyJh","access_token":"eyJi","expires_in":1800,"token_type":"Bearer","refresh_token":"f4b1","scope":"openid offline_access accounting.transactions"}`},
			lifetime: 30 * time.Minute, state: StateConnected},
		{name: "Atlassian", preset: &atlassian,
			answer:   recorded{jsonType, `{"access_token":"eyJr","expires_in":3600,"token_type":"Bearer","refresh_token":"eyJs","scope":"read:jira-work offline_access"}`},
			lifetime: time.Hour, state: StateConnected},
		{name: "Dropbox", preset: &dropbox,
			answer:   recorded{jsonType, `{"access_token":"sl.u.AF","token_type":"bearer","expires_in":14400}`},
			lifetime: 4 * time.Hour, keepsRT: true, state: StateConnected},
		{name: "Google", preset: &google,
			answer:   recorded{jsonType, `{"access_token":"ya29.a0","expires_in":3599,"scope":"openid https://www.googleapis.com/auth/userinfo.email","token_type":"Bearer","id_token":"eyJt"}`},
			lifetime: 3599 * time.Second, keepsRT: true, state: StateConnected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, req, err := refreshWith(t, tc.preset, tc.answer)
			st := k.Status()
			if st.State != tc.state {
				t.Fatalf("state %s (%v), want %s", st.State, err, tc.state)
			}
			if tc.errorCode != "" {
				var te *TokenError
				if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.errorCode) {
					t.Fatalf("error %v: want the provider's code %s named", err, tc.errorCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.checkReq != nil {
				if problem := tc.checkReq(req); problem != "" {
					t.Fatalf("the request: %s", problem)
				}
			}
			got := st.AccessExpiry.Sub(st.AccessObtained)
			// A form-encoded answer's lifetime is read off the real clock.
			if d := got - tc.lifetime; d < -2*time.Second || d > 2*time.Second || st.LifetimeGuessed != tc.guessed {
				t.Fatalf("lifetime %v (guessed=%t), want %v (guessed=%t)", got, st.LifetimeGuessed, tc.lifetime, tc.guessed)
			}
			tokens, _ := k.opt.Store.LoadTokens(context.Background(), k.conn.Name)
			if (tokens.RefreshToken == "old-refresh") != tc.keepsRT {
				t.Fatalf("refresh token kept=%t, want %t", tokens.RefreshToken == "old-refresh", tc.keepsRT)
			}
			switch rtEnd := tokens.RefreshTokenExpiry; {
			case tc.rtEnd == 0 && !rtEnd.IsZero():
				t.Fatalf("a refresh-token end %v where the server said none", rtEnd)
			case tc.rtEnd != 0 && !rtEnd.Equal(t0.Add(tc.rtEnd)):
				t.Fatalf("refresh-token end %v, want %v", rtEnd, t0.Add(tc.rtEnd))
			}
		})
	}
}

// The authorization request carries what each provider needs before it
// issues a refresh token; the connection's own settings win.
func TestPresetsAskForARefreshToken(t *testing.T) {
	conn := func(p *Preset, scopes []string, params map[string]string) *Connection {
		return &Connection{Provider: p, Grant: GrantAuthorizationCode, Scopes: scopes, AuthParams: params}
	}
	if got := conn(&google, []string{"openid"}, nil).authParams(); got["access_type"] != "offline" || got["prompt"] != "consent" {
		t.Errorf("Google: %v", got)
	}
	if got := conn(&google, nil, map[string]string{"prompt": "select_account consent"}).authParams(); got["prompt"] != "select_account consent" || got["access_type"] != "offline" {
		t.Errorf("Google with the connection's prompt: %v", got)
	}
	if got := conn(&dropbox, nil, nil).authParams(); got["token_access_type"] != "offline" {
		t.Errorf("Dropbox: %v", got)
	}
	if got := conn(&atlassian, nil, nil).authParams(); got["audience"] != "api.atlassian.com" {
		t.Errorf("Atlassian: %v", got)
	}
	for _, p := range []*Preset{&entra, &xero, &atlassian} {
		if got := conn(p, []string{"User.Read"}, nil).scopes(); !slices.Equal(got, []string{"User.Read", "offline_access"}) {
			t.Errorf("%s scopes %v", p.Name, got)
		}
		if got := conn(p, []string{"offline_access", "a"}, nil).scopes(); !slices.Equal(got, []string{"offline_access", "a"}) {
			t.Errorf("%s adds offline_access twice: %v", p.Name, got)
		}
	}
	cc := &Connection{Provider: &entra, Grant: GrantClientCredentials, Scopes: []string{"https://graph.microsoft.com/.default"}}
	if got := cc.scopes(); len(got) != 1 {
		t.Errorf("a service account asks for a refresh token: %v", got)
	}
	ep, _ := entra.Resolve("usgov", Endpoints{})
	if got := WithTenant(ep, "contoso.onmicrosoft.us"); got.TokenURL != "https://login.microsoftonline.us/contoso.onmicrosoft.us/oauth2/v2.0/token" || NeedsTenant(got) || !NeedsTenant(ep) {
		t.Errorf("Entra US Gov with a tenant: %+v", got)
	}
}

// Every preset states its sources and fills its environments from https
// URLs of its own.
func TestEveryPresetIsComplete(t *testing.T) {
	for _, name := range PresetNames() {
		p, _ := LookupPreset(name)
		if name == "generic" {
			continue
		}
		// The AT Protocol's URLs are found from each account's handle.
		if p.Title == "" || len(p.Sources) == 0 || (p.Environments[p.DefaultEnvironment].TokenURL == "" && name != "atproto") {
			t.Errorf("%s: title %q, %d sources, default environment %q", name, p.Title, len(p.Sources), p.DefaultEnvironment)
		}
		for env, e := range p.Environments {
			for _, u := range []string{e.AuthURL, e.TokenURL, e.RevokeURL, e.APIBase, e.CheckURL} {
				if u != "" && ValidateEndpointURL(strings.ReplaceAll(u, TenantPlaceholder, "t")) != nil {
					t.Errorf("%s/%s: %q", name, env, u)
				}
			}
		}
	}
}

// Procore's monthly sandbox is overwritten on the dates its page projects
// (the first Tuesday to Thursday of each month); New Year's Day is none.
func TestProcoresMonthlySandboxResetFollowsItsProjectedDates(t *testing.T) {
	utc := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
	// Procore's "Projected Monthly Sandbox Refresh Dates", May to December 2026.
	for _, want := range []time.Time{utc(2026, 5, 5, 10), utc(2026, 6, 2, 10), utc(2026, 7, 1, 10), utc(2026, 8, 4, 10),
		utc(2026, 9, 1, 10), utc(2026, 10, 1, 10), utc(2026, 11, 3, 10), utc(2026, 12, 1, 10)} {
		if got := procoreMonthlyReset(time.Date(want.Year(), want.Month(), 1, 0, 0, 0, 0, time.UTC).Add(-time.Hour)); !got.Equal(want) {
			t.Errorf("%s: %v, want %v (Procore's projection)", want.Month(), got, want)
		}
	}
	for _, tc := range []struct{ after, want time.Time }{
		{utc(2026, 12, 1, 9), utc(2026, 12, 1, 10)}, // the same morning, before it
		{utc(2026, 12, 1, 12), utc(2027, 1, 5, 10)}, // after it: January's, past Friday the 1st and Monday the 4th
		{utc(2029, 12, 15, 0), utc(2030, 1, 2, 10)}, // 1 Jan 2030 is a Tuesday, and a holiday
		{utc(2027, 2, 10, 0), utc(2027, 3, 2, 10)},  // 1 Mar 2027 is a Monday
	} {
		if got := procoreMonthlyReset(tc.after); !got.Equal(tc.want) {
			t.Errorf("after %v: %v, want %v", tc.after, got, tc.want)
		}
	}
}

// A monthly-sandbox grant refused after the sandbox was overwritten says
// so, and the forecast saw it coming.
func TestAMonthlySandboxGrantEndsWithTheMonth(t *testing.T) {
	r := newRig(t)
	r.conn.Environment = "monthly-sandbox"
	r.clock.Set(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	r.signedIn()
	if st := r.k.Status(); !st.RefreshTokenEnd.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) || st.RefreshTokenRenewable {
		t.Fatalf("forecast %v renewable=%t", st.RefreshTokenEnd, st.RefreshTokenRenewable)
	}
	r.clock.Set(time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC))
	r.srv.then(replyInvalidGrant)
	_ = r.k.Refresh(context.Background())
	if st := r.k.Status(); st.State != StateNeedsReauth || st.Next == nil || st.Next.Kind != nextstep.SignInAgain || !strings.Contains(st.Next.Cause, "overwritten from production") {
		t.Fatalf("state %s, next %+v", st.State, st.Next)
	}
}

// The README's provider table names every preset, its environments and
// its sources: it cannot drift from the code.
func TestTheREADMEsProviderTableMatchesThePresets(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			if i := strings.Index(name, "`"); i > 0 {
				rows[name[:i]] += line
			}
		}
	}
	for _, name := range PresetNames() {
		p, _ := LookupPreset(name)
		row, ok := rows[name]
		if !ok {
			t.Errorf("no row for %s", name)
			continue
		}
		for _, env := range p.EnvironmentNames() {
			if env != "" && !strings.Contains(row, "`"+env+"`") {
				t.Errorf("%s: the row does not name environment %s", name, env)
			}
		}
		for _, src := range p.Sources {
			if !strings.Contains(row, "("+src+")") {
				t.Errorf("%s: the row does not link %s", name, src)
			}
		}
	}
}
