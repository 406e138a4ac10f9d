// Package dbustest provides the desktop's D-Bus services for tests, on a
// private session bus (see .ci/desktop-session, or StartBus): a
// StatusNotifierWatcher, so that a tray item registers and can be read, and
// a notification server that records Notify calls and can press their
// actions.
package dbustest

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// Watcher owns org.kde.StatusNotifierWatcher.
type Watcher struct {
	conn  *dbus.Conn
	props *prop.Properties
	mu    sync.Mutex
	items []Item
	added chan Item
}

// Item is a registered tray item: a bus name and an object path.
type Item struct {
	Service string
	Path    dbus.ObjectPath
}

// StartWatcher connects, exports the watcher and owns its name.
func StartWatcher() (*Watcher, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	w := &Watcher{conn: conn, added: make(chan Item, 16)}
	const path = "/StatusNotifierWatcher"
	const iface = "org.kde.StatusNotifierWatcher"
	if err := conn.Export(w, path, iface); err != nil {
		conn.Close()
		return nil, err
	}
	w.props, err = prop.Export(conn, path, prop.Map{iface: {
		"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
		"IsStatusNotifierHostRegistered": {Value: true, Emit: prop.EmitTrue},
		"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitTrue},
	}})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := own(conn, iface); err != nil {
		conn.Close()
		return nil, err
	}
	return w, nil
}

// RegisterStatusNotifierItem is the D-Bus method items call.
func (w *Watcher) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	it := Item{Service: string(sender), Path: "/StatusNotifierItem"}
	if len(service) > 0 && service[0] == '/' {
		it.Path = dbus.ObjectPath(service)
	} else if service != "" {
		it.Service = service
	}
	w.mu.Lock()
	w.items = append(w.items, it)
	var names []string
	for _, i := range w.items {
		names = append(names, i.Service+string(i.Path))
	}
	w.mu.Unlock()
	w.props.SetMust("org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems", names)
	_ = w.conn.Emit("/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher.StatusNotifierItemRegistered", it.Service+string(it.Path))
	w.added <- it
	return nil
}

// RegisterStatusNotifierHost is accepted and ignored.
func (w *Watcher) RegisterStatusNotifierHost(string) *dbus.Error { return nil }

// WaitItem returns the next item that registers.
func (w *Watcher) WaitItem(timeout time.Duration) (Item, error) {
	select {
	case it := <-w.added:
		return it, nil
	case <-time.After(timeout):
		return Item{}, errors.New("no tray item registered with the StatusNotifierWatcher")
	}
}

// Close releases the name.
func (w *Watcher) Close() error { return w.conn.Close() }

// Notification is one recorded Notify call.
type Notification struct {
	ID      uint32
	AppName string
	Summary string
	Body    string
	Actions map[string]string // key -> label
	Urgency byte
	Replace uint32
}

// Notifier owns org.freedesktop.Notifications and records what it is sent.
type Notifier struct {
	conn *dbus.Conn
	caps []string
	mu   sync.Mutex
	next uint32
	sent []Notification
	got  chan Notification
}

// DefaultCapabilities are a notification server's as GNOME Shell's.
var DefaultCapabilities = []string{"actions", "body", "body-markup", "icon-static"}

// StartNotifier connects, exports the notification server with caps as its
// capabilities (DefaultCapabilities when none are given) and owns its name.
func StartNotifier(caps ...string) (*Notifier, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	if len(caps) == 0 {
		caps = DefaultCapabilities
	}
	n := &Notifier{conn: conn, caps: slices.Clone(caps), got: make(chan Notification, 64)}
	if err := conn.Export(n, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		conn.Close()
		return nil, err
	}
	if err := own(conn, "org.freedesktop.Notifications"); err != nil {
		conn.Close()
		return nil, err
	}
	return n, nil
}

// GetCapabilities is the D-Bus method.
func (n *Notifier) GetCapabilities() ([]string, *dbus.Error) {
	return n.caps, nil
}

// GetServerInformation is the D-Bus method.
func (n *Notifier) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "dbustest", "tokentray", "1.0", "1.2", nil
}

// Notify is the D-Bus method.
func (n *Notifier) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.mu.Lock()
	n.next++
	rec := Notification{ID: n.next, AppName: app, Summary: summary, Body: body, Actions: map[string]string{}, Replace: replaces}
	if replaces != 0 {
		rec.ID = replaces
	}
	for i := 0; i+1 < len(actions); i += 2 {
		rec.Actions[actions[i]] = actions[i+1]
	}
	if v, ok := hints["urgency"]; ok {
		if b, ok := v.Value().(byte); ok {
			rec.Urgency = b
		}
	}
	n.sent = append(n.sent, rec)
	n.mu.Unlock()
	n.got <- rec
	return rec.ID, nil
}

// CloseNotification is the D-Bus method.
func (n *Notifier) CloseNotification(id uint32) *dbus.Error {
	_ = n.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.NotificationClosed", id, uint32(3))
	return nil
}

