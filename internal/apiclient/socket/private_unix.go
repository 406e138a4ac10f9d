//go:build unix

package socket

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// PrivateDir makes dir the user's private directory for sockets (the local
// API's, the ssh control connections'), or refuses it: created 0700 if
// missing; an existing one must be a directory, not a symbolic link (never
// followed: a link planted in the temporary directory would have tokentray
// chmod, and listen in, a directory of the planter's choosing), and owned
// by the user; its mode is narrowed to 0700 through the opened directory
// itself, so nothing is changed through a link swapped in between.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if info, lerr := os.Lstat(dir); lerr == nil {
			return &UnsafeError{Path: dir, Why: "is " + kindOf(info) + ", not a directory of yours"}
		}
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := ownedByMe(dir, &st); err != nil {
		return err
	}
	if st.Mode&0o077 != 0 {
		if err := syscall.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("%s is open to other users and cannot be restricted: %w", dir, err)
		}
	}
	return nil
}

// Check is what a client checks before it connects to the socket at path:
// its directory is a directory of the user's that no one else can write
// to (not a link), and the socket is a socket of the user's. An error that
// satisfies IsNotRunning means there is nothing there yet.
func Check(path string) error {
	dir := filepath.Dir(path)
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return &UnsafeError{Path: dir, Why: "is " + kindOf(info) + ", not a directory of yours"}
	}
	if err := ownedByMe(dir, info.Sys().(*syscall.Stat_t)); err != nil {
		return err
	}
	if info.Mode().Perm()&0o022 != 0 {
		return &UnsafeError{Path: dir, Why: fmt.Sprintf("can be written by other users (mode %04o)", info.Mode().Perm())}
	}
	info, err = os.Lstat(path)
	if err != nil {
		return err
	}
	if info.Mode().Type() != os.ModeSocket {
		return &UnsafeError{Path: path, Why: "is " + kindOf(info) + ", not a socket"}
	}
	return ownedByMe(path, info.Sys().(*syscall.Stat_t))
}

// CheckConn refuses a connection whose other end is a process of another
// user, as the kernel reports it, before anything is sent on it.
func CheckConn(path string, c syscall.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) { cerr = checkPeer(path, int(fd)) }); err != nil {
		return err
	}
	return cerr
}

// checkPeer compares the uid of the process that listens at the other end
// of fd with ours.
func checkPeer(path string, fd int) error {
	uid, ok, err := peerUID(fd)
	switch {
	case err != nil:
		return fmt.Errorf("ask who answers on %s: %w", path, err)
	case ok && uid != os.Getuid():
		return &UnsafeError{Path: path, Why: fmt.Sprintf("is answered by a process of %s, not by one of yours (uid %d)", userName(uid), os.Getuid())}
	}
	return nil
}

func ownedByMe(path string, st *syscall.Stat_t) error {
	if int(st.Uid) != os.Getuid() {
		return &UnsafeError{Path: path, Why: fmt.Sprintf("belongs to %s, not to you (uid %d)", userName(int(st.Uid)), os.Getuid())}
	}
	return nil
}

// userName is "uid N", without asking the user database: os/user would
// link cgo or parse /etc/passwd into the small front program.
func userName(uid int) string { return fmt.Sprintf("uid %d", uid) }

func kindOf(info os.FileInfo) string {
	switch t := info.Mode().Type(); {
	case t&os.ModeSymlink != 0:
		return "a symbolic link"
	case t&os.ModeSocket != 0:
		return "a socket"
	case info.IsDir():
		return "a directory"
	case t == 0:
		return "a file"
	}
	return "a special file"
}
