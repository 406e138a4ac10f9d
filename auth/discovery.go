package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Metadata is what an authorization server publishes about itself: RFC 8414
// (OAuth 2.0 Authorization Server Metadata) and OpenID Connect Discovery 1.0
// share these fields.
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	PushedAuthorizationEndpoint       string   `json:"pushed_authorization_request_endpoint"`
	RequirePushedAuthorization        bool     `json:"require_pushed_authorization_requests"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
}

// ErrDiscovery wraps every failure to read an issuer's metadata.
var ErrDiscovery = errors.New("discovery failed")

// discoveryMaxAge is how long fetched metadata is used before it is fetched
// again. Stale metadata is still used when the issuer cannot be reached: the
// token endpoint may well answer while the metadata document does not.
const discoveryMaxAge = 24 * time.Hour

// Discover fetches the metadata of issuer: first OpenID Connect Discovery
// ({issuer}/.well-known/openid-configuration), then RFC 8414
// ({scheme}://{host}/.well-known/oauth-authorization-server{path}). The
// document must name the same issuer (RFC 8414 §3.3), so that a mistyped or
// spoofed issuer cannot hand out another server's endpoints.
func Discover(ctx context.Context, client *http.Client, issuer string) (*Metadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: issuer %q is not an absolute URL without query or fragment", ErrDiscovery, issuer)
	}
	trimmed := strings.TrimSuffix(issuer, "/")
	candidates := []string{
		trimmed + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.EscapedPath(), "/"),
	}
	var errs []string
	for _, doc := range candidates {
		md, err := fetchMetadata(ctx, client, doc)
		if err != nil {
			errs = append(errs, err.Error())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if strings.TrimSuffix(md.Issuer, "/") != trimmed {
			return nil, fmt.Errorf("%w: %s names the issuer %q, not %q; set issuer to exactly the server's issuer", ErrDiscovery, doc, md.Issuer, issuer)
		}
		if err := md.validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrDiscovery, doc, err)
		}
		return md, nil
	}
	return nil, fmt.Errorf("%w: no metadata for the issuer %s (%s); check the issuer URL, or set auth_url and token_url instead", ErrDiscovery, issuer, strings.Join(errs, "; "))
}

func fetchMetadata(ctx context.Context, client *http.Client, doc string) (*Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, doc, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", doc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", doc, resp.StatusCode)
	}
	var md Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return nil, fmt.Errorf("GET %s: not a metadata document (%v)", doc, err)
	}
	return &md, nil
}

func (md *Metadata) validate() error {
	if md.TokenEndpoint == "" {
		return errors.New("it has no token_endpoint")
	}
	// Every endpoint it names, as a configured one would be checked: the
	// client secret goes to the device and pushed-authorization endpoints
	// as well as to the token endpoint.
	for _, u := range []string{md.AuthorizationEndpoint, md.TokenEndpoint, md.RevocationEndpoint, md.UserinfoEndpoint,
		md.DeviceAuthorizationEndpoint, md.PushedAuthorizationEndpoint} {
		if u == "" {
			continue
		}
		if err := ValidateEndpointURL(u); err != nil {
			return err
		}
	}
	return nil
}

// apply fills the endpoints the connection does not set itself, and the
// authentication methods the server lists, among which a request chooses
// by whether a client secret is stored then (authMethodFrom): the choice
// is not kept, so storing a secret later changes it.
func (md *Metadata) apply(c *Connection) {
	e := &c.Endpoints
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&e.AuthURL, md.AuthorizationEndpoint)
	fill(&e.TokenURL, md.TokenEndpoint)
	fill(&e.RevokeURL, md.RevocationEndpoint)
	fill(&e.CheckURL, md.UserinfoEndpoint)
	fill(&e.DeviceAuthURL, md.DeviceAuthorizationEndpoint)
	if md.RequirePushedAuthorization {
		// Used where the server requires it; where it only offers it, the
		// plain request works as well, and par_url opts in.
		fill(&e.PARURL, md.PushedAuthorizationEndpoint)
	}
	// The server's own spelling, for the exact RFC 9207 comparison.
	e.Issuer = md.Issuer
	c.AuthMethodsSupported = md.TokenEndpointAuthMethodsSupported
}
