package socket

import (
	"os"
	"syscall"
)

// PrivateDir creates dir; the local API's server gives it an ACL that lets
// only the user in (internal/localapi). It lives under the user's profile,
// where no other user can plant anything.
func PrivateDir(dir string) error { return os.MkdirAll(dir, 0o700) }

// Check: see PrivateDir.
func Check(string) error { return nil }

// CheckConn: see PrivateDir; the server checks its peers.
func CheckConn(string, syscall.Conn) error { return nil }
