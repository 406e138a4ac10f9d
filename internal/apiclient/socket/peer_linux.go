package socket

import "syscall"

// peerUID reads SO_PEERCRED: the credentials of the process that called
// listen on the other end.
func peerUID(fd int) (uid int, ok bool, err error) {
	cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return 0, false, err
	}
	return int(cred.Uid), true, nil
}
