package ui

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
)

// Editor is the window that adds one connection or edits it. It checks the
// form as it is typed, field by field, with the same rules as the config
// file; shows the URLs the connection will use, all from one environment;
// gives the exact redirect URI to register; signs in once as a test; and
// saves through the fleet, which runs the result at once.
type Editor struct {
	w         *Windows
	Window    fyne.Window
	replacing string            // the name being edited; "" adds
	base      config.Connection // as the file has it: keys the form does not show are kept
	others    []config.Connection
	path      string // the config file
	hasSecret bool   // a client secret is stored under replacing

	name        *widget.Entry
	nameNote    *widget.Label
	provider    *widget.Select
	environment *widget.Select
	envRow      []fyne.CanvasObject
	tenant      *widget.Entry // Microsoft's directory, for URLs that name it
	tenantRow   []fyne.CanvasObject
	company     *widget.Entry // Procore's company id
	companyRow  []fyne.CanvasObject
	handle      *widget.Entry // an AT Protocol account
	handleRow   []fyne.CanvasObject
	grant       *widget.RadioGroup
	clientID    *widget.Entry
	secret      *widget.Entry
	redirect    *widget.Entry
	redirectRow []fyne.CanvasObject
	scopes      *widget.Entry
	override    *widget.Check
	urls        map[string]*widget.Entry
	urlRows     map[string][]fyne.CanvasObject
	urlBox      *fyne.Container
	urlCard     *widget.Card

	preview     map[string]*widget.Label
	previewForm *fyne.Container
	previewNote *widget.Label
	register    *fyne.Container
	registerURI *widget.Label
	registerFor *widget.Label

	messages map[string]*widget.Label // by config key; "" is the form's own
	touched  map[string]bool
	showAll  bool // after a Save or Test: every problem shows, touched or not

	testBtn, saveBtn, removeBtn *widget.Button
	testStatus                  *widget.Label
	testCancel                  context.CancelFunc
	tested                      *testedSignIn

	content fyne.CanvasObject
}

// testedSignIn is a successful Test: its tokens are kept (by the running
// tokentray, under id) if the connection is saved exactly as tested.
type testedSignIn struct {
	raw    config.Connection
	secret string
	id     string
}

// The URL fields, in the order the form lists them.
var urlFields = []struct{ key, label, help string }{
	{"auth_url", "Authorize URL", "where the browser signs in"},
	{"token_url", "Token URL", "code exchange and refresh"},
	{"revoke_url", "Revoke URL", "optional: sign-out revokes here"},
	{"api_base", "API base", "the API the tokens are for"},
	{"check_url", "API check URL", "optional: a “who am I” GET"},
	{"issuer", "Issuer", "optional: its metadata fills the rest"},
}

const (
	grantBrowser = "Browser sign-in (authorization code)"
	grantService = "Service account (client credentials)"
)

// defaultPort is the first port offered for a new connection's redirect.
const defaultPort = 8765

// EditConnection opens the editor for name, or for a new connection when
// name is empty. A second call for the same name brings its window up.
// Call on the UI goroutine.
func (w *Windows) EditConnection(name string) {
	if !w.opt.Editable {
		return
	}
	if e := w.editors[name]; e != nil {
		e.Window.Show()
		e.Window.RequestFocus()
		return
	}
	w.bg.Go(func() {
		// The config as the running tokentray has it, and whether a secret
		// is stored: asked off the UI goroutine, a locked keyring can take
		// seconds to answer.
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		defer cancel()
		cfg, err := w.api.Config(ctx)
		var one *apitype.ConfiguredConnection
		if err == nil && name != "" {
			one, err = w.api.ConfigConnection(ctx, name)
		}
		w.onUI(func() {
			if err != nil {
				w.logNow(name, "the editor did not open: %v", err)
				return
			}
			if w.editors[name] != nil {
				return // opened meanwhile
			}
			w.openEditor(name, cfg, one)
		})
	})
}

