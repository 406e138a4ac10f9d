package proxykey

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTLSDir(t *testing.T, dir string, now time.Time) *Keys {
	t.Helper()
	keys, err := OpenIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys.now = func() time.Time { return now }
	return keys
}

// verifyLoopback fails t unless the leaf is signed by the CA for every
// loopback name, at now.
func verifyLoopback(t *testing.T, p *PortTLS, now time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.CAPEM) {
		t.Fatalf("the CA does not parse: %s", p.CAPEM)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := p.Certificate.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

var tlsNow = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

// The ports' certificate is made once, 0600, with a CA whose key is not
// kept; every process gets the same one until it ends.
func TestTheTLSIdentityIsMadeOnceAndKeptPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokentray")
	first, err := openTLSDir(t, dir, tlsNow).TLS()
	if err != nil {
		t.Fatal(err)
	}
	verifyLoopback(t, first, tlsNow)
	ca, _ := pem.Decode(first.CAPEM)
	caCert, err := x509.ParseCertificate(ca.Bytes)
	if err != nil || !caCert.IsCA || caCert.KeyUsage&x509.KeyUsageCertSign == 0 || caCert.NotAfter.Sub(tlsNow) < 9*365*24*time.Hour {
		t.Fatalf("the CA: %+v %v", caCert, err)
	}
	if first.Certificate.Leaf.IsCA {
		t.Fatal("the leaf is a CA")
	}
	path := filepath.Join(dir, tlsFile)
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the file: %v %v", info, err)
	}
	// One key in the file: the leaf's (tls.X509KeyPair matched it); the
	// CA's is gone, so nothing else can ever be signed by it.
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte("PRIVATE KEY-----")); n != 2 { // BEGIN and END of one
		t.Fatalf("%d private key markers in the file", n)
	}
	// Another process, much later, gets the same one.
	later, err := openTLSDir(t, dir, tlsNow.Add(5*365*24*time.Hour)).TLS()
	if err != nil || !bytes.Equal(later.CAPEM, first.CAPEM) {
		t.Fatalf("another process got another CA: %v", err)
	}
	// A file that others could read is refused, not replaced.
	_ = os.Chmod(path, 0o644)
	if _, err := openTLSDir(t, dir, tlsNow).TLS(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a certificate file readable by others: %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, b) {
		t.Fatal("the refused file was replaced")
	}
}

// Whatever cannot serve is made anew, CA and all.
func TestTheTLSIdentityIsMadeAnewWhenItCannotServe(t *testing.T) {
	otherDir := filepath.Join(t.TempDir(), "other")
	other, err := openTLSDir(t, otherDir, tlsNow).TLS()
	if err != nil {
		t.Fatal(err)
	}
	otherFile, _ := os.ReadFile(filepath.Join(otherDir, tlsFile))
	for _, tc := range []struct {
		name  string
		spoil func(path string, b []byte)
		at    time.Time
	}{
		{"a file cut short", func(path string, b []byte) { _ = os.WriteFile(path, b[:len(b)/2], 0o600) }, tlsNow},
		{"a file that is no PEM", func(path string, _ []byte) { _ = os.WriteFile(path, []byte("hello\n"), 0o600) }, tlsNow},
		{"a leaf with another CA", func(path string, b []byte) {
			_ = os.WriteFile(path, append(pemBlocks(b, "CERTIFICATE")[0], append(other.CAPEM, pemBlocks(b, "PRIVATE KEY")[0]...)...), 0o600)
		}, tlsNow},
		{"a key of another leaf", func(path string, b []byte) {
			_ = os.WriteFile(path, bytes.Join(append(pemBlocks(b, "CERTIFICATE"), pemBlocks(otherFile, "PRIVATE KEY")[0]), nil), 0o600)
		}, tlsNow},
		{"a leaf within 30 days of its end", func(string, []byte) {}, tlsNow.Add(tlsLifetime - 29*24*time.Hour)},
		{"a leaf not valid yet (the clock went back)", func(string, []byte) {}, tlsNow.Add(-2 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tokentray")
			old, err := openTLSDir(t, dir, tlsNow).TLS()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tlsFile)
			b, _ := os.ReadFile(path)
			tc.spoil(path, b)
			now, err := openTLSDir(t, dir, tc.at).TLS()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(now.CAPEM, old.CAPEM) || bytes.Equal(now.CAPEM, other.CAPEM) {
				t.Fatal("the CA was kept")
			}
			verifyLoopback(t, now, tc.at)
		})
	}
}

// pemBlocks are the blocks of type typ in b, each in PEM.
func pemBlocks(b []byte, typ string) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return out
		}
		if block.Type == typ {
			out = append(out, pem.EncodeToMemory(block))
		}
	}
}

// The tray and an agent's `proxy-key --cacert` that both find no
// certificate make one between them: the CA printed is the one served.
func TestProcessesThatFindNoTLSIdentityAgreeOnOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokentray")
	var wg sync.WaitGroup
	cas := make([][]byte, 8)
	for i := range cas {
		keys := openTLSDir(t, dir, tlsNow) // its own file handles, as another process has
		wg.Go(func() {
			if p, err := keys.TLS(); err == nil {
				cas[i] = p.CAPEM
			}
		})
	}
	wg.Wait()
	for i, ca := range cas {
		if ca == nil || !bytes.Equal(ca, cas[0]) {
			t.Fatalf("caller %d got another CA (or none)", i)
		}
	}
}

// OpenSSL's strict checks (Python 3.13 turns them on by default) accept
// the chain.
func TestOpenSSLStrictAcceptsTheTLSIdentity(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is missing")
	}
	dir := filepath.Join(t.TempDir(), "tokentray")
	p, err := openTLSDir(t, dir, time.Now()).TLS()
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(caPath, p.CAPEM, 0o600)
	for _, check := range [][]string{{"-verify_ip", "127.0.0.1"}, {"-verify_ip", "::1"}, {"-verify_hostname", "localhost"}} {
		args := append([]string{"verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", caPath}, check...)
		out, err := exec.Command("openssl", append(args, filepath.Join(dir, tlsFile))...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl %v: %v\n%s", check, err, out)
		}
	}
}
