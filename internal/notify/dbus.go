//go:build linux || freebsd || openbsd || netbsd

package notify

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"log/slog"
	"slices"
	"sync"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"

	"github.com/tokentray/tokentray/internal/safetext"
)

// DBus is the notifier of freedesktop desktops.
type DBus struct {
	conn    *dbus.Conn
	n       notify.Notifier
	appName string
	actions bool
	markup  bool // the server renders the body's markup
	log     *slog.Logger

	mu       sync.Mutex
	ids      map[string]uint32 // key -> id of the notification shown
	handlers map[uint32]func()
}

// NewDBus connects to the session bus on a private connection (the tray's
// own connection must not receive this package's signal subscriptions).
func NewDBus(appName string, log *slog.Logger) (*DBus, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, fmt.Errorf("connect to the session bus: %w", err)
	}
	d := &DBus{conn: conn, appName: appName, log: log, ids: map[string]uint32{}, handlers: map[uint32]func(){}}
	d.n, err = notify.New(conn, notify.WithOnAction(d.onAction), notify.WithOnClosed(d.onClosed), notify.WithLogger(slogPrintf{log}))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("listen for notification signals: %w", err)
	}
	caps, err := d.n.GetCapabilities()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("no notification server on the session bus: %w", err)
	}
	d.actions = slices.Contains(caps, "actions")
	d.markup = slices.Contains(caps, "body-markup")
	return d, nil
}

// Actionable reports whether the server shows action buttons.
func (d *DBus) Actionable() bool { return d.actions }

// Send shows m, replacing the notification with the same key.
func (d *DBus) Send(m Message) (bool, error) {
	body := m.Body
	if d.markup {
		// A body is text, also where it quotes a provider or a server: a
		// link or tag in their words must show as written, not render.
		// Without body-markup the server shows the body as it is, and
		// entities would show literally.
		body = safetext.Markup(body)
	}
	n := notify.Notification{
		AppName: d.appName, Summary: m.Title, Body: body,
		ExpireTimeout: notify.ExpireTimeoutSetByNotificationServer,
	}
	d.mu.Lock()
	n.ReplacesID = d.ids[m.Key]
	d.mu.Unlock()
	if m.Urgent {
		n.SetUrgency(notify.UrgencyCritical)
	} else {
		n.SetUrgency(notify.UrgencyNormal)
	}
	if img := decodeRGBA(m.Icon); img != nil {
		n.AddHint(notify.HintImageDataRGBA(img))
	}
	actionable := d.actions && m.Action != "" && m.OnAction != nil
	if actionable {
		// "default" is a click on the notification itself.
		n.Actions = []notify.Action{{Key: "default", Label: m.Action}, {Key: "act", Label: m.Action}}
	}
	id, err := d.n.SendNotification(n)
	if err != nil {
		return false, fmt.Errorf("send notification: %w", err)
	}
	d.mu.Lock()
	delete(d.handlers, n.ReplacesID)
	d.ids[m.Key] = id
	if actionable {
		d.handlers[id] = m.OnAction
	}
	d.mu.Unlock()
	return actionable, nil
}

func (d *DBus) onAction(s *notify.ActionInvokedSignal) {
	d.mu.Lock()
	h := d.handlers[s.ID]
	d.mu.Unlock()
	if h != nil {
		h()
	}
}

func (d *DBus) onClosed(s *notify.NotificationClosedSignal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.handlers, s.ID)
	for k, id := range d.ids {
		if id == s.ID {
			delete(d.ids, k)
		}
	}
}

// Close ends the D-Bus connection.
func (d *DBus) Close() error {
	if d.n != nil {
		_ = d.n.Close()
	}
	return d.conn.Close()
}

func decodeRGBA(b []byte) *image.RGBA {
	if len(b) == 0 {
		return nil
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	rgba := image.NewRGBA(img.Bounds())
	draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
	return rgba
}

type slogPrintf struct{ log *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) {
	if s.log != nil {
		s.log.Debug(fmt.Sprintf(format, v...))
	}
}

// New returns the best notifier here: D-Bus with actions when a
// notification server answers, beeep otherwise.
func New(appName string, log *slog.Logger) Notifier {
	d, err := NewDBus(appName, log)
	if err != nil {
		if log != nil {
			log.Info("D-Bus notifications unavailable; using beeep", "err", err)
		}
		return Beeep{}
	}
	return d
}
