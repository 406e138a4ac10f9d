package auth

import (
	"strings"
	"time"
)

// The major providers, each as its documentation (Sources) describes it.
// Facts that only a provider's own servers can confirm are marked in the
// README's provider table as "not run against the real service" until
// they have been.

const day = 24 * time.Hour

var google = Preset{
	Name:               "google",
	Title:              "Google",
	DefaultEnvironment: "production",
	Environments: map[string]Endpoints{
		"production": googleEndpoints,
		// An app whose publishing status is "Testing" (external users)
		// gets refresh tokens that die 7 days after the sign-in.
		"testing": googleEndpoints,
	},
	AuthMethod: AuthMethodPost,
	// Without access_type=offline no refresh token comes; without
	// prompt=consent a second sign-in brings none either.
	AuthParams:      map[string]string{"access_type": "offline", "prompt": "consent"},
	RefreshToken:    RefreshTokenRule{Idle: 183 * day, About: "Google: a refresh token unused for 6 months dies"},
	EnvRefreshToken: map[string]RefreshTokenRule{"testing": {Absolute: 7 * day, About: "Google: an app in Testing gets refresh tokens that die 7 days after sign-in"}},
	Notes: map[string]string{
		"":        "Google keeps at most 100 refresh tokens per account and client: a 101st sign-in silently retires the oldest. Add the openid and email scopes for the check.",
		"testing": "For apps whose OAuth consent screen is in Testing: refresh tokens die 7 days after sign-in. Publish the app to lift that.",
	},
	Sources: []string{
		"https://developers.google.com/identity/protocols/oauth2/native-app",
		"https://developers.google.com/identity/protocols/oauth2#expiration",
		"https://developers.google.com/identity/protocols/oauth2/web-server#offline",
		"https://developers.google.com/identity/protocols/oauth2/limited-input-device",
	},
}

var googleEndpoints = Endpoints{
	AuthURL:   "https://accounts.google.com/o/oauth2/v2/auth",
	TokenURL:  "https://oauth2.googleapis.com/token",
	RevokeURL: "https://oauth2.googleapis.com/revoke",
	APIBase:   "https://www.googleapis.com",
	CheckURL:  "https://openidconnect.googleapis.com/v1/userinfo",
	// For "TV and limited-input device" clients, with a restricted set of
	// scopes.
	DeviceAuthURL: "https://oauth2.googleapis.com/device/code",
}

// TenantPlaceholder stands for the connection's tenant (config: tenant) in
// a preset's URLs: Microsoft's directory, named by id or domain.
const TenantPlaceholder = "{tenant}"

var entra = Preset{
	Name:               "entra",
	Title:              "Microsoft Entra ID",
	DefaultEnvironment: "global",
	Environments: map[string]Endpoints{
		"global": entraEndpoints("login.microsoftonline.com", "graph.microsoft.com"),
		"usgov":  entraEndpoints("login.microsoftonline.us", "graph.microsoft.us"),
		"china":  entraEndpoints("login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"),
	},
	AuthMethod: AuthMethodPost,
	Scopes:     []string{"offline_access"},
	// A refresh token is replaced at every use; one unused for 90 days
	// dies (AADSTS700082, "inactive for 90.00:00:00").
	RefreshToken: RefreshTokenRule{Idle: 90 * day, About: "Microsoft: a refresh token unused for 90 days dies"},
	Notes: map[string]string{
		"":      "Set tenant to the directory (tenant) id or domain, or organizations, common or consumers for a multi-tenant app. offline_access is added to the scopes: without it no refresh token comes. The check calls Microsoft Graph's /me: ask for User.Read, or set check_url for another API.",
		"usgov": "US Government (GCC High); DoD tenants set api_base and check_url to dod-graph.microsoft.us.",
	},
	Sources: []string{
		"https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow",
		"https://learn.microsoft.com/entra/identity-platform/refresh-tokens",
		"https://learn.microsoft.com/graph/deployments",
		"https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code",
	},
}

func entraEndpoints(loginHost, graphHost string) Endpoints {
	base := "https://" + loginHost + "/" + TenantPlaceholder + "/oauth2/v2.0"
	return Endpoints{
		AuthURL:       base + "/authorize",
		TokenURL:      base + "/token",
		DeviceAuthURL: base + "/devicecode",
		APIBase:       "https://" + graphHost,
		CheckURL:      "https://" + graphHost + "/v1.0/me",
	}
}

// WithTenant puts tenant in place of TenantPlaceholder in e's URLs.
func WithTenant(e Endpoints, tenant string) Endpoints {
	for _, f := range e.Fields() {
		*f.URL = strings.ReplaceAll(*f.URL, TenantPlaceholder, tenant)
	}
	return e
}

// NeedsTenant reports whether e's URLs name a tenant still to be filled in.
func NeedsTenant(e Endpoints) bool {
	for _, f := range e.Fields() {
		if strings.Contains(*f.URL, TenantPlaceholder) {
			return true
		}
	}
	return false
}

