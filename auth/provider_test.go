package auth

import "testing"

// Every Procore environment binds its sign-in, token, revocation, API and
// check URLs together: the hosts of one environment, never a mix.
func TestEachProcoreEnvironmentResolvesToItsOwnHosts(t *testing.T) {
	for env, want := range map[string][2]string{
		"production":      {"https://login.procore.com", "https://api.procore.com"},
		"sandbox":         {"https://login-sandbox.procore.com", "https://sandbox.procore.com"},
		"monthly-sandbox": {"https://login-sandbox-monthly.procore.com", "https://api-monthly.procore.com"},
		"federal":         {"https://login.procoregov.com", "https://api.procoregov.com"},
	} {
		ep, err := procore.Resolve(env, Endpoints{})
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		login, api := want[0], want[1]
		if ep.AuthURL != login+"/oauth/authorize" || ep.TokenURL != login+"/oauth/token" || ep.RevokeURL != login+"/oauth/revoke" ||
			ep.APIBase != api || ep.CheckURL != api+"/rest/v1.0/me" {
			t.Errorf("%s resolves to %+v", env, ep)
		}
	}
}
