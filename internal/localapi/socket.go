package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultPath is $XDG_RUNTIME_DIR/tokentray/api.sock, or, where there is no
// runtime directory, api.sock in a private per-user directory: under the
// temp dir on Unix, %LOCALAPPDATA%\tokentray on Windows (AF_UNIX, which
// Windows 10 and later have, so curl --unix-socket works there too).
func DefaultPath() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "tokentray", "api.sock")
	}
	return filepath.Join(defaultDir(), "api.sock")
}

// ErrNotRunning means no tokentray answers on the socket.
var ErrNotRunning = errors.New("no tokentray tray is running")

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

// dialer connects to the socket.
func dialer(path string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}