var github = Preset{
	Name:               "github",
	Title:              "GitHub Apps",
	DefaultEnvironment: "github.com",
	Environments: map[string]Endpoints{
		"github.com": {
			AuthURL:  "https://github.com/login/oauth/authorize",
			TokenURL: "https://github.com/login/oauth/access_token",
			// The app must have device flow enabled in its settings.
			DeviceAuthURL: "https://github.com/login/device/code",
			APIBase:       "https://api.github.com",
			CheckURL:      "https://api.github.com/user",
		},
	},
	AuthMethod: AuthMethodPost,
	// Form-encoded answers otherwise; both are read, JSON keeps numbers.
	TokenHeaders: map[string]string{"Accept": "application/json"},
	// GitHub answers these with HTTP 200 and codes of its own.
	ErrorCodes: map[string]string{
		"bad_refresh_token":            "invalid_grant",
		"bad_verification_code":        "invalid_grant",
		"incorrect_client_credentials": "invalid_client",
		"redirect_uri_mismatch":        "invalid_grant",
		"unverified_user_email":        "unauthorized_client",
	},
	// refresh_token_expires_in (always 15897600 s, 6 months) comes with
	// every token; each refresh brings a new one.
	Notes: map[string]string{
		"": "For GitHub Apps with expiring user tokens (8 hours; refresh tokens 6 months, rotated). An OAuth App's tokens do not expire and come without a refresh token.",
	},
	Sources: []string{
		"https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app",
		"https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens",
		"https://docs.github.com/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
		"https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow",
	},
}

var xero = Preset{
	Name:               "xero",
	Title:              "Xero",
	DefaultEnvironment: "production",
	Environments: map[string]Endpoints{
		"production": {
			AuthURL:   "https://login.xero.com/identity/connect/authorize",
			TokenURL:  "https://identity.xero.com/connect/token",
			RevokeURL: "https://identity.xero.com/connect/revocation",
			APIBase:   "https://api.xero.com",
			CheckURL:  "https://api.xero.com/connections",
		},
	},
	AuthMethod:   AuthMethodBasic,
	Scopes:       []string{"offline_access"},
	RefreshToken: RefreshTokenRule{Idle: 60 * day, About: "Xero: a refresh token unused for 60 days dies"},
	Notes: map[string]string{
		"": "Access tokens live 30 minutes; refresh tokens rotate. offline_access is added to the scopes. API calls need a Xero-Tenant-Id header: set it in api_headers.",
	},
	Sources: []string{
		"https://developer.xero.com/documentation/guides/oauth2/auth-flow",
		"https://developer.xero.com/faq/oauth2",
	},
}

var intuit = Preset{
	Name:               "intuit",
	Title:              "Intuit QuickBooks Online",
	DefaultEnvironment: "production",
	Environments: map[string]Endpoints{
		"production": intuitEndpoints("accounts.platform.intuit.com", "quickbooks.api.intuit.com"),
		"sandbox":    intuitEndpoints("sandbox-accounts.platform.intuit.com", "sandbox-quickbooks.api.intuit.com"),
	},
	AuthMethod: AuthMethodBasic,
	// x_refresh_token_expires_in says how long each refresh token lives
	// (100 days, rolling); a refresh may bring a new value.
	RefreshToken: RefreshTokenRule{Absolute: 5 * 365 * day, About: "Intuit: a grant lasts at most 5 years"},
	Notes: map[string]string{
		"": "Ask for the openid and email scopes beside com.intuit.quickbooks.accounting for the check. API calls name the company (realm) in the path: /v3/company/REALM/....",
	},
	Sources: []string{
		"https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0",
		"https://developer.intuit.com/.well-known/openid-configuration",
		"https://blogs.intuit.com/2025/11/12/important-changes-to-refresh-token-policy/",
	},
}

func intuitEndpoints(accountsHost, apiHost string) Endpoints {
	return Endpoints{
		AuthURL:   "https://appcenter.intuit.com/connect/oauth2",
		TokenURL:  "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
		RevokeURL: "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
		APIBase:   "https://" + apiHost,
		CheckURL:  "https://" + accountsHost + "/v1/openid_connect/userinfo",
	}
}

var atlassian = Preset{
	Name:               "atlassian",
	Title:              "Atlassian (Jira, Confluence)",
	DefaultEnvironment: "cloud",
	Environments: map[string]Endpoints{
		"cloud": {
			AuthURL:  "https://auth.atlassian.com/authorize",
			TokenURL: "https://auth.atlassian.com/oauth/token",
			APIBase:  "https://api.atlassian.com",
			CheckURL: "https://api.atlassian.com/me",
		},
	},
	AuthMethod: AuthMethodPost,
	Scopes:     []string{"offline_access"},
	AuthParams: map[string]string{"audience": "api.atlassian.com", "prompt": "consent"},
	RefreshToken: RefreshTokenRule{Idle: 90 * day, Absolute: 365 * day,
		About: "Atlassian: a refresh token unused for 90 days dies, and every one 365 days after the sign-in"},
	Notes: map[string]string{
		"": "Refresh tokens rotate. offline_access is added to the scopes; add read:me for the check. API calls go to /ex/jira/CLOUD_ID/... under the API base.",
	},
	Sources: []string{
		"https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/",
		"https://community.developer.atlassian.com/t/rotating-refresh-tokens-3lo/60806",
	},
}