// openEditor shows the editor for name with cfg as the running tokentray
// has it. Call on the UI goroutine.
func (w *Windows) openEditor(name string, cfg *apitype.Config, one *apitype.ConfiguredConnection) {
	e := &Editor{w: w, replacing: name, path: cfg.Path, messages: map[string]*widget.Label{}, touched: map[string]bool{},
		urls: map[string]*widget.Entry{}, urlRows: map[string][]fyne.CanvasObject{}, preview: map[string]*widget.Label{}}
	for _, c := range cfg.Connections {
		e.others = append(e.others, config.FromWire(c))
	}
	if one != nil {
		e.base = config.FromWire(one.Connection)
	} else {
		e.base = config.Connection{Provider: "procore", RedirectURI: fmt.Sprintf("http://localhost:%d/callback", freeRedirectPort(e.others))}
	}
	e.build()
	e.load(e.base)
	if one != nil {
		e.secretKnown(one)
	}
	e.validate()
	win := w.app.NewWindow(e.title())
	win.SetIcon(AppIcon)
	win.SetContent(e.content)
	win.Resize(fyne.NewSize(760, 720)) // fits a 768-pixel-high screen with a panel
	win.SetOnClosed(func() {
		e.stopTest()
		delete(w.editors, name)
	})
	e.Window = win
	w.editors[name] = e
	win.Show()
}

// freeRedirectPort is the first port from defaultPort that no other
// connection's redirect URI uses, so two sign-ins never fight over one.
func freeRedirectPort(conns []config.Connection) int {
	used := map[string]bool{}
	for _, c := range conns {
		if u, err := url.Parse(c.RedirectURI); err == nil {
			used[u.Port()] = true
		}
	}
	port := defaultPort
	for used[strconv.Itoa(port)] {
		port++
	}
	return port
}

func (e *Editor) title() string {
	if e.replacing == "" {
		return "Add connection — tokentray"
	}
	return "Edit " + e.replacing + " — tokentray"
}

