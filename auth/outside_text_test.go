package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/humanize"
)

// raw reports what of a terminal's escape sequences is left in s: an ESC,
// a BEL, or the OSC 52 (write the clipboard) they framed.
func raw(s string) bool {
	return strings.ContainsAny(s, "\x1b\x07\u009b\u009d") || strings.Contains(s, "]52;")
}

// A provider's error answer reaches the error, the status, the events and
// the stored tokens as words only: its escape sequences are gone. Its
// markup stays text here (a notification escapes it for its server).
func TestAProvidersErrorAnswerReachesNoTerminalRaw(t *testing.T) {
	const evil = `\u001b]52;c;ZXZpbA==\u0007<a href=\"https://evil\">x</a>`
	tests := []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"a JSON error (RFC 6749)", "application/json", `{"error":"invalid_grant","error_description":"` + evil + `"}`, http.StatusBadRequest,
			`invalid_grant (<a href="https://evil">x</a>)`},
		{"an error with HTTP 200 (Slack, GitHub)", "application/json", `{"error":"invalid_grant\u001b[2J","error_description":"` + evil + `"}`, http.StatusOK,
			`invalid_grant (<a href="https://evil">x</a>)`},
		{"a form-encoded error (GitHub)", "application/x-www-form-urlencoded",
			"error=invalid_grant&error_description=" + url.QueryEscape("\x1b]52;c;ZXZpbA==\x07gone\nforged line"), http.StatusOK,
			"invalid_grant (gone forged line)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer provider.Close()
			r := newRig(t)
			r.conn.Endpoints.TokenURL = provider.URL
			r.signedIn()
			err := r.k.Refresh(context.Background())
			if !errors.Is(err, ErrNeedsSignIn) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %q, want an ErrNeedsSignIn with %q", err, tc.want)
			}
			st := r.k.Status()
			shown := map[string]string{"the error": err.Error(), "the last error": st.LastError, "the next step": humanize.NextStep(st.Next, humanize.Terminal),
				"the stored last error": r.store.stored(r.conn.Name).LastError}
			for len(r.events) > 0 {
				e := <-r.events
				shown["the "+string(e.Kind)+" event"] = e.Error + " " + humanize.NextStep(e.Next, humanize.Terminal)
			}
			for what, s := range shown {
				if raw(s) {
					t.Errorf("%s is raw: %q", what, s)
				}
			}
		})
	}
}

// The device authorization endpoint's code and page are shown on the
// terminal and in a notification; its error goes the way of every token
// endpoint error.
func TestADeviceEndpointsWordsAreCleaned(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/refused" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"\u001b]52;c;ZXZpbA==\u0007no"}`)
			return
		}
		_, _ = io.WriteString(w, `{"device_code":"dc","user_code":"WDJB\u001b]0;T\u0007-MJHT","verification_uri":"https://example.com/activate\u001b[2J","expires_in":600}`)
	}))
	defer srv.Close()
	conn := &Connection{Name: "gh", ClientID: "id", Endpoints: Endpoints{DeviceAuthURL: srv.URL + "/device"}}
	da, err := requestDeviceCode(context.Background(), srv.Client(), conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if da.UserCode != "WDJB-MJHT" || da.VerificationURI != "https://example.com/activate" {
		t.Fatalf("code %q at %q", da.UserCode, da.VerificationURI)
	}

	conn.Endpoints.DeviceAuthURL = srv.URL + "/refused"
	_, err = requestDeviceCode(context.Background(), srv.Client(), conn, "")
	if te := classify("device sign-in", err, conn); raw(te.Error()) || te.Description != "no" {
		t.Fatalf("error %q", te.Error())
	}
}

// What is left of x/oauth2's message for a log line holds the server's
// status line, which is the server's to word.
func TestAnOAuthMessageForTheLogIsCleaned(t *testing.T) {
	err := &oauth2.RetrieveError{Response: &http.Response{Status: "502 \x1b]0;TITLE\x07Bad"}, Body: []byte("<html>\x1b[2J</html>")}
	if got := redactOAuthMessage(err); got != "oauth2: cannot fetch token: 502 Bad" {
		t.Fatalf("%q", got)
	}
}

// An error the provider sends to the redirect URI is cleaned too.
func TestAnAuthorizationErrorIsCleaned(t *testing.T) {
	err := authorizationError(url.Values{"error": {"access_denied\x1b[2J"}, "error_description": {"\x1b]0;T\x07no\r\nway"}})
	if err.Code != "access_denied" || err.Description != "no way" {
		t.Fatalf("%q", err.Error())
	}
}

// Tokens kept by an older tokentray may hold a provider's words raw.
func TestAStoredLastErrorIsCleanedWhenRead(t *testing.T) {
	b, _ := MarshalTokenSet(&TokenSet{AccessToken: "at", LastError: "refresh failed: invalid_grant\x1b]0;T\x07", LastHint: "sign in\x1b[2J",
		LastNext: &nextstep.Step{Kind: nextstep.FixClient, Connection: "p", Cause: "The provider said \x1b]0;T\x07no."}})
	ts, err := UnmarshalTokenSet(b)
	if err != nil || ts.LastError != "refresh failed: invalid_grant" || ts.LastHint != "sign in" || ts.LastNext.Cause != "The provider said no." {
		t.Fatalf("%q, %q, %+v, %v", ts.LastError, ts.LastHint, ts.LastNext, err)
	}
}

// The API's "who am I" answer is shown in the status.
func TestWhoTheAPISaysIsCleaned(t *testing.T) {
	if who := whoFrom([]byte(`{"login":"mallory\u001b]0;T\u0007\u202egnp.exe"}`)); who != "mallorygnp.exe" {
		t.Fatalf("%q", who)
	}
}
