//go:build unix

package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/auth"
)

func TestWhatOthersCouldReadIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod 700 "+dir) {
		t.Fatalf("a 0755 directory: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTokens(ctx, "p", tokens("rt-1"), auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "p.tokens")
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadTokens(ctx, "p"); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("a 0640 file: %v", err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Fatalf("the refused file was changed: %v", info.Mode())
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a symlink as the directory: %v", err)
	}
}
