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
	// A client's socket is in /proc/net/tcp, or, when it is an IPv6 one
	// that reached us at ::ffff:127.0.0.1, in /proc/net/tcp6.
	uid, found := tcpSocketOwner("/proc/net/tcp", procAddr(remote.IP.To4(), remote.Port), procAddr(local.IP.To4(), local.Port))
	if !found {
		uid, found = tcpSocketOwner("/proc/net/tcp6", procAddr(remote.IP.To16(), remote.Port), procAddr(local.IP.To16(), local.Port))
	}
	switch {
	case !found:
		// Not listed (it closed meanwhile, or the kernel hides it):
		// nobody can say it is ours, so it is not.
		return peerOtherUser
	case uid != os.Getuid():
		return peerOtherUser
	}
	return peerSameUser
}

// procAddr is an address as /proc/net/tcp{,6} writes it: each 32-bit word
// of it as the host's number in hex (little-endian on every Linux machine
// Go runs on but s390x and the big-endian MIPS/PPC ones), then the port.
func procAddr(ip net.IP, port int) string {
	var b strings.Builder
	for i := 0; i+4 <= len(ip); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(ip[i:i+4]))
	}
	return fmt.Sprintf("%s:%04X", b.String(), port)
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
