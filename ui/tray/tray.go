// Package tray draws tokentray's system-tray icon and menu with
// fyne.io/systray alone: a StatusNotifierItem and a dbusmenu on the session
// bus, with no GUI toolkit and no event loop of its own, so the resident
// process costs nothing while nothing happens. The menu is a pure function
// of the connections' statuses (Menu); Tray puts it on the bus when its text
// changes.
package tray

import (
	"reflect"
	"strings"
	"sync"
	"time"

	"fyne.io/systray"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize"
)

// Item is one menu item. A zero Label with Separator set is a separator.
type Item struct {
	Label     string
	Separator bool
	// Checkbox makes it a check item; Checked is its state.
	Checkbox, Checked bool
	Disabled          bool
	Action            func()
	Children          []Item
}

// Actions are what the menu's items do. Each runs on a goroutine of its
// own: none may hold up the menu.
type Actions struct {
	SignIn, Refresh, Copy, SignOut, Edit func(name string)
	// Retry asks a [[remote]] server that cannot be reached again now.
	Retry                func(remote string)
	Dashboard, Add, Quit func()
	// SetAutostart turns starting at login on or off.
	SetAutostart func(on bool)
}

// MenuOptions say which of the app's items the menu has.
type MenuOptions struct {
	// Editable offers Add connection… and Edit… (a config file runs).
	Editable bool
	// Autostart is whether tokentray starts at login; nil hides the item.
	Autostart *bool
	// Extra items go above Quit (the demo's "Break the refresh token").
	Extra []Item
}

// Menu is the tray menu for conns at now: one line per connection with its
// actions, then the app's items. Its text changes at most once a minute
// while nothing happens (humanize.Summary).
func Menu(conns []apitype.Connection, now time.Time, a Actions, o MenuOptions) []Item {
	var items []Item
	for _, c := range conns {
		name := c.Name
		if c.Remote != "" {
			items = append(items, remoteLine(c, now, a))
			continue
		}
		line := Item{Label: humanize.MenuLine(c.Status, now), Children: []Item{
			{Label: "Re-authenticate", Action: func() { a.SignIn(name) }},
			{Label: "Refresh now", Action: func() { a.Refresh(name) }},
			{Label: "Copy access token", Action: func() { a.Copy(name) }},
			{Label: "Sign out…", Action: func() { a.SignOut(name) }},
		}}
		if o.Editable {
			// No separator above it: each one costs a layout update on the
			// bus at every redraw, a hundred of them with a hundred lines.
			line.Children = append(line.Children, Item{Label: "Edit…", Action: func() { a.Edit(name) }})
		}
		items = append(items, line)
	}
	if len(conns) == 0 {
		items = append(items, Item{Label: "No connections configured", Disabled: true})
	}
	items = append(items, Item{Separator: true}, Item{Label: "Open dashboard", Action: a.Dashboard})
	if o.Editable {
		items = append(items, Item{Label: "Add connection…", Action: a.Add})
	}
	if o.Autostart != nil {
		on := *o.Autostart
		items = append(items, Item{Label: "Start at login", Checkbox: true, Checked: on, Action: func() { a.SetAutostart(!on) }})
	}
	if len(o.Extra) > 0 {
		items = append(items, Item{Separator: true})
		items = append(items, o.Extra...)
	}
	return append(items, Item{Separator: true}, Item{Label: "Quit", Action: a.Quit})
}

// remoteLine is the line of a connection that a [[remote]] server keeps:
// its tokens stay there, so it is signed in (with this machine's browser)
// and refreshed from here, and no more; while the server cannot be
// reached, it can only be tried again.
func remoteLine(c apitype.Connection, now time.Time, a Actions) Item {
	name, server := c.Name, c.Remote
	line := Item{Label: humanize.MenuLine(c.Status, now)}
	if c.State == apitype.StateUnreachable {
		line.Children = []Item{{Label: "Try again now", Action: func() { a.Retry(server) }}}
		return line
	}
	line.Children = []Item{
		{Label: "Re-authenticate", Action: func() { a.SignIn(name) }},
		{Label: "Refresh now", Action: func() { a.Refresh(name) }},
	}
	return line
}

// Icon is the tray icon's PNG for a level.
func Icon(l humanize.Level) []byte {
	switch l {
	case humanize.Green:
		return assets.TrayGreen
	case humanize.Red:
		return assets.TrayRed
	}
	return assets.TrayGrey
}

// Tray is the icon and menu on the session bus.
type Tray struct {
	mu      sync.Mutex
	level   humanize.Level
	tooltip string
	menuKey string
	shape   string // the menu's structure, without its text
	made    []made // the items on the bus, in the order add made them
}

// made is an item on the bus, as it is now.
type made struct {
	m       *systray.MenuItem
	item    Item
	actions *[]func() // the menu's actions, by click index; read under Tray.mu
	index   int
}

// Run puts the tray on the session bus, calls onReady with it (on a
// goroutine of its own), and returns once Quit was called and onExit has
// run. Call it from the main goroutine: macOS and Windows draw trays there.
func Run(onReady func(*Tray), onExit func()) {
	t := &Tray{level: -1}
	// Listening before the item exists: its registration is not missed.
	stop := followRegistrations(t.resend)
	defer stop()
	systray.Run(func() {
		// Some StatusNotifierHosts fail on an item without a title.
		systray.SetTitle(title)
		onReady(t)
	}, onExit)
}

const title = "tokentray"

