//go:build unix

package socket

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
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
		return &wrapError{"create " + filepath.Dir(dir), err}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return &wrapError{"create " + dir, err}
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if info, lerr := os.Lstat(dir); lerr == nil {
			return &UnsafeError{Path: dir, Why: "is " + kindOf(info) + ", not a directory of yours"}
		}
		return &wrapError{"open " + dir, err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return &wrapError{"stat " + dir, err}
	}
	if err := ownedBy(dir, &st, os.Getuid()); err != nil {
		return err
	}
	if st.Mode&0o077 != 0 {
		if err := syscall.Fchmod(fd, 0o700); err != nil {
			return &wrapError{dir + " is open to other users and cannot be restricted", err}
		}
	}
	return nil
}

// Check is what a client checks before it connects to the socket at path:
// its directory is a directory of the user's that no one else can write
// to (not a link), and the socket is a socket of the user's. An error that
// satisfies IsNotRunning means there is nothing there yet.
func Check(path string) error { return check(path, os.Getuid()) }

// check is Check for the user uid: two lstat calls, and no allocation
// unless it refuses (`tokentray token NAME` runs it, and every allocation
// of a new size that a short process makes costs it page faults).
func check(path string, uid int) error {
	dir := filepath.Dir(path)
	var st syscall.Stat_t
	if err := lstat(dir, &st); err != nil {
		return err
	}
	if mode := uint32(st.Mode); mode&syscall.S_IFMT != syscall.S_IFDIR {
		return &UnsafeError{Path: dir, Why: "is " + kindOfMode(mode) + ", not a directory of yours"}
	}
	if err := ownedBy(dir, &st, uid); err != nil {
		return err
	}
	if perm := uint32(st.Mode) & 0o777; perm&0o022 != 0 {
		return &UnsafeError{Path: dir, Why: "can be written by other users (mode " + octal4(perm) + ")"}
	}
	if err := lstat(path, &st); err != nil {
		return err
	}
	if mode := uint32(st.Mode); mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return &UnsafeError{Path: path, Why: "is " + kindOfMode(mode) + ", not a socket"}
	}
	return ownedBy(path, &st, uid)
}

// lstat is os.Lstat without its FileInfo: the same errors.
func lstat(path string, st *syscall.Stat_t) error {
	for {
		err := syscall.Lstat(path, st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "lstat", Path: path, Err: err}
		}
		return nil
	}
}

// CheckConn refuses a connection whose other end is a process of another
// user, as the kernel reports it, before anything is sent on it.
func CheckConn(path string, c syscall.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) { cerr = checkPeer(path, int(fd), os.Getuid()) }); err != nil {
		return err
	}
	return cerr
}

// checkPeer compares the uid of the process that listens at the other end
// of fd with uid, ours.
func checkPeer(path string, fd, uid int) error {
	peer, ok, err := peerUID(fd)
	switch {
	case err != nil:
		return &wrapError{"ask who answers on " + path, err}
	case ok && peer != uid:
		return &UnsafeError{Path: path, Why: "is answered by a process of " + userName(peer) + ", not by one of yours (" + userName(uid) + ")"}
	}
	return nil
}

func ownedBy(path string, st *syscall.Stat_t, uid int) error {
	if int(st.Uid) != uid {
		return &UnsafeError{Path: path, Why: "belongs to " + userName(int(st.Uid)) + ", not to you (" + userName(uid) + ")"}
	}
	return nil
}

// userName is "uid N", without asking the user database: os/user would
// link cgo or parse /etc/passwd into the small front program.
func userName(uid int) string { return "uid " + strconv.Itoa(uid) }

// octal4 is fmt's %04o.
func octal4(n uint32) string {
	s := strconv.FormatUint(uint64(n), 8)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}

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

// kindOfMode is kindOf for a stat's mode.
func kindOfMode(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		return "a symbolic link"
	case syscall.S_IFSOCK:
		return "a socket"
	case syscall.S_IFDIR:
		return "a directory"
	case syscall.S_IFREG:
		return "a file"
	}
	return "a special file"
}
