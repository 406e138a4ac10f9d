package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// proof is a DPoP proof as a server reads it.
type proof struct {
	header struct {
		Typ string            `json:"typ"`
		Alg string            `json:"alg"`
		JWK map[string]string `json:"jwk"`
	}
	claims struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   int64  `json:"iat"`
		Nonce string `json:"nonce"`
		ATH   string `json:"ath"`
	}
	thumbprint string
}

// verifyProof checks a proof as RFC 9449 §4.3 has a server do: its type
// and algorithm, its signature with the key in its header; and returns it.
func verifyProof(t *testing.T, jwt string) proof {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("a proof of %d parts", len(parts))
	}
	var p proof
	for i, dst := range []any{&p.header, &p.claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("part %d of the proof is not base64url JSON", i)
		}
	}
	if p.header.Typ != "dpop+jwt" || p.header.Alg != "ES256" || p.header.JWK["kty"] != "EC" || p.header.JWK["crv"] != "P-256" || p.header.JWK["d"] != "" {
		t.Fatalf("proof header %+v", p.header)
	}
	x, _ := base64.RawURLEncoding.DecodeString(p.header.JWK["x"])
	y, _ := base64.RawURLEncoding.DecodeString(p.header.JWK["y"])
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatalf("the proof's key: %v", err)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("the proof's signature does not verify with the key in its header")
	}
	canon := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, p.header.JWK["x"], p.header.JWK["y"])
	sum := sha256.Sum256([]byte(canon))
	p.thumbprint = base64.RawURLEncoding.EncodeToString(sum[:])
	return p
}

func TestADPoPProofIsSignedAndNamesItsRequest(t *testing.T) {
	key, err := NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1764460800, 0)
	jwt, err := key.Proof("GET", "https://api.example.com/v1/me?x=1#frag", "n-1", "at-1", now)
	if err != nil {
		t.Fatal(err)
	}
	p := verifyProof(t, jwt)
	sum := sha256.Sum256([]byte("at-1"))
	if c := p.claims; c.HTM != "GET" || c.HTU != "https://api.example.com/v1/me" || c.IAT != now.Unix() || c.Nonce != "n-1" ||
		c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) || len(c.JTI) < 16 {
		t.Fatalf("claims %+v", c)
	}
	if p.thumbprint != key.Thumbprint() {
		t.Fatalf("thumbprint %s, want %s", key.Thumbprint(), p.thumbprint)
	}
	again, _ := key.Proof("GET", "https://api.example.com/v1/me", "", "", now)
	if q := verifyProof(t, again); q.claims.JTI == p.claims.JTI || q.claims.ATH != "" || q.claims.Nonce != "" {
		t.Fatalf("a second proof: %+v", q.claims)
	}
	stored, _ := key.Marshal()
	back, err := ParseDPoPKey(stored)
	if err != nil || back.Thumbprint() != key.Thumbprint() {
		t.Fatalf("the key read back: %v", err)
	}
	if _, err := ParseDPoPKey("not-a-key"); err == nil || strings.Contains(err.Error(), "not-a-key") {
		t.Fatalf("a broken stored key: %v", err)
	}
}

// dpopServer is an authorization server that binds tokens to the key of
// the proof (cnf.jkt) and wants its nonce: a request without it is refused
// with use_dpop_nonce before anything is done, as RFC 9449 §8 has it.
type dpopServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	nonce  string
	live   map[string]string // refresh token -> the thumbprint it is bound to
	seen   []proof
	pushed map[string]string // request_uri -> the pushed parameters
	forms  []map[string]string
}

