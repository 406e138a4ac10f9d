package localapi_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/demoprovider"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/service"
)

// `tokentray login NAME --paste` against a running tokentray (a server's
// tokentray serve): the server prepares the sign-in and keeps its verifier
// and state, the browser is elsewhere (nothing listens on the redirect
// URI), the landing address is passed on, and the server exchanges the code.
func TestASignInByPastingThroughTheAPI(t *testing.T) {
	srv := &demoprovider.Server{RedirectURI: "http://127.0.0.1:" + strconv.Itoa(unusedPort(t)) + "/callback"}
	base, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI(srv.RedirectURI)
	store := auth.NewMemoryStore()
	_ = store.SetClientSecret(context.Background(), "demo", demoprovider.ClientSecret)
	k := auth.NewKeeper(&auth.Connection{Name: "demo", Provider: generic, Grant: auth.GrantAuthorizationCode, ClientID: demoprovider.ClientID,
		RedirectURI: ru, RefreshAt: 0.8, Endpoints: auth.Endpoints{AuthURL: base + "/authorize", TokenURL: base + "/token"}},
		auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	dir, err := os.MkdirTemp("", "tt-paste-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		_ = (&localapi.Server{Backend: service.OneShot(service.Options{}, k)}).Serve(ctx, l)
		close(served)
	}()
	defer func() { cancel(); <-served }()
	api := apiclient.New(sock)

	var ae *apiclient.APIError
	if _, err := api.PasteLogin(ctx, "demo", "http://127.0.0.1/callback?code=x&state=y"); !errors.As(err, &ae) || !strings.Contains(ae.Hint(), "--paste") {
		t.Fatalf("a paste with no sign-in waiting: %v", err)
	}

	started, err := api.StartPasteLogin(ctx, "demo", time.Minute)
	if err != nil || !strings.Contains(started.AuthorizeURL, "code_challenge=") || started.RedirectURI != srv.RedirectURI {
		t.Fatalf("start: %+v %v", started, err)
	}
	landing, err := demoprovider.Landing(started.AuthorizeURL, "allow")
	if err != nil {
		t.Fatal(err)
	}
	// A forged state ends this sign-in, and nothing is saved.
	forged := strings.Replace(landing, "state=", "state=forged", 1)
	if _, err := api.PasteLogin(ctx, "demo", forged); !errors.As(err, &ae) || !strings.Contains(ae.Error(), "another sign-in") {
		t.Fatalf("a forged state: %v", err)
	}
	if _, err := store.LoadTokens(ctx, "demo"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("tokens were saved after a forged state: %v", err)
	}

	// A person who starts again: the newer sign-in replaces the first,
	// and is one of its own.
	first, err := api.StartPasteLogin(ctx, "demo", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	started, err = api.StartPasteLogin(ctx, "demo", time.Minute)
	if err != nil || started.AuthorizeURL == first.AuthorizeURL {
		t.Fatalf("starting again: %+v %v", started, err)
	}
	if landing, err = demoprovider.Landing(started.AuthorizeURL, "allow"); err != nil {
		t.Fatal(err)
	}
	conn, err := api.PasteLogin(ctx, "demo", landing)
	if err != nil || conn.State != apitype.StateConnected {
		t.Fatalf("the pasted address: %+v %v", conn, err)
	}
	if ts, err := store.LoadTokens(ctx, "demo"); err != nil || ts.RefreshToken == "" {
		t.Fatalf("the tokens the server got: %v", err)
	}

}

func unusedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
