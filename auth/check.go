package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/safetext"
)

// CheckResult is the outcome of one "who am I" call against the API.
type CheckResult struct {
	Time   time.Time `json:"time"`
	Status int       `json:"status,omitempty"` // HTTP status; 0 when no answer came
	Who    string    `json:"who,omitempty"`    // the login, e-mail or name the API reported
	Error  string    `json:"error,omitempty"`
	// TokenInfo is what the server said of the token at the token-info
	// URL (Procore's /oauth/token/info), when there is one.
	TokenInfo *TokenInfo `json:"token_info,omitempty"`

	// Next is what a person does about Error.
	Next *nextstep.Step `json:"next,omitempty"`
}

// TokenInfo is what a server says of an access token (Doorkeeper's
// /oauth/token/info, which Procore's is).
type TokenInfo struct {
	// ExpiresIn is the token's seconds left as the server counted them.
	ExpiresIn   int64    `json:"expires_in,omitempty"`
	Scopes      []string `json:"scopes,omitempty"`
	Owner       string   `json:"resource_owner_id,omitempty"`
	Application string   `json:"application_uid,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// OK reports whether the API accepted the token.
func (c CheckResult) OK() bool { return c.Status >= 200 && c.Status < 300 }

// EventChecked: an API check finished; Status.LastCheck has the result.
const EventChecked EventKind = "checked"

// checkMinValid is how long the token used for a check must still be valid.
const checkMinValid = 5 * time.Second

// Check calls the connection's check URL with a valid access token and
// records the result. It proves more than the token endpoint can: that the
// token works against the API base, the second of the three URL traps.
// With a token-info URL it also asks what the server says of the token.
func (k *Keeper) Check(ctx context.Context) CheckResult {
	res := k.check(ctx)
	k.mu.Lock()
	k.lastCheck = res
	k.emitLocked(Event{Kind: EventChecked, Error: res.Error, Next: res.Next})
	k.mu.Unlock()
	return res
}

func (k *Keeper) check(ctx context.Context) CheckResult {
	now := k.opt.Clock.Now()
	ep := k.conn.Endpoints
	if ep.CheckURL == "" && ep.TokenInfoURL == "" {
		return CheckResult{Time: now, Error: "no check_url is configured", Next: step(nextstep.SetCheckURL, k.conn.Name)}
	}
	// The token only has to outlive one GET. Asking for more would refresh
	// a token the provider made short on purpose, or fail outright where
	// its whole lifetime is shorter than what is asked.
	tok, err := k.Token(ctx, checkMinValid)
	if err != nil {
		return CheckResult{Time: now, Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, k.opt.RequestTimeout)
	defer cancel()
	var res CheckResult
	if ep.CheckURL != "" {
		res = k.callCheck(ctx, ep.CheckURL, &tok.TokenSet, now)
	}
	if ep.TokenInfoURL != "" {
		info, status, err := k.tokenInfo(ctx, ep.TokenInfoURL, &tok.TokenSet)
		if ep.CheckURL == "" {
			// The token-info call is the check.
			res = CheckResult{Time: now, Status: status, Who: info.Owner}
			if err != nil {
				res.Error = err.Error()
			}
		}
		if err != nil {
			info.Error = err.Error()
		}
		res.TokenInfo = &info
	}
	return res
}

// get calls url with the access token and the API's own headers; a
// DPoP-bound token with a proof, sent again once with the nonce the API
// asks for.
func (k *Keeper) get(ctx context.Context, url string, tok *TokenSet) (*http.Response, []byte, error) {
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, nil, err
		}
		// The API's own headers first (Procore-Company-Id): a
		// company-scoped API refuses a call without them.
		for name, v := range k.conn.APIHeaders {
			req.Header.Set(name, v)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken.Reveal())
		if tok.Bound() {
			proof, err := k.DPoPProof(http.MethodGet, url, tok)
			if err != nil {
				return nil, nil, err
			}
			req.Header.Set("Authorization", TokenTypeDPoP+" "+tok.AccessToken.Reveal())
			req.Header.Set("DPoP", proof)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := k.opt.HTTPClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		k.NoteDPoPNonce(url, resp.Header)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if try == 0 && tok.Bound() && ResourceNonceAsked(resp) {
			continue
		}
		return resp, body, nil
	}
}

func (k *Keeper) callCheck(ctx context.Context, url string, tok *TokenSet, now time.Time) CheckResult {
	resp, body, err := k.get(ctx, url, tok)
	if err != nil {
		return CheckResult{Time: now, Error: fmt.Sprintf("GET %s: %v", url, err),
			Next: &nextstep.Step{Kind: nextstep.CheckNetwork, Connection: k.conn.Name, Cause: "The API could not be reached.", Setting: "api_base", URL: k.conn.Endpoints.APIBase}}
	}
	res := CheckResult{Time: now, Status: resp.StatusCode}
	switch {
	case res.OK():
		res.Who = whoFrom(body)
	case resp.StatusCode == http.StatusUnauthorized:
		res.Error = fmt.Sprintf("GET %s: HTTP 401: the API refused a token that the token endpoint just issued", url)
		res.Next = stepWith(nextstep.CheckAPIBase, k.conn.Name, fmt.Sprintf("The API base (%s) probably belongs to another environment than the sign-in (%s): all URLs must come from one environment.",
			k.conn.Endpoints.APIBase, k.conn.Endpoints.TokenURL))
	default:
		res.Error = fmt.Sprintf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return res
}

// tokenInfo asks the token-info URL about the token. Doorkeeper answers
// {"resource_owner_id", "scope" (a list), "expires_in", "application":
// {"uid"}, "created_at"}; older versions say "scopes" and
// "expires_in_seconds".
func (k *Keeper) tokenInfo(ctx context.Context, url string, tok *TokenSet) (TokenInfo, int, error) {
	resp, body, err := k.get(ctx, url, tok)
	if err != nil {
		return TokenInfo{}, 0, fmt.Errorf("GET %s: %v", url, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return TokenInfo{}, resp.StatusCode, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	var raw struct {
		Owner       any         `json:"resource_owner_id"`
		Scope       any         `json:"scope"`
		Scopes      any         `json:"scopes"`
		ExpiresIn   json.Number `json:"expires_in"`
		ExpiresInS  json.Number `json:"expires_in_seconds"`
		Application struct {
			UID string `json:"uid"`
		} `json:"application"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return TokenInfo{}, resp.StatusCode, fmt.Errorf("GET %s: the answer is not JSON", url)
	}
	info := TokenInfo{Application: raw.Application.UID, Scopes: scopeList(raw.Scope)}
	if info.Scopes == nil {
		info.Scopes = scopeList(raw.Scopes)
	}
	switch v := raw.Owner.(type) {
	case string:
		info.Owner = v
	case float64:
		info.Owner = fmt.Sprintf("%.0f", v)
	}
	for _, n := range []json.Number{raw.ExpiresIn, raw.ExpiresInS} {
		if secs, err := n.Int64(); err == nil && secs > 0 {
			info.ExpiresIn = secs
			break
		}
	}
	safetext.CleanAll(&info) // the server's words, shown in the status
	return info, resp.StatusCode, nil
}

// scopeList reads scopes written as a list or as one string.
func scopeList(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, s := range v {
			if str, ok := s.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

// whoFrom picks a human name out of a "who am I" answer.
func whoFrom(body []byte) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, key := range []string{"login", "email", "name", "preferred_username", "sub", "id"} {
		switch v := m[key].(type) {
		case string:
			if v != "" {
				return safetext.Clean(v) // the API's words, shown in the status
			}
		case float64:
			return fmt.Sprintf("%s %.0f", key, v)
		}
	}
	return ""
}
