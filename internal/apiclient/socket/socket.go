// Package socket is where the local API listens and the lightest way to
// ask it one thing: the socket's path, a dial without the network poller,
// and what "nobody answers there" looks like. It imports nothing of
// tokentray and no HTTP, so that `tokentray token NAME` stays small.
package socket

import (
	"errors"
	"io/fs"
	"runtime"
	"syscall"
)

// IsNotRunning: no socket, or nobody listening on it. Anything else, such
// as "permission denied", is a real error and must be seen.
func IsNotRunning(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		runtime.GOOS == "windows" && errors.Is(err, wsaECONNREFUSED)
}

// wsaECONNREFUSED is Winsock's "connection refused", what connect answers
// on Windows for a socket file with nobody listening (or none at all). Go's
// syscall.ECONNREFUSED and ENOENT are numbers of Go's own there, which no
// Windows call returns.
const wsaECONNREFUSED = syscall.Errno(10061)
