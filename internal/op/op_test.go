package op_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/tstest/keepertest"
)

// A refresh asked for a token a client saw refused refreshes only while
// that token is the current one: a burst of 401s costs one refresh.
func TestARefreshForAStaleTokenHappensOnce(t *testing.T) {
	tokenURL, requests := keepertest.Counting(t, http.StatusOK)
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now().Round(0), Lifetime: 90 * time.Minute}, 0)
	k := keepertest.Loaded(t, store, tokenURL)
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
