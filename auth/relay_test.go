package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// The desktop's half of a server's sign-in: only a callback with the
// sign-in's state is handed on, once; the browser's page says how the
// server ended it.
func TestRelayHandsOnTheOneCallbackOfItsSignIn(t *testing.T) {
	port := freePort(t)
	ru, _ := ParseRedirectURI("http://localhost:" + strconv.Itoa(port) + "/callback")
	base := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
	var forwarded []string
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pages := make(chan string, 4)
	r := &Relay{Name: "procore@moby", RedirectURI: ru, AuthorizeURL: "https://provider.example/authorize?state=s1&client_id=c",
		OpenBrowser: func(string) error {
			go func() {
				_, stale := get(base + "?code=x&state=old") // an older tab
				pages <- stale
				_, ok := get(base + "?code=c1&state=s1")
				pages <- ok
			}()
			return nil
		},
		Forward: func(_ context.Context, callback string) error {
			forwarded = append(forwarded, callback)
			return nil
		}}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stale := <-pages; !strings.Contains(stale, "not the current one") {
		t.Fatalf("the stale callback's page: %s", stale)
	}
	if ok := <-pages; !strings.Contains(ok, "Signed in") || !strings.Contains(ok, "procore@moby") {
		t.Fatalf("the page: %s", ok)
	}
	if len(forwarded) != 1 || !strings.Contains(forwarded[0], "code=c1&state=s1") || !strings.HasPrefix(forwarded[0], "http://127.0.0.1:") {
		t.Fatalf("handed on: %v", forwarded)
	}

	// The server refuses: the error on the page and from Run.
	refused := errors.New("the pasted address belongs to another sign-in")
	r.Forward = func(context.Context, string) error { return refused }
	r.OpenBrowser = func(string) error {
		go func() { _, p := get(base + "?code=c2&state=s1"); pages <- p }()
		return nil
	}
	if err := r.Run(context.Background()); !errors.Is(err, refused) {
		t.Fatalf("Run: %v", err)
	}
	if p := <-pages; !strings.Contains(p, "Sign-in failed") || !strings.Contains(p, "another sign-in") {
		t.Fatalf("the failure page: %s", p)
	}

	https, _ := ParseRedirectURI("https://example.com/cb")
	if err := (&Relay{Name: "agent@moby", RedirectURI: https, AuthorizeURL: r.AuthorizeURL}).Run(context.Background()); err == nil || NextStepOf(err) == nil ||
		NextStepOf(err).Kind != nextstep.SignInPasting || NextStepOf(err).Connection != "agent" {
		t.Fatalf("a redirect URI that is not loopback: %v (next %+v)", err, NextStepOf(err))
	}
}

// No callback within the timeout, on the injected clock: the relay ends.
func TestRelayTimesOutOnItsClock(t *testing.T) {
	ru, _ := ParseRedirectURI("http://localhost:" + strconv.Itoa(freePort(t)) + "/callback")
	clock := fakeclock.New(t0)
	r := &Relay{RedirectURI: ru, AuthorizeURL: "https://provider.example/authorize?state=s1", Timeout: time.Minute, Clock: clock,
		OpenBrowser: func(string) error {
			go func() {
				clock.BlockUntil(1, time.Minute)
				clock.Advance(time.Minute)
			}()
			return nil
		},
		Forward: func(context.Context, string) error { t.Error("nothing was to be handed on"); return nil }}
	if err := r.Run(context.Background()); !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("Run: %v, want a timeout", err)
	}
}
