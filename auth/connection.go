package auth

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
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
	// AuthMethod is the connection's own token_endpoint_auth_method: how
	// the client authenticates at the token and revocation endpoints. When
	// empty, the preset's, the issuer's metadata or the default decide, at
	// each request (authMethodFrom).
	AuthMethod string
	// AuthMethodsSupported are the methods the server lists in its
	// metadata, when discovered: the method is chosen among them when the
	// connection and its preset set none (authMethodFrom), and they are
	// named in the hint of an invalid_client.
	AuthMethodsSupported []string
	// method is the authentication method decided for the request at
	// hand (forSecret); empty on a connection not yet used for one.
	method string
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
	// RequestTimeout, if not 0, is how long a token request may take
	// before it is abandoned (request_timeout), exactly: it overrides
	// KeeperOptions.RequestTimeout and the scaling for short lifetimes.
	// With a shared store it sets the rescue window (twice as long), so a
	// short one makes room for short-lived tokens (README, "Shared store").
	RequestTimeout time.Duration
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

// Where a connection's client authentication method comes from
// (Status.AuthMethodFrom).
const (
	AuthMethodFromConfig   = "config"   // token_endpoint_auth_method in the config
	AuthMethodFromProvider = "provider" // the preset's, from its documentation
	AuthMethodFromMetadata = "metadata" // chosen from the issuer's token_endpoint_auth_methods_supported
	AuthMethodFromDefault  = "default"  // client_secret_basic with a secret, none without
)

// authMethod is the method used with secret (authMethodFrom).
func (c *Connection) authMethod(secret Secret) string {
	m, _ := c.authMethodFrom(secret != "")
	return m
}

// authMethodFrom is the method used when a client secret is stored or not,
// and where it comes from: the connection's own, the preset's, one chosen
// from the methods the server lists, else the default. It is decided at
// each request from the secret stored then, never kept: a secret stored
// after a public client's sign-in changes the choice at the next request.
func (c *Connection) authMethodFrom(secretStored bool) (method, from string) {
	switch {
	case c.AuthMethod != "":
		return c.AuthMethod, AuthMethodFromConfig
	case c.Provider != nil && c.Provider.AuthMethod != "":
		return c.Provider.AuthMethod, AuthMethodFromProvider
	case len(c.AuthMethodsSupported) > 0:
		return chooseAuthMethod(c.AuthMethodsSupported, secretStored), AuthMethodFromMetadata
	case !secretStored:
		return AuthMethodNone, AuthMethodFromDefault
	}
	return AuthMethodBasic, AuthMethodFromDefault
}

// chooseAuthMethod picks from the methods a server lists. With a secret:
// client_secret_basic, which RFC 6749 §2.3.1 makes every server support,
// then client_secret_post, then none. Without one: none first, as a
// confidential method would send an empty secret and fail only at the code
// exchange, after the person signed in; a list without none yields a
// method that needs a secret, which forSecret refuses before any request.
func chooseAuthMethod(supported []string, secretStored bool) string {
	order := []string{AuthMethodBasic, AuthMethodPost, AuthMethodNone}
	if !secretStored {
		order = []string{AuthMethodNone, AuthMethodBasic, AuthMethodPost}
	}
	for _, m := range order {
		if slices.Contains(supported, m) {
			return m
		}
	}
	return AuthMethodBasic // none tokentray speaks: RFC 6749's mandatory one
}

// SecretRequired reports whether the client cannot authenticate without a
// stored client secret: a preset that says so, a service account, or a
// confidential method set explicitly. A method that the issuer's metadata
// decides is checked only once it is read (forSecret).
func (c *Connection) SecretRequired() bool {
	return (c.Provider != nil && c.Provider.SecretRequired) || c.Grant == GrantClientCredentials ||
		c.AuthMethod == AuthMethodBasic || c.AuthMethod == AuthMethodPost
}

// forSecret is c as a request with secret uses it, its authentication
// method decided (for the hints of a refusal). A method that needs a
// secret, with none stored, is refused here, before anything is sent and
// before a browser opens.
func (c *Connection) forSecret(secret Secret) (*Connection, error) {
	method, from := c.authMethodFrom(secret != "")
	if secret == "" && (method == AuthMethodBasic || method == AuthMethodPost) {
		why := "its token_endpoint_auth_method is " + method
		switch from {
		case AuthMethodFromProvider:
			why = c.Provider.Name + " needs one"
		case AuthMethodFromMetadata:
			why = "the server's metadata lists " + strings.Join(c.AuthMethodsSupported, ", ") + ", not none: its token endpoint takes no public client"
		}
		return nil, missingSecret(c.Name, why)
	}
	out := *c
	out.method = method
	return &out, nil
}

// missingSecret refuses a request that needs a client secret when none is
// stored: a person must store it (exit 3).
func missingSecret(name, why string) error {
	return withStep(credentialsRefused(fmt.Sprintf("no client secret is stored for %s (%s)", name, why)), step(nextstep.StoreSecret, name))
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
