package tray

import (
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
)

var now = time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)

func connected(name string) apitype.Connection {
	return apitype.Connection{Status: apitype.Status{Name: name, State: apitype.StateConnected, Usable: true, AccessExpiry: now.Add(90 * time.Minute)}}
}

func labels(items []Item) string {
	var out []string
	for _, it := range items {
		out = append(out, it.Label)
	}
	return strings.Join(out, "|")
}

func TestTheMenuHasEachConnectionsActionsThenTheAppsItems(t *testing.T) {
	var did []string
	a := Actions{
		SignIn: func(n string) { did = append(did, "sign in "+n) }, Refresh: func(n string) { did = append(did, "refresh "+n) },
		Copy: func(n string) { did = append(did, "copy "+n) }, SignOut: func(n string) { did = append(did, "sign out "+n) },
		Dashboard: func() { did = append(did, "dashboard") }, Quit: func() { did = append(did, "quit") },
	}
	m := Menu([]apitype.Connection{connected("procore-sandbox")}, now, a, MenuOptions{})
	if got, want := labels(m), "procore-sandbox — 1 h 30 m left||Open dashboard||Quit"; got != want {
		t.Fatalf("menu %q, want %q", got, want)
	}
	if got := labels(m[0].Children); got != "Re-authenticate|Refresh now|Copy access token|Sign out…" {
		t.Fatalf("actions %q", got)
	}
	for _, it := range m[0].Children {
		it.Action()
	}
	m[2].Action()
	m[4].Action()
	if got := strings.Join(did, ", "); got != "sign in procore-sandbox, refresh procore-sandbox, copy procore-sandbox, sign out procore-sandbox, dashboard, quit" {
		t.Fatalf("the items did: %s", got)
	}
}

func TestAnEditableConfigOffersAddAndEdit(t *testing.T) {
	var edited string
	m := Menu([]apitype.Connection{connected("a")}, now, Actions{Edit: func(n string) { edited = n }}, MenuOptions{Editable: true})
	if got := labels(m); !strings.Contains(got, "|Open dashboard|Add connection…|") {
		t.Fatalf("menu %s", got)
	}
	last := m[0].Children[len(m[0].Children)-1]
	if last.Label != "Edit…" {
		t.Fatalf("the connection's last item is %q", last.Label)
	}
	last.Action()
	if edited != "a" {
		t.Fatalf("Edit… edits %q", edited)
	}
}

func TestStartAtLoginIsACheckItemThatToggles(t *testing.T) {
	var set []bool
	a := Actions{SetAutostart: func(on bool) { set = append(set, on) }}
	for _, on := range []bool{false, true} {
		m := Menu(nil, now, a, MenuOptions{Autostart: &on})
		var item *Item
		for i := range m {
			if m[i].Label == "Start at login" {
				item = &m[i]
			}
		}
		if item == nil || !item.Checkbox || item.Checked != on {
			t.Fatalf("with autostart %t: %+v", on, item)
		}
		item.Action()
	}
	if len(set) != 2 || !set[0] || set[1] {
		t.Fatalf("the item asked for %v, want [true false]", set)
	}
}

func TestNoConnectionsSaysSo(t *testing.T) {
	m := Menu(nil, now, Actions{}, MenuOptions{})
	if !m[0].Disabled || m[0].Label != "No connections configured" {
		t.Fatalf("%+v", m[0])
	}
}

// The menu is sent again only when its text changes: the minutes left,
// a state, an item.
func TestTheMenusKeyChangesWithItsTextOnly(t *testing.T) {
	a := Actions{}
	c := connected("a")
	c.AccessExpiry = now.Add(90*time.Minute + 30*time.Second)
	one := menuKey(Menu([]apitype.Connection{c}, now, a, MenuOptions{}))
	if one != menuKey(Menu([]apitype.Connection{c}, now.Add(20*time.Second), a, MenuOptions{})) {
		t.Fatal("twenty seconds changed the menu")
	}
	if one == menuKey(Menu([]apitype.Connection{c}, now.Add(31*time.Second), a, MenuOptions{})) {
		t.Fatal("the turn of a minute left did not change the menu")
	}
}

