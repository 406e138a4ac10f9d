package localapi

import (
	"net"
	"unsafe"

	"golang.org/x/sys/windows"
)

// sioAFUnixGetPeerPID is SIO_AF_UNIX_GETPEERPID (_WSAIOR(IOC_VENDOR, 256)):
// Windows' AF_UNIX has no SO_PEERCRED, but it tells the peer's process id.
const sioAFUnixGetPeerPID = 0x58000100

// checkPeer compares the user of the process at the other end of c with
// ours: the peer's pid (from the socket, or the pipe's client process),
// that process's token, its user SID. A peer whose process cannot be
// opened is treated as another user's: a process of our own user can
// always be queried.
func checkPeer(c net.Conn) peer {
	var pid uint32
	switch c := c.(type) {
	case *net.UnixConn:
		raw, err := c.SyscallConn()
		if err != nil {
			return peerUnknown
		}
		var ioErr error
		if err := raw.Control(func(fd uintptr) {
			var n uint32
			ioErr = windows.WSAIoctl(windows.Handle(fd), sioAFUnixGetPeerPID, nil, 0,
				(*byte)(unsafe.Pointer(&pid)), uint32(unsafe.Sizeof(pid)), &n, nil, 0)
		}); err != nil || ioErr != nil || pid == 0 {
			return peerUnknown // Windows before 10 1803: the directory's ACL protects
		}
	case interface{ Fd() uintptr }: // go-winio's pipe
		if err := windows.GetNamedPipeClientProcessId(windows.Handle(c.Fd()), &pid); err != nil || pid == 0 {
			return peerUnknown // the pipe's security descriptor protects
		}
	default:
		return peerUnknown
	}
	mine, err := currentUserSID()
	if err != nil {
		return peerUnknown
	}
	theirs, err := processUserSID(pid)
	if err != nil {
		return peerOtherUser
	}
	if !windows.EqualSid(mine, theirs) {
		return peerOtherUser
	}
	return peerSameUser
}

func currentUserSID() (*windows.SID, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, err
	}
	return u.User.Sid, nil
}

func processUserSID(pid uint32) (*windows.SID, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return nil, err
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return nil, err
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return nil, err
	}
	return u.User.Sid, nil
}