// build lays the form out, top to bottom as the window reads.
func (e *Editor) build() {
	changed := func(key string) func(string) {
		return func(string) {
			e.touched[key] = true
			e.validate()
		}
	}
	e.name = widget.NewEntry()
	e.name.SetPlaceHolder("e.g. procore-sandbox")
	e.name.OnChanged = changed("name")
	e.nameNote = widget.NewLabel("")
	e.nameNote.Wrapping = fyne.TextWrapWord
	e.nameNote.TextStyle.Italic = true

	e.provider = widget.NewSelect(auth.PresetNames(), func(string) { e.providerChanged() })
	e.environment = widget.NewSelect(nil, func(string) { e.touched["environment"] = true; e.validate() })
	e.grant = widget.NewRadioGroup([]string{grantBrowser, grantService}, func(string) { e.validate() })
	e.grant.Required = true

	e.tenant = widget.NewEntry()
	e.tenant.SetPlaceHolder("directory (tenant) id or domain; organizations, common or consumers")
	e.tenant.OnChanged = changed("tenant")
	e.company = widget.NewEntry()
	e.company.SetPlaceHolder("optional: the company id, sent as Procore-Company-Id")
	e.company.OnChanged = changed("company_id")
	e.handle = widget.NewEntry()
	e.handle.SetPlaceHolder("the account, e.g. alice.bsky.social: its server is found from it")
	e.handle.OnChanged = changed("handle")

	e.clientID = widget.NewEntry()
	e.clientID.SetPlaceHolder("the Client ID from the provider's developer portal")
	e.clientID.OnChanged = changed("client_id")
	e.secret = widget.NewPasswordEntry()
	e.secret.OnChanged = changed("client_secret")
	e.redirect = widget.NewEntry()
	e.redirect.OnChanged = changed("redirect_uri")
	e.scopes = widget.NewEntry()
	e.scopes.SetPlaceHolder("none; separate several with spaces")
	e.scopes.OnChanged = changed("scopes")

	e.registerFor = widget.NewLabel("")
	registerRule := widget.NewLabel("It must match character for character: scheme, host, port, path and any trailing slash.")
	registerRule.TextStyle.Italic = true
	registerRule.Wrapping = fyne.TextWrapWord
	e.registerURI = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	e.registerURI.Selectable = true
	copyURI := widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() {
		e.w.app.Clipboard().SetContent(e.registerURI.Text)
	})
	e.register = container.NewVBox(e.registerFor, container.NewBorder(nil, nil, nil, copyURI, e.registerURI), registerRule)

	e.override = widget.NewCheck("Use other URLs than the preset's", func(bool) { e.validate() })
	urlForm := container.New(layout.NewFormLayout())
	for _, f := range urlFields {
		entry := widget.NewEntry()
		entry.OnChanged = changed(f.key)
		e.urls[f.key] = entry
		e.urlRows[f.key] = []fyne.CanvasObject{fieldLabel(f.label), container.NewVBox(entry, e.message(f.key))}
		urlForm.Add(e.urlRows[f.key][0])
		urlForm.Add(e.urlRows[f.key][1])
	}
	e.urlBox = container.NewVBox(urlForm)

	e.previewForm = container.New(layout.NewFormLayout())
	previewForm := e.previewForm
	for _, p := range []struct{ key, label string }{{"auth_url", "Authorize"}, {"token_url", "Token"}, {"api_base", "API base"}, {"check_url", "API check"}} {
		l := widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		l.Selectable = true
		l.Truncation = fyne.TextTruncateEllipsis
		e.preview[p.key] = l
		previewForm.Add(fieldLabel(p.label))
		previewForm.Add(l)
	}
	e.previewNote = widget.NewLabel("")
	e.previewNote.Wrapping = fyne.TextWrapWord
	e.previewNote.TextStyle.Italic = true // notes read in both themes; low importance is too faint in the dark one

	e.envRow = []fyne.CanvasObject{fieldLabel("Environment"), container.NewVBox(e.environment, e.message("environment"))}
	e.tenantRow = []fyne.CanvasObject{fieldLabel("Tenant"), container.NewVBox(e.tenant, e.message("tenant"))}
	e.companyRow = []fyne.CanvasObject{fieldLabel("Company"), container.NewVBox(e.company, e.message("company_id"))}
	e.handleRow = []fyne.CanvasObject{fieldLabel("Handle"), container.NewVBox(e.handle, e.message("handle"))}
	e.redirectRow = []fyne.CanvasObject{fieldLabel("Redirect URI"), container.NewVBox(e.redirect, e.message("redirect_uri"), e.register)}
	connForm := container.New(layout.NewFormLayout(),
		fieldLabel("Name"), container.NewVBox(e.name, e.message("name"), e.nameNote),
		fieldLabel("Provider"), container.NewVBox(e.provider, e.message("provider")),
		e.envRow[0], e.envRow[1],
		e.tenantRow[0], e.tenantRow[1],
		e.companyRow[0], e.companyRow[1],
		e.handleRow[0], e.handleRow[1],
		fieldLabel("Sign-in"), container.NewVBox(e.grant, e.message("grant")),
	)
	credForm := container.New(layout.NewFormLayout(),
		fieldLabel("Client ID"), container.NewVBox(e.clientID, e.message("client_id")),
		fieldLabel("Client secret"), container.NewVBox(e.secret, e.message("client_secret")),
		e.redirectRow[0], e.redirectRow[1],
		fieldLabel("Scopes"), container.NewVBox(e.scopes, e.message("scopes")),
	)

	e.urlCard = widget.NewCard("", "URLs in use", container.NewVBox(previewForm, e.previewNote, e.override, e.urlBox))

	e.testStatus = widget.NewLabel("")
	e.testStatus.Wrapping = fyne.TextWrapWord
	e.testBtn = widget.NewButtonWithIcon("Test sign-in", theme.LoginIcon(), e.test)
	e.saveBtn = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), e.save)
	e.saveBtn.Importance = widget.HighImportance
	cancel := widget.NewButton("Cancel", func() { e.Window.Close() })
	buttons := container.NewHBox()
	if e.replacing != "" {
		e.removeBtn = widget.NewButtonWithIcon("Remove…", theme.DeleteIcon(), e.confirmRemove)
		e.removeBtn.Importance = widget.DangerImportance
		buttons.Add(e.removeBtn)
	}
	buttons.Add(layout.NewSpacer())
	buttons.Add(e.testBtn)
	buttons.Add(cancel)
	buttons.Add(e.saveBtn)

	form := container.NewVBox(
		widget.NewCard("", "Connection", connForm),
		e.urlCard,
		widget.NewCard("", "Credentials", credForm),
		e.message(""),
		e.testStatus,
	)
	e.content = container.NewBorder(nil, container.NewPadded(buttons), nil, nil, container.NewVScroll(form))
}

func fieldLabel(text string) fyne.CanvasObject {
	return widget.NewLabelWithStyle(text, fyne.TextAlignTrailing, fyne.TextStyle{})
}

// message returns the label that shows key's problem, hidden while it has none.
func (e *Editor) message(key string) *widget.Label {
	if l := e.messages[key]; l != nil {
		return l
	}
	l := widget.NewLabel("")
	l.Wrapping = fyne.TextWrapWord
	l.Importance = widget.DangerImportance
	l.Hide()
	e.messages[key] = l
	return l
}

