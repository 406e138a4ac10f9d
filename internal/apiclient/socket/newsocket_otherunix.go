//go:build unix && !linux

package socket

import "syscall"

// newSocket is a unix stream socket closed on exec.
func newSocket() (int, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	return fd, err
}
