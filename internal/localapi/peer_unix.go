//go:build linux || darwin

package localapi

import (
	"net"
	"os"
)

// checkPeer compares the uid of the process at the other end of c, as the
// kernel reports it (peerUIDOf, per platform), with ours.
func checkPeer(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peerUnknown
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peerUnknown
	}
	uid, found := 0, false
	if err := raw.Control(func(fd uintptr) { uid, found = peerUIDOf(int(fd)) }); err != nil || !found {
		return peerUnknown
	}
	if uid != os.Getuid() {
		return peerOtherUser
	}
	return peerSameUser
}
