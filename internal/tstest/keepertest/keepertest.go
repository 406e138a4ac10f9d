// Package keepertest makes a keeper of one connection for tests: "p", of
// the generic preset, against a token endpoint of the test's own, with
// its tokens in the store the test gives.
package keepertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tokentray/tokentray/auth"
)

// Loaded is the keeper of "p" against tokenURL, loaded from store.
func Loaded(t testing.TB, store auth.Store, tokenURL string) *auth.Keeper {
	t.Helper()
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	k := auth.NewKeeper(&auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: tokenURL}}, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k
}

// Counting is a token endpoint that answers every request with new tokens
// (at-N, rt-N) or, when status is not 200, with invalid_client; it counts
// the requests. It stops when the test ends.
func Counting(t testing.TB, status int) (tokenURL string, requests *atomic.Int32) {
	requests = new(atomic.Int32)
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
	return provider.URL + "/token", requests
}