// load puts c into the form.
func (e *Editor) load(c config.Connection) {
	e.name.SetText(c.Name)
	e.provider.SetSelected(c.Provider)
	if c.Environment != "" {
		e.environment.SetSelected(c.Environment)
	}
	if auth.Grant(c.Grant) == auth.GrantClientCredentials {
		e.grant.SetSelected(grantService)
	} else {
		e.grant.SetSelected(grantBrowser)
	}
	e.tenant.SetText(c.Tenant)
	e.company.SetText(c.CompanyID)
	e.handle.SetText(c.Handle)
	e.clientID.SetText(c.ClientID)
	e.redirect.SetText(c.RedirectURI)
	e.scopes.SetText(strings.Join(c.Scopes, " "))
	overrides := c.Overrides()
	for _, f := range urlFields {
		e.urls[f.key].SetText(*endpointField(&overrides, f.key))
	}
	e.override.SetChecked(overrides != auth.Endpoints{})
	e.touched = map[string]bool{} // loading is not typing
	e.secret.SetPlaceHolder("from the provider's developer portal; kept in the keyring")
}

// secretKnown takes in whether a client secret is stored for the
// connection edited.
func (e *Editor) secretKnown(one *apitype.ConfiguredConnection) {
	e.hasSecret = one.SecretStored
	switch {
	case one.SecretStored:
		e.secret.SetPlaceHolder("stored in the keyring; type a new one to replace it")
	case one.SecretError == "":
		e.secret.SetPlaceHolder("none stored yet; from the provider's developer portal")
	default:
		e.secret.SetPlaceHolder("the keyring did not answer; type it to store it again")
	}
}

// providerChanged offers the provider's environments, its default first.
func (e *Editor) providerChanged() {
	e.touched["provider"] = true
	p, ok := auth.LookupPreset(e.provider.Selected)
	var envs []string
	if ok && p.DefaultEnvironment != "" {
		envs = append(envs, p.DefaultEnvironment)
		for _, name := range p.EnvironmentNames() {
			if name != p.DefaultEnvironment {
				envs = append(envs, name)
			}
		}
	}
	e.environment.Options = envs
	if !slices.Contains(envs, e.environment.Selected) {
		e.environment.Selected = ""
		if len(envs) > 0 {
			e.environment.Selected = envs[0]
		}
	}
	e.environment.Refresh()
	e.validate()
}

