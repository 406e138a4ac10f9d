package localapi

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// checkTCPPeer finds the user of the process at the other end of a
// loopback TCP connection: the kernel lists every TCP socket with its
// owner in /proc/net/tcp, and the client's socket is the one whose local
// address is our peer's and whose remote address is ours.
func checkTCPPeer(c net.Conn) peer {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || local.IP.To4() == nil || remote.IP.To4() == nil {
		return peerUnknown
	}
	uid, found := tcpSocketOwner("/proc/net/tcp", procAddr(remote), procAddr(local))
	switch {
	case !found:
		return peerUnknown
	case uid != os.Getuid():
		return peerOtherUser
	}
	return peerSameUser
}

// procAddr is an IPv4 address as /proc/net/tcp writes it: the address as
// the host's 32-bit number in hex (little-endian on every Linux machine
// Go runs on but s390x and the big-endian MIPS/PPC ones), then the port.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip), a.Port)
}

// tcpSocketOwner is the uid of the socket from local to remote in a
// /proc/net/tcp listing.
func tcpSocketOwner(path, local, remote string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid …
		if len(fields) < 8 || fields[1] != local || fields[2] != remote {
			continue
		}
		uid, err := strconv.Atoi(fields[7])
		return uid, err == nil
	}
	return 0, false
}