var slack = Preset{
	Name:               "slack",
	Title:              "Slack",
	DefaultEnvironment: "slack.com",
	Environments: map[string]Endpoints{
		"slack.com": {
			AuthURL:  "https://slack.com/oauth/v2/authorize",
			TokenURL: "https://slack.com/api/oauth.v2.access",
			APIBase:  "https://slack.com/api",
		},
	},
	// Slack asks for HTTP Basic rather than the secret in the form.
	AuthMethod: AuthMethodBasic,
	// Slack answers HTTP 200 with {"ok": false, "error": …}.
	ErrorCodes: map[string]string{
		"invalid_refresh_token": "invalid_grant",
		"invalid_code":          "invalid_grant",
		"bad_redirect_uri":      "invalid_grant",
		"invalid_client_id":     "invalid_client",
		"bad_client_secret":     "invalid_client",
		"invalid_grant_type":    "unsupported_grant_type",
	},
	Notes: map[string]string{
		"": "Turn on token rotation for the app: without it Slack's tokens never expire and come without a refresh token. tokentray keeps the bot token (the top-level access_token). Slack's API answers HTTP 200 even to a refused token, so there is no check URL.",
	},
	Sources: []string{
		"https://docs.slack.dev/authentication/using-token-rotation",
		"https://docs.slack.dev/reference/methods/oauth.v2.access",
	},
}

var salesforce = Preset{
	Name:               "salesforce",
	Title:              "Salesforce",
	DefaultEnvironment: "production",
	Environments: map[string]Endpoints{
		"production": salesforceEndpoints("login.salesforce.com"),
		"sandbox":    salesforceEndpoints("test.salesforce.com"),
	},
	AuthMethod: AuthMethodPost,
	// No expires_in: the token lives as long as the org's session timeout
	// (15 minutes to 24 hours). The shortest is assumed unless
	// access_token_lifetime says the org's.
	AccessLifetime: 15 * time.Minute,
	Notes: map[string]string{
		"": "Salesforce sends no expires_in: tokentray assumes 15 minutes (the shortest session timeout) unless access_token_lifetime is set to your org's. Set api_base to your My Domain (https://NAME.my.salesforce.com). The refresh token policy of the connected app decides its life: set refresh_token_lifetime or refresh_token_idle to match.",
	},
	Sources: []string{
		"https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm",
		"https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm",
		"https://help.salesforce.com/s/articleView?id=sf.connected_app_manage_oauth.htm",
	},
}

func salesforceEndpoints(host string) Endpoints {
	base := "https://" + host + "/services/oauth2"
	return Endpoints{
		AuthURL:   base + "/authorize",
		TokenURL:  base + "/token",
		RevokeURL: base + "/revoke",
		CheckURL:  base + "/userinfo",
	}
}

var dropbox = Preset{
	Name:               "dropbox",
	Title:              "Dropbox",
	DefaultEnvironment: "production",
	Environments: map[string]Endpoints{
		"production": {
			AuthURL:  "https://www.dropbox.com/oauth2/authorize",
			TokenURL: "https://api.dropboxapi.com/oauth2/token",
			APIBase:  "https://api.dropboxapi.com",
		},
	},
	AuthMethod: AuthMethodPost,
	AuthParams: map[string]string{"token_access_type": "offline"},
	Notes: map[string]string{
		"": "Access tokens live 4 hours; refresh tokens do not expire and are not rotated. Dropbox's who-am-I is a POST, so there is no check URL.",
	},
	Sources: []string{
		"https://developers.dropbox.com/oauth-guide",
		"https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token",
	},
}

// atproto is the AT Protocol's OAuth profile (Bluesky and every other
// server of the network): the authorization server and the API (the
// account's personal data server) come from the account's handle, and
// PKCE, pushed authorization requests and DPoP are required.
var atproto = Preset{
	Name:               "atproto",
	Title:              "AT Protocol (Bluesky)",
	DefaultEnvironment: "network",
	// Every URL is found from the handle (or the issuer) at sign-in.
	Environments: map[string]Endpoints{"network": {}},
	// A native app is a public client: its client_id is http://localhost
	// with its redirect URI and scope (LoopbackClientID).
	AuthMethod:   AuthMethodNone,
	Scopes:       []string{"atproto"},
	RequiresDPoP: true,
	// A public client's session ends two weeks after the sign-in, however
	// often it is refreshed (a confidential client's lasts longer).
	RefreshToken: RefreshTokenRule{Absolute: 14 * day, About: "AT Protocol: a public client's session ends 2 weeks after sign-in"},
	Notes: map[string]string{
		"": "Set handle (alice.bsky.social): its server is found from it. The redirect URI must be http://127.0.0.1:PORT/… (not localhost); client_id may be left out: it is the loopback client id made of the redirect URI and scopes. Scopes default to atproto transition:generic.",
	},
	Sources: []string{
		"https://atproto.com/specs/oauth",
		"https://atproto.com/specs/handle",
		"https://atproto.com/specs/did",
	},
}
