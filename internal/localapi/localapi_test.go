//go:build unix

package localapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/events"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/service"
)

// fixture is a served API over a keeper whose provider counts refreshes.
type fixture struct {
	server    *localapi.Server
	service   *service.Service
	path      string
	client    *apiclient.Client
	refreshes atomic.Int32
	store     *auth.MemoryStore
	keeper    *auth.Keeper
	hub       *events.Hub
	stop      func() // stops the server and waits for it
}

// shell is the tray's side of a fixture: it hears nothing.
type shell struct{}

func (shell) Problem(string)                                {}
func (shell) ShowDashboard()                                {}
func (shell) ShowEditor(string)                             {}
func (shell) Resumed()                                      {}
func (shell) Alert(alerts.Alert)                            {}
func (shell) ShowCode(string, string, apitype.DeviceSignIn) {}
func (shell) Unreachable(string, time.Time, string)         {}
func (shell) Reachable(string)                              {}

func serve(t testing.TB, signedIn bool, with ...func(*shell)) *fixture {
	return serveConn(t, signedIn, nil, with...)
}

// serveConn is serve with the connection changed by conn first. It serves
// the one-shot service of the connection's keeper (the running tokentray's
// operations over a fixed keeper) with short timeouts.
func serveConn(t testing.TB, signedIn bool, change func(*auth.Connection), with ...func(*shell)) *fixture {
	f := &fixture{store: auth.NewMemoryStore()}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.refreshes.Add(1)
		time.Sleep(50 * time.Millisecond) // a refresh in flight while others ask
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":5400,"refresh_token":"rt-%d"}`, n, n)
	}))
	t.Cleanup(provider.Close)
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	conn := &auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: provider.URL + "/token", APIBase: "https://api.example.com"}}
	if change != nil {
		change(conn)
	}
	if signedIn {
		_ = f.store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-old", TokenType: "bearer",
			RefreshToken: "rt-old", ObtainedAt: time.Now().Add(-80 * time.Minute).Round(0), Lifetime: 90 * time.Minute}, auth.AnyGeneration)
	}
	k := auth.NewKeeper(conn, auth.KeeperOptions{Store: f.store, Locker: &auth.ProcessLocker{}})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tt-api-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f.path = filepath.Join(dir, "tokentray", "api.sock")
	l, err := localapi.Listen(f.path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := &shell{}
	for _, w := range with {
		w(sh)
	}
	f.service = service.OneShot(service.Options{Role: service.Tray, Store: f.store}, k)
	if err := f.service.Start(ctx, sh); err != nil {
		t.Fatal(err)
	}
	f.keeper, f.hub = k, f.service.Hub()
	s := &localapi.Server{Backend: f.service, HeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond}
	f.server = s
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l); close(done) }()
	f.stop = func() { cancel(); <-done }
	t.Cleanup(f.stop)
	t.Cleanup(f.service.Wait)
	f.client = apiclient.New(f.path)
	return f
}

func TestSocketAndDirectoryArePrivate(t *testing.T) {
	f := serve(t, true)
	for path, want := range map[string]os.FileMode{f.path: 0o600, filepath.Dir(f.path): 0o700} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", path, got, want)
		}
	}
	if _, err := localapi.Listen(f.path); err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Fatalf("a second Listen on a live socket: %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	dir, _ := os.MkdirTemp("", "tt-stale-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "api.sock")
	l, _ := net.Listen("unix", path)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers: a crashed tray
	l2, err := localapi.Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestTokenAndErrorsCarryExitCodes(t *testing.T) {
	f := serve(t, true)
	ctx := context.Background()
	// 9 min reach past the held token's expiry less the margin (10 min
	// left, less 3 × the 30 s request timeout): it cannot be promised.
	tok, err := f.client.Token(ctx, "p", 9*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at-1" || tok.APIBase != "https://api.example.com" || tok.ExpiresIn < 5390 {
		t.Fatalf("token %+v: past its refresh point, the tray must refresh first", tok)
	}
	var ae *apiclient.APIError
	if _, err := f.client.Token(ctx, "nope", 0); !errors.As(err, &ae) || ae.ExitCode() != 2 || !strings.Contains(ae.Hint(), "Configured: p") {
		t.Fatalf("unknown connection: %v", err)
	}
	if _, err := f.client.Token(ctx, "p", 3*time.Hour); err == nil {
		t.Fatal("an impossible min_valid was accepted")
	}
	g := serve(t, false)
	if _, err := g.client.Token(ctx, "p", 0); !errors.Is(err, apiclient.ErrNeedsSignIn) || !errors.As(err, &ae) || ae.ExitCode() != 3 {
		t.Fatalf("not signed in: %v", err)
	}
	if _, err := apiclient.New(filepath.Join(t.TempDir(), "none.sock")).Connections(ctx); !errors.Is(err, apiclient.ErrNotRunning) {
		t.Fatalf("no tray: %v", err)
	}
}

func TestConcurrentClientsShareOneRefresh(t *testing.T) {
	f := serve(t, true)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.client.Token(context.Background(), "p", 9*time.Minute); err != nil { // past what the held token can promise
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := f.refreshes.Load(); n != 1 {
		t.Fatalf("64 concurrent clients caused %d refreshes, want 1", n)
	}
}

func TestGarbageAndSilentClients(t *testing.T) {
	f := serve(t, true)
	c, err := net.Dial("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "\x00\x01garbage\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.Contains(line, "400") {
		t.Fatalf("garbage got %q", line)
	}
	silent, _ := net.Dial("unix", f.path)
	defer silent.Close()
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a client that never writes was not dropped: %v", err)
	}
	if _, err := f.client.Connections(context.Background()); err != nil {
		t.Fatalf("the server stopped answering: %v", err)
	}
}

// TestAnotherUserIsRefused connects as uid 65534 (nobody). Through the
// real socket it cannot even reach the 0700 directory; through a socket
// deliberately left open, the peer check refuses it. Needs root.
func TestAnotherUserIsRefused(t *testing.T) {
	if os.Getenv("TT_PEER_CHILD") != "" {
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to act as another user (CI runs as root)")
	}
	f := serve(t, true)
	open, err := os.MkdirTemp("", "tt-open-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	_ = os.Chmod(open, 0o777)
	openPath := filepath.Join(open, "api.sock")
	l, err := net.Listen("unix", openPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(openPath, 0o666)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = (&localapi.Server{}).Serve(ctx, l) }()

	// The test binary lives in Go's private build directory: copy it where
	// the other user can run it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(open, "peer.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{{f.path, "permission denied"}, {openPath, "answer: forbidden"}} {
		cmd := exec.Command(bin, "-test.run=TestPeerChild", "-test.v")
		cmd.Env = append(os.Environ(), "TT_PEER_CHILD="+tc.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("child: %v", err)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("as nobody via %s: %s; want %q", tc.path, out, tc.want)
		}
	}
}

// TestPeerChild is the other user's side of TestAnotherUserIsRefused.
func TestPeerChild(t *testing.T) {
	path := os.Getenv("TT_PEER_CHILD")
	if path == "" {
		t.Skip("helper for TestAnotherUserIsRefused")
	}
	// A client of its own, as an attacker's would be: tokentray's client
	// refuses a socket of another user's before the server is asked.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := hc.Get("http://tokentray/v1/connections")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer resp.Body.Close()
	var e apitype.Error
	if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Code != "" {
		fmt.Println("answer:", e.Code)
		return
	}
	fmt.Println("answer: allowed")
}
