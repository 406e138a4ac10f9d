package filelock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSecondLockWaitsForTheFirst(t *testing.T) {
	d := &Dir{Path: filepath.Join(t.TempDir(), "locks"), Retry: time.Millisecond}
	unlock, err := d.Lock(context.Background(), "procore")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := d.Lock(context.Background(), "procore")
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second lock taken while the first is held (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// Other connections are independent.
	u2, err := d.Lock(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	info, err := os.Stat(d.Path)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("lock directory mode %v, %v", info.Mode().Perm(), err)
	}
}

func TestLockGivesUpWithTheContext(t *testing.T) {
	d := &Dir{Path: t.TempDir(), Retry: time.Millisecond}
	unlock, _ := d.Lock(context.Background(), "x")
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := d.Lock(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestNamesAreSafeFileNames(t *testing.T) {
	if got := safeName("../a b/c"); got != ".._a_b_c" {
		t.Fatalf("safeName = %q", got)
	}
}
