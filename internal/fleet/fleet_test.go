package fleet

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

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/config"
)

const twoConnections = `# mine
[[connection]]
name = "alpha"
provider = "generic"
client_id = "a"
redirect_uri = "http://localhost:9101/callback"
auth_url = "http://127.0.0.1:9/auth"
token_url = "http://127.0.0.1:9/token"

[[connection]]
name = "beta"
provider = "generic"
client_id = "b"
redirect_uri = "http://localhost:9102/callback"
auth_url = "http://127.0.0.1:9/auth"
token_url = "http://127.0.0.1:9/token"
`

type rig struct {
	f       *Fleet
	store   *auth.MemoryStore
	path    string
	mu      sync.Mutex
	changes int
	started []string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{store: auth.NewMemoryStore(), path: filepath.Join(t.TempDir(), "config.toml")}
	if err := os.WriteFile(r.path, []byte(twoConnections), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(r.path)
	if err != nil {
		t.Fatal(err)
	}
	r.f = New(cfg, Options{
		Store: r.store,
		NewKeeper: func(conn *config.Resolved) *auth.Keeper {
			return auth.NewKeeper(conn.Auth, auth.KeeperOptions{Store: r.store, Locker: &auth.ProcessLocker{}})
		},
		Started: func(_ context.Context, k *auth.Keeper, _ *config.Resolved) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.started = append(r.started, k.Connection().Name)
		},
	})
	r.f.OnChange(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.changes++
	})
	ctx, cancel := context.WithCancel(context.Background())
	r.f.Start(ctx)
	t.Cleanup(func() {
		cancel()
		r.f.Wait()
	})
	return r
}

func (r *rig) names() []string {
	var out []string
	for _, k := range r.f.Keepers() {
		out = append(out, k.Connection().Name)
	}
	return out
}

func (r *rig) keeper(name string) *auth.Keeper {
	for _, k := range r.f.Keepers() {
		if k.Connection().Name == name {
			return k
		}
	}
	return nil
}

