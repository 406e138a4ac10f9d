package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

// tray serves one connection whose provider counts refreshes.
func tray(t *testing.T) (*client.Client, *atomic.Int32) {
	var refreshes atomic.Int32
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := refreshes.Add(1)
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":5400,"refresh_token":"rt-%d"}`, n, n)
	}))
	t.Cleanup(provider.Close)
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-old", TokenType: "bearer", RefreshToken: "rt-old",
		ObtainedAt: time.Now().Round(0), Lifetime: 90 * time.Minute}, auth.AnyGeneration)
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	k := auth.NewKeeper(&auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: provider.URL + "/token"}}, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	dir, _ := os.MkdirTemp("", "tt-client-")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	l, err := localapi.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = (&localapi.Server{Backend: service.OneShot(service.Options{}, k)}).Serve(ctx, l) }()
	return client.NewAt(path), &refreshes
}

func TestA401CausesOneRefreshAndOneRetry(t *testing.T) {
	c, refreshes := tray(t)
	var refused, accepted atomic.Int32
	// The old token is refused once all ten requests came with it: "refused
	// together", however the scheduler starts them (a request that starts
	// after the refresh would get the new token at once).
	allOld := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer at-old" { // revoked at the API
			if refused.Add(1) == 10 {
				close(allOld)
			}
			select {
			case <-allOld:
			case <-time.After(time.Minute):
				t.Error("not all ten requests came with the old token")
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		accepted.Add(1)
		fmt.Fprint(w, "ok")
	}))
	defer api.Close()
	hc := c.HTTPClient("p")
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Post(api.URL, "text/plain", strings.NewReader("payload"))
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("request: %v %v", resp, err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("10 requests refused together caused %d refreshes, want 1", n)
	}
	if refused.Load() != 10 || accepted.Load() != 10 {
		t.Fatalf("refused %d, accepted %d: want each request retried exactly once", refused.Load(), accepted.Load())
	}
}

func TestASecond401IsReturned(t *testing.T) {
	c, refreshes := tray(t)
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized) // refuses every token: not a token problem
	}))
	defer api.Close()
	resp, err := c.HTTPClient("p").Get(api.URL)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v %v", resp, err)
	}
	if calls.Load() != 2 || refreshes.Load() != 1 {
		t.Fatalf("%d calls, %d refreshes; want 2 and 1 (one retry, no loop)", calls.Load(), refreshes.Load())
	}
}

func TestTokenSourceAndNoTray(t *testing.T) {
	c, _ := tray(t)
	tok, err := oauth2.ReuseTokenSource(nil, c.TokenSource(context.Background(), "p")).Token()
	if err != nil || tok.AccessToken != "at-old" || !tok.Valid() {
		t.Fatalf("token %v %v", tok, err)
	}
	_, err = client.NewAt(filepath.Join(tempdir.New(t), "none.sock")).TokenSource(context.Background(), "p").Token()
	if !errors.Is(err, client.ErrNotRunning) {
		t.Fatalf("no tray: %v", err)
	}
}
