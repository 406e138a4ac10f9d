package auth

import (
	"maps"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// Grant is how a connection obtains tokens.
type Grant string

const (
	// GrantAuthorizationCode signs a person in through the browser and then
	// lives on refresh tokens.
	GrantAuthorizationCode Grant = "authorization_code"
	// GrantClientCredentials is a service account: no browser, no refresh
	// token; a new access token is fetched with the client's own credentials.
	GrantClientCredentials Grant = "client_credentials"
)

// DefaultRefreshAt is the fraction of an access token's lifetime after which
// it is refreshed.
const DefaultRefreshAt = 0.8

// Client authentication methods at the token endpoint, as RFC 7591 names
// them (token_endpoint_auth_method).
const (
	// AuthMethodBasic sends the client id and secret in an HTTP Basic
	// Authorization header. RFC 6749 §2.3.1 makes every server support it.
	AuthMethodBasic = "client_secret_basic"
	// AuthMethodPost sends them in the form body.
	AuthMethodPost = "client_secret_post"
	// AuthMethodNone sends only the client id: a public client.
	AuthMethodNone = "none"
)

// AuthMethods lists the methods tokentray speaks.
var AuthMethods = []string{AuthMethodBasic, AuthMethodPost, AuthMethodNone}

// Connection is one configured OAuth connection, validated.
type Connection struct {
	Name        string
	Provider    *Preset
	Environment string
	Grant       Grant
	ClientID    string
	RedirectURI RedirectURI
	Scopes      []string
	RefreshAt   float64
	Endpoints   Endpoints
	// AuthMethod is how the client authenticates at the token and
	// revocation endpoints: set in the config or by the preset, else taken
	// from the issuer's metadata; empty means client_secret_basic with a
	// client secret and none without.
	AuthMethod string
	// AuthMethodsSupported are the methods the server lists in its
	// metadata, when discovered: named in the hint of an invalid_client.
	AuthMethodsSupported []string
	// Discover fills the endpoints the connection does not set from the
	// metadata of Endpoints.Issuer (RFC 8414 / OpenID Connect Discovery).
	Discover bool
	// AuthParams are extra parameters of the authorization request
	// (audience, prompt, access_type, resource, …).
	AuthParams map[string]string
	// TokenParams are extra parameters of every token request: the code
	// exchange, each refresh and client credentials.
	TokenParams map[string]string
	// APIHeaders are sent with every API call made through tokentray's
	// proxy (Procore-Company-Id).
	APIHeaders map[string]string
	// ProxyPort, if not 0, serves the proxy on 127.0.0.1:ProxyPort too.
	ProxyPort int
	// RefreshTokenRule is how long the provider lets a refresh token live
	// when its answers do not say: the preset's, or the config's own.
	RefreshTokenRule RefreshTokenRule
	// RefreshTokenWarning is how long before a refresh token's foreseen
	// end a person hears of it (DefaultRefreshTokenWarning when 0).
	RefreshTokenWarning time.Duration
	// AccessLifetime is assumed for an access token whose answer carried
	// no expires_in (DefaultLifetime when 0): the preset's (Salesforce) or
	// the config's access_token_lifetime.
	AccessLifetime time.Duration
	// DPoP binds the tokens to a key of this connection (RFC 9449): every
	// token request and API call carries a proof signed with it.
	DPoP bool
	// Handle is an AT Protocol account's handle: its authorization server
	// and API are found from it (Discover), and the sign-in must bring
	// that account.
	Handle string
}

// dpop reports whether the tokens are bound to a key: the connection says
// so, or its preset requires it (the AT Protocol).
func (c *Connection) dpop() bool { return c.DPoP || (c.Provider != nil && c.Provider.RequiresDPoP) }

// authMethod is the method used with secret: the connection's own, the
// preset's, or client_secret_basic when a secret is stored and none when not.
func (c *Connection) authMethod(secret Secret) string {
	switch {
	case c.AuthMethod != "":
		return c.AuthMethod
	case c.Provider != nil && c.Provider.AuthMethod != "":
		return c.Provider.AuthMethod
	case secret == "":
		return AuthMethodNone
	}
	return AuthMethodBasic
}

// SecretRequired reports whether the client cannot authenticate without a
// stored client secret: a preset that says so, a service account, or a
// confidential method set explicitly.
func (c *Connection) SecretRequired() bool {
	return (c.Provider != nil && c.Provider.SecretRequired) || c.Grant == GrantClientCredentials ||
		c.AuthMethod == AuthMethodBasic || c.AuthMethod == AuthMethodPost
}

// oauthConfig builds the x/oauth2 configuration with an explicit client
// authentication style: never auto-detection, which retries a refused
// refresh with the other style and so presents a single-use refresh token
// twice.
func (c *Connection) oauthConfig(secret Secret) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	method := c.authMethod(secret)
	switch method {
	case AuthMethodBasic:
		style = oauth2.AuthStyleInHeader
	case AuthMethodNone:
		secret = "" // a public client sends only its id
	}
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: secret.Reveal(),
		RedirectURL:  c.RedirectURI.Raw,
		Scopes:       c.scopes(),
		Endpoint: oauth2.Endpoint{
			AuthURL:   c.Endpoints.AuthURL,
			TokenURL:  c.Endpoints.TokenURL,
			AuthStyle: style,
		},
	}
}

// scopes are the scopes asked for: the connection's, and those its preset
// needs for a refresh token (offline_access) when a person signs in.
func (c *Connection) scopes() []string {
	if c.Provider == nil || c.Grant == GrantClientCredentials {
		return c.Scopes
	}
	out := slices.Clone(c.Scopes)
	for _, s := range c.Provider.Scopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// authParams are the extra parameters of the authorization request: the
// preset's and the account to sign in, each replaced by the connection's
// own.
func (c *Connection) authParams() map[string]string {
	out := map[string]string{}
	if c.Provider != nil {
		maps.Copy(out, c.Provider.AuthParams)
	}
	if h := c.loginHint(); h != "" {
		out["login_hint"] = h
	}
	maps.Copy(out, c.AuthParams)
	return out
}

// loginHint names the account to sign in, where the provider takes one.
func (c *Connection) loginHint() string {
	if c.Handle != "" {
		return c.Handle
	}
	return ""
}

// refreshTokenRule is the connection's own rule when it states one, else
// its preset's for its environment.
func (c *Connection) refreshTokenRule() RefreshTokenRule {
	if c.RefreshTokenRule.Known() || c.Provider == nil {
		return c.RefreshTokenRule
	}
	return c.Provider.Rule(c.Environment)
}

// accessLifetime is assumed for an access token whose answer carried no
// expires_in: the connection's, its preset's, or DefaultLifetime.
func (c *Connection) accessLifetime() time.Duration {
	switch {
	case c.AccessLifetime > 0:
		return c.AccessLifetime
	case c.Provider != nil && c.Provider.AccessLifetime > 0:
		return c.Provider.AccessLifetime
	}
	return DefaultLifetime
}

// refreshAt is the point after which a token received at obtained, living
// lifetime, is refreshed.
func (c *Connection) refreshAt(obtained time.Time, lifetime time.Duration) time.Time {
	f := c.RefreshAt
	if f <= 0 || f >= 1 {
		f = DefaultRefreshAt
	}
	return obtained.Add(time.Duration(float64(lifetime) * f))
}
