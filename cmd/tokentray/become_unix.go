//go:build unix

package main

import (
	"os"
	"syscall"
)

// become replaces this process with the program at path, keeping its pid
// (for systemd, autostart and whoever waits on it), its arguments (argv[0]
// too, so that ps and pgrep see the command that was typed), environment
// and open files. It returns only on failure.
func become(path string, argv []string) error {
	return syscall.Exec(path, argv, os.Environ())
}
