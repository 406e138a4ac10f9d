package main

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// proxy-key prints the port's key alone, as scripts read it; --cacert the
// CA certificate alone, in PEM, the same each time, that agents pin.
func TestProxyKeyPrintsTheKeyOrTheCAToPin(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	c := newCLI(t)
	c.cfgText += "proxy_port = 8799\n"

	code, key, errs := c.run("", "proxy-key", "p")
	if code != 0 || !strings.HasPrefix(key, "ttk_") || strings.Count(key, "\n") != 1 {
		t.Fatalf("the key: exit %d %q %s", code, key, errs)
	}
	code, ca, errs := c.run("", "proxy-key", "--cacert", "p")
	if code != 0 {
		t.Fatalf("--cacert: exit %d %s", code, errs)
	}
	block, rest := pem.Decode([]byte(ca))
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("--cacert printed more or less than one certificate: %q", ca)
	}
	if cert, err := x509.ParseCertificate(block.Bytes); err != nil || !cert.IsCA {
		t.Fatalf("--cacert printed no CA: %v", err)
	}
	if _, again, _ := c.run("", "proxy-key", "p", "--cacert"); again != ca {
		t.Fatal("a second --cacert printed another CA")
	}
	if _, again, _ := c.run("", "proxy-key", "p"); again != key {
		t.Fatal("--cacert changed the key")
	}
	if code, out, errs := c.run("", "proxy-key", "p", "--cacert", "--rotate"); code != 2 || out != "" || !strings.Contains(errs, "do not go together") {
		t.Fatalf("--cacert --rotate: exit %d %q %s", code, out, errs)
	}
}
