package localapi

import "golang.org/x/sys/unix"

// peerUIDOf reads SO_PEERCRED.
func peerUIDOf(fd int) (int, bool) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, false
	}
	return int(cred.Uid), true
}