func (r *rig) file(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitLoaded returns k's status once its scheduler has read the store.
func waitLoaded(k *auth.Keeper) auth.Status {
	for range 200 {
		if st := k.Status(); st.State != auth.StateDisconnected {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	return k.Status()
}

func gamma() config.Connection {
	return config.Connection{Name: "gamma", Provider: "generic", ClientID: "g", RedirectURI: "http://localhost:9103/callback",
		AuthURL: "http://127.0.0.1:9/auth", TokenURL: "http://127.0.0.1:9/token"}
}

func TestAddingAConnectionRunsItAndLeavesTheOthersAlone(t *testing.T) {
	r := newRig(t)
	alpha, beta := r.keeper("alpha"), r.keeper("beta")
	if err := r.f.Save(context.Background(), Save{Connection: gamma(), Secret: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.names(), ","); got != "alpha,beta,gamma" {
		t.Fatalf("running %s", got)
	}
	if r.keeper("alpha") != alpha || r.keeper("beta") != beta {
		t.Fatal("an unchanged connection's keeper was replaced")
	}
	if s, err := r.store.ClientSecret(context.Background(), "gamma"); err != nil || s != "s3cret" {
		t.Fatalf("client secret %q, %v", s, err)
	}
	if f := r.file(t); !strings.Contains(f, `name = "gamma"`) || !strings.HasPrefix(f, "# mine") {
		t.Fatalf("the file:\n%s", f)
	}
	if strings.Contains(r.file(t), "s3cret") {
		t.Fatal("the client secret is in the config file")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changes != 1 || strings.Join(r.started, ",") != "alpha,beta,gamma" {
		t.Fatalf("%d change notices, started %v", r.changes, r.started)
	}
}

func TestEditingAConnectionReplacesOnlyItsKeeper(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	alpha, beta := r.keeper("alpha"), r.keeper("beta")
	raw := table(t, r.f.Config(), "alpha")
	raw.Scopes = []string{"read"}
	if err := r.f.Save(ctx, Save{Replacing: "alpha", Connection: raw}); err != nil {
		t.Fatal(err)
	}
	if r.keeper("alpha") == alpha || r.keeper("beta") != beta {
		t.Fatal("want a new keeper for alpha only")
	}
	if got := r.keeper("alpha").Connection().Scopes; len(got) != 1 || got[0] != "read" {
		t.Fatalf("the new keeper has scopes %v", got)
	}
	if strings.Join(r.names(), ",") != "alpha,beta" {
		t.Fatalf("order changed: %v", r.names())
	}
}

func TestRenamingMovesTokensAndSecret(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	tokens := &auth.TokenSet{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer", ObtainedAt: time.Now(), Lifetime: time.Hour}
	if err := r.store.SaveTokens(ctx, "alpha", tokens, auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if err := r.store.SetClientSecret(ctx, "alpha", "alpha-secret"); err != nil {
		t.Fatal(err)
	}
	raw := table(t, r.f.Config(), "alpha")
	raw.Name = "alpha2"
	if err := r.f.Save(ctx, Save{Replacing: "alpha", Connection: raw}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.names(), ","); got != "alpha2,beta" {
		t.Fatalf("running %s", got)
	}
	if got, err := r.store.LoadTokens(ctx, "alpha2"); err != nil || got.RefreshToken != "rt" {
		t.Fatalf("tokens under the new name: %v", err)
	}
	if _, err := r.store.LoadTokens(ctx, "alpha"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("tokens under the old name: %v", err)
	}
	if s, err := r.store.ClientSecret(ctx, "alpha2"); err != nil || s != "alpha-secret" {
		t.Fatalf("secret under the new name: %q %v", s, err)
	}
	if _, err := r.store.ClientSecret(ctx, "alpha"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("secret under the old name: %v", err)
	}
	if st := waitLoaded(r.keeper("alpha2")); st.State != auth.StateConnected {
		t.Fatalf("the renamed connection is %s; it must keep its sign-in", st.State)
	}
}

// serviceAccount is a client-credentials connection to a token endpoint
// that answers every request with a new token.
func serviceAccount(t *testing.T) config.Connection {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":3600}`, n.Add(1))
	}))
	t.Cleanup(srv.Close)
	return config.Connection{Name: "gamma", Provider: "generic", Grant: "client_credentials", ClientID: "g", TokenURL: srv.URL + "/token"}
}

func TestATestSignInsTokensAreKeptWhenTheSameConnectionIsSaved(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	conn := serviceAccount(t)
	tested, err := r.f.TestSignIn(ctx, Test{Connection: conn, Secret: "s3cret"})
	if err != nil || tested.ID == "" || tested.Check != nil {
		t.Fatalf("test sign-in: %+v %v", tested, err)
	}
	if _, err := r.store.LoadTokens(ctx, "gamma"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatal("a test sign-in stored tokens before any save")
	}
	if err := r.f.Save(ctx, Save{Connection: conn, Secret: "s3cret", TestID: tested.ID}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.store.LoadTokens(ctx, "gamma"); err != nil || got.AccessToken != "at-1" {
		t.Fatalf("the tested tokens were not kept: %v %v", got, err)
	}
	// A test is kept once.
	if err := r.f.Save(ctx, Save{Replacing: "gamma", Connection: conn, TestID: tested.ID}); err == nil || !strings.Contains(err.Error(), "test again") {
		t.Fatalf("a second save with the same test: %v", err)
	}
}

func TestATestSignInsTokensAreNotKeptForAChangedForm(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	conn := serviceAccount(t)
	tested, err := r.f.TestSignIn(ctx, Test{Connection: conn, Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	changed := conn
	changed.Scopes = config.Scopes{"more"}
	if err := r.f.Save(ctx, Save{Connection: changed, Secret: "s3cret", TestID: tested.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.LoadTokens(ctx, "gamma"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatal("tokens of a test with other settings were kept")
	}
}

func TestATestSignInOfAnInvalidFormSaysWhichFields(t *testing.T) {
	r := newRig(t)
	bad := gamma()
	bad.RedirectURI = "http://192.168.1.10:8765/callback"
	_, err := r.f.TestSignIn(context.Background(), Test{Connection: bad})
	var inv config.FieldErrors
	if !errors.As(err, &inv) || !strings.Contains(inv.ByKey()["redirect_uri"], "localhost") {
		t.Fatalf("want the redirect URI named, got %v", err)
	}
}

func TestAnInvalidSaveStopsNothingAndWritesNothing(t *testing.T) {
	r := newRig(t)
	alpha := r.keeper("alpha")
	bad := table(t, r.f.Config(), "alpha")
	bad.RedirectURI = "http://192.168.1.10:8765/callback"
	err := r.f.Save(context.Background(), Save{Replacing: "alpha", Connection: bad, Secret: "x"})
	if err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("want the redirect URI refused, got %v", err)
	}
	dup := gamma()
	dup.Name = "beta"
	if err := r.f.Save(context.Background(), Save{Connection: dup}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a second connection named beta: %v", err)
	}
	if r.keeper("alpha") != alpha || r.file(t) != twoConnections {
		t.Fatal("a refused save changed the running set or the file")
	}
	if _, err := r.store.ClientSecret(context.Background(), "alpha"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatal("a refused save stored a secret")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changes != 0 {
		t.Fatalf("%d change notices", r.changes)
	}
}

func TestRemovingSignsOutAndForgets(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	_ = r.store.SaveTokens(ctx, "beta", &auth.TokenSet{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer", ObtainedAt: time.Now(), Lifetime: time.Hour}, auth.AnyGeneration)
	_ = r.store.SetClientSecret(ctx, "beta", "beta-secret")
	if err := r.f.Remove(ctx, "beta", false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.names(), ","); got != "alpha" {
		t.Fatalf("running %s", got)
	}
	if _, err := r.store.LoadTokens(ctx, "beta"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("tokens left: %v", err)
	}
	if _, err := r.store.ClientSecret(ctx, "beta"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("secret left: %v", err)
	}
	if f := r.file(t); strings.Contains(f, "beta") || !strings.Contains(f, `name = "alpha"`) {
		t.Fatalf("the file:\n%s", f)
	}
}

func TestReloadPicksUpAHandEdit(t *testing.T) {
	r := newRig(t)
	beta := r.keeper("beta")
	edited := strings.Replace(twoConnections, `client_id = "a"`, `client_id = "a2"`, 1) + `
[[connection]]
name = "delta"
provider = "generic"
client_id = "d"
redirect_uri = "http://localhost:9104/callback"
auth_url = "http://127.0.0.1:9/auth"
token_url = "http://127.0.0.1:9/token"
`
	if err := os.WriteFile(r.path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.names(), ","); got != "alpha,beta,delta" {
		t.Fatalf("running %s", got)
	}
	if r.keeper("alpha").Connection().ClientID != "a2" || r.keeper("beta") != beta {
		t.Fatal("want alpha replaced with the new client id and beta untouched")
	}
	if err := os.WriteFile(r.path, []byte("[[connection]]\nname = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.f.Reload(); err == nil {
		t.Fatal("a broken file must be reported")
	}
	if got := strings.Join(r.names(), ","); got != "alpha,beta,delta" {
		t.Fatalf("a broken file changed the running set: %s", got)
	}
}

func TestWatchReloadsAFileEditedOnDisk(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	problems := make(chan error, 10)
	r.f.Watch(ctx, time.Hour, func(err error) { problems <- err }) // an hour: only inotify can see the edits in time

	if err := os.WriteFile(r.path, []byte("[[connection]]\nname = \"half-"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-problems:
		if !strings.Contains(err.Error(), "TOML syntax") {
			t.Fatalf("problem %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a broken file was not reported")
	}
	if len(r.names()) != 2 {
		t.Fatal("a broken file stopped connections")
	}
	// An editor's save: a new file renamed over the old one.
	only := twoConnections[:strings.Index(twoConnections, "\n[[connection]]\nname = \"beta\"")]
	tmp := r.path + ".swp"
	if err := os.WriteFile(tmp, []byte(only), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		t.Fatal(err)
	}
	waitNames(t, r, "alpha")
	// And an edit in place after that: the watch survived the rename.
	if err := os.WriteFile(r.path, []byte(twoConnections), 0o600); err != nil {
		t.Fatal(err)
	}
	waitNames(t, r, "alpha,beta")
}

// waitNames waits up to a minute for the fleet to run names.
func waitNames(t *testing.T, r *rig, names string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); strings.Join(r.names(), ",") != names; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("running %v, want %s", r.names(), names)
		}
	}
}

func TestANewSecretOrTestedTokensRestartAnUnchangedConnection(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	alpha, beta := r.keeper("alpha"), r.keeper("beta")
	raw := table(t, r.f.Config(), "alpha")
	tokens := &auth.TokenSet{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer", ObtainedAt: time.Now(), Lifetime: time.Hour}
	r.f.tests["t1"] = tested{test: Test{Connection: raw}, tokens: tokens, at: time.Now()} // as TestSignIn keeps them
	if err := r.f.Save(ctx, Save{Replacing: "alpha", Connection: raw, TestID: "t1"}); err != nil {
		t.Fatal(err)
	}
	if r.keeper("alpha") == alpha || r.keeper("beta") != beta {
		t.Fatal("want alpha restarted, with the tested sign-in, and beta untouched")
	}
	if st := waitLoaded(r.keeper("alpha")); st.State != auth.StateConnected {
		t.Fatalf("alpha is %s after a save with a tested sign-in", st.State)
	}
	alpha = r.keeper("alpha")
	if err := r.f.Save(ctx, Save{Replacing: "alpha", Connection: raw}); err != nil {
		t.Fatal(err)
	}
	if r.keeper("alpha") != alpha {
		t.Fatal("a save that changes nothing restarted the keeper")
	}
}

func TestAProblemAfterTheWriteSaysWhatHappenedToTheFile(t *testing.T) {
	for _, tc := range []struct {
		err  *SavedWithProblems
		want string
	}{
		{&SavedWithProblems{Name: "a", Done: "is saved in the config file", Err: errors.New("the client secret was not stored")}, "a is saved in the config file, but the client secret was not stored"},
		{&SavedWithProblems{Name: "b", Done: "is removed from the config file", Err: errors.New("its client secret is still in the keyring")}, "b is removed from the config file, but its client secret is still in the keyring"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

// After a refresh the fleet proves the new token against the API's check
// URL, once, without anyone asking.
func TestAfterARefreshTheAPIIsChecked(t *testing.T) {
	var checks atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		fmt.Fprint(w, `{"login":"someone"}`)
	}))
	t.Cleanup(api.Close)
	conn := serviceAccount(t)
	conn.CheckURL = api.URL + "/me"
	path := filepath.Join(t.TempDir(), "config.toml")
	store := auth.NewMemoryStore()
	_ = store.SetClientSecret(context.Background(), "gamma", "s")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(path)
	f := New(cfg, Options{Store: store, NewKeeper: func(c *config.Resolved) *auth.Keeper {
		return auth.NewKeeper(c.Auth, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); f.Wait() }()
	f.Start(ctx)
	if err := f.Save(ctx, Save{Connection: conn}); err != nil {
		t.Fatal(err)
	}
	k := f.Keepers()[0]
	events, stop := k.Subscribe()
	defer stop()
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for e := range events {
		if e.Kind == auth.EventChecked {
			break
		}
	}
	if st := k.Status(); st.LastCheck == nil || !st.LastCheck.OK() || st.LastCheck.Who != "someone" || checks.Load() < 1 {
		t.Fatalf("after the refresh: check %+v, %d calls", st.LastCheck, checks.Load())
	}
}

// table is connection name's table as the config file has it.
func table(t *testing.T, cfg *config.Config, name string) config.Connection {
	t.Helper()
	r, err := cfg.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return r.Table
}

// A [[remote]] added to the file by hand is a change: the tray follows the
// new server without a restart. The same file again is none.
func TestAChangedRemoteIsAChange(t *testing.T) {
	r := newRig(t)
	changes := 0
	r.f.OnChange(func() { changes++ })
	withRemote := twoConnections + "\n[[remote]]\nname = \"moby\"\nssh = \"agent@moby\"\n"
	if err := os.WriteFile(r.path, []byte(withRemote), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.f.Reload(); err != nil {
		t.Fatal(err)
	}
	if changes != 1 || len(r.f.Config().Remotes) != 1 || r.f.Config().Remotes[0].Name != "moby" {
		t.Fatalf("%d changes, remotes %+v", changes, r.f.Config().Remotes)
	}
	if err := r.f.Reload(); err != nil {
		t.Fatal(err)
	}
	if changes != 1 {
		t.Fatalf("reading the same file again made %d changes", changes-1)
	}
}
