package config

import (
	"testing"

	"github.com/tokentray/tokentray/auth"
)

// FuzzParse: any bytes either fail with a ValidationError or a syntax error,
// or yield connections that the rest of tokentray can rely on.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[[connection]]\nname = \"p\"\nprovider = \"procore\"\nclient_id = \"a\"\nredirect_uri = \"http://localhost:1/cb\"\n"))
	f.Add([]byte("on_alert = 'x'\n[[connection]]\nname=\"g\"\nprovider=\"generic\"\ngrant=\"client_credentials\"\nclient_id=\"c\"\ntoken_url=\"https://x/t\"\n"))
	f.Add([]byte("[[connection]\n"))
	f.Add([]byte("[[connection]]\nrefresh_at = nan\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse("fuzz.toml", b)
		if err != nil {
			return
		}
		for _, c := range cfg.Connections {
			if c.Name == "" || c.Provider == nil || c.ClientID == "" || !(c.RefreshAt > 0 && c.RefreshAt < 1) {
				t.Fatalf("accepted an incomplete connection: %+v", c)
			}
			if c.Endpoints.TokenURL == "" {
				t.Fatalf("accepted a connection without a token URL: %+v", c)
			}
			if c.Grant == auth.GrantAuthorizationCode {
				if _, err := auth.ParseRedirectURI(c.RedirectURI.Raw); err != nil {
					t.Fatalf("accepted redirect URI %q: %v", c.RedirectURI.Raw, err)
				}
			}
			if _, err := cfg.Lookup(c.Name); err != nil {
				t.Fatal(err)
			}
		}
	})
}
