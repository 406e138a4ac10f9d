package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
)

// become runs the program at path with this process's arguments and
// streams and exits with its exit code: Windows cannot replace a process.
// Ctrl-C reaches both, as they share the console: this one ignores it and
// waits for the program to finish its own way. It returns only when the
// program could not be started.
func become(path string, argv []string) error {
	signal.Ignore(os.Interrupt)
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	}
	return err
}
