package postgres

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/tstest/pkitest"
)

// sslServer does what a PostgreSQL server with ssl = on does before the
// startup message: it answers the client's SSLRequest with 'S' and shakes
// hands with the certificate cert. It returns its port.
func sslServer(t *testing.T, cert, key string) int {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := io.ReadFull(conn, make([]byte, 8)); err != nil { // SSLRequest
					return
				}
				if _, err := conn.Write([]byte{'S'}); err != nil {
					return
				}
				_ = tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{pair}}).Handshake()
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// A certificate that does not pass (not for the host in store_url, or of
// a CA this machine does not trust) says so and what to fix, not "cannot
// reach": the server answered. For the keepers it is still a store that
// cannot be used now (they hand out what they hold).
func TestACertificateRefusedSaysWhatToFix(t *testing.T) {
	p := pkitest.New(t)
	for _, tc := range []struct {
		name, url string
	}{
		// Quoted as libpq's key=value strings quote (a Windows path's
		// backslashes are escapes there).
		{"a certificate for another name", "host=127.0.0.1 port=%d dbname=tokentray user=tokentray sslmode=verify-full sslrootcert='" +
			strings.ReplaceAll(p.CAFile(), `\`, `\\`) + "'"},
		{"a CA this machine does not trust", "host=127.0.0.1 port=%d dbname=tokentray user=tokentray sslmode=verify-full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := "127.0.0.1"
			if strings.HasPrefix(tc.name, "a certificate for another") {
				host = "db.example.invalid"
			}
			cert, certKey := p.Issue(t, "db", host)
			_, err := Open(ctx, Options{URL: fmt.Sprintf(tc.url, sslServer(t, cert, certKey)), Key: key(7), Instance: "moby-1"})
			t.Logf("%v", err)
			if err == nil || !strings.Contains(err.Error(), "a TLS certificate was refused") || !strings.Contains(err.Error(), "sslrootcert=") ||
				strings.Contains(err.Error(), "check that the server runs") || !errors.Is(err, auth.ErrStoreUnreachable) {
				t.Fatalf("got %v; want the certificate named, and what to fix", err)
			}
		})
	}
}
