// Package sibling finds the programs tokentray is made of (tokentray,
// tokentray-core, tokentray-window): installed side by side, as
// `go install ./cmd/...`, `bash .ci/app` and the packages put them.
package sibling

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Find is the program name beside this executable (its real path, through
// symlinks such as /usr/local/bin/tokentray), else on PATH. role says
// what it is for, in the error that says how to install it.
func Find(name, role string) (string, error) {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		if p := filepath.Join(filepath.Dir(exe), name); isFile(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", errors.New(role + " is the program " + name + ", which is neither beside this one nor on PATH: install all of tokentray's programs side by side (go install ./cmd/..., or bash .ci/app, builds them)")
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir()
}
