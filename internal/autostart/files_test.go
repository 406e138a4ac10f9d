//go:build !windows

package autostart

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestEnableDisableRoundTrip(t *testing.T) {
	e := &Entry{ID: "io.tokentray.tokentray", Name: "tokentray", Args: []string{"/usr/local/bin/tokentray"}, Dir: t.TempDir()}
	if on, err := e.Enabled(); on || err != nil {
		t.Fatalf("enabled before enabling: %v %v", on, err)
	}
	if err := e.Enable(); err != nil {
		t.Fatal(err)
	}
	if on, err := e.Enabled(); !on || err != nil {
		t.Fatalf("not enabled after enabling: %v", err)
	}
	p, _ := e.path()
	if validate, err := exec.LookPath("desktop-file-validate"); err == nil && runtime.GOOS == "linux" {
		if out, err := exec.Command(validate, p).CombinedOutput(); err != nil {
			t.Fatalf("desktop-file-validate: %v\n%s", err, out)
		}
	}
	if err := e.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("file left behind: %v", err)
	}
	if err := e.Disable(); err != nil {
		t.Fatalf("disabling twice: %v", err)
	}
}
