//go:build unix

package localapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tokennow"
)

// A config table crosses the API and comes back the same, every key.
func TestAConfigTableCrossesTheWireUnchanged(t *testing.T) {
	var c config.Connection
	fill(reflect.ValueOf(&c).Elem(), new(int))
	c.Scopes = config.Scopes{"a", "b"}
	c.AuthParams, c.TokenParams = config.Params{"audience": "x"}, config.Params{"resource": "y"}
	if back := config.FromWire(c.Wire()); !reflect.DeepEqual(back, c) {
		t.Fatalf("the table changed on the wire:\n%+v\n%+v", c, back)
	}
}

// editing serves the API over a running fleet with one connection, alpha,
// and a client-credentials token endpoint for tests.
func editing(t *testing.T) (*apiclient.Client, *fleet.Fleet, *auth.MemoryStore, string) {
	var n atomic.Int32
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("client_secret") != "right" && !strings.Contains(r.Header.Get("Authorization"), "Basic") {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":3600}`, n.Add(1))
	}))
	t.Cleanup(token.Close)
	dir, _ := os.MkdirTemp("", "tt-cfg-")
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "config.toml")
	text := "[[connection]]\nname = \"alpha\"\nprovider = \"generic\"\ngrant = \"client_credentials\"\nclient_id = \"a\"\n" +
		"token_endpoint_auth_method = \"client_secret_post\"\ntoken_url = \"" + token.URL + "/token\"\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store := auth.NewMemoryStore()
	sock := filepath.Join(dir, "api.sock")
	svc := service.New(service.Options{Role: service.Tray, Config: cfg, Store: store, SocketPath: sock,
		NewKeeper: func(conn *config.Resolved) *auth.Keeper {
			return auth.NewKeeper(conn.Auth, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
		}})
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx, nil); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); svc.Wait() })
	return apiclient.New(sock), svc.Fleet(), store, token.URL
}

func TestTheEditorsEndpointsAddTestSaveAndRemove(t *testing.T) {
	api, f, store, tokenURL := editing(t)
	ctx := context.Background()

	cfg, err := api.Config(ctx)
	if err != nil || len(cfg.Connections) != 1 || cfg.Connections[0].Name != "alpha" || cfg.Connections[0].Grant != "client_credentials" {
		t.Fatalf("GET /v1/config: %+v %v", cfg, err)
	}
	if one, err := api.ConfigConnection(ctx, "alpha"); err != nil || one.SecretStored || one.Connection.ClientID != "a" {
		t.Fatalf("GET /v1/config/connections/alpha: %+v %v", one, err)
	}

	beta := apitype.ConnectionConfig{Name: "beta", Provider: "generic", Grant: "client_credentials", ClientID: "b",
		AuthMethod: "client_secret_post", TokenURL: tokenURL + "/token"}
	// A wrong secret: the test says why, in the provider's words.
	if _, err := api.TestSignIn(ctx, apitype.TestSignIn{Connection: beta, Secret: "wrong"}); !errors.Is(err, apiclient.ErrClientRefused) {
		t.Fatalf("a test with a wrong secret: %v", err)
	}
	tested, err := api.TestSignIn(ctx, apitype.TestSignIn{Connection: beta, Secret: "right"})
	if err != nil || tested.TestID == "" {
		t.Fatalf("test sign-in: %+v %v", tested, err)
	}
	saved, err := api.SaveConnection(ctx, "", apitype.SaveConnection{Connection: beta, Secret: "right", TestID: tested.TestID})
	if err != nil || saved.Problem != "" {
		t.Fatalf("save: %+v %v", saved, err)
	}
	if got, err := store.LoadTokens(ctx, "beta"); err != nil || got.AccessToken == "" {
		t.Fatalf("the tested tokens were not kept: %v", err)
	}
	if s, err := store.ClientSecret(ctx, "beta"); err != nil || s != "right" {
		t.Fatalf("the secret was not stored: %v", err)
	}
	if one, err := api.ConfigConnection(ctx, "beta"); err != nil || !one.SecretStored {
		t.Fatalf("beta after the save: %+v %v", one, err)
	}
	if n := len(f.Keepers()); n != 2 {
		t.Fatalf("%d keepers run after adding beta, want 2", n)
	}

	// A bad table is refused with the field named, and nothing is written.
	bad := beta
	bad.Name, bad.TokenURL = "gamma", "ftp://example.com/token"
	var ae *apiclient.APIError
	if _, err := api.SaveConnection(ctx, "", apitype.SaveConnection{Connection: bad}); !errors.As(err, &ae) || ae.Body.Code != apitype.CodeInvalidConfig {
		t.Fatalf("a bad table: %v", err)
	}
	if _, err := api.SaveConnection(ctx, "", apitype.SaveConnection{Connection: beta}); !errors.As(err, &ae) || ae.Body.Code != apitype.CodeInvalidConfig || !strings.Contains(ae.Body.Message, "exists already") {
		t.Fatalf("a second beta: %v", err)
	}
	if _, err := api.RemoveConnection(ctx, "nope", false); !errors.As(err, &ae) || ae.Body.Code != apitype.CodeUnknownConnection || ae.ExitCode() != 2 {
		t.Fatalf("removing a connection that is not there: %v", err)
	}

	if _, err := api.RemoveConnection(ctx, "beta", false); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ClientSecret(ctx, "beta"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatal("the removed connection's secret is still stored")
	}
	if cfg, _ := api.Config(ctx); len(cfg.Connections) != 1 {
		t.Fatalf("after the removal: %+v", cfg.Connections)
	}
}

func TestACheckWithoutACheckURLSaysWhatToSet(t *testing.T) {
	f := serve(t, true)
	var ae *apiclient.APIError
	if _, err := f.client.Check(context.Background(), "p"); !errors.As(err, &ae) || !strings.Contains(ae.Hint(), "check_url") || ae.ExitCode() != 2 {
		t.Fatalf("check without a check URL: %v", err)
	}
}

// tokennow.Fetch, the one-request path of `tokentray token NAME`, gets what
// Token gets, errors included.
func TestTheOneRequestPathAnswersAsTokenDoes(t *testing.T) {
	f := serve(t, true)
	now, refused, err := tokennow.Fetch(f.client.Path, "p")
	if err != nil || refused != nil {
		t.Fatal(err, refused)
	}
	tok, err := f.client.Token(context.Background(), "p", apiclient.DefaultMinValid)
	if err != nil || tok.AccessToken != now.AccessToken || tok.APIBase != now.APIBase || now.ExpiresIn <= 0 {
		t.Fatalf("Token %+v (%v), Fetch %+v", tok, err, now)
	}
	if _, refused, err := tokennow.Fetch(f.client.Path, "nope"); err != nil || refused == nil || refused.ExitCode != 2 || !strings.Contains(refused.Hint, "Configured: p") {
		t.Fatalf("an unknown name: %v %+v", err, refused)
	}
	if _, _, err := tokennow.Fetch(filepath.Join(t.TempDir(), "none.sock"), "p"); !socket.IsNotRunning(err) {
		t.Fatalf("nothing running: %v", err)
	}
}
