//go:build !windows

package localapi

import "net"

// Listen listens for the local API on the socket at path (listenSocket).
func Listen(path string) (net.Listener, error) { return listenSocket(path) }

// SocketError is nil: the API listens on its socket alone here.
func SocketError(net.Listener) error { return nil }