// Next returns the next notification sent.
func (n *Notifier) Next(timeout time.Duration) (Notification, error) {
	select {
	case rec := <-n.got:
		return rec, nil
	case <-time.After(timeout):
		return Notification{}, errors.New("no notification arrived")
	}
}

// Sent returns every notification so far.
func (n *Notifier) Sent() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.sent...)
}

// Invoke presses an action of a shown notification, as a person would.
func (n *Notifier) Invoke(id uint32, key string) error {
	return n.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", id, key)
}

// Close releases the name.
func (n *Notifier) Close() error { return n.conn.Close() }

// Bus is a session bus of a test's own: a dbus-daemon that nothing else
// uses, for a test run outside .ci/desktop-session.
type Bus struct {
	// Address is for DBUS_SESSION_BUS_ADDRESS.
	Address string
	cmd     *exec.Cmd
}

// StartBus starts a dbus-daemon listening in dir (a fresh directory with a
// short path: a socket's fits in 104 bytes). It starts no services.
func StartBus(dir string) (*Bus, error) {
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=`+dir+`</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dbus-daemon: %w", err)
	}
	b := &Bus{cmd: cmd}
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case b.Address = <-addr:
	case <-time.After(10 * time.Second):
	}
	if b.Address == "" {
		_ = b.Close()
		return nil, errors.New("dbus-daemon said no address")
	}
	return b, nil
}

// Close stops the bus.
func (b *Bus) Close() error {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	return nil
}

func own(conn *dbus.Conn, name string) error {
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("own %s: %w", name, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("own %s: the name is taken", name)
	}
	return nil
}

// TrayIcon reads a tray item's icon (the largest pixmap) and returns its
// mean colour over opaque pixels, as red, green, blue in 0..255.
func TrayIcon(it Item) (r, g, b float64, err error) {
	img, err := TrayIconImage(it)
	if err != nil {
		return 0, 0, 0, err
	}
	var n float64
	for i := 0; i+3 < len(img.Pix); i += 4 {
		if img.Pix[i+3] < 200 {
			continue
		}
		r += float64(img.Pix[i])
		g += float64(img.Pix[i+1])
		b += float64(img.Pix[i+2])
		n++
	}
	if n == 0 {
		return 0, 0, 0, errors.New("the icon has no opaque pixels")
	}
	return r / n, g / n, b / n, nil
}

// TrayIconImage reads a tray item's largest icon pixmap, as a tray host
// draws it.
func TrayIconImage(it Item) (*image.NRGBA, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	v, err := conn.Object(it.Service, it.Path).GetProperty("org.kde.StatusNotifierItem.IconPixmap")
	if err != nil {
		return nil, err
	}
	var pixmaps []struct {
		W, H int32
		Data []byte
	}
	if err := v.Store(&pixmaps); err != nil {
		return nil, err
	}
	if len(pixmaps) == 0 {
		return nil, errors.New("the item has no icon pixmap")
	}
	best := pixmaps[0]
	for _, p := range pixmaps {
		if p.W > best.W {
			best = p
		}
	}
	if len(best.Data) < int(best.W*best.H*4) {
		return nil, fmt.Errorf("a %dx%d pixmap with %d bytes", best.W, best.H, len(best.Data))
	}
	img := image.NewNRGBA(image.Rect(0, 0, int(best.W), int(best.H)))
	for i := 0; i < int(best.W*best.H); i++ { // ARGB32, network byte order
		a, r, g, b := best.Data[4*i], best.Data[4*i+1], best.Data[4*i+2], best.Data[4*i+3]
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = r, g, b, a
	}
	return img, nil
}

// MenuItem is one entry of a tray item's dbusmenu.
type MenuItem struct {
	ID        int32
	Label     string
	Separator bool
	Checked   bool
	Disabled  bool
	Children  []MenuItem
}

type layout struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

// Menu reads the item's menu (com.canonical.dbusmenu at /StatusNotifierMenu).
func Menu(it Item) ([]MenuItem, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var revision uint32
	var root layout
	call := conn.Object(it.Service, "/StatusNotifierMenu").Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return nil, call.Err
	}
	if err := call.Store(&revision, &root); err != nil {
		return nil, err
	}
	return children(root), nil
}

func children(l layout) []MenuItem {
	var out []MenuItem
	for _, c := range l.Children {
		var sub layout
		if err := dbus.Store([]any{c.Value()}, &sub); err != nil {
			continue
		}
		label, _ := sub.Props["label"].Value().(string)
		kind, _ := sub.Props["type"].Value().(string)
		toggle, _ := sub.Props["toggle-state"].Value().(int32)
		enabled, set := sub.Props["enabled"].Value().(bool)
		out = append(out, MenuItem{ID: sub.ID, Label: label, Separator: kind == "separator", Checked: toggle == 1,
			Disabled: set && !enabled, Children: children(sub)})
	}
	return out
}

// Click sends a click to a menu item, as a tray host does.
func Click(it Item, id int32) error {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Object(it.Service, "/StatusNotifierMenu").Call("com.canonical.dbusmenu.Event", 0,
		id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
}
