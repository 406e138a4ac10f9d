//go:build !windows

package main

import "os/exec"

// leaveOwnConsole: only Windows gives a program started from a menu a
// console window of its own.
func leaveOwnConsole() {}

// noConsoleWindow: only Windows opens console windows for programs.
func noConsoleWindow(*exec.Cmd) {}
