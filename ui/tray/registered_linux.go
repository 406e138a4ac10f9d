package tray

import "github.com/godbus/dbus/v5"

// followRegistrations calls resend each time a StatusNotifierWatcher says
// that an item registered, until the returned func is called.
//
// Why: fyne.io/systray runs onReady while it is still exporting the item,
// and an icon, title or hover text set between its reading of them (for
// the item's properties) and its keeping of those properties is dropped,
// though remembered: the item goes on the bus with the older icon, and
// Show, which sends only what changed, never sends it again. An item
// registers with the watcher only after its properties are kept, so the
// registration is when what Show last sent is sent once more; it also
// covers a watcher that starts later (systray registers again then).
// Every item's registration counts, not only this one's: resending costs
// three property writes, and a desktop's items register rarely.
func followRegistrations(resend func()) (stop func()) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return func() {} // no session bus: systray has none either
	}
	if err := conn.AddMatchSignal(
		dbus.WithMatchInterface("org.kde.StatusNotifierWatcher"),
		dbus.WithMatchMember("StatusNotifierItemRegistered"),
	); err != nil {
		_ = conn.Close()
		return func() {}
	}
	signals := make(chan *dbus.Signal, 8)
	conn.Signal(signals)
	go func() {
		for s := range signals {
			if s != nil {
				resend()
			}
		}
	}()
	return func() {
		conn.RemoveSignal(signals)
		_ = conn.Close()
		close(signals)
	}
}
