//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/localapi"
)

// `tokentray token NAME` with a tokentray running answers on its one-request
// path, as the long way would: the token on stdout, an unknown name as a
// usage error with the hint. With nothing running it leaves the work to run.
func TestPlainTokenIsAnsweredOnTheOneRequestPath(t *testing.T) {
	dir, err := os.MkdirTemp("", "tt-now-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t.Setenv("XDG_RUNTIME_DIR", dir)
	io := func() (streams, *bytes.Buffer, *bytes.Buffer) {
		var out, errb bytes.Buffer
		return streams{in: strings.NewReader(""), out: &out, err: &errb}, &out, &errb
	}
	s, _, _ := io()
	if _, done := tokenNow([]string{"token", "p"}, s); done {
		t.Fatal("with nothing running, the one-request path answered")
	}

	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-held", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now(), Lifetime: time.Hour})
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	k := auth.NewKeeper(&auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: "http://127.0.0.1:1/token"}}, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	l, err := localapi.Listen(apiclient.DefaultPath())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = (&localapi.Server{Keepers: localapi.Fixed(k)}).Serve(ctx, l); close(served) }()
	defer func() { cancel(); <-served }()

	s, out, errb := io()
	if code, done := tokenNow([]string{"token", "p"}, s); !done || code != 0 || out.String() != "at-held\n" || errb.Len() != 0 {
		t.Fatalf("token p: done %t, exit %d, stdout %q, stderr %q", done, code, out.String(), errb.String())
	}
	s, _, errb = io()
	if code, done := tokenNow([]string{"token", "nope"}, s); !done || code != 2 || !strings.Contains(errb.String(), "hint: Configured: p") {
		t.Fatalf("token nope: done %t, exit %d, stderr %q", done, code, errb.String())
	}
	// Anything but the plain form takes the long way.
	for _, args := range [][]string{{"token", "p", "--json"}, {"token", "--min-valid", "1m", "p"}, {"status"}} {
		s, _, _ := io()
		if _, done := tokenNow(args, s); done {
			t.Fatalf("%v took the one-request path", args)
		}
	}
}
