package socket

import "syscall"

// newSocket is a unix stream socket closed on exec, made so in the one call.
func newSocket() (int, error) {
	return syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
}
