//go:build linux || darwin

package localapi

import "net"

// peerUID returns the uid of the process at the other end of c, as the
// kernel reports it (peerUIDOf, per platform).
func peerUID(c net.Conn) (int, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	uid, found := 0, false
	if err := raw.Control(func(fd uintptr) { uid, found = peerUIDOf(int(fd)) }); err != nil {
		return 0, false
	}
	return uid, found
}
