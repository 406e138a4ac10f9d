package localapi

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Listen creates the socket's directory with mode 0700 (refusing one owned by
// someone else or open to others), replaces a stale socket, and listens with
// mode 0600. A socket that a live tokentray answers on is left alone.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another tokentray already listens on %s", path)
	}
	_ = os.Remove(path) // stale socket of a process that died
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := restrictSocket(path); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict %s: %w", path, err)
	}
	return l, nil
}
