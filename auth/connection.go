package auth

import (
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
}

// oauthConfig builds the x/oauth2 configuration with the explicit client
// authentication style of the provider.
func (c *Connection) oauthConfig(secret string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: secret,
		RedirectURL:  c.RedirectURI.Raw,
		Scopes:       c.Scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   c.Endpoints.AuthURL,
			TokenURL:  c.Endpoints.TokenURL,
			AuthStyle: c.Provider.AuthStyle,
		},
	}
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
