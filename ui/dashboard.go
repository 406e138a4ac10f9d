package ui

import (
	"fmt"
	"image/color"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/data/binding"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize"
)

// maxLogLines bounds the dashboard's event log.
const maxLogLines = 500

// Dashboard is the window that shows every connection in detail: a status
// dot, the access token's countdown and how much of its life is used, the
// next and last refresh, the refresh token's age, the last API check and the
// last error with its hint, the actions, and an event log.
type Dashboard struct {
	w        *Windows
	Window   fyne.Window
	header   *widget.Label
	dot      *canvas.Circle
	cards    []*card
	cardsBox *fyne.Container
	built    bool // cards exist for the connections in cards
	log      binding.StringList
	content  fyne.CanvasObject
}

// card is one connection's panel. Its widgets are bound to data that update
// sets; the layout reads top to bottom like the window looks.
type card struct {
	name      string
	where     string // provider · environment
	dot       *canvas.Circle
	state     binding.String
	countdown binding.String
	bar       *lifetimeBar
	next      binding.String
	last      binding.String
	shared    binding.String
	// sharedRow is the "Shared store" row's key and value, shown only for
	// a connection that several instances share.
	sharedRow []fyne.CanvasObject
	rtAge     binding.String
	check     binding.String
	errText   binding.String
	hint      binding.String
	errLabel  *widget.Label
	hintLabel *widget.Label
	reauth    *widget.Button
	refresh   *widget.Button
	copyTok   *widget.Button
	signOut   *widget.Button
	object    fyne.CanvasObject
}

func newDashboard(w *Windows) *Dashboard {
	d := &Dashboard{w: w, log: binding.NewStringList(), cardsBox: container.NewVBox()}
	d.header = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.dot = canvas.NewCircle(colourGrey)
	logList := widget.NewListWithData(d.log,
		func() fyne.CanvasObject { return widget.NewLabel("") },
		func(item binding.DataItem, o fyne.CanvasObject) { o.(*widget.Label).Bind(item.(binding.String)) })
	logCard := widget.NewCard("Events", "", logList)

	top := container.NewBorder(nil, nil, container.NewCenter(container.NewGridWrap(fyne.NewSize(14, 14), d.dot)), nil, d.header)
	split := container.NewVSplit(container.NewVScroll(d.cardsBox), logCard)
	split.Offset = 0.68
	d.content = container.NewBorder(container.NewPadded(top), nil, nil, nil, split)
	return d
}

// sync makes the cards match the connections: a card is built the first
// time its connection is shown, kept while it is configured, and dropped
// with it.
func (d *Dashboard) sync(conns []apitype.Connection) {
	if d.built && slices.EqualFunc(conns, d.cards, func(c apitype.Connection, k *card) bool { return k.name == c.Name && k.where == where(c) }) {
		return
	}
	d.built = true
	old := map[string]*card{}
	for _, c := range d.cards {
		old[c.name+"\x00"+c.where] = c
	}
	d.cards = d.cards[:0]
	var objects []fyne.CanvasObject
	for _, conn := range conns {
		c := old[conn.Name+"\x00"+where(conn)]
		if c == nil {
			c = d.newCard(conn)
		}
		d.cards = append(d.cards, c)
		objects = append(objects, c.object)
	}
	if len(objects) == 0 {
		var body fyne.CanvasObject = widget.NewLabel("Add a [[connection]] to the config file (see the README), or try `tokentray demo`.")
		if d.w.opt.Editable {
			body = container.NewVBox(widget.NewLabel("Add one here, or write it in the config file (see the README)."),
				container.NewHBox(widget.NewButtonWithIcon("Add connection…", theme.ContentAddIcon(), func() { d.w.EditConnection("") })))
		}
		objects = append(objects, widget.NewCard("No connections yet", "", body))
	}
	d.cardsBox.Objects = objects
	d.cardsBox.Refresh()
}

