package auth

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Endpoints are the URLs one connection talks to. A preset fills all of them
// from one environment so that an authorize URL from the sandbox can never be
// paired with a production token URL: the seeds' "three URL traps".
type Endpoints struct {
	AuthURL   string `json:"auth_url,omitempty"`   // where the browser signs in
	TokenURL  string `json:"token_url,omitempty"`  // code exchange and refresh
	RevokeURL string `json:"revoke_url,omitempty"` // RFC 7009 revocation; empty when the provider has none
	APIBase   string `json:"api_base,omitempty"`   // base of the API the tokens are for
	CheckURL  string `json:"check_url,omitempty"`  // a cheap "who am I" GET that proves a token works
	// Issuer is the authorization server's issuer identifier (RFC 8414).
	// When set, a callback's RFC 9207 `iss` must equal it exactly; when
	// empty, an `iss` must at least come from the authorize URL's origin.
	// A generic connection with an issuer discovers the URLs it lacks.
	Issuer string `json:"issuer,omitempty"`
	// DeviceAuthURL is RFC 8628's device authorization endpoint: a sign-in
	// with a code typed on another device (`login --device`).
	DeviceAuthURL string `json:"device_auth_url,omitempty"`
	// TokenInfoURL describes the access token it is called with (Procore's
	// /oauth/token/info): what the server says of its life and scopes.
	TokenInfoURL string `json:"token_info_url,omitempty"`
	// PARURL is RFC 9126's pushed authorization request endpoint: when
	// set, the authorization request goes there first, and the browser
	// gets only its request_uri.
	PARURL string `json:"par_url,omitempty"`
}

// EndpointField is one URL of Endpoints, by its config key.
type EndpointField struct {
	Key string
	URL *string
}

// Fields are e's URLs by config key, in the order a person reads them: the
// one list that validation, overrides and tenants go by.
func (e *Endpoints) Fields() []EndpointField {
	return []EndpointField{{"auth_url", &e.AuthURL}, {"token_url", &e.TokenURL}, {"revoke_url", &e.RevokeURL},
		{"api_base", &e.APIBase}, {"check_url", &e.CheckURL}, {"issuer", &e.Issuer},
		{"device_auth_url", &e.DeviceAuthURL}, {"token_info_url", &e.TokenInfoURL}, {"par_url", &e.PARURL}}
}

// Preset is a provider's fixed knowledge: its environments, how its token
// endpoint wants the client to authenticate, and the quirks that decide
// whether a refresh token arrives and how long it lives. Each fact comes
// from the provider's documentation, named in Sources.
type Preset struct {
	Name string
	// Title is the provider's name for people: "Microsoft Entra ID".
	Title        string
	Environments map[string]Endpoints
	// DefaultEnvironment is used when a connection names none.
	DefaultEnvironment string
	// AuthMethod is how the provider's token endpoint wants the client to
	// authenticate (RFC 7591 names); empty leaves it to the connection, the
	// issuer's metadata or the default. A connection's own setting wins.
	AuthMethod string
	// SecretRequired means the token endpoint refuses a client without a secret.
	SecretRequired bool
	// Notes explain choices a user should know about, by environment ("" for
	// all), shown by the editor and docs.
	Notes map[string]string
	// Scopes are added to a sign-in's scopes when missing: without them the
	// provider issues no refresh token (offline_access).
	Scopes []string
	// AuthParams are added to the authorization request unless the
	// connection sets them (Google's access_type=offline).
	AuthParams map[string]string
	// TokenHeaders are sent with every request to the token endpoint
	// (GitHub answers in JSON only when asked to).
	TokenHeaders map[string]string
	// ErrorCodes name the provider's own token-endpoint error codes by the
	// RFC 6749 code that means the same (GitHub's bad_refresh_token is an
	// invalid_grant), so that they are classified alike.
	ErrorCodes map[string]string
	// AccessLifetime is assumed for an access token whose answer carries no
	// expires_in (DefaultLifetime when 0).
	AccessLifetime time.Duration
	// RefreshToken is the provider's rule for how long refresh tokens live;
	// EnvRefreshToken replaces it for an environment.
	RefreshToken    RefreshTokenRule
	EnvRefreshToken map[string]RefreshTokenRule
	// RequiresDPoP: the provider accepts DPoP-bound tokens only (RFC 9449).
	RequiresDPoP bool
	// Sources are the documents the preset's facts come from.
	Sources []string
}

// Note is the preset's note for env: the environment's own, else the one
// for all environments.
func (p *Preset) Note(env string) string {
	if n := p.Notes[env]; n != "" {
		return n
	}
	return p.Notes[""]
}

// Rule is the preset's refresh-token rule in env.
func (p *Preset) Rule(env string) RefreshTokenRule {
	if r, ok := p.EnvRefreshToken[env]; ok {
		return r
	}
	return p.RefreshToken
}