// resend sends the icon, title and hover text that Show last sent once
// more (followRegistrations says why).
func (t *Tray) resend() {
	t.mu.Lock()
	defer t.mu.Unlock()
	systray.SetTitle(title)
	if t.level >= 0 {
		systray.SetIcon(trayIcon(Icon(t.level)))
	}
	if t.tooltip != "" {
		systray.SetTooltip(t.tooltip)
	}
}

// Quit takes the tray off the bus; Run returns.
func Quit() { systray.Quit() }

// Show shows level's icon, the hover text and items, changing on the bus
// only what changed. A menu of the same structure is changed in place, item
// by item (the minutes left turn); another is built anew. Each change of an
// item is a layout update on the bus, and so is each item that a rebuild
// removes: in place, a redraw with a hundred connections sends a hundred,
// where a rebuild would send six hundred.
func (t *Tray) Show(level humanize.Level, tooltip string, items []Item) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if level != t.level {
		t.level = level
		systray.SetIcon(trayIcon(Icon(level)))
	}
	if tooltip != t.tooltip {
		t.tooltip = tooltip
		systray.SetTooltip(tooltip)
	}
	key := menuKey(items)
	if key == t.menuKey {
		return
	}
	t.menuKey = key
	flat := flatten(items)
	if shape := menuShape(items); shape == t.shape && len(flat) == len(t.made) {
		actions := *t.made[0].actions
		for i, it := range flat {
			old := &t.made[i]
			if it.Label != old.item.Label {
				old.m.SetTitle(it.Label)
			}
			if it.Checked != old.item.Checked {
				if it.Checked {
					old.m.Check()
				} else {
					old.m.Uncheck()
				}
			}
			if it.Disabled != old.item.Disabled {
				if it.Disabled {
					old.m.Disable()
				} else {
					old.m.Enable()
				}
			}
			old.item = it
			actions[old.index] = it.Action
		}
		return
	}
	t.shape = menuShape(items)
	systray.ResetMenu() // closes the old items' click channels: their reader ends
	var clicks []chan struct{}
	actions := &[]func(){}
	t.made = t.made[:0]
	if last, label := t.add(items, nil, &clicks, actions); last != nil {
		// systray announces a new item's layout only with the next change
		// of an existing one: announce the whole menu once.
		last.SetTitle(label)
	}
	go readClicks(clicks, func(i int) func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		return (*actions)[i]
	})
}

// flatten lists the items that are not separators, in the order add makes
// them.
func flatten(items []Item) []Item {
	var out []Item
	for _, it := range items {
		if it.Separator {
			continue
		}
		out = append(out, it)
		out = append(out, flatten(it.Children)...)
	}
	return out
}

// menuKey is the menu's text and state: the menu changes when it does.
func menuKey(items []Item) string { return describe(items, true) }

// menuShape is the menu's structure: which items, separators, submenus and
// check items there are, without their text or state.
func menuShape(items []Item) string { return describe(items, false) }

func describe(items []Item, text bool) string {
	var b strings.Builder
	var walk func([]Item, int)
	walk = func(items []Item, depth int) {
		for _, it := range items {
			b.WriteString(strings.Repeat(">", depth))
			switch {
			case it.Separator:
				b.WriteString("---")
			case !text:
				b.WriteString(map[bool]string{true: "[ ]", false: "*"}[it.Checkbox])
			default:
				b.WriteString(it.Label)
				if it.Checked {
					b.WriteString(" [x]")
				}
				if it.Disabled {
					b.WriteString(" (off)")
				}
			}
			b.WriteByte('\n')
			walk(it.Children, depth+1)
		}
	}
	walk(items, 0)
	return b.String()
}

// readClicks runs the action of every click until every channel is closed
// (the menu was rebuilt); action(i) is the current action of channel i.
// One goroutine waits on all of them at once: systray drops a click that
// nobody is waiting for, and a goroutine per item would be hundreds made
// and ended at every rebuild.
func readClicks(clicks []chan struct{}, action func(i int) func()) {
	cases := make([]reflect.SelectCase, len(clicks))
	for i, ch := range clicks {
		cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
	}
	for open := len(cases); open > 0; {
		i, _, ok := reflect.Select(cases)
		if !ok {
			cases[i].Chan = reflect.Value{} // closed: ignored from now on
			open--
			continue
		}
		if a := action(i); a != nil {
			go a()
		}
	}
}

// add puts items on the bus under parent (nil: the top level), notes each
// in t.made with its click channel and action, and returns the last item
// it made, with its label.
func (t *Tray) add(items []Item, parent *systray.MenuItem, clicks *[]chan struct{}, actions *[]func()) (last *systray.MenuItem, label string) {
	for _, it := range items {
		if it.Separator {
			if parent != nil {
				parent.AddSeparator()
			} else {
				systray.AddSeparator()
			}
			continue
		}
		var m *systray.MenuItem
		switch {
		case parent != nil && it.Checkbox:
			m = parent.AddSubMenuItemCheckbox(it.Label, "", it.Checked)
		case parent != nil:
			m = parent.AddSubMenuItem(it.Label, "")
		case it.Checkbox:
			m = systray.AddMenuItemCheckbox(it.Label, "", it.Checked)
		default:
			m = systray.AddMenuItem(it.Label, "")
		}
		if it.Disabled {
			m.Disable()
		}
		t.made = append(t.made, made{m: m, item: it, actions: actions, index: len(*clicks)})
		*clicks = append(*clicks, m.ClickedCh)
		*actions = append(*actions, it.Action)
		last, label = m, it.Label
		if l, lb := t.add(it.Children, m, clicks, actions); l != nil {
			last, label = l, lb
		}
	}
	return last, label
}
