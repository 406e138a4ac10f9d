//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
)

// TestDemoAsANewUser starts `tokentray demo` as the README's run command
// does, with a desktop of the test's own: a tray host, a notification
// server, and Chromium as the browser. The demo signs in, shows green and
// refreshes; "Break the refresh token" turns it red within seconds with one
// notification; its Re-authenticate action signs in again and it is green.
func TestDemoAsANewUser(t *testing.T) {
	h := setup(t)
	notifier, err := dbustest.StartNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer notifier.Close()
	display := startXvfb(t)
	_, item := h.startTray(t, display, "demo", "--lifetime", "30s")
	waitColour(t, item, "green") // the demo opened the browser, and Chromium signed in
	signedIn := demoStatus(t)
	screenshotWindow(t, display, "tokentray", "demo-dashboard-green.png")

	// It refreshes on its own at 80 % of the 30-second lifetime.
	deadline := time.Now().Add(40 * time.Second)
	for st := demoStatus(t); !st.LastRefresh.After(signedIn.AccessObtained) || !st.LastRefreshOK; st = demoStatus(t) {
		if time.Now().After(deadline) {
			t.Fatalf("no refresh within 40 s of a 30-second token: %+v", st)
		}
		time.Sleep(250 * time.Millisecond)
	}
	waitColour(t, item, "green")
	// After each refresh the tray proves the token against the demo API.
	refreshed := demoStatus(t).LastRefresh
	for st := demoStatus(t); st.LastCheck == nil || st.LastCheck.Time.Before(refreshed); st = demoStatus(t) {
		if time.Now().After(deadline) {
			t.Fatal("no API check after the refresh")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := demoStatus(t).LastCheck; c.Status != 200 || c.Who != "demo-user" {
		t.Fatalf("the API check after the refresh: %+v", c)
	}

	broken := time.Now()
	if err := dbustest.Click(item, findMenu(t, item, "Break the refresh token").ID); err != nil {
		t.Fatal(err)
	}
	waitColour(t, item, "red")
	t.Logf("red %s after Break the refresh token", time.Since(broken).Round(10*time.Millisecond))
	if took := time.Since(broken); took > 10*time.Second {
		t.Fatalf("red only after %s", took)
	}
	n, err := notifier.Next(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n.Summary != "demo: sign-in needed" || n.Actions["act"] != "Re-authenticate" {
		t.Fatalf("notification %+v", n)
	}
	screenshotWindow(t, display, "tokentray", "demo-dashboard-red.png")
	if err := notifier.Invoke(n.ID, "act"); err != nil {
		t.Fatal(err)
	}
	waitColour(t, item, "green")
	if back, err := notifier.Next(20 * time.Second); err != nil || back.Summary != "demo is connected again" {
		t.Fatalf("recovery notification: %+v %v", back, err)
	}
	if sent := notifier.Sent(); len(sent) != 2 {
		t.Fatalf("%d notifications, want 2 (sign-in needed, connected again): %+v", len(sent), sent)
	}
}

type demoState struct {
	State          string    `json:"state"`
	AccessObtained time.Time `json:"access_obtained"`
	LastRefresh    time.Time `json:"last_refresh"`
	LastRefreshOK  bool      `json:"last_refresh_ok"`
	LastCheck      *struct {
		Time   time.Time `json:"time"`
		Status int       `json:"status"`
		Who    string    `json:"who"`
		Error  string    `json:"error"`
	} `json:"last_check"`
}

// demoStatus asks the demo's local API, as a script would.
func demoStatus(t *testing.T) demoState {
	t.Helper()
	sock := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "tokentray", "api.sock")
	out, err := exec.Command("curl", "-sS", "--unix-socket", sock, "http://tokentray/v1/connections/demo").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	var st demoState
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("the API answered %s: %v", out, err)
	}
	return st
}
