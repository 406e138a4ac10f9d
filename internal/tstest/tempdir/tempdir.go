// Package tempdir gives tests a temporary directory that is also removed
// when the Windows tests run under Wine.
//
// Since Go 1.25, os.RemoveAll (and so t.TempDir's cleanup) deletes the
// contents of a directory with NtSetInformationFile(FileDispositionInformationEx),
// falling back to the older call only for the statuses real Windows gives.
// Wine 8.0 (Debian 12) answers STATUS_NOT_IMPLEMENTED ("Invalid function"),
// so every test that left a file in its t.TempDir failed in its cleanup.
// Real Windows is not affected: on it, and on every other system, New is
// t.TempDir.
package tempdir

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// New returns t.TempDir(). On Windows it also empties and removes the
// directory at the end of the test, one entry at a time with os.Remove
// (DeleteFileW and RemoveDirectoryW, which Wine has), before t.TempDir's own
// cleanup runs; that cleanup then finds nothing left to fail on.
func New(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if runtime.GOOS == "windows" {
		t.Cleanup(func() { removeDeepestFirst(dir) })
	}
	return dir
}

// removeDeepestFirst removes dir and everything under it, leaves before
// their directories. It does its best and says nothing: what it leaves,
// t.TempDir's cleanup reports.
func removeDeepestFirst(dir string) {
	var paths []string
	_ = filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, path)
		}
		return nil
	})
	// WalkDir visits a directory before its entries: reversed, every entry
	// comes before the directory that holds it.
	slices.Reverse(paths)
	for _, p := range paths {
		_ = os.Remove(p)
	}
}
