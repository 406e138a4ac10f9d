package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/tstest/keepertest"
)

// keeper is a loaded keeper of "p" whose stored token set is stored,
// against a token endpoint that answers with status and counts requests.
func keeper(t *testing.T, stored *auth.TokenSet, status int) (*auth.Keeper, *atomic.Int32) {
	tokenURL, requests := keepertest.Counting(t, status)
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", stored, auth.AnyGeneration)
	_ = store.SetClientSecret(context.Background(), "p", "new-secret")
	return keepertest.Loaded(t, store, tokenURL), requests
}

// A new client secret is tried at once by a connection whose client was
// refused (its refresh token was kept for this), and by no other: the
// running tokentray's API and a command without one follow this one rule,
// with a running keeper and with one just loaded from the store.
func TestANewClientSecretRetriesOnlyARefusedClient(t *testing.T) {
	fresh := func() *auth.TokenSet {
		return &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt", ObtainedAt: time.Now().Round(0), Lifetime: 90 * time.Minute}
	}
	refused := fresh()
	refused.RefusedClient, refused.LastError = "old-client", "invalid_client"
	failed := fresh()
	failed.LastRefresh, failed.LastError = time.Now().Round(0), "the provider could not be reached"
	for _, tc := range []struct {
		name     string
		stored   *auth.TokenSet
		requests int32
		state    string
	}{
		{"refused", refused, 1, string(auth.StateConnected)},
		{"connected", fresh(), 0, string(auth.StateConnected)},
		{"unreachable before", failed, 0, string(auth.StateDegraded)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, requests := keeper(t, tc.stored, http.StatusOK)
			k.RetryClient(context.Background())
			if got := requests.Load(); got != tc.requests {
				t.Errorf("%d refresh requests; want %d", got, tc.requests)
			}
			if got := string(k.Status().State); got != tc.state {
				t.Errorf("state %s; want %s", got, tc.state)
			}
		})
	}
}

// A running keeper whose client was refused tries the new secret at once,
// and the old one is not sent again.
func TestARunningKeeperRetriesItsRefusedClientWithTheNewSecret(t *testing.T) {
	var requests, refusals atomic.Int32
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if _, secret, _ := r.BasicAuth(); secret != "new-secret" && r.PostFormValue("client_secret") != "new-secret" {
			refusals.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"at-2","token_type":"bearer","expires_in":5400,"refresh_token":"rt-2"}`)
	}))
	t.Cleanup(provider.Close)
	ctx := context.Background()
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(ctx, "p", &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt", ObtainedAt: time.Now().Round(0), Lifetime: 90 * time.Minute}, auth.AnyGeneration)
	_ = store.SetClientSecret(ctx, "p", "old-secret")
	k := keepertest.Loaded(t, store, provider.URL+"/token")
	_ = k.Refresh(ctx)
	if st := k.Status().State; st != auth.StateClientRefused {
		t.Fatalf("state %s after the refusal; want %s", st, auth.StateClientRefused)
	}
	k.RetryClient(ctx) // nothing changed: the refused secret is not sent again
	if got := requests.Load(); got != 1 {
		t.Fatalf("%d requests; the refused secret was sent again", got)
	}
	_ = store.SetClientSecret(ctx, "p", "new-secret")
	k.RetryClient(ctx)
	if st := k.Status().State; st != auth.StateConnected || requests.Load() != 2 || refusals.Load() != 1 {
		t.Fatalf("state %s after %d requests (%d refused); want connected after 2", st, requests.Load(), refusals.Load())
	}
}

// A refresh whose commit loses the compare-and-set (a sign-in stored new
// tokens meanwhile, by a writer that did not hold this Locker) drops its
// own tokens: it never writes over the sign-in's, and the keeper hands
// out the sign-in's token next.
func TestARefreshThatLosesTheCompareAndSetDropsItsTokens(t *testing.T) {
	ctx := context.Background()
	store := auth.NewMemoryStore()
	signIn := &auth.TokenSet{AccessToken: "at-sign-in", TokenType: "bearer", RefreshToken: "rt-sign-in", ObtainedAt: time.Now().Round(0),
		Lifetime: 90 * time.Minute, Generation: auth.NextGeneration(0, time.Now().Add(time.Hour))}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Meanwhile, elsewhere: a person signs in again.
		if err := store.SaveTokens(ctx, "p", signIn, auth.AnyGeneration); err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"at-refreshed","token_type":"bearer","expires_in":5400,"refresh_token":"rt-refreshed"}`)
	}))
	t.Cleanup(provider.Close)
	_ = store.SaveTokens(ctx, "p", &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now().Add(-80 * time.Minute).Round(0), Lifetime: 90 * time.Minute, Generation: 5}, 0)
	k := keepertest.Loaded(t, store, provider.URL+"/token")
	if err := k.Refresh(ctx); !errors.Is(err, auth.ErrGenerationMoved) {
		t.Fatalf("refresh: %v; want the lost compare-and-set", err)
	}
	stored, _ := store.LoadTokens(ctx, "p")
	if stored.AccessToken != "at-sign-in" || stored.Generation != signIn.Generation {
		t.Fatalf("stored %v generation %d; want the sign-in's, untouched", stored, stored.Generation)
	}
	tok, err := k.Token(ctx, 0)
	if err != nil || tok.AccessToken != "at-sign-in" {
		t.Fatalf("token after the lost commit: %v, %v; want the sign-in's", tok, err)
	}
}
