//go:build linux

// Command tokenfloor is the floor of `tokentray token NAME`: a Go program
// that only connects to the running tokentray's socket, writes the one
// request and writes the answer's body to stdout. It checks nothing (no
// owner, no mode, no peer, no status, no JSON), finds nothing (the socket
// is its first argument), allocates next to nothing and falls back to
// nothing: what is left is the Go runtime's start, the kernel's exec and
// socket, and the resident process's answer. BenchmarkTokenCommand
// (internal/e2e) runs it beside `tokentray token NAME` and a Go hello world.
//
// usage: tokenfloor SOCKET NAME
package main

import (
	"os"
	"syscall"
)

// buf holds the request, then the answer.
var buf [4096]byte

func main() {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil || syscall.Connect(fd, &syscall.SockaddrUnix{Name: os.Args[1]}) != nil {
		os.Exit(1)
	}
	n := copy(buf[:], "GET /v1/connections/")
	n += copy(buf[n:], os.Args[2])
	n += copy(buf[n:], "/token HTTP/1.0\r\nHost: tokentray\r\n\r\n")
	if _, err := syscall.Write(fd, buf[:n]); err != nil {
		os.Exit(1)
	}
	n = 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m == 0 {
			break
		}
		n += m
	}
	answer := buf[:n]
	for i := 0; i+4 <= len(answer); i++ {
		if string(answer[i:i+4]) == "\r\n\r\n" {
			answer = answer[i+4:]
			break
		}
	}
	_, _ = syscall.Write(1, answer)
}
