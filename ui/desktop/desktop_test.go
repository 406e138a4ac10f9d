package desktop

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/notify"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/windowreq"
)

// recorder is a Notifier that keeps what it was asked to show.
type recorder struct {
	mu         sync.Mutex
	sent       []notify.Message
	actionable bool
}

func (r *recorder) Actionable() bool { return r.actionable }
func (r *recorder) Close() error     { return nil }
func (r *recorder) Send(m notify.Message) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, m)
	return r.actionable, nil
}

func (r *recorder) messages() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Message(nil), r.sent...)
}

// windows records the windows asked for.
type windows struct {
	mu    sync.Mutex
	shown []windowreq.Request
}

func (w *windows) Show(r windowreq.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.shown = append(w.shown, r)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A provider that refuses every refresh token and signs in anyone: the
// connection goes red, and a sign-in makes it green again.
func refusingProvider(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.FormValue("grant_type") == "refresh_token" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"revoked"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"new","token_type":"bearer","expires_in":3600,"refresh_token":"rt2"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// browser plays the person who signs in: it follows the authorize URL to
// the callback with a code and the request's state.
func browser(t *testing.T) func(string) error {
	return func(u string) error {
		go func() {
			parsed, _ := url.Parse(u)
			q := parsed.Query()
			resp, err := http.Get(q.Get("redirect_uri") + "?code=c&state=" + url.QueryEscape(q.Get("state")))
			if err != nil {
				t.Errorf("callback: %v", err)
				return
			}
			resp.Body.Close()
		}()
		return nil
	}
}

func running(t *testing.T, opt Options) (*Resident, *auth.Keeper) {
	return runningWith(t, opt, nil)
}

// runningWith is running with the service's options changed by change
// first (its [[remote]] servers, its clock).
func runningWith(t *testing.T, opt Options, change func(*service.Options)) (*Resident, *auth.Keeper) {
	provider := refusingProvider(t)
	store := auth.NewMemoryStore()
	// Fresh tokens: no refresh is due when the keeper starts, so the only
	// refusals are the ones a test makes (a refusal at start would send a
	// notification of its own, before or after a test's, as the scheduler
	// has it).
	_ = store.SaveTokens(context.Background(), "procore", &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now(), Lifetime: 90 * time.Minute}, auth.AnyGeneration)
	_ = store.SetClientSecret(context.Background(), "procore", "s")
	procore, _ := auth.LookupPreset("procore")
	ru, _ := auth.ParseRedirectURI(fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t)))
	conn := &auth.Connection{Name: "procore", Provider: procore, Environment: "sandbox", ClientID: "id", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{AuthURL: provider.URL + "/authorize", TokenURL: provider.URL + "/token"}}
	k := auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}, OpenBrowser: browser(t)})
	so := service.Options{Role: service.Tray, Config: &config.Config{Path: "(test)", Connections: []*auth.Connection{conn}},
		Store: store, Clock: opt.Clock, NewKeeper: func(*config.Resolved) *auth.Keeper { return k }}
	if change != nil {
		change(&so)
	}
	svc := service.New(so)
	r := New(svc, opt)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() { cancel(); r.Wait() })
	return r, k
}

func TestARefusedRefreshNotifiesOnceAndTheActionSignsIn(t *testing.T) {
	rec := &recorder{actionable: true}
	r, k := running(t, Options{Notifier: rec})
	events, stop := k.Subscribe()
	defer stop()
	for range 3 { // the first refusal, then two more attempts
		_ = k.Refresh(context.Background())
	}
	waitUntil(t, func() bool { return len(rec.messages()) > 0 })
	m := rec.messages()[0]
	if m.Title != "procore: sign-in needed" || m.Action != "Re-authenticate" || !m.Urgent || !strings.Contains(m.Body, "invalid_grant") {
		t.Fatalf("notification %+v", m)
	}
	// The same action from outside the process (a Windows toast's button).
	if m.Link != "tokentray://reauth/procore" {
		t.Fatalf("the action's link: %q", m.Link)
	}
	m.OnAction() // the person clicks Re-authenticate
	for e := range events {
		if e.Kind == auth.EventSignedIn {
			break
		}
	}
	// Alerts follow the keeper's events in order: once "connected again"
	// is in, everything before it is too.
	waitUntil(t, func() bool { return len(rec.messages()) >= 2 })
	msgs := rec.messages()
	if len(msgs) != 2 || msgs[1].Title != "procore is connected again" {
		t.Fatalf("want one notification per transition (sign-in needed, connected again), got %+v", msgs)
	}
	if st := k.Status(); st.State != auth.StateConnected {
		t.Fatalf("after the action the connection is %s", st.State)
	}
	_ = r
}