// Procore's hosts. The developer sandbox and the monthly sandbox have their
// own login hosts; the API host of the monthly sandbox follows Procore's
// documentation (api-monthly.procore.com), which differs from the customer's
// notes (monthly-sandbox.procore.com): override api_base if yours differs.
var procore = Preset{
	Name:               "procore",
	Title:              "Procore",
	DefaultEnvironment: "production",
	// Procore's docs: the client secret goes in the form body.
	AuthMethod:     AuthMethodPost,
	SecretRequired: true,
	Environments: map[string]Endpoints{
		"production":      procoreEndpoints("login.procore.com", "api.procore.com"),
		"sandbox":         procoreEndpoints("login-sandbox.procore.com", "sandbox.procore.com"),
		"monthly-sandbox": procoreEndpoints("login-sandbox-monthly.procore.com", "api-monthly.procore.com"),
		// On-demand sandboxes live on production's hosts, with production's
		// credentials, each in a company of its own (company_id).
		"on-demand-sandbox": procoreEndpoints("login.procore.com", "api.procore.com"),
		// The Federal Zone ("Procore for Government"): hosts of its own,
		// a developer portal and credentials of its own, no sandboxes.
		"federal": procoreEndpoints("login.procoregov.com", "api.procoregov.com"),
	},
	Notes: map[string]string{
		"monthly-sandbox":   "Overwritten from production early each month (the first Tuesday to Thursday), which ends its sign-ins: tokentray warns ahead. API base follows Procore's docs (api-monthly.procore.com); some accounts use monthly-sandbox.procore.com: set api_base to override.",
		"on-demand-sandbox": "Production's hosts and credentials, in a company of its own: set company_id to the sandbox's company.",
		"federal":           "The Federal Zone has its own developer portal, client id and secret, and no sandboxes.",
	},
	// Refresh tokens live until used (single-use, no fixed expiry); the
	// monthly sandbox's grants end when it is overwritten.
	EnvRefreshToken: map[string]RefreshTokenRule{
		"monthly-sandbox": {Reset: procoreMonthlyReset, About: "Procore's monthly sandbox",
			ResetWhat: "the monthly sandbox is overwritten from production early each month, which ends every sign-in to it"},
	},
	Sources: []string{
		"https://developers.procore.com/documentation/oauth-endpoints",
		"https://developers.procore.com/documentation/oauth-installed-apps",
		"https://developers.procore.com/documentation/oauth-access-tokens",
		"https://developers.procore.com/documentation/development-environments",
		"https://developers.procore.com/documentation/federal-zone-overview",
		"https://developers.procore.com/documentation/mpz-headers",
	},
}

// procoreMonthlyReset is the first morning after t on which Procore
// overwrites the monthly sandbox. Procore's page says "the first working
// day of each month, typically morning to mid-afternoon ET"; the dates it
// projects (May to December 2026) are each month's first Tuesday, Wednesday
// or Thursday, never a Monday or a Friday, and that is the rule here, so
// that a sign-in on the Monday after the forecast is not lost the next
// day. The end is put at 10:00 UTC (06:00 ET in summer), the earliest
// "morning" can be. New Year's Day is no working day.
func procoreMonthlyReset(after time.Time) time.Time {
	after = after.UTC()
	for m := 0; ; m++ {
		day := time.Date(after.Year(), after.Month()+time.Month(m), 1, 10, 0, 0, 0, time.UTC)
		for !procoreResetDay(day) {
			day = day.AddDate(0, 0, 1)
		}
		if day.After(after) {
			return day
		}
	}
}

func procoreResetDay(d time.Time) bool {
	switch d.Weekday() {
	case time.Tuesday, time.Wednesday, time.Thursday:
		return !(d.Month() == time.January && d.Day() == 1)
	}
	return false
}

func procoreEndpoints(loginHost, apiHost string) Endpoints {
	login := "https://" + loginHost
	api := "https://" + apiHost
	return Endpoints{
		AuthURL:   login + "/oauth/authorize",
		TokenURL:  login + "/oauth/token",
		RevokeURL: login + "/oauth/revoke",
		APIBase:   api,
		CheckURL:  api + "/rest/v1.0/me",
		// What the server says of the token: its life, its scopes, its
		// owner (Procore: on the login host).
		TokenInfoURL: login + "/oauth/token/info",
	}
}

// generic has no URLs of its own: every connection states them.
var generic = Preset{
	Name:               "generic",
	Title:              "Any OAuth 2.0 server",
	DefaultEnvironment: "",
	Environments:       map[string]Endpoints{"": {}},
}

var presets = map[string]*Preset{"procore": &procore, "generic": &generic,
	"google": &google, "entra": &entra, "github": &github, "xero": &xero, "intuit": &intuit,
	"atlassian": &atlassian, "slack": &slack, "salesforce": &salesforce, "dropbox": &dropbox, "atproto": &atproto}