func newDPoPServer(t *testing.T) *dpopServer {
	d := &dpopServer{nonce: "nonce-1", live: map[string]string{}, pushed: map[string]string{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		d.mu.Lock()
		defer d.mu.Unlock()
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		d.forms = append(d.forms, form)
		w.Header().Set("Content-Type", "application/json")
		p := verifyProof(t, r.Header.Get("DPoP"))
		d.seen = append(d.seen, p)
		if p.claims.Nonce != d.nonce || p.claims.HTU != d.srv.URL+r.URL.Path || p.claims.HTM != r.Method {
			w.Header().Set("DPoP-Nonce", d.nonce)
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof"})
			return
		}
		switch r.URL.Path {
		case "/par":
			uri := "urn:ietf:params:oauth:request_uri:" + randomString(8)
			d.pushed[uri] = r.PostForm.Encode()
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"request_uri": uri, "expires_in": 60})
		case "/token":
			rt := r.PostForm.Get("refresh_token")
			bound, ok := d.live[rt]
			delete(d.live, rt)
			if !ok || bound != p.thumbprint {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
				return
			}
			next := "rt-" + randomString(6)
			d.live[next] = p.thumbprint
			// A new nonce now and then, in a successful answer too.
			d.nonce = "nonce-" + randomString(4)
			w.Header().Set("DPoP-Nonce", d.nonce)
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + randomString(6), "token_type": "DPoP", "expires_in": 300, "refresh_token": next})
		}
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// A connection with DPoP refreshes with proofs of its one key, learns the
// server's nonce from its refusal without spending the refresh token, keeps
// the key with the tokens, and hands the bound token to no script.
func TestDPoPRefreshesWithProofsOfTheKeptKey(t *testing.T) {
	d := newDPoPServer(t)
	key, _ := NewDPoPKey()
	stored, _ := key.Marshal()
	d.live["rt-0"] = key.Thumbprint()
	conn := &Connection{Name: "bsky", Provider: &generic, Grant: GrantAuthorizationCode, ClientID: "http://localhost", DPoP: true, RefreshAt: 0.8,
		Endpoints: Endpoints{TokenURL: d.srv.URL + "/token"}}
	store := newMemStore()
	store.put("bsky", &TokenSet{AccessToken: "at-0", TokenType: "DPoP", RefreshToken: "rt-0", ObtainedAt: t0.Add(-time.Hour), Lifetime: 5 * time.Minute, DPoPKey: stored})
	k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, Clock: fakeclock.New(t0)})
	for i := range 3 {
		if err := k.Refresh(context.Background()); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	d.mu.Lock()
	for _, p := range d.seen {
		if p.thumbprint != key.Thumbprint() {
			t.Fatal("a proof signed with another key than the one the tokens are bound to")
		}
	}
	// One refusal for the nonce, then each refresh once: the new nonce
	// came with each answer.
	if len(d.seen) != 4 {
		t.Errorf("%d token requests for 3 refreshes, want 4 (the first refused for its nonce)", len(d.seen))
	}
	d.mu.Unlock()
	tokens := store.stored("bsky")
	if tokens.DPoPKey != stored || !tokens.Bound() {
		t.Fatalf("kept key changed=%t, bound=%t", tokens.DPoPKey != stored, tokens.Bound())
	}
	if _, err := k.BareToken(context.Background(), DefaultMinValid); !errors.Is(err, ErrBoundToken) || NextStepOf(err) == nil || NextStepOf(err).Kind != nextstep.UseProxy {
		t.Fatalf("a bound token handed to a script: %v (next %+v)", err, NextStepOf(err))
	}
	if _, err := k.Token(context.Background(), DefaultMinValid); err != nil {
		t.Fatalf("the proxy's token: %v", err)
	}
	// The proxy's proof for an API call carries the token's hash.
	h, _ := k.Token(context.Background(), DefaultMinValid)
	jwt, err := k.DPoPProof("POST", "https://pds.example.com/xrpc/com.atproto.repo.createRecord", &h.TokenSet)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(h.AccessToken.Reveal()))
	if p := verifyProof(t, jwt); p.claims.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) || p.thumbprint != key.Thumbprint() {
		t.Fatalf("the API proof: %+v", p.claims)
	}
}

// A pushed authorization request carries every parameter of the
// authorization request and the client's credentials; the browser gets
// only the request_uri.
func TestAPushedAuthorizationRequestLeavesTheBrowserOnlyItsReference(t *testing.T) {
	d := newDPoPServer(t)
	key, _ := NewDPoPKey()
	conn := &Connection{Name: "fapi", Provider: &generic, Grant: GrantAuthorizationCode, ClientID: "c-1", AuthMethod: AuthMethodPost, DPoP: true,
		Endpoints: Endpoints{AuthURL: d.srv.URL + "/authorize", TokenURL: d.srv.URL + "/token", PARURL: d.srv.URL + "/par"}}
	k := NewKeeper(conn, KeeperOptions{Store: newMemStore(), Locker: &memLocker{}, Clock: fakeclock.New(t0)})
	authURL := d.srv.URL + "/authorize?client_id=c-1&code_challenge=abc&code_challenge_method=S256&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcb&response_type=code&state=s-1&dpop_jkt=" + key.Thumbprint()
	got, err := pushAuthorization(context.Background(), k.tokenHTTP(conn, key), conn, "s3cret", authURL)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := http.NewRequest("GET", got, nil)
	q := u.URL.Query()
	if u.URL.Path != "/authorize" || q.Get("client_id") != "c-1" || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") || len(q) != 2 {
		t.Fatalf("the browser's URL: %s", got)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	pushed := d.forms[len(d.forms)-1]
	for _, param := range []string{"code_challenge", "state", "redirect_uri", "response_type", "dpop_jkt"} {
		if pushed[param] == "" {
			t.Errorf("%s was not pushed: %v", param, pushed)
		}
	}
	if pushed["client_secret"] != "s3cret" {
		t.Error("the client did not authenticate at the pushed authorization endpoint")
	}
}
