package localapi

import (
	"context"
	"net"
	"net/http"
)

// What the package's external tests reach inside for.

// HandlerOf is s's handler, for a request made in the test's process.
func HandlerOf(s *Server) http.Handler { return s.handler() }

// WithUnknownPeer is ctx as a request's whose peer the platform cannot
// tell, as a handler sees it.
func WithUnknownPeer(ctx context.Context) context.Context {
	return context.WithValue(ctx, peerKey{}, peerUnknown)
}

var CheckTCPPeer, StatusOf = checkTCPPeer, statusOf

const PeerSameUser = peerSameUser

// PeerIsSameUser is whether the server's peer check knows the process at
// the other end of c as one of its own user.
func PeerIsSameUser(c net.Conn) bool { return checkPeer(c) == peerSameUser }
