package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/sharedtest"
	"github.com/tokentray/tokentray/internal/tstest/etcdtest"
	"github.com/tokentray/tokentray/internal/tstest/pkitest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The README's least-privilege setup, on a real etcd with TLS and client
// certificates (--client-cert-auth: the certificate's common name is the
// user) and authentication on: a user without a password whose role may
// read and write /tokentray/ and nothing else. tokentray works in full
// with it (items, the lease and its intent, the watch, presence, alerts),
// may touch no key outside its prefix, and an instance whose certificate
// names no user is refused with what to do.
func TestTheREADMEsLeastPrivilegeRoleOnAClusterWithTLSAndAuth(t *testing.T) {
	etcdtest.Endpoints(t) // skips (or fails in CI) as the other etcd tests do
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not on PATH: %v; %s", err, etcdtest.How)
	}
	p := pkitest.New(t)
	serverCert, serverKey := p.Issue(t, "etcd-1", "127.0.0.1")
	client, peer := freePort(t), freePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", client)
	cmd := exec.Command(bin, "--name", "m1", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer), "--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("m1=http://127.0.0.1:%d", peer),
		"--cert-file", serverCert, "--key-file", serverKey, "--trusted-ca-file", p.CAFile(), "--client-cert-auth")
	logPath := filepath.Join(t.TempDir(), "etcd.log")
	logFile, _ := os.Create(logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("etcd's log:\n%s", b)
		}
	})

	// As root: the README's commands, through the client API.
	rootCert, rootKey := p.Issue(t, "root")
	tlsCfg, err := transport.TLSInfo{CertFile: rootCert, KeyFile: rootKey, TrustedCAFile: p.CAFile()}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, TLS: tlsCfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	c, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	for {
		if _, err := root.Get(c, "ready"); err == nil {
			break
		} else if c.Err() != nil {
			t.Fatalf("the TLS cluster never answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	noPassword := &clientv3.UserAddOptions{NoPassword: true}
	for _, step := range []func() error{
		func() error { _, err := root.UserAddWithOptions(c, "root", "", noPassword); return err },
		func() error { _, err := root.RoleAdd(c, "root"); return err },
		func() error { _, err := root.UserGrantRole(c, "root", "root"); return err },
		func() error { _, err := root.UserAddWithOptions(c, "tokentray", "", noPassword); return err },
		func() error { _, err := root.RoleAdd(c, "tokentray"); return err },
		func() error {
			_, err := root.RoleGrantPermission(c, "tokentray", DefaultPrefix, clientv3.GetPrefixRangeEnd(DefaultPrefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserGrantRole(c, "tokentray", "tokentray"); return err },
		func() error { _, err := root.AuthEnable(c); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up the role: %v", err)
		}
	}

	// tokentray with the role's certificate: everything it does.
	cert, key := p.Issue(t, "tokentray")
	open := func(instance string) (*Store, error) {
		return Open(ctx, Options{Endpoints: []string{url}, TLSCA: p.CAFile(), TLSCert: cert, TLSKey: key,
			Key: key32(), Instance: instance, Timeout: 5 * time.Second})
	}
	s, err := open("moby-1")
	if err != nil {
		t.Fatalf("open with the role's certificate: %v", err)
	}
	defer s.Close()
	if err := s.SetClientSecret(ctx, "p", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.AccessToken != "at-p-cleartext" {
		t.Fatalf("tokens read back: %v, %v", got, err)
	}
	l, err := s.NewLease(LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := l.Lock(ctx, "p")
	if err != nil {
		t.Fatalf("the lease: %v", err)
	}
	if err := l.Intend(ctx, "p", 5, time.Second); err != nil {
		t.Fatalf("the intent: %v", err)
	}
	if in, err := l.Intent(ctx, "p"); err != nil || in == nil || !in.Mine {
		t.Fatalf("the intent read back: %+v, %v", in, err)
	}
	if err := l.Settle(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	unlock()
	if won, _, err := s.ClaimAlert(ctx, "p", "needs_reauth", 5); err != nil || !won {
		t.Fatalf("an alert claimed: %v, %v", won, err)
	}
	heard := sharedtest.Watch(t, s, nil)
	if err := s.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	heard.Want(t, "p", "a sign-out, with the role's rights")
	for deadline := time.Now().Add(hang); ; time.Sleep(50 * time.Millisecond) {
		pr, err := s.Presence(ctx)
		if err != nil {
			t.Fatalf("presence: %v", err)
		}
		if len(pr.Instances) == 1 && pr.Instances[0] == "moby-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance is not listed: %+v", pr)
		}
	}

	// Nothing outside its prefix.
	if _, err := s.cli.Put(ctx, "/kubernetes/secret", "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("a write outside /tokentray/: %v; want permission denied", err)
	}
	if _, err := s.cli.Get(ctx, "/", clientv3.WithPrefix()); err == nil {
		t.Fatal("a read of the whole keyspace was allowed")
	}

	// A certificate whose name is no user: refused, with what to do.
	strangerCert, strangerKey := p.Issue(t, "stranger")
	_, err = Open(ctx, Options{Endpoints: []string{url}, TLSCA: p.CAFile(), TLSCert: strangerCert, TLSKey: strangerKey,
		Key: key32(), Timeout: 5 * time.Second})
	t.Logf("a certificate of no user: %v", err)
	if err == nil || errors.Is(err, auth.ErrStoreUnreachable) || !strings.Contains(err.Error(), "etcd user") {
		t.Fatalf("a certificate of no user: %v; want a refusal that says what to do", err)
	}

	// TLS mistakes, which gRPC retries until the call's bound and reports
	// as a cluster that does not answer: each is named, with what to fix.
	other := pkitest.New(t)
	otherCert, otherKey := other.Issue(t, "tokentray")
	for _, tc := range []struct {
		name, endpoint, ca, cert, key, want string
	}{
		{"a CA that did not sign the members' certificates", url, other.CAFile(), cert, key, "is not signed by store_tls_ca (" + other.CAFile() + ")"},
		{"no CA given for a private one", url, "", cert, key, "is not signed by a CA this instance trusts (tls: failed to verify certificate: x509: certificate signed by unknown authority): give store_tls_ca, the CA"},
		{"no client certificate", url, p.CAFile(), "", "", "asks for a client certificate, and this instance has none"},
		{"a client certificate of another CA", url, p.CAFile(), otherCert, otherKey, "refused this instance's client certificate"},
		{"http:// to members that speak TLS", strings.Replace(url, "https://", "http://", 1), "", "", "", "speaks TLS: write https://"},
	} {
		_, err := Open(ctx, Options{Endpoints: []string{tc.endpoint}, TLSCA: tc.ca, TLSCert: tc.cert, TLSKey: tc.key,
			Key: key32(), Timeout: 2 * time.Second})
		t.Logf("%s: %v", tc.name, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it named (%q)", tc.name, err, tc.want)
		}
	}
	// A client key others may read is refused, as the instance key is.
	loose := filepath.Join(t.TempDir(), "loose.key")
	if b, err := os.ReadFile(key); err != nil || os.WriteFile(loose, b, 0o644) != nil || os.Chmod(loose, 0o644) != nil {
		t.Fatal("copying the key")
	}
	_, err = Open(ctx, Options{Endpoints: []string{url}, TLSCA: p.CAFile(), TLSCert: cert, TLSKey: loose, Key: key32(), Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "store_tls_key") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a client key others may read: %v", err)
	}
}

func key32() []byte { return key(7) }
