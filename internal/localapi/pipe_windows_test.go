package localapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

// listen listens for the local API at a socket path of the test's own:
// on its named pipe (and its AF_UNIX socket where Windows has one).
func listen(t *testing.T) (path string, l net.Listener) {
	t.Helper()
	path = filepath.Join(tempdir.New(t), "api.sock")
	l, err := localapi.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return path, l
}

// servePipe serves the local API of one connection, p, whose token is
// held, at a socket path of the test's own: on its named pipe (and its
// AF_UNIX socket where Windows has one).
func servePipe(t *testing.T) (path string, l net.Listener) {
	t.Helper()
	path, l = listen(t)
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-held", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now(), Lifetime: time.Hour}, auth.AnyGeneration)
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	k := auth.NewKeeper(&auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{TokenURL: "http://127.0.0.1:1/token"}}, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		_ = (&localapi.Server{Backend: service.OneShot(service.Options{}, k)}).Serve(ctx, l)
		close(served)
	}()
	t.Cleanup(func() { cancel(); <-served })
	return path, l
}

// The local API on Windows is served on a named pipe: the front
// program's blocking client (socket.Dial: CreateFile, no network poller)
// and the Go client (go-winio) both get the token through it, and the
// server knows its peer as a process of the same user (the token is a
// secret: another user's process is refused it).
func TestTheAPIIsServedOnTheUsersNamedPipe(t *testing.T) {
	path, l := servePipe(t)
	name, _ := socket.PipeName(path)
	if l.Addr().String() != name {
		t.Fatalf("the API listens on %s; want the pipe %s", l.Addr(), name)
	}
	t.Logf("AF_UNIX beside the pipe: %v", orServed(localapi.SocketError(l)))

	c, err := socket.Dial(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /v1/connections/p/token HTTP/1.0\r\nHost: tokentray\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(c)
	c.Close()
	if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.0 200 ") || !strings.Contains(string(answer), `"at-held"`) {
		t.Fatalf("the token over the pipe, with the front program's client: %v\n%s", err, answer)
	}

	tok, err := apiclient.New(path).Token(context.Background(), "p", apiclient.DefaultMinValid)
	if err != nil || tok.AccessToken != "at-held" {
		t.Fatalf("the token over the pipe, with the Go client: %+v, %v", tok, err)
	}
}

func orServed(err error) string {
	if err == nil {
		return "served"
	}
	return "not served: " + err.Error()
}

// A second tokentray on the same path finds the pipe taken and says so;
// nothing of the first is disturbed.
func TestASecondListenerOnThePipeIsRefused(t *testing.T) {
	path, _ := servePipe(t)
	if l, err := localapi.Listen(path); err == nil {
		l.Close()
		t.Fatal("a second Listen on the same pipe succeeded")
	} else if !strings.Contains(err.Error(), "another tokentray already listens on \\\\.\\pipe\\tokentray-") {
		t.Fatalf("a second Listen: %v", err)
	}
	if _, err := apiclient.New(path).Token(context.Background(), "p", apiclient.DefaultMinValid); err != nil {
		t.Fatalf("the first, after the second was refused: %v", err)
	}
}