// LookupPreset returns the named provider preset.
func LookupPreset(name string) (*Preset, bool) {
	p, ok := presets[name]
	return p, ok
}

// PresetNames lists the known providers, sorted.
func PresetNames() []string { return sortedKeys(presets) }

// EnvironmentNames lists a preset's environments, sorted.
func (p *Preset) EnvironmentNames() []string { return sortedKeys(p.Environments) }

// Resolve returns the endpoints of env with every non-empty override applied.
func (p *Preset) Resolve(env string, overrides Endpoints) (Endpoints, error) {
	if env == "" {
		env = p.DefaultEnvironment
	}
	e, ok := p.Environments[env]
	if !ok {
		return Endpoints{}, fmt.Errorf("provider %q has no environment %q (choose one of: %s)",
			p.Name, env, strings.Join(p.EnvironmentNames(), ", "))
	}
	own := overrides.Fields()
	for i, f := range e.Fields() {
		if v := *own[i].URL; v != "" {
			*f.URL = v
		}
	}
	return e, nil
}

// ValidateEndpointURL checks one provider URL: absolute, https, except on a
// loopback host (a local test or demo server).
func ValidateEndpointURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q uses plain http: tokens would cross the network unencrypted; use https (plain http is allowed only for localhost, 127.0.0.1 and [::1])", raw)
	}
	return nil
}

// CheckBrowserURL checks a URL before tokentray opens it in the person's
// browser, wherever it came from (a provider's metadata or device answer,
// a [[remote]] server's sign-in): https, or http to a loopback address, and
// nothing else. The desktop's URL opener (xdg-open, open, Windows'
// FileProtocolHandler) runs whatever a scheme is registered for: a file:
// URL naming a .desktop file, a custom handler, javascript:.
func CheckBrowserURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "" || u.Opaque != "":
		return fmt.Errorf("%q is not an absolute https URL, so it is not opened", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is a %s: URL, so it is not opened: only https, or http to this machine, is", raw, u.Scheme)
	case u.Host == "":
		return fmt.Errorf("%q is not an absolute https URL, so it is not opened", raw)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return fmt.Errorf("%q uses plain http to another machine, so it is not opened: only https, or http to this machine, is", raw)
	}
	return nil
}

// OOBRedirectURI is the out-of-band redirect URI: the provider shows the
// code on a page of its own, and the person pastes it (Procore documents it
// for sign-ins on machines without a browser).
const OOBRedirectURI = "urn:ietf:wg:oauth:2.0:oob"

// RedirectURI is a parsed, validated redirect URI.
type RedirectURI struct {
	Raw      string
	OOB      bool   // OOBRedirectURI: the person pastes the code the provider shows
	Loopback bool   // http on a loopback host: tokentray listens for the callback itself
	Host     string // "localhost", "127.0.0.1" or "::1" when Loopback
	Port     int
	Path     string
}

// ParseRedirectURI accepts http://localhost:PORT/..., http://127.0.0.1:PORT/...,
// http://[::1]:PORT/..., https://... and OOBRedirectURI. Anything else is
// refused with the reason, because providers such as Procore refuse it too,
// with a misleading "unknown client" error.
func ParseRedirectURI(raw string) (RedirectURI, error) {
	if raw == OOBRedirectURI {
		return RedirectURI{Raw: raw, OOB: true}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return RedirectURI{}, fmt.Errorf("%q is not an absolute URL; use e.g. http://localhost:8765/callback", raw)
	}
	if u.Fragment != "" || u.User != nil {
		return RedirectURI{}, fmt.Errorf("%q must not contain a #fragment or user info", raw)
	}
	switch u.Scheme {
	case "https":
		return RedirectURI{Raw: raw, Path: u.EscapedPath()}, nil
	case "http":
	default:
		return RedirectURI{}, fmt.Errorf("%q: the scheme must be http (loopback only) or https", raw)
	}
	host := u.Hostname()
	if !isLoopbackHost(host) {
		return RedirectURI{}, fmt.Errorf("%q: plain http is allowed only for localhost, 127.0.0.1 or [::1]; "+
			"providers such as Procore refuse LAN IPs and host names, and the browser must run on this machine; "+
			"use http://localhost:PORT/callback and register exactly that", raw)
	}
	portText := u.Port()
	if portText == "" {
		return RedirectURI{}, fmt.Errorf("%q has no port: tokentray must listen on the exact port you registered, e.g. http://localhost:8765/callback", raw)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return RedirectURI{}, fmt.Errorf("%q: port %q is not between 1 and 65535", raw, portText)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return RedirectURI{Raw: raw, Loopback: true, Host: host, Port: port, Path: path}, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
