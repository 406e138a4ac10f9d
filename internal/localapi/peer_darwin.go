package localapi

import "golang.org/x/sys/unix"

// peerUIDOf reads LOCAL_PEERCRED.
func peerUIDOf(fd int) (int, bool) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, false
	}
	return int(cred.Uid), true
}
