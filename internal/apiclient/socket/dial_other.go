//go:build !unix && !windows

package socket

import (
	"io"
	"net"
	"time"
)

// Dial connects to the socket at path (see dial_unix.go).
func Dial(path string, timeout time.Duration) (io.ReadWriteCloser, error) {
	return net.DialTimeout("unix", path, timeout)
}
