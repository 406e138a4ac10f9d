package op_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/op"
)

// keeper is a loaded keeper of "p" whose stored token set is t, against a
// token endpoint that answers with status and counts its requests.
func keeper(t *testing.T, stored *auth.TokenSet, status int) (*auth.Keeper, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status != http.StatusOK {
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":5400,"refresh_token":"rt-%d"}`, n, n)
	}))
	t.Cleanup(provider.Close)
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", stored, auth.AnyGeneration)
	_ = store.SetClientSecret(context.Background(), "p", "new-secret")
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	k := auth.NewKeeper(&auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: provider.URL + "/token"}}, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k, &requests
}

// A refresh asked for a token a client saw refused refreshes only while
// that token is the current one: a burst of 401s costs one refresh.
func TestARefreshForAStaleTokenHappensOnce(t *testing.T) {
	k, requests := keeper(t, &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now().Round(0), Lifetime: 90 * time.Minute}, http.StatusOK)
	stale := apitype.TokenHash("at")
	for range 3 {
		if _, err := op.Refresh(context.Background(), k, stale); err != nil {
			t.Fatal(err)
		}
	}
	if got := requests.Load(); got != 1 {
		t.Fatalf("%d refreshes for one refused token; want 1", got)
	}
	tok, err := op.Token(context.Background(), k, 0, time.Now)
	if err != nil || tok.AccessToken != "at-1" {
		t.Fatalf("token %+v, %v; want the refreshed one", tok, err)
	}
}
