//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
)

// TestConnectionsChangeWhileTheTrayRuns runs the real tray under Xvfb: the
// menu's "Add connection…" and "Edit…" open the editor's windows, and a
// connection added to or removed from the config file shows up in, and
// leaves, the tray menu and the local API without a restart.
func TestConnectionsChangeWhileTheTrayRuns(t *testing.T) {
	h := setup(t)
	display, item := h.signedInTray(t)
	drawTrayHost(t, item, "tray-menu.png")

	add := findMenu(t, item, "Add connection…")
	if err := dbustest.Click(item, add.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	screenshotWindow(t, display, "Add connection — tokentray", "editor-add.png")

	// A connection written into the file by hand runs within seconds.
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	before, _ := os.ReadFile(cfgPath)
	second := fmt.Sprintf(`
[[connection]]
name = "e2e-second"
provider = "generic"
client_id = "tokentray-e2e"
redirect_uri = "http://localhost:%d/callback"
auth_url = "http://127.0.0.1:%d/auth"
token_url = "http://127.0.0.1:%d/token"
`, freePort(t), h.port, h.port)
	if err := os.WriteFile(cfgPath, append(before, second...), 0o600); err != nil {
		t.Fatal(err)
	}
	if line := findMenu(t, item, "e2e-second — "); line.Label != "e2e-second — not signed in" {
		t.Fatalf("the added connection's line is %q", line.Label)
	}
	if got := apiConnections(t); strings.Join(got, ",") != "e2e,e2e-second" {
		t.Fatalf("the local API serves %v", got)
	}
	if r := h.run("", "token", "e2e-second"); r.code != 3 || !strings.Contains(r.stderr, "login e2e-second") {
		t.Fatalf("token of a connection never signed in: exit %d\n%s", r.code, r.stderr)
	}
	waitColour(t, item, "red") // one of two is not signed in

	// Taken out again: gone from the menu and the API; e2e never stopped.
	if err := os.WriteFile(cfgPath, before, 0o600); err != nil {
		t.Fatal(err)
	}
	waitColour(t, item, "green")
	items, _ := dbustest.Menu(item)
	for _, it := range items {
		if strings.HasPrefix(it.Label, "e2e-second") {
			t.Fatalf("the removed connection is still in the menu: %q", it.Label)
		}
	}
	if got := apiConnections(t); strings.Join(got, ",") != "e2e" {
		t.Fatalf("the local API serves %v", got)
	}

	edit := findMenu(t, item, "e2e — ")
	click(t, item, edit, "Edit…")
	time.Sleep(1500 * time.Millisecond)
	screenshotWindow(t, display, "Edit e2e — tokentray", "editor-edit.png")
}

// screenshotWindow saves the window titled title. The window is looked up
// by name first: import given a name it cannot find waits for a click.
func screenshotWindow(t *testing.T, display, title, name string) {
	dir := os.Getenv("E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := append(os.Environ(), "DISPLAY="+display)
	// The window process starts on demand: wait for its window.
	var id [][]byte
	for {
		find := exec.CommandContext(ctx, "xwininfo", "-name", title)
		find.Env = env
		out, err := find.CombinedOutput()
		if id = regexp.MustCompile(`Window id: (0x[0-9a-f]+)`).FindSubmatch(out); err == nil && id != nil {
			break
		}
		if ctx.Err() != nil {
			t.Errorf("no window %q on the display: %v %s", title, err, out)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // its first frame
	shot := exec.CommandContext(ctx, "import", "-window", string(id[1]), filepath.Join(dir, name))
	shot.Env = env
	if out, err := shot.CombinedOutput(); err != nil {
		t.Errorf("screenshot of %q: %v %s", title, err, out)
	}
}

func apiConnections(t *testing.T) []string {
	t.Helper()
	sock := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "tokentray", "api.sock")
	out, err := exec.Command("curl", "-sS", "--unix-socket", sock, "http://tokentray/v1/connections").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	var list []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("the API answered %s: %v", out, err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	return names
}

// drawTrayHost draws what a panel shows for the tray item: its icon, and
// its menu as exported over D-Bus with the first connection's submenu
// open. It is the test's own tray host; the labels, separators and check
// marks are the running tray's.
func drawTrayHost(t *testing.T, item dbustest.Item, name string) {
	dir := os.Getenv("E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	items, err := dbustest.Menu(item)
	if err != nil || len(items) == 0 {
		t.Fatalf("read the menu: %v", err)
	}
	icon, err := dbustest.TrayIconImage(item)
	if err != nil {
		t.Fatal(err)
	}
	a := test.NewTempApp(t)
	a.Settings().SetTheme(theme.DefaultTheme())

	main := widget.NewMenu(fyne.NewMenu("", fyneItems(items)...))
	sub := widget.NewMenu(fyne.NewMenu("", fyneItems(items[0].Children)...))
	mainSize, subSize := main.MinSize(), sub.MinSize()
	const panelHeight, margin = 32, 12
	width := subSize.Width + mainSize.Width + 2*margin + 40
	height := panelHeight + fyne.Max(mainSize.Height, subSize.Height) + margin

	panel := canvas.NewRectangle(color.NRGBA{0x20, 0x22, 0x26, 0xff})
	panel.Resize(fyne.NewSize(width, panelHeight))
	img := canvas.NewImageFromImage(icon)
	img.FillMode = canvas.ImageFillContain
	img.Resize(fyne.NewSize(22, 22))
	img.Move(fyne.NewPos(width-margin-22-8, 5))
	highlight := canvas.NewRectangle(color.NRGBA{0xff, 0xff, 0xff, 0x30})
	highlight.Resize(fyne.NewSize(34, panelHeight))
	highlight.Move(fyne.NewPos(width-margin-22-14, 0))
	desk := canvas.NewRectangle(color.NRGBA{0x5b, 0x6b, 0x7d, 0xff})
	desk.Resize(fyne.NewSize(width, height))
	// The window gets its size before the menus are put in: a menu fits
	// itself to the room left in its canvas.
	w := test.NewTempWindow(t, canvas.NewRectangle(color.Transparent))
	w.SetPadded(false)
	w.Resize(fyne.NewSize(width, height))
	w.SetContent(container.NewWithoutLayout(desk, panel, highlight, img, main, sub))
	main.Move(fyne.NewPos(width-margin-mainSize.Width, panelHeight))
	main.Resize(mainSize)
	sub.Move(fyne.NewPos(width-margin-mainSize.Width-subSize.Width+2, panelHeight+4))
	sub.Resize(subSize)
	writePNG(t, filepath.Join(dir, name), w.Canvas().Capture())
}

func fyneItems(items []dbustest.MenuItem) []*fyne.MenuItem {
	var out []*fyne.MenuItem
	for _, it := range items {
		if it.Separator {
			out = append(out, fyne.NewMenuItemSeparator())
			continue
		}
		m := fyne.NewMenuItem(it.Label, func() {})
		m.Checked, m.Disabled = it.Checked, it.Disabled
		if len(it.Children) > 0 {
			m.ChildMenu = fyne.NewMenu("", fyneItems(it.Children)...)
		}
		out = append(out, m)
	}
	return out
}

func writePNG(t *testing.T, path string, img image.Image) {
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}