func TestWithoutActionsTheNotificationSaysWhereToClick(t *testing.T) {
	rec := &recorder{actionable: false}
	r, _ := running(t, Options{Notifier: rec})
	r.Alert(alerts.Alert{Connection: "procore", Kind: alerts.NeedsReauth, Error: "refresh failed: invalid_grant"})
	if msgs := rec.messages(); len(msgs) != 1 || !strings.Contains(msgs[0].Body, "Re-authenticate in the tokentray menu") {
		t.Fatalf("%+v", msgs)
	}
}

// A refused client cannot be fixed by a sign-in: its notification opens
// the editor, in the window process.
func TestARefusedClientsNotificationOpensTheEditor(t *testing.T) {
	rec, ws := &recorder{actionable: true}, &windows{}
	r, _ := running(t, Options{Notifier: rec, Windows: ws})
	r.Alert(alerts.Alert{Connection: "procore", Kind: alerts.ClientRefused, Error: "invalid_client"})
	msgs := rec.messages()
	if len(msgs) != 1 || msgs[0].Action != "Edit…" || msgs[0].Link != "tokentray://edit/procore" {
		t.Fatalf("%+v", msgs)
	}
	msgs[0].OnAction()
	if len(ws.shown) != 1 || ws.shown[0] != (windowreq.Request{Show: windowreq.Edit, Name: "procore"}) {
		t.Fatalf("windows asked for: %+v", ws.shown)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A connection that signs in only with a code (no redirect URI, a device
// endpoint): Re-authenticate shows the code in a notification, whose action
// opens the page; the sign-in ends when the person has entered it.
func TestReauthenticatingAConnectionWithoutARedirectShowsTheCode(t *testing.T) {
	entered := make(chan struct{})
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/device":
			fmt.Fprint(w, `{"device_code":"dc","user_code":"QWER-TYUI","verification_uri":"https://example.com/device","verification_uri_complete":"https://example.com/device?code=QWER-TYUI","expires_in":600,"interval":1}`)
		default:
			select {
			case <-entered:
				fmt.Fprint(w, `{"access_token":"at-2","token_type":"bearer","expires_in":3600,"refresh_token":"rt-2"}`)
			default:
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"authorization_pending"}`)
			}
		}
	}))
	t.Cleanup(provider.Close)
	store := auth.NewMemoryStore()
	generic, _ := auth.LookupPreset("generic")
	conn := &auth.Connection{Name: "gh", Provider: generic, ClientID: "id", RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: provider.URL + "/token", DeviceAuthURL: provider.URL + "/device"}}
	k := auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	svc := service.New(service.Options{Role: service.Tray, Config: &config.Config{Path: "(test)", Connections: []*auth.Connection{conn}},
		Store: store, NewKeeper: func(*config.Resolved) *auth.Keeper { return k }})
	var opened []string
	rec := &recorder{actionable: true}
	r := New(svc, Options{Notifier: rec, OpenBrowser: func(u string) error { opened = append(opened, u); close(entered); return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() { cancel(); r.Wait() })

	r.SignIn("gh")
	waitUntil(t, func() bool { return len(rec.messages()) > 0 })
	m := rec.messages()[0]
	if !strings.Contains(m.Title, "QWER-TYUI") || !strings.Contains(m.Body, "https://example.com/device") || m.Action == "" ||
		m.Link != "https://example.com/device?code=QWER-TYUI" {
		t.Fatalf("notification %+v", m)
	}
	m.OnAction() // the person opens the page and enters the code
	waitUntil(t, func() bool { return k.Status().State == auth.StateConnected })
	if len(opened) != 1 || opened[0] != "https://example.com/device?code=QWER-TYUI" {
		t.Fatalf("opened %v", opened)
	}
}
