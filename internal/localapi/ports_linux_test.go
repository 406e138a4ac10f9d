package localapi_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/proxy"
	"github.com/tokentray/tokentray/internal/tstest/sshtest"

	"github.com/tokentray/tokentray/internal/localapi"
)

// A connection's loopback port serves its API to clients that send the
// port's key, and to no one else: no key, a wrong key, and (run as root,
// with a second user) a process of another user are refused.
func TestTheLoopbackPortWantsTheKeyAndTheSameUser(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.URL.RequestURI(), r.Header.Get("Authorization"))
	}))
	defer api.Close()
	num := freeLoopbackPort(t)
	f := serveConn(t, true, func(c *auth.Connection) { c.Endpoints.APIBase = api.URL + "/rest"; c.ProxyPort = num })
	key := "ttk_test-key"
	serveTLS, caPEM, client := portTLS(t)
	ports := &localapi.Ports{Server: f.server, TLS: serveTLS, Key: func(string) (string, error) { return key, nil }}
	ports.Sync([]*auth.Keeper{f.keeper})
	defer ports.Close()
	base := fmt.Sprintf("https://127.0.0.1:%d", num)
	get := func(header string) (int, string) {
		req, _ := http.NewRequest("GET", base+"/v1.0/me?x=1", nil)
		if header != "" {
			req.Header.Set(proxy.KeyHeader, header)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(""); code != 401 || !strings.Contains(body, "is missing") || !strings.Contains(body, "tokentray proxy-key p") {
		t.Fatalf("no key: %d %s", code, body)
	}
	if code, body := get("ttk_wrong"); code != 401 || !strings.Contains(body, "is wrong") {
		t.Fatalf("a wrong key: %d %s", code, body)
	}
	if code, body := get(key); code != 200 || !strings.HasPrefix(body, "/rest/v1.0/me?x=1 Bearer ") || strings.Contains(body, "at-") {
		t.Fatalf("the key: %d %s", code, body)
	}
	// The port closes with its connection's proxy_port.
	ports.Sync(nil)
	client.CloseIdleConnections()
	if _, err := client.Get(base + "/x"); err == nil {
		t.Fatal("the port is still open")
	}
	ports.Sync([]*auth.Keeper{f.keeper})

	if os.Geteuid() != 0 {
		t.Log("not root: the other user's part is skipped")
		return
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is missing")
	}
	other := sshtest.EnsureUser(t, "tt-agent")
	uid, gid := 0, 0
	fmt.Sscan(other.Uid, &uid)
	fmt.Sscan(other.Gid, &gid)
	// The CA, where the other user can read it: it is no secret.
	ca, err := os.CreateTemp("", "tt-ca-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ca.Name())
	_, _ = ca.Write(caPEM)
	ca.Close()
	_ = os.Chmod(ca.Name(), 0o644)
	curl := exec.Command("curl", "-sS", "--cacert", ca.Name(), "-H", proxy.KeyHeader+": "+key, base+"/v1.0/me")
	curl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, _ := curl.CombinedOutput()
	if !strings.Contains(string(out), "forbidden") || strings.Contains(string(out), "Bearer") {
		t.Fatalf("another user with the key: %s", out)
	}
}

// The peer check finds a client's socket whether it is an IPv4 one or an
// IPv6 one connected to ::ffff:127.0.0.1.
func TestThePeerOfALoopbackConnectionIsFoundInBothTables(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dial6 := func() (int, error) { // an IPv6 socket to ::ffff:127.0.0.1, which Go's net would not make
		fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM, 0)
		if err != nil {
			return -1, err
		}
		sa := &syscall.SockaddrInet6{Port: port}
		copy(sa.Addr[:], net.ParseIP("::ffff:127.0.0.1").To16())
		if err := syscall.Connect(fd, sa); err != nil {
			syscall.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	for _, ipv6 := range []bool{false, true} {
		var closeClient func()
		if ipv6 {
			fd, err := dial6()
			if err != nil {
				t.Logf("no IPv6 socket here: %v", err)
				continue
			}
			closeClient = func() { syscall.Close(fd) }
		} else {
			c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			closeClient = func() { c.Close() }
		}
		server, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := localapi.CheckTCPPeer(server); got != localapi.PeerSameUser {
			t.Errorf("a client over IPv6=%v: %v, want the same user", ipv6, got)
		}
		server.Close()
		closeClient()
	}
}