// raw is the connection as the form has it, on top of the file's table.
func (e *Editor) raw() config.Connection {
	c := e.base
	c.Name = strings.TrimSpace(e.name.Text)
	c.Provider = e.provider.Selected
	c.Environment = e.environment.Selected
	c.Tenant, c.CompanyID = "", ""
	if e.needsTenant(c.Provider, c.Environment) {
		c.Tenant = strings.TrimSpace(e.tenant.Text)
	}
	if c.Provider == "procore" {
		c.CompanyID = strings.TrimSpace(e.company.Text)
	}
	c.Handle = ""
	if c.Provider == "atproto" {
		c.Handle = strings.TrimSpace(e.handle.Text)
	}
	c.ClientID = strings.TrimSpace(e.clientID.Text)
	c.RedirectURI = strings.TrimSpace(e.redirect.Text)
	c.Scopes = strings.FieldsFunc(e.scopes.Text, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	if e.grant.Selected == grantService {
		c.Grant = string(auth.GrantClientCredentials)
		c.RedirectURI = ""
	} else if auth.Grant(c.Grant) == auth.GrantClientCredentials {
		c.Grant = ""
	}
	overrides := c.Overrides() // with the URLs the form does not show
	for _, f := range urlFields {
		v := ""
		if e.usesOwnURLs() {
			v = strings.TrimSpace(e.urls[f.key].Text)
		}
		*endpointField(&overrides, f.key) = v
	}
	c.SetOverrides(overrides)
	return c
}

// needsTenant reports whether the provider's URLs in env name a tenant.
func (e *Editor) needsTenant(provider, env string) bool {
	p, ok := auth.LookupPreset(provider)
	if !ok {
		return false
	}
	ep, err := p.Resolve(env, auth.Endpoints{})
	return err == nil && auth.NeedsTenant(ep)
}

func (e *Editor) usesOwnURLs() bool { return e.provider.Selected == "generic" || e.override.Checked }

// check is config.Check plus what only the form knows: the other
// connections' names and whether a needed secret exists.
func (e *Editor) check(raw config.Connection) (*auth.Connection, config.FieldErrors) {
	conn, problems := config.Check(raw)
	if raw.Name != "" && raw.Name != e.replacing {
		for _, c := range e.others {
			if c.Name == raw.Name {
				problems = append(problems, config.FieldError{Key: "name", Message: fmt.Sprintf("a connection named %q exists already; choose another name", raw.Name)})
			}
		}
	}
	p, _ := auth.LookupPreset(raw.Provider)
	needSecret := auth.Grant(raw.Grant) == auth.GrantClientCredentials || (p != nil && p.SecretRequired)
	if needSecret && e.secret.Text == "" && !e.hasSecret {
		who := "this provider"
		if p != nil && p.Name != "generic" {
			who = providerTitle(p)
		}
		if auth.Grant(raw.Grant) == auth.GrantClientCredentials {
			who = "a service account"
		}
		problems = append(problems, config.FieldError{Key: "client_secret", Message: "missing; " + who + " needs the client secret: copy it from the developer portal (it is kept in the keyring, never in the config file)"})
	}
	if len(problems) > 0 {
		conn = nil
	}
	return conn, problems
}

// validate shows the problems of the form as it is now, the URLs it will
// use and the redirect URI to register. It returns the problems.
func (e *Editor) validate() map[string]string {
	raw := e.raw()
	_, errs := e.check(raw)
	problems := errs.ByKey()
	for key, l := range e.messages {
		msg := problems[key]
		if !e.showAll && !e.touched[key] {
			msg = ""
		}
		l.SetText(msg)
		showIf(l, msg != "")
	}
	if general := e.messages[""]; e.showAll && len(problems) > 0 && problems[""] == "" {
		general.SetText(fmt.Sprintf("%d %s above %s attention.", len(problems), plural(len(problems), "field", "fields"), plural(len(problems), "needs", "need")))
		general.Show()
	}

	browser := e.grant.Selected != grantService
	for _, o := range e.redirectRow {
		showIf(o, browser)
	}
	p, _ := auth.LookupPreset(raw.Provider)
	preset := p != nil && p.Name != "generic"
	for _, o := range e.envRow {
		showIf(o, preset)
	}
	for _, o := range e.tenantRow {
		showIf(o, e.needsTenant(raw.Provider, raw.Environment))
	}
	for _, o := range e.companyRow {
		showIf(o, raw.Provider == "procore")
	}
	for _, o := range e.handleRow {
		showIf(o, raw.Provider == "atproto")
	}
	showIf(e.override, preset)
	showIf(e.previewForm, preset)
	showIf(e.urlBox, e.usesOwnURLs())
	for _, o := range e.urlRows["auth_url"] {
		showIf(o, browser)
	}
	if preset {
		e.urlCard.SetSubTitle("URLs in use")
	} else {
		e.urlCard.SetSubTitle("Provider URLs")
	}
	var presetURLs auth.Endpoints // what an empty override field leaves in use
	if preset {
		presetURLs, _ = p.Resolve(raw.Environment, auth.Endpoints{}) // none for an unknown environment
	}
	for _, f := range urlFields {
		if hint := *endpointField(&presetURLs, f.key); hint != "" {
			e.urls[f.key].SetPlaceHolder(hint)
		} else {
			e.urls[f.key].SetPlaceHolder(f.help)
		}
	}

	e.updatePreview(p, raw)

	if uri, err := auth.ParseRedirectURI(raw.RedirectURI); browser && err == nil && problems["redirect_uri"] == "" {
		portal := "with your provider"
		if preset && p.Name == "procore" {
			portal = "in the Procore Developer Portal"
		}
		e.registerFor.SetText("Register exactly this redirect URI " + portal + ":")
		e.registerURI.SetText(uri.Raw)
		e.register.Show()
	} else {
		e.register.Hide()
	}

	e.nameNote.SetText("")
	if e.replacing != "" && raw.Name != "" && raw.Name != e.replacing {
		e.nameNote.SetText(fmt.Sprintf("Renaming moves the tokens and client secret of %s; scripts that name %s must use %s.", e.replacing, e.replacing, raw.Name))
	}
	showIf(e.nameNote, e.nameNote.Text != "")
	if e.content != nil {
		// Messages came and went: lay the form out again around them.
		e.content.Refresh()
	}
	return problems
}

// updatePreview shows the URLs a connection like raw uses, resolved the way
// the keeper will: the environment's, with the overrides on top.
func (e *Editor) updatePreview(p *auth.Preset, raw config.Connection) {
	var ep auth.Endpoints
	note := ""
	if p != nil {
		env := raw.Environment
		if p.Name == "generic" {
			env = ""
		}
		if resolved, err := p.Resolve(env, raw.Overrides()); err == nil {
			ep = resolved
			if raw.Tenant != "" {
				ep = auth.WithTenant(ep, raw.Tenant)
			}
		}
		if p.Name != "generic" {
			note = "All from the " + orDefault(raw.Environment, p.DefaultEnvironment) + " environment: " + providerTitle(p) + " refuses a mix, with misleading errors."
			if n := p.Note(orDefault(raw.Environment, p.DefaultEnvironment)); n != "" {
				note += " " + n
			}
		}
	}
	for key, l := range e.preview {
		v := *endpointField(&ep, key)
		if v == "" {
			v = "—"
		}
		l.SetText(v)
	}
	e.previewNote.SetText(note)
	showIf(e.previewNote, note != "")
}

// endpointField is the field of ep that the config key names.
func endpointField(ep *auth.Endpoints, key string) *string {
	for _, f := range ep.Fields() {
		if f.Key == key {
			return f.URL
		}
	}
	panic("no endpoint field " + key)
}

// providerTitle is the preset's name as a person writes it: "Procore".
func providerTitle(p *auth.Preset) string {
	if p.Title != "" {
		return p.Title
	}
	return strings.ToUpper(p.Name[:1]) + p.Name[1:]
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// test signs in with the form as it is, through the fleet (a keeper of its
// own whose tokens stay in memory), then calls the API check URL. Nothing
// is saved: Save keeps the tokens if the form is unchanged by then.
func (e *Editor) test() {
	if e.testCancel != nil {
		e.stopTest()
		e.setTestStatus("Test stopped.", widget.MediumImportance)
		return
	}
	raw := e.raw()
	conn, problems := e.check(raw)
	if len(problems) > 0 {
		e.showAll = true
		e.validate()
		e.setTestStatus("Fix the fields marked above, then test.", widget.DangerImportance)
		return
	}
	typed := e.secret.Text
	// The sign-in's own timeout bounds the wait for the browser.
	ctx, cancel := context.WithCancel(e.w.ctx)
	e.testCancel = cancel
	e.tested = nil
	e.testBtn.SetText("Stop test")
	e.testBtn.SetIcon(theme.CancelIcon())
	if conn.Grant == auth.GrantClientCredentials {
		e.setTestStatus("Asking the token endpoint for a token…", widget.MediumImportance)
	} else {
		e.setTestStatus("Waiting for you to sign in in the browser…", widget.MediumImportance)
	}
	req := apitype.TestSignIn{Replacing: e.replacing, Connection: raw.Wire(), Secret: typed}
	e.w.bg.Go(func() {
		defer cancel()
		res, err := e.w.api.TestSignIn(ctx, req)
		e.w.onUI(func() {
			if e.testCancel == nil {
				return // stopped meanwhile
			}
			e.stopTest()
			switch {
			case errors.Is(err, context.Canceled):
				return
			case err != nil:
				msg := "Test failed: " + err.Error()
				var ae *apiclient.APIError
				if errors.As(err, &ae) && ae.Body.Code == apitype.CodeCheckFailed {
					msg = strings.ToUpper(err.Error()[:1]) + err.Error()[1:]
				}
				if hint := errorHint(err); hint != "" {
					msg += "\nWhat to do: " + hint
				}
				e.setTestStatus(msg, widget.DangerImportance)
			case res.Check == nil:
				e.tested = &testedSignIn{raw: raw, secret: typed, id: res.TestID}
				e.setTestStatus("Signed in: the provider issued tokens. (No API check URL is set, so the API was not called.)"+authMethodNote(res)+" Save keeps this sign-in.", widget.SuccessImportance)
			default:
				e.tested = &testedSignIn{raw: raw, secret: typed, id: res.TestID}
				who := ""
				if res.Check.Who != "" {
					who = " as " + res.Check.Who
				}
				e.setTestStatus(fmt.Sprintf("Signed in%s; the API answered HTTP %d at %s.%s Save keeps this sign-in.", who, res.Check.Status, conn.Endpoints.CheckURL, authMethodNote(res)), widget.SuccessImportance)
			}
		})
	})
}

// authMethodNote says how the client authenticated in a test sign-in,
// where it was not the form's own choice: " Client authentication: none
// (from the server's metadata)."
func authMethodNote(res *apitype.Tested) string {
	from := map[string]string{"metadata": "from the server's metadata", "provider": "the provider's", "default": "the default"}[res.AuthMethodFrom]
	if res.AuthMethod == "" || from == "" {
		return ""
	}
	return " Client authentication: " + res.AuthMethod + " (" + from + ")."
}

func (e *Editor) stopTest() {
	if e.testCancel != nil {
		e.testCancel()
		e.testCancel = nil
	}
	e.testBtn.SetText("Test sign-in")
	e.testBtn.SetIcon(theme.LoginIcon())
}

func (e *Editor) setTestStatus(text string, importance widget.Importance) {
	e.testStatus.Importance = importance
	e.testStatus.SetText(text)
}

// save hands the form to the fleet, which writes the config file and the
// keyring and runs the connection. The window closes when it is saved.
func (e *Editor) save() {
	raw := e.raw()
	if problems := e.validate(); len(problems) > 0 {
		e.showAll = true
		e.validate()
		return
	}
	s := apitype.SaveConnection{Connection: raw.Wire(), Secret: e.secret.Text}
	if e.tested != nil && reflect.DeepEqual(e.tested.raw, raw) && e.tested.secret == e.secret.Text {
		s.TestID = e.tested.id
	}
	e.stopTest()
	e.setBusy(true)
	e.setTestStatus("Saving…", widget.MediumImportance)
	replacing := e.replacing
	e.w.bg.Go(func() {
		ctx, cancel := context.WithTimeout(e.w.ctx, time.Minute)
		defer cancel()
		saved, err := e.w.api.SaveConnection(ctx, replacing, s)
		e.w.onUI(func() {
			e.setBusy(false)
			switch {
			case err != nil:
				e.setTestStatus("Not saved: "+err.Error(), widget.DangerImportance)
			case saved.Problem != "":
				e.w.logNow(raw.Name, "saved to %s, with a problem: %s", saved.Path, saved.Problem)
				e.setTestStatus(saved.Problem, widget.DangerImportance)
				e.replacing = raw.Name // what follows edits the saved connection
				e.base = raw
				e.Window.SetTitle(e.title())
			default:
				e.w.logNow(raw.Name, "saved to %s", saved.Path)
				e.Window.Close()
			}
		})
	})
}

func (e *Editor) setBusy(busy bool) {
	for _, b := range []*widget.Button{e.saveBtn, e.testBtn, e.removeBtn} {
		if b != nil {
			enableIf(b, !busy)
		}
	}
}

// confirmRemove asks, then signs the connection out and takes it out of
// the config file. When the provider cannot confirm the sign-out, it asks
// again whether to forget the tokens here anyway.
func (e *Editor) confirmRemove() {
	name := e.replacing
	dialog.ShowConfirm("Remove "+name+"?",
		"tokentray revokes its refresh token at the provider, forgets its tokens and client secret,\nand takes it out of the config file. Scripts using "+name+" stop working.",
		func(ok bool) {
			if ok {
				e.remove(name, false)
			}
		}, e.Window)
}

func (e *Editor) remove(name string, localOnly bool) {
	e.setBusy(true)
	e.w.bg.Go(func() {
		ctx, cancel := context.WithTimeout(e.w.ctx, time.Minute)
		defer cancel()
		saved, err := e.w.api.RemoveConnection(ctx, name, localOnly)
		e.w.onUI(func() {
			e.setBusy(false)
			switch {
			case err == nil && saved.Problem != "":
				e.w.logNow(name, "removed, with a problem: %s", saved.Problem)
				e.Window.Close() // it is gone: nothing is left to edit
			case err == nil:
				e.w.logNow(name, "removed")
				e.Window.Close()
			case errors.Is(err, apiclient.ErrUnreachable) && !localOnly:
				dialog.ShowConfirm("The provider did not confirm the sign-out",
					err.Error()+"\n\nRemove "+name+" anyway? Its refresh token stays valid at the provider until it expires.",
					func(ok bool) {
						if ok {
							e.remove(name, true)
						}
					}, e.Window)
			default:
				e.setTestStatus("Not removed: "+err.Error(), widget.DangerImportance)
			}
		})
	})
}
