package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// DPoP (RFC 9449): the tokens are bound to a key of this connection, and
// every request that uses them carries a proof signed with it. A stolen
// DPoP-bound token is useless without the key, and so is a bare one in a
// script: agents go through the proxy, which signs each request.

// TokenTypeDPoP is the token_type of a DPoP-bound access token.
const TokenTypeDPoP = "DPoP"

// DPoPKey is a connection's proof-of-possession key: ECDSA P-256 (ES256,
// which every DPoP server supports). It is kept with the tokens, in the
// store: a public client's refresh token is bound to it too.
type DPoPKey struct {
	priv *ecdsa.PrivateKey
}

// NewDPoPKey makes a fresh key.
func NewDPoPKey() (*DPoPKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &DPoPKey{priv: priv}, nil
}

// Marshal is the key as the store keeps it (PKCS #8, base64).
func (d *DPoPKey) Marshal() (Secret, error) {
	der, err := x509.MarshalPKCS8PrivateKey(d.priv)
	if err != nil {
		return "", err
	}
	return Secret(base64.StdEncoding.EncodeToString(der)), nil
}

// ParseDPoPKey reads what Marshal wrote. The error never quotes it.
func ParseDPoPKey(s Secret) (*DPoPKey, error) {
	der, err := base64.StdEncoding.DecodeString(s.Reveal())
	if err != nil {
		return nil, errors.New("the stored DPoP key is not base64")
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("the stored DPoP key is not a PKCS #8 key")
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, errors.New("the stored DPoP key is not a P-256 key")
	}
	return &DPoPKey{priv: priv}, nil
}

func (d *DPoPKey) jwk() map[string]string {
	raw, _ := d.priv.PublicKey.Bytes() // 0x04 || X || Y; P-256 cannot fail
	return map[string]string{"kty": "EC", "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(raw[1:33]), "y": base64.RawURLEncoding.EncodeToString(raw[33:])}
}

// Thumbprint is the key's RFC 7638 JWK thumbprint: the dpop_jkt that binds
// an authorization code to it.
func (d *DPoPKey) Thumbprint() string {
	j := d.jwk()
	// The required members in lexicographic order, no spaces (RFC 7638 §3.2).
	canon := fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, j["crv"], j["kty"], j["x"], j["y"])
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Proof is a DPoP proof JWT for one request: method and URL (without query
// and fragment), the server's nonce when it gave one, and, for a request
// to a resource server, the hash of the access token it carries.
func (d *DPoPKey) Proof(method, target, nonce string, accessToken Secret, now time.Time) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	header, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": d.jwk()})
	claims := map[string]any{"jti": randomString(16), "htm": method, "htu": u.String(), "iat": now.Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken.Reveal()))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	payload, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, d.priv, digest[:])
	if err != nil {
		return "", err
	}
	// JWS ES256: R and S, 32 bytes each, big-endian (RFC 7518 §3.4).
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// dpopNonces are the nonces servers asked for (DPoP-Nonce), by origin: the
// authorization server's and each resource server's are their own.
type dpopNonces struct {
	mu sync.Mutex
	m  map[string]string
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

func (n *dpopNonces) get(target string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[origin(target)]
}

// note keeps the nonce a response from target gave, if any.
func (n *dpopNonces) note(target string, h http.Header) {
	v := h.Get("DPoP-Nonce")
	if v == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]string{}
	}
	n.m[origin(target)] = v
}

