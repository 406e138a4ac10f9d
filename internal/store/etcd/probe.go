package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// whyNoAnswer looks at the endpoints when the cluster did not answer at
// Open, for a TLS mistake: gRPC tries a refused handshake again until the
// call's bound runs out, so a CA that does not trust the members, a
// certificate for another name, a client certificate that is missing or
// refused, or http:// to members that speak TLS all look like a cluster
// that does not run. It returns what it found, with what to fix, or ""
// when no endpoint shows such a mistake (none can be reached, or their
// handshakes go through).
func whyNoAnswer(endpoints []string, cfg *tls.Config, caFile string, timeout time.Duration) string {
	if timeout > 3*time.Second {
		timeout = 3 * time.Second
	}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			continue
		}
		conn, err := net.DialTimeout("tcp", u.Host, timeout)
		if err != nil {
			continue // a member that is down: the message says to check that they run
		}
		why := handshake(conn, u, cfg, caFile, timeout)
		_ = conn.Close()
		if why != "" {
			return why
		}
	}
	return ""
}

// handshake is what a TLS handshake with the member at u on conn shows.
func handshake(conn net.Conn, u *url.URL, cfg *tls.Config, caFile string, timeout time.Duration) string {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if u.Scheme == "http" {
		// Only to tell whether the member speaks TLS: nothing is sent
		// over this connection, and no certificate is trusted for it.
		probe := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if probe.Handshake() == nil {
			return fmt.Sprintf("%s speaks TLS: write https:// in store_endpoints (and give store_tls_ca when its certificate is not from a CA the system trusts)", u.Redacted())
		}
		return ""
	}
	c := cfg.Clone()
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	c.NextProtos = []string{"h2"}
	tc := tls.Client(conn, c)
	err := tc.Handshake()
	if err == nil {
		// With TLS 1.3 the member refuses a client certificate (or its
		// absence) after the handshake: its alert is the first read.
		_ = conn.SetReadDeadline(time.Now().Add(timeout))
		_, err = tc.Read(make([]byte, 1))
		if err != nil && !strings.Contains(err.Error(), "remote error: tls:") {
			return ""
		}
	}
	if err == nil {
		return ""
	}
	var host x509.HostnameError
	var authority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &host):
		return fmt.Sprintf("the certificate of %s is not for %s (%v): use a name (or address) it holds in store_endpoints", u.Redacted(), u.Hostname(), err)
	case errors.As(err, &authority) && caFile != "":
		return fmt.Sprintf("the certificate of %s is not signed by store_tls_ca (%s) (%v): give the CA that signed the members' certificates", u.Redacted(), caFile, err)
	case errors.As(err, &authority):
		return fmt.Sprintf("the certificate of %s is not signed by a CA this instance trusts (%v): give store_tls_ca, the CA that signed the members' certificates", u.Redacted(), err)
	case errors.As(err, &invalid):
		return fmt.Sprintf("the certificate of %s is refused (%v)", u.Redacted(), err)
	case strings.Contains(err.Error(), "remote error: tls:") && len(c.Certificates) == 0 && c.GetClientCertificate == nil:
		return fmt.Sprintf("%s asks for a client certificate, and this instance has none (%v): give store_tls_cert and store_tls_key, a certificate signed by the CA the members trust (their --trusted-ca-file)", u.Redacted(), err)
	case strings.Contains(err.Error(), "remote error: tls:"):
		return fmt.Sprintf("%s refused this instance's client certificate (%v): store_tls_cert must be signed by the CA the members trust (their --trusted-ca-file), and be valid now", u.Redacted(), err)
	}
	return ""
}