// where is a connection's provider and environment, and the server that
// keeps it, as its card says.
func where(c apitype.Connection) string {
	w := c.Provider
	if c.Environment != "" {
		w += " · " + c.Environment
	}
	if c.Remote != "" {
		w = strings.TrimPrefix(w+" · on "+c.Remote, " · ")
	}
	return w
}

func (d *Dashboard) newCard(conn apitype.Connection) *card {
	c := &card{name: conn.Name, where: where(conn), state: binding.NewString(), countdown: binding.NewString(), bar: newLifetimeBar(),
		next: binding.NewString(), last: binding.NewString(), shared: binding.NewString(), rtAge: binding.NewString(), check: binding.NewString(),
		errText: binding.NewString(), hint: binding.NewString()}
	c.dot = canvas.NewCircle(colourGrey)
	title := widget.NewLabelWithStyle(conn.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	state := widget.NewLabelWithData(c.state)
	// The provider in plain text: italics would cost the window a parse
	// of the toolkit's fonts for that style alone (≈ 9 MiB), and the low
	// importance colour is too faint in the dark theme.
	where := widget.NewLabelWithStyle(c.where, fyne.TextAlignTrailing, fyne.TextStyle{})
	head := container.NewHBox(container.NewCenter(container.NewGridWrap(fyne.NewSize(12, 12), c.dot)), title, state, layout.NewSpacer(), where)

	c.errLabel = widget.NewLabelWithData(c.errText)
	c.errLabel.Wrapping = fyne.TextWrapWord
	c.errLabel.Importance = widget.DangerImportance
	c.hintLabel = widget.NewLabelWithData(c.hint)
	c.hintLabel.Wrapping = fyne.TextWrapWord

	key := func(s string) fyne.CanvasObject {
		return widget.NewLabelWithStyle(s, fyne.TextAlignTrailing, fyne.TextStyle{})
	}
	value := func(b binding.String) fyne.CanvasObject { return widget.NewLabelWithData(b) }
	sharedValue := widget.NewLabelWithData(c.shared)
	sharedValue.Wrapping = fyne.TextWrapWord
	c.sharedRow = []fyne.CanvasObject{key("Shared store"), sharedValue}
	facts := container.New(layout.NewFormLayout(),
		key("Access token"), container.NewVBox(value(c.countdown), c.bar),
		key("Next refresh"), value(c.next),
		key("Last refresh"), value(c.last),
		c.sharedRow[0], c.sharedRow[1],
		key("Refresh token"), value(c.rtAge),
		key("API check"), value(c.check),
	)
	name := conn.Name
	c.reauth = widget.NewButtonWithIcon("Re-authenticate", theme.LoginIcon(), func() { d.w.SignIn(name) })
	c.refresh = widget.NewButtonWithIcon("Refresh now", theme.ViewRefreshIcon(), func() { d.w.RefreshNow(name) })
	c.copyTok = widget.NewButtonWithIcon("Copy access token", theme.ContentCopyIcon(), func() { d.w.CopyToken(name) })
	c.signOut = widget.NewButtonWithIcon("Sign out", theme.LogoutIcon(), func() { d.w.ConfirmSignOut(name) })
	actions := container.NewHBox(c.reauth, c.refresh)
	if conn.Remote == "" {
		actions.Add(widget.NewButtonWithIcon("Check API", theme.SearchIcon(), func() { d.w.CheckNow(name) }))
		actions.Add(c.copyTok)
		actions.Add(layout.NewSpacer())
		if d.w.opt.Editable {
			actions.Add(widget.NewButtonWithIcon("Edit", theme.DocumentCreateIcon(), func() { d.w.EditConnection(name) }))
		}
		actions.Add(c.signOut)
	}
	// A server's connection: its tokens stay there, so it can be signed in
	// (with this machine's browser) and refreshed from here, and no more.
	c.object = widget.NewCard("", "", container.NewVBox(head, facts, c.errLabel, c.hintLabel, actions))
	return c
}

// update sets every card from its connection's status at now. Call on the
// UI goroutine (fyne.Do).
func (d *Dashboard) update(conns []apitype.Connection, now time.Time) {
	d.sync(conns)
	var sts []apitype.Status
	for i, c := range d.cards {
		st := conns[i].Status
		sts = append(sts, st)
		c.update(st, now)
	}
	level := humanize.Overall(sts)
	setFill(d.dot, levelColour(level))
	if h := headline(sts, level); h != d.header.Text {
		d.header.SetText(h)
	}
}

func headline(sts []apitype.Status, level humanize.Level) string {
	// Servers that cannot be asked now: their connections are neither
	// working nor failing as far as this machine can tell.
	var away []string
	var seen []apitype.Status
	for _, st := range sts {
		if st.State != apitype.StateUnreachable {
			seen = append(seen, st)
		} else if !slices.Contains(away, st.Remote) {
			away = append(away, st.Remote)
		}
	}
	main := ""
	switch {
	case level == humanize.Green && len(seen) == 1:
		main = "Connected: the access token is valid and kept fresh"
	case level == humanize.Green:
		main = fmt.Sprintf("All %d connections are working", len(seen))
	case level == humanize.Red:
		var names []string
		for _, st := range seen {
			if humanize.ConnectionLevel(st) == humanize.Red {
				names = append(names, st.Name)
			}
		}
		main = fmt.Sprintf("%d connections need attention", len(names))
		if len(names) == 1 {
			main = names[0] + " needs attention"
		}
	case len(sts) == 0:
		return "No connections configured"
	case len(seen) > 0:
		main = "Nothing is signed in yet"
	}
	if len(away) == 0 {
		return main
	}
	servers := strings.Join(away, ", ") + " cannot be reached"
	if main == "" {
		return servers + " (each keeps refreshing on its own)"
	}
	return main + " · " + servers
}

func (c *card) update(st apitype.Status, now time.Time) {
	setFill(c.dot, levelColour(humanize.ConnectionLevel(st)))
	_ = c.state.Set(st.State)
	switch {
	case st.State == apitype.StateUnreachable:
		_ = c.countdown.Set("unknown: " + humanize.Unreachable(st, now))
	case st.AccessExpiry.IsZero():
		_ = c.countdown.Set("none")
	case st.Usable:
		_ = c.countdown.Set(fmt.Sprintf("%s left (expires %s)", humanize.Clock(st.AccessExpiry.Sub(now)), st.AccessExpiry.Local().Format("15:04:05")))
	default:
		_ = c.countdown.Set("expired " + humanize.Duration(st.AccessExpiry.Sub(now)))
	}
	used := 0.0
	if life := st.AccessExpiry.Sub(st.AccessObtained); life > 0 {
		used = float64(now.Sub(st.AccessObtained)) / float64(life)
	}
	c.bar.Set(used, levelColour(humanize.ConnectionLevel(st)))
	switch {
	case st.NextRefresh.IsZero():
		_ = c.next.Set("—")
	case !st.NextRefresh.After(now):
		_ = c.next.Set("due now")
	default:
		_ = c.next.Set(fmt.Sprintf("in %s (at %s)", humanize.Duration(st.NextRefresh.Sub(now)), st.NextRefresh.Local().Format("15:04:05")))
	}
	_ = c.last.Set(humanize.LastRefresh(st, now))
	shared := humanize.Instances(st)
	if r := humanize.SharedRefresh(st, now); r != "" {
		shared += " · " + r
	}
	_ = c.shared.Set(shared)
	for _, o := range c.sharedRow {
		if shared == "" {
			o.Hide()
		} else {
			o.Show()
		}
	}
	switch {
	case !st.HasRefreshToken:
		_ = c.rtAge.Set("none")
	case st.RefreshTokenSince.IsZero():
		_ = c.rtAge.Set("held")
	default:
		_ = c.rtAge.Set("received " + humanize.Ago(st.RefreshTokenSince, now))
	}
	if left := humanize.RefreshTokenLeft(st, now); left != "" && st.HasRefreshToken {
		text, _ := c.rtAge.Get()
		_ = c.rtAge.Set(text + " · " + left)
	}
	switch ch := st.LastCheck; {
	case ch == nil:
		_ = c.check.Set("not checked yet")
	case ch.OK():
		who := ""
		if ch.Who != "" {
			who = " · " + ch.Who
		}
		server := ""
		if i := ch.TokenInfo; i != nil && i.ExpiresIn > 0 {
			// What the server counted for the token when it was asked.
			server = " · the server gave it " + humanize.Coarse(time.Duration(i.ExpiresIn)*time.Second)
		}
		_ = c.check.Set(fmt.Sprintf("HTTP %d%s · %s%s", ch.Status, who, humanize.Ago(ch.Time, now), server))
	default:
		_ = c.check.Set(fmt.Sprintf("failed (%s): %s", humanize.Ago(ch.Time, now), ch.Error))
	}
	if rl := humanize.RateLimit(st.RateLimit, now); rl != "" {
		text, _ := c.check.Get()
		_ = c.check.Set(text + " · " + rl)
	}
	// The step, said for the window: its buttons are beside the text.
	errText, hint := st.LastError, humanize.Advice(st.Next, st.Hint, humanize.Window)
	if errText == "" && st.LastCheck != nil && !st.LastCheck.OK() {
		hint = humanize.Advice(st.LastCheck.Next, st.LastCheck.Hint, humanize.Window)
	}
	if errText == "" && st.RefreshTokenEnding {
		errText = humanize.RefreshToken(st, now)
	}
	if errText == "" && st.APIRefused != "" {
		errText = "The API refuses its token: " + st.APIRefused
		hint = "Even a fresh token is refused: check that api_base is of the same environment as the sign-in, and that the app may use this API."
	}
	// Point at what helps: sign-in when it is needed; no action that cannot work.
	needsSignIn := st.State == apitype.StateNeedsReauth || st.State == apitype.StateDisconnected
	text, importance := "Re-authenticate", widget.MediumImportance
	if needsSignIn {
		text, importance = "Sign in", widget.HighImportance
	}
	if c.reauth.Text != text || c.reauth.Importance != importance {
		c.reauth.Importance = importance
		c.reauth.SetText(text) // and redraws
	}
	// Unreachable: only its server can act; invalid_config: its table
	// must be fixed before anything can be done with it.
	actionable := st.State != apitype.StateUnreachable && st.State != apitype.StateInvalidConfig
	enableIf(c.reauth, actionable)
	enableIf(c.refresh, st.HasRefreshToken && actionable)
	enableIf(c.copyTok, st.Usable)
	enableIf(c.signOut, st.State != apitype.StateDisconnected && actionable)
	_ = c.errText.Set(errText)
	if hint != "" {
		hint = "What to do: " + hint
	}
	_ = c.hint.Set(hint)
	showIf(c.errLabel, errText != "")
	showIf(c.hintLabel, hint != "")
}

// setFill colours a status dot, redrawing it only when the colour changes:
// the dashboard updates every second.
func setFill(c *canvas.Circle, col color.Color) {
	if c.FillColor != col {
		c.FillColor = col
		c.Refresh()
	}
}

func enableIf(b *widget.Button, enabled bool) {
	if enabled {
		b.Enable()
	} else {
		b.Disable()
	}
}

func showIf(o fyne.CanvasObject, visible bool) {
	if visible {
		o.Show()
	} else {
		o.Hide()
	}
}

// addLog puts a line at the top of the event log. Call on the UI goroutine.
func (d *Dashboard) addLog(line string) {
	items, _ := d.log.Get()
	items = append([]string{line}, items...)
	if len(items) > maxLogLines {
		items = items[:maxLogLines]
	}
	_ = d.log.Set(items)
}
