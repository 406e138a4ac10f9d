package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/notify"
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

func TestRefusedRefreshNotifiesOnceAndTheActionSignsIn(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"revoked"}`))
	}))
	defer provider.Close()

	store := auth.NewMemoryStore()
	_ = store.SetClientSecret(context.Background(), "procore", "s")
	_ = store.SaveTokens(context.Background(), "procore", tokens(time.Now().Add(-80*time.Minute)))
	procore, _ := auth.LookupPreset("procore")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:" + freePort(t) + "/callback")
	conn := &auth.Connection{Name: "procore", Provider: procore, Environment: "sandbox", ClientID: "id", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{AuthURL: provider.URL + "/authorize", TokenURL: provider.URL + "/token"}}
	opened := make(chan string, 1)
	k := auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{},
		OpenBrowser: func(u string) error { opened <- u; return nil }})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{actionable: true}
	a := test.NewTempApp(t)
	tr := NewTray(a, []*auth.Keeper{k}, Options{Notifier: rec, Tick: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr.Start(ctx)

	for range 3 { // the first refusal, then two more attempts
		_ = k.Refresh(ctx)
	}
	waitUntil(t, func() bool { return len(rec.messages()) > 0 })
	time.Sleep(100 * time.Millisecond) // let any extra notification arrive
	msgs := rec.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d notifications, want exactly 1 per transition: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	if m.Title != "procore: sign-in needed" || m.Action != "Re-authenticate" || !m.Urgent || !strings.Contains(m.Body, "invalid_grant") {
		t.Fatalf("notification %+v", m)
	}
	m.OnAction()
	select {
	case u := <-opened:
		if !strings.HasPrefix(u, provider.URL+"/authorize?") {
			t.Fatalf("the action opened %s", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notification's action did not start the browser sign-in")
	}
}

func TestWithoutActionsTheNotificationSaysWhereToClick(t *testing.T) {
	rec := &recorder{actionable: false}
	a := test.NewTempApp(t)
	tr := NewTray(a, nil, Options{Notifier: rec})
	tr.notify(alertNeedsReauth("procore"))
	if msgs := rec.messages(); len(msgs) != 1 || !strings.Contains(msgs[0].Body, "Re-authenticate in the tokentray menu") {
		t.Fatalf("%+v", msgs)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
