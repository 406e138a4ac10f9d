package ui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/demoprovider"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/ui/desktop"
	"github.com/tokentray/tokentray/ui/tray"
)

const sandboxConfig = `# my connections
[[connection]]
name = "procore-sandbox"
provider = "procore"
environment = "sandbox"
client_id = "abc123"
redirect_uri = "http://localhost:8765/callback"
export_file = "~/procore_token.json"
`

// studio is the windows of a running resident process: a real fleet on a
// config file and a memory keyring, its local API on a socket, and the
// windows following that API, without a display.
type studio struct {
	w     *Windows
	api   *apiclient.Client
	fleet *fleet.Fleet
	res   *desktop.Resident
	store *auth.MemoryStore
	path  string
}

func newStudio(t *testing.T, configText string, opener func(string) error) *studio {
	t.Helper()
	dir, err := os.MkdirTemp("", "tt-ui-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &studio{store: auth.NewMemoryStore(), path: filepath.Join(dir, "config.toml")}
	if err := os.WriteFile(s.path, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(s.path)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	svc := service.New(service.Options{Role: service.Tray, Config: cfg, Store: s.store, OpenBrowser: opener, SocketPath: sock,
		NewKeeper: func(conn *config.Resolved) *auth.Keeper {
			return auth.NewKeeper(conn.Auth, auth.KeeperOptions{Store: s.store, Locker: &auth.ProcessLocker{}})
		}})
	s.fleet = svc.Fleet()
	s.res = desktop.New(svc, desktop.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	followed := make(chan struct{}) // closed when the windows stop following the API
	t.Cleanup(func() {
		cancel()
		// What the editor started must end within this test: the test
		// driver draws on the caller's goroutine, and the next test's
		// windows must not be drawn beside it.
		s.w.Wait()
		<-followed
		s.res.Wait()
	})
	a := test.NewTempApp(t)
	a.Settings().SetTheme(test.Theme())
	s.api = apiclient.New(sock)
	s.w = NewWindows(a, s.api, Options{Editable: true, Context: ctx})
	go func() { _ = s.w.Follow(ctx); close(followed) }()
	<-s.w.Ready()
	return s
}

// editor opens the editor for name, as the menu does, and returns it with
// its window at the size of the real one.
func (s *studio) editor(t *testing.T, name string) (*Editor, fyne.Window) {
	t.Helper()
	s.w.EditConnection(name)
	waitFor(t, "the editor to open", func() bool {
		s.w.uiMu.Lock()
		defer s.w.uiMu.Unlock()
		return s.w.editors[name] != nil
	})
	e := s.w.editors[name]
	e.Window.Resize(fyne.NewSize(760, 1000))
	return e, e.Window
}

// running is the keeper of name that the fleet runs, or nil.
func (s *studio) running(name string) *auth.Keeper {
	for _, k := range s.fleet.Keepers() {
		if k.Connection().Name == name {
			return k
		}
	}
	return nil
}

// capture compares the window with its golden image, with no field
// focused: typing in a test leaves a cursor that a person would not see.
func capture(t *testing.T, w fyne.Window, golden string) {
	t.Helper()
	w.Canvas().Unfocus()
	test.AssertImageMatches(t, golden, w.Canvas().Capture())
}

// typeInto replaces an entry's text the way typing does.
func typeInto(e *widget.Entry, text string) {
	e.SetText("")
	test.Type(e, text)
	e.FocusLost() // as when the person moves on to the next field
}

func visibleMessage(e *Editor, key string) string {
	l := e.messages[key]
	if l == nil || !l.Visible() {
		return ""
	}
	return l.Text
}

func TestEditorForANewConnection(t *testing.T) {
	s := newStudio(t, sandboxConfig, nil)
	e, w := s.editor(t, "")
	capture(t, w, "editor_new.png")

	if got := e.registerURI.Text; got != "http://localhost:8766/callback" || !e.register.Visible() {
		t.Fatalf("the redirect to register is %q; want the first port no other connection uses", got)
	}
	if got := e.preview["auth_url"].Text; got != "https://login.procore.com/oauth/authorize" {
		t.Fatalf("authorize preview %q", got)
	}
	for key, l := range e.messages {
		if l.Visible() {
			t.Errorf("an untouched form shows %s: %q", key, l.Text)
		}
	}
	if got := e.urls["api_base"].PlaceHolder; got != "https://api.procore.com" {
		t.Fatalf("an empty override shows %q; want the preset's URL it leaves in use", got)
	}
	e.environment.SetSelected("sandbox")
	for key, want := range map[string]string{"auth_url": "https://login-sandbox.procore.com/oauth/authorize",
		"token_url": "https://login-sandbox.procore.com/oauth/token", "api_base": "https://sandbox.procore.com"} {
		if got := e.preview[key].Text; got != want {
			t.Errorf("after choosing sandbox, %s shows %q, want %q", key, got, want)
		}
	}
}

func TestEditorSaysWhatIsWrongWithEachField(t *testing.T) {
	tests := []struct {
		name  string
		do    func(e *Editor)
		key   string
		wants []string
	}{
		{"a name with a space", func(e *Editor) { typeInto(e.name, "my conn") }, "name", []string{"letters, digits"}},
		{"a name in use", func(e *Editor) { typeInto(e.name, "procore-sandbox") }, "name", []string{"exists already", "another name"}},
		{"a LAN address as redirect", func(e *Editor) { typeInto(e.redirect, "http://192.168.8.124:9876/callback") }, "redirect_uri", []string{"refuse LAN IPs", "http://localhost:PORT/callback"}},
		{"127.0.0.1 at Procore", func(e *Editor) { typeInto(e.redirect, "http://127.0.0.1:8766/callback") }, "redirect_uri", []string{"only for localhost", "http://localhost:8766/callback"}},
		{"a redirect without a port", func(e *Editor) { typeInto(e.redirect, "http://localhost/callback") }, "redirect_uri", []string{"no port"}},
		{"no client id", func(e *Editor) { typeInto(e.clientID, "x"); typeInto(e.clientID, "") }, "client_id", []string{"missing", "developer portal"}},
		{"no secret for Procore", func(e *Editor) { typeInto(e.secret, "x"); typeInto(e.secret, "") }, "client_secret", []string{"Procore needs the client secret", "keyring"}},
		{"an API base of another environment", func(e *Editor) {
			e.environment.SetSelected("sandbox")
			e.override.SetChecked(true)
			typeInto(e.urls["api_base"], "https://api.procore.com")
		}, "api_base", []string{"production environment", `"sandbox"`}},
		{"a plain-http token URL", func(e *Editor) {
			e.provider.SetSelected("generic")
			typeInto(e.urls["token_url"], "http://login.example.com/token")
		}, "token_url", []string{"plain http", "https"}},
		{"a generic provider without an authorize URL", func(e *Editor) {
			e.provider.SetSelected("generic")
			typeInto(e.urls["auth_url"], "x")
			typeInto(e.urls["auth_url"], "")
		}, "auth_url", []string{"missing", "authorization endpoint"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStudio(t, sandboxConfig, nil)
			e, _ := s.editor(t, "")
			tc.do(e)
			got := visibleMessage(e, tc.key)
			for _, w := range tc.wants {
				if !strings.Contains(got, w) {
					t.Errorf("%s says %q; want it to mention %q", tc.key, got, w)
				}
			}
		})
	}
}

func TestEditorRedirectIsCheckedAsTyped(t *testing.T) {
	s := newStudio(t, sandboxConfig, nil)
	e, _ := s.editor(t, "")
	e.redirect.SetText("")
	for i, r := range "http://localhost:9000/cb" {
		test.Type(e.redirect, string(r))
		done := e.redirect.Text
		valid := visibleMessage(e, "redirect_uri") == ""
		if valid != e.register.Visible() {
			t.Fatalf("after %q: valid %v but the register box shown %v", done, valid, e.register.Visible())
		}
		if i < 10 && valid {
			t.Fatalf("%q was accepted", done)
		}
	}
	if e.registerURI.Text != "http://localhost:9000/cb" {
		t.Fatalf("register %q", e.registerURI.Text)
	}
	if !strings.Contains(e.registerFor.Text, "Procore Developer Portal") {
		t.Fatalf("register help %q", e.registerFor.Text)
	}
	copyButton := e.register.Objects[1].(*fyne.Container).Objects[1].(*widget.Button)
	test.Tap(copyButton)
	if got := s.w.app.Clipboard().Content(); got != "http://localhost:9000/cb" {
		t.Fatalf("copied %q", got)
	}
}

func TestEditorSaveWithProblemsShowsThemAllAndWritesNothing(t *testing.T) {
	s := newStudio(t, sandboxConfig, nil)
	e, w := s.editor(t, "")
	typeInto(e.name, "procore-sandbox")
	typeInto(e.redirect, "http://192.168.8.124:9876/callback")
	e.save()
	capture(t, w, "editor_invalid.png")
	for _, key := range []string{"name", "redirect_uri", "client_id", "client_secret"} {
		if visibleMessage(e, key) == "" {
			t.Errorf("after Save, %s shows no problem", key)
		}
	}
	if got := visibleMessage(e, ""); got != "4 fields above need attention." {
		t.Errorf("summary %q", got)
	}
	if b, _ := os.ReadFile(s.path); string(b) != sandboxConfig {
		t.Fatal("a form with problems was written")
	}
}

func TestEditorEditingLoadsTheConnectionAndKeepsWhatItDoesNotShow(t *testing.T) {
	s := newStudio(t, sandboxConfig, nil)
	_ = s.store.SetClientSecret(context.Background(), "procore-sandbox", "stored-secret")
	e, w := s.editor(t, "procore-sandbox")
	capture(t, w, "editor_edit.png")
	if e.name.Text != "procore-sandbox" || e.environment.Selected != "sandbox" || e.clientID.Text != "abc123" || e.secret.Text != "" {
		t.Fatal("the form does not show the connection")
	}
	if !strings.Contains(e.secret.PlaceHolder, "stored in the keyring") {
		t.Fatalf("secret placeholder %q", e.secret.PlaceHolder)
	}
	typeInto(e.name, "sandbox")
	if !strings.Contains(e.nameNote.Text, "moves the tokens") {
		t.Fatalf("rename note %q", e.nameNote.Text)
	}
	typeInto(e.clientID, "new-id")
	if p := e.validate(); len(p) > 0 {
		t.Fatalf("an edit with a stored secret has problems: %v", p)
	}
	e.save()
	waitFor(t, "the renamed connection to run", func() bool { return s.running("sandbox") != nil })
	b, _ := os.ReadFile(s.path)
	for _, want := range []string{"# my connections", `name = "sandbox"`, `client_id = "new-id"`, `export_file = "~/procore_token.json"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the saved file lacks %q:\n%s", want, b)
		}
	}
	if sec, err := s.store.ClientSecret(context.Background(), "sandbox"); err != nil || sec != "stored-secret" {
		t.Fatalf("the secret did not move with the name: %q %v", sec, err)
	}
}

func TestEditorForAServiceAccountOnAGenericProvider(t *testing.T) {
	s := newStudio(t, sandboxConfig, nil)
	e, w := s.editor(t, "")
	e.provider.SetSelected("generic")
	e.grant.SetSelected(grantService)
	typeInto(e.name, "nightly-sync")
	typeInto(e.clientID, "svc-client")
	typeInto(e.secret, "svc-secret")
	typeInto(e.urls["token_url"], "https://auth.example.com/oauth/token")
	typeInto(e.urls["api_base"], "https://api.example.com")
	capture(t, w, "editor_generic_service.png")
	if e.redirectRow[1].Visible() || e.envRow[1].Visible() {
		t.Fatal("a service account on a generic provider has no redirect URI and no environment")
	}
	if p := e.validate(); len(p) > 0 {
		t.Fatalf("problems: %v", p)
	}
	if got := e.raw(); got.Grant != "client_credentials" || got.RedirectURI != "" || got.AuthURL != "" {
		t.Fatalf("raw %+v", got)
	}
}

// approve plays the person at the demo provider's consent page: it allows
// the request, and the provider sends the browser on to the callback.
func approve(t *testing.T) func(string) error {
	return func(u string) error {
		go func() {
			if err := demoprovider.Consent(u, "allow"); err != nil {
				t.Errorf("approve: %v", err)
			}
		}()
		return nil
	}
}

func demoConnection(t *testing.T, srv *demoprovider.Server, base string) (string, config.Connection) {
	port := freePort(t)
	srv.RedirectURI = "http://localhost:" + port + "/callback"
	return port, config.Connection{Name: "demo-api", Provider: "generic", ClientID: demoprovider.ClientID, RedirectURI: srv.RedirectURI,
		AuthURL: base + "/authorize", TokenURL: base + "/token", APIBase: base + "/api", CheckURL: base + "/api/me"}
}

func fill(e *Editor, c config.Connection, secret string) {
	e.provider.SetSelected(c.Provider)
	typeInto(e.name, c.Name)
	typeInto(e.clientID, c.ClientID)
	typeInto(e.secret, secret)
	typeInto(e.redirect, c.RedirectURI)
	typeInto(e.urls["auth_url"], c.AuthURL)
	typeInto(e.urls["token_url"], c.TokenURL)
	typeInto(e.urls["api_base"], c.APIBase)
	typeInto(e.urls["check_url"], c.CheckURL)
}

func (s *studio) testStatus(e *Editor) (string, widget.Importance, bool) {
	s.w.uiMu.Lock()
	defer s.w.uiMu.Unlock()
	return e.testStatus.Text, e.testStatus.Importance, e.testCancel == nil
}

// testedEditor is a new-connection editor filled in for a demo provider
// of its own, with the given client secret, after its Test has finished.
func testedEditor(t *testing.T, secret string) (*studio, *Editor, *demoprovider.Server, string, widget.Importance) {
	t.Helper()
	srv := &demoprovider.Server{AccessTTL: time.Hour}
	base, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_, c := demoConnection(t, srv, base)
	s := newStudio(t, sandboxConfig, approve(t))
	e, _ := s.editor(t, "")
	fill(e, c, secret)
	e.test()
	var status string
	var importance widget.Importance
	waitFor(t, "the test to finish", func() bool {
		var done bool
		status, importance, done = s.testStatus(e)
		return done
	})
	return s, e, srv, status, importance
}

func TestEditorTestSignsInAndSaveKeepsTheSignIn(t *testing.T) {
	s, e, srv, status, _ := testedEditor(t, demoprovider.ClientSecret)
	if !strings.Contains(status, "Signed in as demo-user") || !strings.Contains(status, "HTTP 200") || !strings.Contains(status, "Client authentication: client_secret_basic (the default).") {
		t.Fatalf("test status %q", status)
	}
	if _, err := s.store.LoadTokens(context.Background(), "demo-api"); err == nil {
		t.Fatal("a test wrote tokens to the keyring before Save")
	}
	e.save()
	waitFor(t, "the new connection to run, signed in", func() bool {
		k := s.running("demo-api")
		return k != nil && k.Status().State == auth.StateConnected
	})
	if got := srv.Stats().Exchanges; got != 1 {
		t.Fatalf("%d code exchanges; the saved connection must keep the test's sign-in", got)
	}
	if sec, err := s.store.ClientSecret(context.Background(), "demo-api"); err != nil || sec != demoprovider.ClientSecret {
		t.Fatalf("secret %v", err)
	}
	b, _ := os.ReadFile(s.path)
	if strings.Contains(string(b), demoprovider.ClientSecret) || !strings.Contains(string(b), `name = "demo-api"`) {
		t.Fatalf("the config file:\n%s", b)
	}
	lines := strings.Join(menuLabels(s), "|")
	if !strings.Contains(lines, "demo-api — ") || !strings.Contains(lines, "procore-sandbox — ") {
		t.Fatalf("the menu does not show the new connection: %s", lines)
	}
}

func TestEditorTestWithAWrongSecretSaysWhy(t *testing.T) {
	s, e, _, status, importance := testedEditor(t, "wrong-secret")
	if !strings.Contains(status, "Test failed") || !strings.Contains(status, "invalid_client") || importance != widget.DangerImportance {
		t.Fatalf("test status %q", status)
	}
	e.save()
	waitFor(t, "the save", func() bool { return s.running("demo-api") != nil })
	if _, err := s.store.LoadTokens(context.Background(), "demo-api"); err == nil {
		t.Fatal("a failed test's tokens were kept")
	}
}

// menuLabels is the tray menu's top level for the resident's connections.
func menuLabels(s *studio) []string {
	var out []string
	for _, it := range tray.Menu(s.res.Connections(), time.Now(), tray.Actions{}, tray.MenuOptions{Editable: true}) {
		out = append(out, it.Label)
	}
	return out
}

func TestTheMenuAndTheDashboardFollowTheConfig(t *testing.T) {
	s := newStudio(t, sandboxConfig, nil)
	raw := apitype.ConnectionConfig{Name: "second", Provider: "procore", ClientID: "x", RedirectURI: "http://localhost:8770/callback"}
	if _, err := s.api.SaveConnection(context.Background(), "", apitype.SaveConnection{Connection: raw, Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(menuLabels(s), "|"); !strings.HasPrefix(got, "procore-sandbox — not signed in|second — not signed in|") {
		t.Fatalf("after adding, the menu is %s", got)
	}
	waitFor(t, "the windows to know the new connection", func() bool { return len(s.w.Connections()) == 2 })
	s.w.dash.update(s.w.Connections(), time.Now())
	if len(s.w.dash.cards) != 2 {
		t.Fatalf("the dashboard has %d cards", len(s.w.dash.cards))
	}
	first := s.w.dash.cards[0]
	if _, err := s.api.RemoveConnection(context.Background(), "second", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the windows to let the connection go", func() bool { return len(s.w.Connections()) == 1 })
	s.w.dash.update(s.w.Connections(), time.Now())
	if got := strings.Join(menuLabels(s), "|"); strings.Contains(got, "second") || len(s.w.dash.cards) != 1 || s.w.dash.cards[0] != first {
		t.Fatalf("after removing: menu %s, %d cards", got, len(s.w.dash.cards))
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
