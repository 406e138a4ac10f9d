package localapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tokentray/tokentray/internal/apiclient/socket"
)

var errAnotherListens = errors.New("another tokentray already listens")

// listenSocket makes the socket's directory private (socket.PrivateDir: 0700,
// the user's, never a link), replaces a stale socket, and listens with
// mode 0600. A socket that a live tokentray answers on is left alone.
func listenSocket(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := socket.PrivateDir(dir); err != nil {
		return nil, err
	}
	if err := restrictDir(dir); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w on %s", errAnotherListens, path)
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
