package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// CheckResult is the outcome of one "who am I" call against the API.
type CheckResult struct {
	Time   time.Time `json:"time"`
	Status int       `json:"status,omitempty"` // HTTP status; 0 when no answer came
	Who    string    `json:"who,omitempty"`    // the login, e-mail or name the API reported
	Error  string    `json:"error,omitempty"`
	Hint   string    `json:"hint,omitempty"`
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
func (k *Keeper) Check(ctx context.Context) CheckResult {
	res := k.check(ctx)
	k.mu.Lock()
	k.lastCheck = res
	k.emitLocked(Event{Kind: EventChecked, Error: res.Error, Hint: res.Hint})
	k.mu.Unlock()
	return res
}

func (k *Keeper) check(ctx context.Context) CheckResult {
	now := k.opt.Clock.Now()
	url := k.conn.Endpoints.CheckURL
	if url == "" {
		return CheckResult{Time: now, Error: "no check_url is configured", Hint: "Set check_url to a cheap GET that needs the token, e.g. a /me endpoint."}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return CheckResult{Time: now, Error: fmt.Sprintf("check URL %s: %v", url, err)}
	}
	// The API's own headers first (Procore-Company-Id): a company-scoped
	// API refuses a call without them.
	for name, v := range k.conn.APIHeaders {
		req.Header.Set(name, v)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := k.opt.HTTPClient.Do(req)
	if err != nil {
		return CheckResult{Time: now, Error: fmt.Sprintf("GET %s: %v", url, err), Hint: "The API could not be reached: check the network and api_base."}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res := CheckResult{Time: now, Status: resp.StatusCode}
	switch {
	case res.OK():
		res.Who = whoFrom(body)
	case resp.StatusCode == http.StatusUnauthorized:
		res.Error = fmt.Sprintf("GET %s: HTTP 401: the API refused a token that the token endpoint just issued", url)
		res.Hint = fmt.Sprintf("The API base (%s) probably belongs to another environment than the sign-in (%s): all URLs must come from one environment.",
			k.conn.Endpoints.APIBase, k.conn.Endpoints.TokenURL)
	default:
		res.Error = fmt.Sprintf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return res
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
				return v
			}
		case float64:
			return fmt.Sprintf("%s %.0f", key, v)
		}
	}
	return ""
}
