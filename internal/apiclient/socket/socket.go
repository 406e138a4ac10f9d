// Package socket is where the local API listens and the lightest way to
// ask it one thing: the socket's path, a dial without the network poller,
// and what "nobody answers there" looks like. It imports nothing of
// tokentray and no HTTP, so that `tokentray token NAME` stays small.
package socket

import (
	"errors"
	"syscall"
)

// IsNotRunning: no socket, or nobody listening on it. Anything else, such
// as "permission denied", is a real error and must be seen.
func IsNotRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
