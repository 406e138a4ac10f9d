//go:build unix

package localapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/proxy"
	"github.com/tokentray/tokentray/internal/proxy/proxykey"

	"github.com/tokentray/tokentray/internal/localapi"
)

func freeLoopbackPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// portTLS is the ports' TLS identity as the tray makes it (proxykey's, in
// a state directory of the test's own): what Ports.TLS serves, the CA in
// PEM, and a client that pins that CA as the README's agents do.
func portTLS(t *testing.T) (func() (*tls.Certificate, error), []byte, *http.Client) {
	t.Helper()
	keys, err := proxykey.OpenIn(filepath.Join(t.TempDir(), "tokentray"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := keys.TLS()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(id.CAPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(client.CloseIdleConnections)
	serve := func() (*tls.Certificate, error) {
		id, err := keys.TLS()
		if err != nil {
			return nil, err
		}
		return &id.Certificate, nil
	}
	return serve, id.CAPEM, client
}

// The port speaks TLS only: a client that pins the CA gets the API; an
// agent still on http:// is told what it speaks to.
func TestThePortServesHTTPSToClientsThatPinItsCA(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.URL.RequestURI(), r.Header.Get("Authorization"))
	}))
	defer api.Close()
	num := freeLoopbackPort(t)
	f := serveConn(t, true, func(c *auth.Connection) { c.Endpoints.APIBase = api.URL + "/rest"; c.ProxyPort = num })
	serveTLS, caPEM, client := portTLS(t)
	ports := &localapi.Ports{Server: f.server, TLS: serveTLS, Key: func(string) (string, error) { return "ttk_test-key", nil },
		Problem: func(_, text string) { t.Errorf("a problem: %s", text) }}
	ports.Sync([]*auth.Keeper{f.keeper})
	defer ports.Close()

	for _, host := range []string{"127.0.0.1", "localhost"} {
		req, _ := http.NewRequest("GET", fmt.Sprintf("https://%s:%d/v1.0/me", host, num), nil)
		req.Header.Set(proxy.KeyHeader, "ttk_test-key")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "/rest/v1.0/me Bearer ") {
			t.Fatalf("%s: %d %s", host, resp.StatusCode, b)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("%s: not TLS 1.2 or newer: %+v", host, resp.TLS)
		}
	}
	// TLS 1.0 and 1.1 are refused.
	old := &tls.Config{MaxVersion: tls.VersionTLS11, RootCAs: client.Transport.(*http.Transport).TLSClientConfig.RootCAs}
	if c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", num), old); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1.0/me", num))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "HTTPS") {
		t.Fatalf("plain http: %d %s", resp.StatusCode, b)
	}

	// Verifiers stricter than Go's accept it too: Python with OpenSSL's
	// X509_STRICT (Python 3.13's default), and Node.
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(caPath, caPEM, 0o600)
	py := `import ssl, sys, urllib.request
ctx = ssl.create_default_context(cadata=open(sys.argv[1]).read())
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
req = urllib.request.Request(sys.argv[2], headers={"Tokentray-Proxy-Key": "ttk_test-key"})
print(urllib.request.urlopen(req, context=ctx).read().decode())`
	js := `const https = require('https'), fs = require('fs');
https.get(process.argv[2], { ca: fs.readFileSync(process.argv[1]), headers: { 'Tokentray-Proxy-Key': 'ttk_test-key' } }, (res) => {
  res.setEncoding('utf8'); res.on('data', (d) => process.stdout.write(d));
}).on('error', (e) => { console.error(e.message); process.exit(1); });`
	for _, run := range [][]string{
		{"python3", "-c", py, caPath, fmt.Sprintf("https://localhost:%d/v1.0/me", num)},
		{"node", "-e", js, caPath, fmt.Sprintf("https://127.0.0.1:%d/v1.0/me", num)},
	} {
		if _, err := exec.LookPath(run[0]); err != nil {
			t.Logf("%s is missing: not tried", run[0])
			continue
		}
		// python3 -c and node -e alike see the CA's path as argv[1], the URL as argv[2].
		out, err := exec.Command(run[0], run[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/rest/v1.0/me Bearer ") {
			t.Errorf("%s: %v\n%s", run[0], err, out)
		}
	}
}

// squatter is a server of another process's that took a port before
// tokentray: what its handler and its socket received.
type squatter struct {
	mu       sync.Mutex
	requests int
	raw      []byte // every byte that reached it, before any TLS
}

func (s *squatter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests++
	s.raw = append(append(s.raw, r.Header.Get(proxy.KeyHeader)...), body...)
	s.mu.Unlock()
	fmt.Fprint(w, `{"sub":"the squatter's answer"}`)
}

// recordingConn copies what a connection reads to its squatter.
type recordingConn struct {
	net.Conn
	s *squatter
}

func (c recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.mu.Lock()
	c.s.raw = append(c.s.raw, b[:n]...)
	c.s.mu.Unlock()
	return n, err
}

type recordingListener struct {
	net.Listener
	s *squatter
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{c, l.s}, nil
}

// A process that took the port first is found out by the handshake of a
// client that pins tokentray's CA: before the client sends its key or a
// byte of its request. That holds for a plain HTTP server, a TLS server
// with a certificate of its own, and one whose CA is another tokentray's
// (the same names, another key).
func TestASquatterOnThePortGetsNeitherTheKeyNorTheBody(t *testing.T) {
	otherKeys, err := proxykey.OpenIn(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	lookalike, err := otherKeys.TLS()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tls     *tls.Config // nil: plain HTTP
		certErr bool        // the client's error is a failed verification
	}{
		{"plain HTTP", nil, false},
		{"TLS with a self-signed certificate of its own", &tls.Config{}, true}, // httptest's own
		{"TLS with another tokentray's certificate", &tls.Config{Certificates: []tls.Certificate{lookalike.Certificate}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			num := freeLoopbackPort(t)
			sq := &squatter{}
			srv := httptest.NewUnstartedServer(sq)
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", num))
			if err != nil {
				t.Fatal(err)
			}
			srv.Listener = recordingListener{l, sq}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
			if tc.tls != nil {
				srv.TLS = tc.tls
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()

			f := serveConn(t, true, func(c *auth.Connection) { c.ProxyPort = num })
			serveTLS, _, client := portTLS(t)
			var problems []string
			ports := &localapi.Ports{Server: f.server, TLS: serveTLS, Key: func(string) (string, error) { return "ttk_test-key", nil },
				Problem: func(_, text string) { problems = append(problems, text) }}
			ports.Sync([]*auth.Keeper{f.keeper})
			defer ports.Close()
			if len(problems) != 1 || !strings.Contains(problems[0], "cannot be opened") {
				t.Errorf("tokentray's problems: %q", problems)
			}

			req, _ := http.NewRequest("POST", fmt.Sprintf("https://127.0.0.1:%d/v1.0/projects", num), strings.NewReader("the-agent's-body"))
			req.Header.Set(proxy.KeyHeader, "ttk_test-key")
			resp, err := client.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("the client took the squatter's answer: %d %s", resp.StatusCode, b)
			}
			var verify *tls.CertificateVerificationError
			if tc.certErr && !errors.As(err, &verify) {
				t.Errorf("the client's error is not a failed verification: %v", err)
			}
			srv.Close() // waits for its connections: all it got is in sq
			sq.mu.Lock()
			defer sq.mu.Unlock()
			if sq.requests != 0 || strings.Contains(string(sq.raw), "ttk_test-key") || strings.Contains(string(sq.raw), "the-agent's-body") {
				t.Fatalf("the squatter received %d requests, and: %q", sq.requests, sq.raw)
			}
		})
	}
}
