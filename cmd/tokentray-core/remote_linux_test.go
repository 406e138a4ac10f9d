package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/demoprovider"
	"github.com/tokentray/tokentray/internal/remote"
	"github.com/tokentray/tokentray/internal/tstest/sshtest"
)

// agentUser is the second local user the test's server runs as.
const agentUser = "tt-agent"

// `tokentray login NAME@REMOTE` on a desktop signs in a connection of the
// tokentray on a server, reached with the real OpenSSH (sshd on a loopback
// port, a host key and a client key made here, a second local user as the
// server's account, no session bus there, the file store): the server
// prepares the sign-in, the desktop's browser signs in and its callback is
// relayed over ssh, and the server exchanges the code. The tokens are in
// the server account's files; nothing of the sign-in is on the desktop.
// It needs root (a user, sshd); .ci/test runs it so.
func TestLoginOfARemoteConnectionOverSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and starts sshd")
	}
	sshd := sshtest.Start(t, agentUser)
	home := sshd.User.HomeDir
	uid, gid := sshd.IDs()
	for _, d := range []string{".config/tokentray", ".local/state/tokentray"} {
		_ = os.RemoveAll(filepath.Join(home, d))
	}

	// The server's programs, where the agent user may run them.
	binDir, err := os.MkdirTemp("", "tt-remote-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	_ = os.Chmod(binDir, 0o755)
	buildCLI(t, binDir)

	// The provider, and the connection the server keeps.
	provider := &demoprovider.Server{AccessTTL: time.Hour, RedirectURI: "http://localhost:" + strconv.Itoa(freeTCPPort(t)) + "/callback"}
	base, err := provider.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer provider.Close()
	sshtest.WriteAs(t, filepath.Join(home, ".config", "tokentray", "config.toml"), uid, gid, `store = "file"

[[connection]]
name = "agent-api"
provider = "generic"
client_id = "`+demoprovider.ClientID+`"
auth_url = "`+base+`/authorize"
token_url = "`+base+`/token"
redirect_uri = "`+provider.RedirectURI+`"
`)

	// The desktop: a [[remote]] table, its own runtime and state directories.
	desk, err := os.MkdirTemp("", "tt-") // short: the ssh control socket's path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(desk) })
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(desk, "run"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(desk, "state"))
	_ = os.Mkdir(filepath.Join(desk, "run"), 0o700)
	deskConfig := filepath.Join(desk, "config.toml")
	_ = os.WriteFile(deskConfig, []byte(fmt.Sprintf(`[[remote]]
name = "moby"
ssh = "%s"
ssh_options = %s
command = "%s"

[[remote]]
name = "down"
ssh = "%s@127.0.0.1"
ssh_options = ["Port=%d", "BatchMode=yes", "ConnectTimeout=5"]
`, sshd.Destination(), tomlList(sshd.Options()), filepath.Join(binDir, "tokentray"), agentUser, freeTCPPort(t))), 0o600)
	cfg, err := config.Load(deskConfig)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := cfg.Remote("moby")
	r := remote.Remote{Remote: rc, ControlDir: filepath.Join(desk, "run", "tokentray")}
	_ = os.MkdirAll(r.ControlDir, 0o700)
	var tried []byte
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if tried, err = r.Command(context.Background(), "--help").CombinedOutput(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh to the test's sshd: %v\n%s\nsshd:\n%s", err, tried, sshd.Log())
		}
	}

	t.Cleanup(func() {
		// The control connection's master stops with its connection.
		stop := r.Command(context.Background())
		stop.Args = append(stop.Args[:1], append([]string{"-O", "exit"}, stop.Args[1:len(stop.Args)-1]...)...)
		_ = stop.Run()
	})

	// The client secret goes to the server's store, over ssh.
	secret := r.Command(context.Background(), "secret", "agent-api")
	secret.Stdin = strings.NewReader(demoprovider.ClientSecret + "\n")
	if out, err := secret.CombinedOutput(); err != nil {
		t.Fatalf("secret over ssh: %v\n%s\n%s", err, out, sshd.Log())
	}

	// The sign-in from the desktop.
	var out, errb syncBuffer
	consent := func(u string) error {
		go func() {
			if err := demoprovider.Consent(u, "allow"); err != nil {
				t.Errorf("the browser: %v", err)
			}
		}()
		return nil
	}
	withBrowser := func(ctx context.Context, o globalOptions, io streams) (*env, error) {
		e, err := newEnv(ctx, o, io)
		if e != nil {
			e.opener = consent
		}
		return e, err
	}
	code := run(context.Background(), []string{"--config", deskConfig, "login", "agent-api@moby", "--timeout", "1m"},
		streams{in: strings.NewReader(""), out: &out, err: &errb}, deps{env: withBrowser, openBrowser: consent})
	if code != 0 || !strings.Contains(errb.String(), "Signed in to agent-api@moby") {
		t.Fatalf("login agent-api@moby: exit %d\n%s\nsshd:\n%s", code, errb.String(), sshd.Log())
	}

	// The tokens are the server account's, in its files; an agent there gets one.
	info, err := os.Stat(filepath.Join(home, ".local", "state", "tokentray", "agent-api.tokens"))
	if err != nil || info.Mode().Perm() != 0o600 || int(info.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Fatalf("the server's token file: %v %v", info, err)
	}
	tok, err := r.Command(context.Background(), "token", "agent-api").Output()
	if err != nil || !strings.HasPrefix(string(tok), "demo-at-") {
		t.Fatalf("token on the server: %q %v", tok, err)
	}
	if _, err := os.Stat(filepath.Join(desk, "state")); !os.IsNotExist(err) {
		t.Fatalf("the desktop has a state directory: %v", err)
	}
	if strings.Contains(errb.String(), strings.TrimSpace(string(tok))) {
		t.Fatal("the desktop's output holds the token")
	}

	// status on the desktop: the server's connections as NAME@REMOTE, and a
	// server that cannot be reached as one grey row that says why.
	out = syncBuffer{}
	errb = syncBuffer{}
	code = run(context.Background(), []string{"--config", deskConfig, "status"},
		streams{in: strings.NewReader(""), out: &out, err: &errb}, deps{env: withBrowser, openBrowser: consent})
	if code != 0 || !regexp.MustCompile(`agent-api@moby\s+generic\s+connected`).MatchString(out.String()) ||
		!regexp.MustCompile(`\*@down\s+\S*\s+unreachable`).MatchString(out.String()) || !strings.Contains(out.String(), "down cannot be reached over ssh") {
		t.Fatalf("status: exit %d\n%s\n%s", code, out.String(), errb.String())
	}

	// An unknown connection: the server's answer, with its exit code.
	errb = syncBuffer{}
	code = run(context.Background(), []string{"--config", deskConfig, "login", "nope@moby", "--timeout", "1m"},
		streams{in: strings.NewReader(""), out: &out, err: &errb}, deps{env: withBrowser, openBrowser: consent})
	if code != 2 || !strings.Contains(errb.String(), "on moby") || !strings.Contains(errb.String(), "agent-api") {
		t.Fatalf("login nope@moby: exit %d\n%s", code, errb.String())
	}
}

// tomlList is a TOML array of strings.
func tomlList(items []string) string {
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = strconv.Quote(it)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