// One reader takes the clicks of every item of a menu, runs the action each
// has now, and ends when the menu is replaced (its channels closed).
func TestOneReaderRunsEveryItemsClicksUntilTheMenuGoes(t *testing.T) {
	ran := make(chan string, 3)
	a, b, c := make(chan struct{}), make(chan struct{}), make(chan struct{})
	actions := []func(){func() { ran <- "a" }, func() { ran <- "b" }, nil}
	done := make(chan struct{})
	go func() {
		readClicks([]chan struct{}{a, b, c}, func(i int) func() { return actions[i] })
		close(done)
	}()
	b <- struct{}{}
	a <- struct{}{}
	got := map[string]bool{<-ran: true, <-ran: true}
	if !got["a"] || !got["b"] {
		t.Fatalf("ran %v", got)
	}
	close(a)
	close(b)
	c <- struct{}{} // an item without an action: nothing runs, the reader goes on
	select {
	case <-done:
		t.Fatal("the reader ended with a channel still open")
	default:
	}
	close(c)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the reader outlived its menu")
	}
}

// The minutes left turning keep the menu's structure: it is changed in
// place, not built anew; a connection added changes the structure.
func TestTheMenusShapeIgnoresItsText(t *testing.T) {
	c := connected("a")
	one := Menu([]apitype.Connection{c}, now, Actions{}, MenuOptions{})
	later := Menu([]apitype.Connection{c}, now.Add(10*time.Minute), Actions{}, MenuOptions{})
	if menuKey(one) == menuKey(later) || menuShape(one) != menuShape(later) {
		t.Fatal("ten minutes should change the text and keep the shape")
	}
	if menuShape(one) == menuShape(Menu([]apitype.Connection{c, connected("b")}, now, Actions{}, MenuOptions{})) {
		t.Fatal("a second connection kept the shape")
	}
	if n := len(flatten(one)); n != 1+4+2 {
		t.Fatalf("%d items on the bus, want the line, its 4 actions, Open dashboard and Quit", n)
	}
}

// A server's connection is signed in and refreshed from the menu, and no
// more (its tokens stay there); while the server cannot be reached, its
// line says since when and offers to try again.
func TestAServersConnectionsOfferWhatWorksFromHere(t *testing.T) {
	var did []string
	a := Actions{SignIn: func(n string) { did = append(did, "sign in "+n) }, Refresh: func(n string) { did = append(did, "refresh "+n) },
		Retry: func(r string) { did = append(did, "retry "+r) }}
	up := connected("procore@moby-1")
	up.Remote = "moby-1"
	down := apitype.Connection{Status: apitype.Status{Name: "agent@moby-2", State: apitype.StateUnreachable, Remote: "moby-2", UnreachableSince: now.Add(-10 * time.Minute)}}
	m := Menu([]apitype.Connection{connected("local"), up, down}, now, a, MenuOptions{Editable: true})
	if got, want := labels(m[:3]), "local — 1 h 30 m left|procore@moby-1 — 1 h 30 m left|agent@moby-2 — moby-2 unreachable since "+now.Add(-10*time.Minute).Format("15:04"); got != want {
		t.Fatalf("lines %q, want %q", got, want)
	}
	if got := labels(m[1].Children); got != "Re-authenticate|Refresh now" {
		t.Fatalf("a server's connection offers %q", got)
	}
	if got := labels(m[2].Children); got != "Try again now" {
		t.Fatalf("an unreachable server's connection offers %q", got)
	}
	for _, it := range append(m[1].Children, m[2].Children...) {
		it.Action()
	}
	if got := strings.Join(did, ", "); got != "sign in procore@moby-1, refresh procore@moby-1, retry moby-2" {
		t.Fatalf("the items did: %s", got)
	}
}
