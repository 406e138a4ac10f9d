package tokennow_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/service"
	"github.com/tokentray/tokentray/internal/tokennow"
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
	sock := socket.Path()
	run := func(args ...string) (code int, done bool, stdout, stderr string) {
		var out, errb bytes.Buffer
		code, done = tokennow.Run(args, &out, &errb, sock)
		return code, done, out.String(), errb.String()
	}
	if _, done, out, errb := run("token", "p"); done || out != "" || errb != "" {
		t.Fatalf("with nothing running, the one-request path answered: %q %q", out, errb)
	}

	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-held", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now(), Lifetime: time.Hour}, auth.AnyGeneration)
	// q's token is due (55 of 60 minutes gone) and its provider cannot be
	// reached: it is handed out with a warning while it lasts.
	_ = store.SaveTokens(context.Background(), "q", &auth.TokenSet{AccessToken: "at-old", TokenType: "bearer", RefreshToken: "rt",
		ObtainedAt: time.Now().Add(-55 * time.Minute), Lifetime: time.Hour}, auth.AnyGeneration)
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	keeper := func(name string) *auth.Keeper {
		return auth.NewKeeper(&auth.Connection{Name: name, Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
			Endpoints: auth.Endpoints{TokenURL: "http://127.0.0.1:1/token"}}, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}})
	}
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		_ = (&localapi.Server{Backend: service.OneShot(service.Options{}, keeper("p"), keeper("q"))}).Serve(ctx, l)
		close(served)
	}()
	defer func() { cancel(); <-served }()

	if code, done, out, errb := run("token", "p"); !done || code != 0 || out != "at-held\n" || errb != "" {
		t.Fatalf("token p: done %t, exit %d, stdout %q, stderr %q", done, code, out, errb)
	}
	if code, done, out, errb := run("token", "q"); !done || code != 0 || out != "at-old\n" ||
		!strings.HasPrefix(errb, "tokentray: warning: q was not refreshed (") || !strings.Contains(errb, "; this token expires at ") || !strings.Contains(errb, "(in 4 m ") {
		t.Fatalf("token q: done %t, exit %d, stdout %q, stderr %q", done, code, out, errb)
	}
	if code, done, out, errb := run("token", "nope"); !done || code != apitype.ExitUsage || out != "" ||
		!strings.HasPrefix(errb, "tokentray: ") || !strings.Contains(errb, "\nhint: Configured: p, q") {
		t.Fatalf("token nope: done %t, exit %d, stderr %q", done, code, errb)
	}
	// Anything but the plain form takes the long way.
	for _, args := range [][]string{{"token", "p", "--json"}, {"token", "--min-valid", "1m", "p"}, {"token"}, {"status"}, {}} {
		if _, done, out, errb := run(args...); done || out != "" || errb != "" {
			t.Fatalf("%v took the one-request path", args)
		}
	}
}

// Whatever answers on the socket (the pipe on Windows) that is not the API (an old tokentray, a
// different program) leaves the work to the whole CLI, which says what it is.
func TestAnAnswerThatIsNotTheAPIsIsNotPrinted(t *testing.T) {
	dir, err := os.MkdirTemp("", "tt-now-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")
	l, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, answer := range []string{
		"SSH-2.0-OpenSSH_9.2\r\n",
		"HTTP/1.0 200 OK\r\n\r\n{\"unexpected\": true}",
		"HTTP/1.0 500 Internal Server Error\r\n\r\nsomething broke",
		"HTTP/1.0 abc\r\n\r\n{}",
	} {
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = bufio.NewReader(c).ReadString('\n')
			_, _ = c.Write([]byte(answer))
			c.Close()
		}()
		var out, errb bytes.Buffer
		if _, done := tokennow.Run([]string{"token", "p"}, &out, &errb, sock); done || out.Len() != 0 || errb.Len() != 0 {
			t.Errorf("answer %q: done %t, stdout %q, stderr %q", answer, done, out.String(), errb.String())
		}
	}
}
