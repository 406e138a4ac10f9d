//go:build e2e

package e2e

import (
	"math/rand/v2"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"
)

// TestSIGKILLDuringRefreshes kills the real binary at random points of 100
// refreshes against oidc-provider, with the real keyring and with the file
// store of a server (no session bus). After each kill a fresh process must
// refresh without a sign-in, except when the kill fell between the server
// consuming the refresh token and the store receiving its successor: no
// client can close that window (the answer died with the process), so the
// test counts it and checks that it ends in a clear "sign in again" (exit
// 3), never in a silent failure.
func TestSIGKILLDuringRefreshes(t *testing.T) {
	t.Run("keyring", func(t *testing.T) { killDuringRefreshes(t, setup(t)) })
	t.Run("file", func(t *testing.T) {
		h := setup(t)
		h.useFileStore()
		killDuringRefreshes(t, h)
	})
}

func killDuringRefreshes(t *testing.T, h *harness) {
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")

	// How long one whole refresh process takes, to kill within it.
	var took []time.Duration
	for range 5 {
		start := time.Now()
		h.must("", "refresh", "e2e")
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	span := took[len(took)/2] * 12 / 10
	t.Logf("a refresh process takes %s (median of 5); kills fall uniformly in the first %s", took[len(took)/2].Round(time.Millisecond), span.Round(time.Millisecond))

	consumed := func() int { return h.events.count("refresh_token.consumed", "") }
	var before, completed, window, signIns int
	for i := range 100 {
		rt0 := h.storedTokens("e2e")["refresh_token"]
		// The server's log lines arrive on a pipe: the last restart's
		// consumption must be counted before this kill's is looked for.
		h.sync()
		c0 := consumed()
		cmd := exec.Command(h.bin, "refresh", "e2e")
		cmd.Env = h.env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(span))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		h.sync() // the server has finished a request the kill cut off

		rt1 := h.storedTokens("e2e")["refresh_token"]
		processed := consumed() > c0
		r := h.runQuiet("", "refresh", "e2e") // the restart: a new process, no sign-in
		switch {
		case rt1 != rt0:
			completed++
		case !processed:
			before++
		default:
			window++
			if r.code != 3 {
				t.Fatalf("kill %d: the refresh token died with the process, but the next refresh exited %d, want 3 (sign in again):\n%s", i, r.code, r.stderr)
			}
			h.must("", "login", "e2e", "--timeout", "90s")
			signIns++
			continue
		}
		if r.code != 0 {
			t.Fatalf("kill %d (%s): the restarted refresh exited %d; the connection was lost without cause:\n%s",
				i, map[bool]string{true: "after the save", false: "before the server"}[rt1 != rt0], r.code, r.stderr)
		}
	}
	t.Logf("100 SIGKILLs: %d before the request reached the server, %d after the new tokens were saved: all green on restart without a sign-in; %d in the window between the server's rotation and the save (each answered with exit 3 and signed in again: %d)",
		before, completed, window, signIns)
	if before+completed+window != 100 {
		t.Fatal("kills unaccounted for")
	}
}