// dpopTransport adds a proof to every POST to the authorization server's
// endpoints (token, pushed authorization, device), and sends a request
// again, once, when the server answers use_dpop_nonce: it refused the
// request before acting on it (RFC 9449 §8), so a refresh token is not
// spent by the first try.
type dpopTransport struct {
	base   http.RoundTripper
	key    *DPoPKey
	nonces *dpopNonces
	clock  Clock
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost {
		return t.base.RoundTrip(req)
	}
	for try := 0; ; try++ {
		nonce := t.nonces.get(req.URL.String())
		proof, err := t.key.Proof(req.Method, req.URL.String(), nonce, "", t.clock.Now())
		if err != nil {
			return nil, err
		}
		r := req.Clone(req.Context())
		if try > 0 {
			if req.GetBody == nil {
				return nil, errors.New("the request cannot be sent again with the server's DPoP nonce")
			}
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		r.Header.Set("DPoP", proof)
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		t.nonces.note(req.URL.String(), resp.Header)
		if try > 0 || !askedForNonce(resp) || t.nonces.get(req.URL.String()) == nonce {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
	}
}

// askedForNonce reports whether the authorization server refused a request
// for want of its nonce: HTTP 400 {"error": "use_dpop_nonce"}. The body is
// left readable.
func askedForNonce(resp *http.Response) bool {
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("DPoP-Nonce") == "" {
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error == "use_dpop_nonce"
}

// ProofRefused reports whether a resource server's 401 is about the DPoP
// proof (use_dpop_nonce, invalid_dpop_proof), not about the token: no
// refresh can help it.
func ProofRefused(resp *http.Response) bool {
	h := resp.Header.Get("WWW-Authenticate")
	return resp.StatusCode == http.StatusUnauthorized && (strings.Contains(h, "use_dpop_nonce") || strings.Contains(h, "invalid_dpop_proof"))
}

// ResourceNonceAsked reports whether a resource server's answer asks for a
// DPoP nonce: HTTP 401 with WWW-Authenticate: DPoP error="use_dpop_nonce".
func ResourceNonceAsked(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("DPoP-Nonce") != "" &&
		strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce")
}

// ErrBoundToken: the access token is DPoP-bound, so it is useless without a
// proof of this connection's key; scripts call the API through the proxy.
var ErrBoundToken = errors.New("the access token is DPoP-bound")

// Bound reports whether t's access token needs a DPoP proof with each use.
func (t *TokenSet) Bound() bool { return strings.EqualFold(t.TokenType, TokenTypeDPoP) }

// BoundTokenError says what to use instead of a bound token.
func BoundTokenError(name string) error {
	return withStep(fmt.Errorf("%s: %w (RFC 9449): it works only with a proof signed by the connection's key, which stays in tokentray", name, ErrBoundToken),
		step(nextstep.UseProxy, name))
}

// dpopKeyFor is the key the next token request of a connection with DPoP
// uses, and the key as the new tokens keep it: the one t's tokens are
// bound to, or a new one for tokens that are bound to none (a sign-in, or
// tokens from before DPoP was turned on). Both are made before any request,
// so that nothing can fail between a token answer and its saving. Nil and
// "" without DPoP.
func (k *Keeper) dpopKeyFor(t *TokenSet) (*DPoPKey, Secret, error) {
	switch {
	case t != nil && t.DPoPKey != "":
		key, err := ParseDPoPKey(t.DPoPKey)
		return key, t.DPoPKey, err
	case !k.conn.dpop():
		return nil, "", nil
	}
	key, err := NewDPoPKey()
	if err != nil {
		return nil, "", err
	}
	kept, err := key.Marshal()
	return key, kept, err
}

// tokenHTTP is the client for the authorization server's endpoints: the
// connection's token parameters and headers, and with key a DPoP proof on
// every POST.
func (k *Keeper) tokenHTTP(conn *Connection, key *DPoPKey) *http.Client {
	c := tokenClient(k.post, conn)
	if key == nil {
		return c
	}
	withProof := *c
	base := withProof.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	withProof.Transport = &dpopTransport{base: base, key: key, nonces: &k.nonces, clock: k.opt.Clock}
	return &withProof
}

// DPoPProof is the proof for one API request with t's access token: method
// and target, the access token's hash, and the API's nonce when it gave
// one. Empty, with no error, for a token that is not bound.
func (k *Keeper) DPoPProof(method, target string, t *TokenSet) (string, error) {
	if t == nil || !t.Bound() {
		return "", nil
	}
	key, err := ParseDPoPKey(t.DPoPKey)
	if err != nil {
		return "", fmt.Errorf("%s: %w", k.conn.Name, err)
	}
	return key.Proof(method, target, k.nonces.get(target), t.AccessToken, k.opt.Clock.Now())
}

// NoteDPoPNonce keeps the nonce an API's answer to target gave, for the
// next proof to it.
func (k *Keeper) NoteDPoPNonce(target string, h http.Header) { k.nonces.note(target, h) }

// BareToken is Token for a caller that uses the token itself (a script, an
// export file): a DPoP-bound token is refused with ErrBoundToken, since it
// works only with proofs of a key that stays in tokentray.
func (k *Keeper) BareToken(ctx context.Context, minValid time.Duration) (*Handout, error) {
	t, err := k.Token(ctx, minValid)
	if err == nil && t.Bound() {
		return nil, BoundTokenError(k.conn.Name)
	}
	return t, err
}
