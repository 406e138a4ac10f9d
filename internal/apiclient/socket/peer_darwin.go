package socket

import "golang.org/x/sys/unix"

// peerUID reads LOCAL_PEERCRED.
func peerUID(fd int) (uid int, ok bool, err error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, false, err
	}
	return int(cred.Uid), true, nil
}
