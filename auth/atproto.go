package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The AT Protocol (Bluesky) profile of OAuth: an account's authorization
// server is found from its handle (handle → DID → DID document → its
// personal data server → the server's protected-resource metadata → the
// authorization server), and every client must use PKCE, pushed
// authorization requests and DPoP. A native app with no web site of its
// own is a "loopback client": its client_id is http://localhost with its
// redirect URI and scope in the query, and the server takes its metadata
// from there. (atproto.com/specs/oauth, /specs/handle, /specs/did)

// Identity is an AT Protocol account as its handle resolves.
type Identity struct {
	Handle string `json:"handle"`
	DID    string `json:"did"`
	// PDS is the account's personal data server: the API base.
	PDS string `json:"pds"`
	// Issuer is the authorization server the PDS names.
	Issuer string `json:"issuer"`
}

// PLCDirectory resolves did:plc identifiers.
const PLCDirectory = "https://plc.directory"

// Seams for tests: the DNS TXT lookup and the PLC directory.
var (
	lookupTXT    = net.DefaultResolver.LookupTXT
	plcDirectory = PLCDirectory
)

var (
	handleRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	didRE    = regexp.MustCompile(`^did:(plc:[a-z2-7]{24}|web:[a-zA-Z0-9.-]+(%3[aA][0-9]+)?)$`)
)

// ValidHandle reports whether h is written as an AT Protocol handle (a
// domain name: alice.bsky.social).
func ValidHandle(h string) bool { return len(h) <= 253 && handleRE.MatchString(h) }

// ResolveIdentity finds the account of handle and its authorization
// server. The DID document must name the handle back (alsoKnownAs), so that
// a handle cannot claim someone else's account.
func ResolveIdentity(ctx context.Context, client *http.Client, handle string) (*Identity, error) {
	handle = strings.ToLower(strings.TrimPrefix(handle, "@"))
	if !ValidHandle(handle) {
		return nil, fmt.Errorf("%q is not an AT Protocol handle (a domain name, such as alice.bsky.social)", handle)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	did, err := resolveHandle(ctx, client, handle)
	if err != nil {
		return nil, err
	}
	doc, err := fetchDIDDocument(ctx, client, did)
	if err != nil {
		return nil, err
	}
	if !slicesContainsFold(doc.AlsoKnownAs, "at://"+handle) {
		return nil, fmt.Errorf("the DID document of %s does not name the handle %s back: the handle is not verified", did, handle)
	}
	pds := ""
	for _, s := range doc.Service {
		if (s.ID == "#atproto_pds" || s.ID == did+"#atproto_pds") && s.Type == "AtprotoPersonalDataServer" {
			pds = strings.TrimSuffix(s.ServiceEndpoint, "/")
		}
	}
	if pds == "" || ValidateEndpointURL(pds) != nil {
		return nil, fmt.Errorf("the DID document of %s names no usable personal data server (#atproto_pds)", did)
	}
	var pr struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := getJSON(ctx, client, pds+"/.well-known/oauth-protected-resource", &pr); err != nil {
		return nil, fmt.Errorf("the personal data server %s names no authorization server: %w", pds, err)
	}
	if len(pr.AuthorizationServers) == 0 || ValidateEndpointURL(pr.AuthorizationServers[0]) != nil {
		return nil, fmt.Errorf("the personal data server %s names no usable authorization server", pds)
	}
	return &Identity{Handle: handle, DID: did, PDS: pds, Issuer: pr.AuthorizationServers[0]}, nil
}

// resolveHandle finds a handle's DID: a DNS TXT record _atproto.HANDLE
// saying did=…, else https://HANDLE/.well-known/atproto-did.
func resolveHandle(ctx context.Context, client *http.Client, handle string) (string, error) {
	var why []string
	if txts, err := lookupTXT(ctx, "_atproto."+handle); err == nil {
		for _, t := range txts {
			if did, ok := strings.CutPrefix(t, "did="); ok && didRE.MatchString(did) {
				return did, nil
			}
		}
		why = append(why, "its DNS TXT record _atproto."+handle+" holds no did=")
	} else {
		why = append(why, "no DNS TXT record _atproto."+handle)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+handle+"/.well-known/atproto-did", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err == nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		if did := strings.TrimSpace(string(body)); resp.StatusCode == http.StatusOK && didRE.MatchString(did) {
			return did, nil
		}
		why = append(why, fmt.Sprintf("https://%s/.well-known/atproto-did answered HTTP %d without a DID", handle, resp.StatusCode))
	} else {
		why = append(why, "https://"+handle+"/.well-known/atproto-did could not be reached")
	}
	return "", fmt.Errorf("the handle %s does not resolve to an account: %s", handle, strings.Join(why, "; "))
}

type didDocument struct {
	ID          string   `json:"id"`
	AlsoKnownAs []string `json:"alsoKnownAs"`
	Service     []struct {
		ID              string `json:"id"`
		Type            string `json:"type"`
		ServiceEndpoint string `json:"serviceEndpoint"`
	} `json:"service"`
}

func fetchDIDDocument(ctx context.Context, client *http.Client, did string) (*didDocument, error) {
	var u string
	switch {
	case strings.HasPrefix(did, "did:plc:"):
		u = plcDirectory + "/" + did
	case strings.HasPrefix(did, "did:web:"):
		host, err := url.PathUnescape(strings.TrimPrefix(did, "did:web:"))
		if err != nil {
			return nil, err
		}
		u = "https://" + host + "/.well-known/did.json"
	default:
		return nil, fmt.Errorf("%s is not a DID the AT Protocol uses (did:plc, did:web)", did)
	}
	var doc didDocument
	if err := getJSON(ctx, client, u, &doc); err != nil {
		return nil, fmt.Errorf("the DID document of %s: %w", did, err)
	}
	if doc.ID != did {
		return nil, fmt.Errorf("the DID document at %s is of %q, not %s", u, doc.ID, did)
	}
	return &doc, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: not JSON", u)
	}
	return nil
}

func slicesContainsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// LoopbackClientID is the client_id of an AT Protocol native app without a
// web site: http://localhost with its redirect URI and scope in the query
// (the server derives the client's metadata from them).
func LoopbackClientID(redirectURI string, scopes []string) string {
	q := url.Values{"redirect_uri": {redirectURI}, "scope": {strings.Join(scopes, " ")}}
	return "http://localhost?" + q.Encode()
}

// errWrongAccount: the authorization server signed in another account than
// the handle's.
var errWrongAccount = errors.New("the authorization server signed in another account than the handle names")
