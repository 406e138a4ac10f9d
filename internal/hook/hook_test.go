//go:build unix

package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/tstest/keepertest"
)

var payload = Payload{Alert: alerts.Alert{Connection: "procore", Kind: alerts.NeedsReauth, From: "connected", To: "needs_reauth",
	Error: "refresh failed: invalid_grant", Hint: "Sign in again", Time: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)},
	Provider: "procore", Environment: "sandbox"}

func TestHookGetsTheAlertOnStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alert.json")
	r := &Runner{Timeout: 5 * time.Second}
	if err := r.Run(context.Background(), "cat > "+out+"; echo \"$TOKENTRAY_ALERT $TOKENTRAY_CONNECTION\" >> "+out, payload); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("stdin is not JSON: %q", b)
	}
	for k, v := range map[string]any{"connection": "procore", "kind": "needs_reauth", "old_state": "connected", "new_state": "needs_reauth",
		"error": "refresh failed: invalid_grant", "hint": "Sign in again", "time": "2026-11-23T02:00:00Z", "provider": "procore", "environment": "sandbox"} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if lines[1] != "needs_reauth procore" {
		t.Errorf("environment: %q", lines[1])
	}
}

func TestFailingHookSaysWhy(t *testing.T) {
	err := (&Runner{}).Run(context.Background(), "echo 'webhook returned 404' >&2; exit 3", payload)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "webhook returned 404") {
		t.Fatalf("err = %v", err)
	}
}

func TestHangingHookIsKilledWithItsChildren(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "still-running")
	err := (&Runner{Timeout: 300 * time.Millisecond}).Run(context.Background(), "(sleep 2; touch "+marker+") & sleep 30", payload)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a child of the hook survived the kill")
	}
}

// TestStoppingTokentrayIsNotAHookFailure: a hook cut short because
// tokentray quits is not logged as failed; a hook that fails on its own is.
func TestStoppingTokentrayIsNotAHookFailure(t *testing.T) {
	for _, tc := range []struct {
		command  string
		quit     bool
		wantWarn bool
	}{{"sleep 30", true, false}, {"exit 4", false, true}} {
		var logs bytes.Buffer
		r := &Runner{Log: slog.New(slog.NewTextHandler(&logs, nil))}
		ctx, cancel := context.WithCancel(context.Background())
		if tc.quit {
			time.AfterFunc(200*time.Millisecond, cancel)
		}
		r.RunAndLog(ctx, tc.command, payload)
		cancel()
		if got := strings.Contains(logs.String(), "alert hook failed"); got != tc.wantWarn {
			t.Fatalf("%q (quit=%t): logged a failure %t, want %t:\n%s", tc.command, tc.quit, got, tc.wantWarn, logs.String())
		}
	}
}

// With a shared store, the hook of a keeper's alert runs only on the
// instance that claims the alert's occurrence (Runner.Claim), which names
// the generation of the tokens it is about.
func TestWatchRunsTheHookOnlyWhereTheAlertIsClaimed(t *testing.T) {
	tokenURL, _ := keepertest.Counting(t, http.StatusUnauthorized) // invalid_client
	for _, claimed := range []bool{true, false} {
		t.Run(fmt.Sprint("claimed=", claimed), func(t *testing.T) {
			store := auth.NewMemoryStore()
			gen := auth.NextGeneration(0, time.Now())
			if err := store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt",
				ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: gen}, 0); err != nil {
				t.Fatal(err)
			}
			k := keepertest.Loaded(t, store, tokenURL)
			out := filepath.Join(t.TempDir(), "alerts")
			asked := make(chan alerts.Alert, 1)
			ran := make(chan struct{})
			var log bytes.Buffer
			r := &Runner{Timeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(&log, nil)), Claim: func(_ context.Context, a alerts.Alert) bool {
				asked <- a
				return claimed
			}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			Watch(ctx, k, "cat >> "+out+" && touch "+out+".done", r)
			go func() {
				for {
					if _, err := os.Stat(out + ".done"); err == nil {
						close(ran)
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}()
			_ = k.Refresh(ctx)
			a := <-asked
			if a.Kind != alerts.ClientRefused || a.Generation != gen {
				t.Fatalf("claimed %s of generation %d; want client_refused of %d", a.Kind, a.Generation, gen)
			}
			if claimed {
				<-ran
				b, _ := os.ReadFile(out)
				if !strings.Contains(string(b), `"kind":"client_refused"`) || strings.Contains(string(b), "generation") {
					t.Fatalf("the hook read %q", b)
				}
				return
			}
			// Not claimed: the hook must not run. Its absence is only seen
			// by waiting; a run would be a failure, never a pass.
			select {
			case <-ran:
				t.Fatal("the hook ran for an alert another instance claimed")
			case <-time.After(500 * time.Millisecond):
			}
		})
	}
}