// The pipe lets only the user in: its security descriptor, read back
// from the pipe itself, is owned by the user and has a protected DACL
// (nothing inherited) with one entry, which allows the user. No other
// user (nor Everyone, the anonymous logon, SYSTEM or the administrators)
// is allowed anything, so Windows refuses their processes before
// tokentray sees them (and the server checks each client's user too).
func TestThePipesSecurityDescriptorLetsOnlyTheUserIn(t *testing.T) {
	path, _ := servePipe(t)
	name, _ := socket.PipeName(path)
	p, _ := windows.UTF16PtrFromString(name)
	var h windows.Handle
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h, err = windows.CreateFile(p, windows.READ_CONTROL, 0, nil, windows.OPEN_EXISTING, windows.SECURITY_SQOS_PRESENT, 0)
		if !errors.Is(err, windows.ERROR_PIPE_BUSY) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("open %s to read its security: %v", name, err)
	}
	defer windows.CloseHandle(h)
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatalf("the pipe's security descriptor: %v", err)
	}
	t.Logf("%s: %s", name, sd)
	me, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	user := me.User.Sid
	if owner, _, err := sd.Owner(); err != nil || !windows.EqualSid(owner, user) {
		t.Fatalf("the pipe's owner: %v, %v; want the user %s", owner, err, user)
	}
	if control, _, err := sd.Control(); err != nil || control&windows.SE_DACL_PROTECTED == 0 {
		t.Fatalf("the pipe's DACL is not protected (it may inherit entries): %v", err)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("the pipe has no DACL (everyone may open it): %v", err)
	}
	if dacl.AceCount != 1 {
		t.Fatalf("the pipe's DACL has %d entries; want one, for the user", dacl.AceCount)
	}
	var ace *windows.ACCESS_ALLOWED_ACE
	if err := windows.GetAce(dacl, 0, &ace); err != nil {
		t.Fatal(err)
	}
	sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
	if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || !windows.EqualSid(sid, user) {
		t.Fatalf("the pipe's one entry: type %d for %s; want an allow for the user %s", ace.Header.AceType, sid, user)
	}
	for _, other := range []string{"S-1-1-0", "S-1-5-7", "S-1-5-18", "S-1-5-32-544", "S-1-5-32-545", "S-1-5-21-1-2-3-1001"} {
		o, _ := windows.StringToSid(other)
		if windows.EqualSid(o, sid) {
			t.Fatalf("the pipe allows %s", other)
		}
	}
	if sddl, _ := localapi.PipeSDDL(); sddl != "O:"+user.String()+"D:P(A;;GA;;;"+user.String()+")" {
		t.Fatalf("PipeSDDL: %s", sddl)
	}
}

// The server's peer check on a pipe connection: it asks Windows for the
// pipe client's process (GetNamedPipeClientProcessId) and compares its
// user with its own. This test's own process is the same user. (What the
// server does for another user's process is the same as on the socket,
// tested there; the pipe's security descriptor keeps such a process out
// before that.)
func TestThePipesClientIsKnownAsTheSameUser(t *testing.T) {
	path, l := listen(t)
	// The client stays connected until the server has its connection.
	dialed, done := make(chan error, 1), make(chan struct{})
	defer close(done)
	go func() {
		c, err := socket.Dial(path, 5*time.Second)
		if err == nil {
			defer c.Close()
		}
		dialed <- err
		<-done
	}()
	if err := <-dialed; err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, isSocket := c.(*net.UnixConn); isSocket {
		t.Fatal("the connection came over the AF_UNIX socket, not the pipe")
	}
	if !localapi.PeerIsSameUser(c) {
		t.Fatal("the peer check on a pipe connection does not know its client as the same user")
	}
}

// A client that connects and leaves before the server took its
// connection (between two of http.Server's Accepts) leaves the pipe
// serving: the connection it left may be handed out (it reads nothing, or
// what the client wrote; Windows says ERROR_NO_DATA instead), and a client
// that then asks is answered. (Wine lets a client onto an instance whose
// client left before the server closed it, so a request there can be lost:
// the client below asks again when its connection ends unanswered. On
// Windows such an instance takes no client.)
func TestAClientThatLeavesBeforeItIsAcceptedStopsNothing(t *testing.T) {
	path, l := listen(t)
	for range 2 {
		gone, err := socket.Dial(path, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(gone, "gone"); err != nil {
			t.Fatal(err)
		}
		gone.Close()
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 4)
				if _, err := io.ReadFull(c, b); err == nil && string(b) == "next" {
					_, _ = io.WriteString(c, "answered")
				}
			}()
		}
	}()
	var tries []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := socket.Dial(path, 5*time.Second)
		if err == nil {
			_, err = io.WriteString(c, "next")
			var b []byte
			if err == nil {
				b, err = io.ReadAll(c)
			}
			c.Close()
			if string(b) == "answered" {
				break
			}
			tries = append(tries, fmt.Sprintf("%q %v", b, err))
		} else {
			tries = append(tries, err.Error())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer within 20 s of two clients that left: %v", tries)
		}
	}
	if len(tries) > 0 {
		t.Logf("answered after %d unanswered: %v", len(tries), tries)
	}
}

// While nobody connects, Accept waits: the look it takes at the waiting
// instance every 250 ms (for a client that Wine connected without ending
// the wait) hands out nothing. The client that then connects is accepted.
func TestAnIdlePipeHandsOutNoConnection(t *testing.T) {
	path, l := listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("Accept handed out a connection with no client")
	case <-time.After(time.Second):
	}
	c, err := socket.Dial(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case s := <-accepted:
		s.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection was not accepted within 10 s")
	}
}
