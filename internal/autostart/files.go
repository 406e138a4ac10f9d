//go:build !windows

package autostart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// path is the registration file of this platform.
func (e *Entry) path() (string, error) {
	dir := e.Dir
	if runtime.GOOS == "darwin" {
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			dir = filepath.Join(home, "Library", "LaunchAgents")
		}
		return filepath.Join(dir, e.ID+".plist"), nil
	}
	if dir == "" {
		cfg, err := os.UserConfigDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(cfg, "autostart")
	}
	return filepath.Join(dir, e.ID+".desktop"), nil
}

// Enabled reports whether tokentray starts at login.
func (e *Entry) Enabled() (bool, error) {
	p, err := e.path()
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Enable writes the registration.
func (e *Entry) Enable() error {
	p, err := e.path()
	if err != nil {
		return err
	}
	data := DesktopEntry(e.Name, "Keeps OAuth connections signed in", e.Args)
	if runtime.GOOS == "darwin" {
		data = LaunchAgent(e.ID, e.Args)
	}
	if err := writeFile(p, data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Disable removes the registration.
func (e *Entry) Disable() error {
	p, err := e.path()
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// writeFile writes atomically (temp file, rename) with mode 0644.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tokentray-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
