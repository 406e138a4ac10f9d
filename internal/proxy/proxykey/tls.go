package proxykey

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/tokentray/tokentray/internal/filelock"
)

// The ports' TLS identity is one file, proxy-port-tls.pem: the leaf's
// certificate, the CA's certificate and the leaf's private key. One file
// is written at once (filestore's rename), so no reader ever sees a leaf
// beside another CA than its own. Its name ends in neither of the
// suffixes of a connection's files, so no connection name can clash.
const (
	tlsName = "proxy-port-tls"
	tlsFile = tlsName + ".pem"
)

const (
	// tlsLifetime is the CA's and the leaf's: agents pin the CA, so every
	// new one breaks those that kept the old; a loopback certificate has
	// no revocation to lean on a short life for, and its CA's key is gone.
	tlsLifetime = 10 * 365 * 24 * time.Hour
	// tlsRenewBefore: a leaf that ends sooner is made anew, with its CA,
	// while agents can still be told to fetch the new one.
	tlsRenewBefore = 30 * 24 * time.Hour
	// tlsBackdate covers a clock set back a little after the file was made
	// (NTP at boot): a certificate not valid yet would fail every agent.
	tlsBackdate = time.Hour
)

// PortTLS is the TLS identity every proxy port serves.
type PortTLS struct {
	// Certificate is the leaf for 127.0.0.1, ::1 and localhost, with its
	// private key, as tls.Config serves it.
	Certificate tls.Certificate
	// CAPEM is the certificate, in PEM, of the CA that signed the leaf:
	// what agents trust (httpx's verify=, Node's ca:, curl's --cacert).
	// The CA's private key was dropped once the leaf was signed, so this
	// CA vouches for that leaf and nothing else, ever.
	CAPEM []byte
}

// TLS is the ports' TLS identity: a private CA and a leaf it signed, made
// now when there is none, when the file does not parse or its parts do
// not belong together, or when the leaf is not valid from now until 30
// days from now. Every caller (the tray's ports, `tokentray proxy-key
// --cacert`) gets the same until then. A file that other users could read
// is refused, not replaced, as a key's is. It re-reads the file on each
// call (cheap: parsed only when it changed), so a port serves whatever a
// renewal by another process left there.
func (k *Keys) TLS() (*PortTLS, error) {
	t, err := k.loadTLS()
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, errRemake) {
		return nil, err
	}
	// Two processes that both found nothing (the tray starting, an agent's
	// proxy-key --cacert) must not each make a CA: the loser would serve,
	// or print, one that is not on disk.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := (&filelock.Dir{Path: k.store.Dir}).Lock(ctx, tlsName)
	if err != nil {
		return nil, fmt.Errorf("the proxy ports' certificate: %w", err)
	}
	defer unlock()
	if t, err := k.loadTLS(); !errors.Is(err, errRemake) {
		return t, err
	}
	b, err := newPortTLS(k.now())
	if err != nil {
		return nil, fmt.Errorf("make the proxy ports' certificate: %w", err)
	}
	if err := k.store.WriteFile(tlsName, tlsFile, b); err != nil {
		return nil, fmt.Errorf("write the proxy ports' certificate: %w", err)
	}
	return k.loadTLS()
}

// errRemake is a TLS file that is missing, broken or ending: TLS makes a
// new one.
var errRemake = errors.New("make the proxy ports' certificate anew")

// loadTLS reads the TLS file, parsed only when it changed since the last
// call.
func (k *Keys) loadTLS() (*PortTLS, error) {
	b, err := k.store.ReadFile(tlsName, tlsFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, errRemake
	case err != nil:
		return nil, fmt.Errorf("the proxy ports' certificate: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if k.tls == nil || !bytes.Equal(b, k.tlsRaw) {
		t, err := parsePortTLS(b)
		if err != nil {
			return nil, errRemake
		}
		k.tls, k.tlsRaw = t, b
	}
	if leaf := k.tls.Certificate.Leaf; now.Before(leaf.NotBefore) || now.Add(tlsRenewBefore).After(leaf.NotAfter) {
		return nil, errRemake
	}
	return k.tls, nil
}

// parsePortTLS is the identity in a TLS file, if its leaf is one its CA
// signed for loopback, with the leaf's key.
func parsePortTLS(b []byte) (*PortTLS, error) {
	var certs [][]byte
	var key []byte
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			certs = append(certs, pem.EncodeToMemory(block))
		case "PRIVATE KEY":
			key = pem.EncodeToMemory(block)
		}
	}
	if len(certs) != 2 || key == nil {
		return nil, errors.New("not a leaf, a CA and a key")
	}
	cert, err := tls.X509KeyPair(certs[0], key) // also: the key is the leaf's
	if err != nil {
		return nil, err
	}
	caBlock, _ := pem.Decode(certs[1])
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// At a time inside the leaf's life: the dates are loadTLS's to judge.
	leaf := cert.Leaf
	mid := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: mid,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, err
		}
	}
	return &PortTLS{Certificate: cert, CAPEM: certs[1]}, nil
}

// newPortTLS makes a TLS file: an ECDSA P-256 CA, self-signed, and a leaf
// it signs for loopback. The CA is a CA (CA:TRUE, keyCertSign, its key
// identifier, which the leaf names) rather than the leaf signing itself,
// because strict verifiers (Python 3.13's VERIFY_X509_STRICT, Go, Node)
// refuse a self-signed leaf as its own root. The CA's key is never
// written: it goes when this returns.
func newPortTLS(now time.Time) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := now.Add(-tlsBackdate), now.Add(tlsLifetime)
	caSerial, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: caSerial,
		Subject:      pkix.Name{Organization: []string{"tokentray"}, CommonName: "tokentray proxy ports CA"},
		NotBefore:    notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafSerial, err := serial()
	if err != nil {
		return nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: leafSerial,
		Subject:      pkix.Name{Organization: []string{"tokentray"}, CommonName: "tokentray proxy port"},
		NotBefore:    notBefore, NotAfter: notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, b := range []*pem.Block{{Type: "CERTIFICATE", Bytes: leafDER}, {Type: "CERTIFICATE", Bytes: caDER}, {Type: "PRIVATE KEY", Bytes: keyDER}} {
		_ = pem.Encode(&out, b)
	}
	return out.Bytes(), nil
}

// serial is a random serial number of up to 128 bits, positive as RFC
// 5280 wants it (and 20 octets at most).
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}
