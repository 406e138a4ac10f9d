package file

import "io/fs"

// private: on Windows a directory under the user's profile is the user's
// own by its inherited ACL; mode bits mean nothing there.
func private(string, fs.FileInfo, string) error { return nil }

// syncDir: Windows makes a rename durable with the file, and cannot sync a
// directory handle.
func syncDir(string) error { return nil }
