package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

const good = `
# my connections
[[connection]]
name = "procore-sandbox"
provider = "procore"
environment = "sandbox"
client_id = "abc"
redirect_uri = "http://localhost:9876/callback"

[[connection]]
name = "local"
provider = "generic"
client_id = "x"
redirect_uri = "http://127.0.0.1:8765/cb"
auth_url = "http://127.0.0.1:3000/auth"
token_url = "http://127.0.0.1:3000/token"
refresh_at = 0.5
`

func TestGoodConfigResolvesOneEnvironment(t *testing.T) {
	cfg, err := Parse("config.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.Lookup("procore-sandbox")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://login-sandbox.procore.com/oauth/authorize", "https://login-sandbox.procore.com/oauth/token", "https://sandbox.procore.com", "https://sandbox.procore.com/rest/v1.0/me"}
	got := []string{c.Endpoints.AuthURL, c.Endpoints.TokenURL, c.Endpoints.APIBase, c.Endpoints.CheckURL}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("endpoint %d = %s, want %s", i, got[i], want[i])
		}
	}
	if c.RefreshAt != 0.8 {
		t.Errorf("default refresh_at = %v", c.RefreshAt)
	}
	if _, err := cfg.Lookup("nope"); err == nil || !strings.Contains(err.Error(), "procore-sandbox, local") {
		t.Errorf("unknown name error should list the names: %v", err)
	}
}

func TestBadConfigsNameConnectionFieldAndFix(t *testing.T) {
	base := func(extra string) string {
		return "[[connection]]\nname = \"p\"\nprovider = \"procore\"\nclient_id = \"abc\"\nredirect_uri = \"http://localhost:9876/callback\"\n" + extra
	}
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"unknown provider", `[[connection]]
name = "p"
provider = "procorre"
client_id = "a"
redirect_uri = "http://localhost:1/cb"`, []string{`connection "p"`, "provider", "procorre", "generic, github, google"}},
		{"unknown environment", base(`environment = "staging"`), []string{"environment", "federal, monthly-sandbox, on-demand-sandbox, production, sandbox"}},
		{"duplicate names", base("") + "\n" + base(""), []string{"used by connection #1"}},
		{"missing client id", `[[connection]]
name = "p"
provider = "procore"
redirect_uri = "http://localhost:1/cb"`, []string{"client_id: missing", "developer portal"}},
		{"LAN IP redirect", strings.Replace(base(""), "localhost", "192.168.8.124", 1), []string{"redirect_uri", "refuse LAN IPs"}},
		{"127.0.0.1 redirect at Procore", strings.Replace(base(""), "localhost", "127.0.0.1", 1), []string{"redirect_uri", "only for localhost", "http://localhost:9876/callback"}},
		{"refresh_at out of range", base("refresh_at = 1.2"), []string{"refresh_at", "outside (0, 1)"}},
		{"refresh_at zero", base("refresh_at = 0.0"), []string{"refresh_at"}},
		{"mixed environments", base(`environment = "sandbox"
api_base = "https://api.procore.com"`), []string{"api_base", "production environment", `"sandbox"`}},
		{"plain http token url", base(`token_url = "http://login.example.com/token"`), []string{"token_url", "plain http"}},
		{"generic without urls", `[[connection]]
name = "g"
provider = "generic"
client_id = "a"
redirect_uri = "http://localhost:1/cb"`, []string{"auth_url: missing", "token_url: missing"}},
		{"bad name", strings.Replace(base(""), `"p"`, `"has space"`, 1), []string{"name", "letters, digits"}},
		{"bad grant", base(`grant = "password"`), []string{"grant", "client_credentials"}},
		{"relative export file", base(`export_file = "token.json"`), []string{"export_file", "absolute path"}},
		{"bad token_env", base(`token_env = "MY-TOKEN"`), []string{"token_env", "environment variable name"}},
		{"syntax", "[[connection]\nname=", []string{"line", "TOML syntax"}},
		{"a number where a string belongs", base("") + "[[connection]]\nname = \"n\"\nprovider = 3\n", []string{"line 8", `connection "n"`, "provider", "a number is not valid", `provider = "`}},
		{"a string where a number belongs", base(`refresh_at = "0.8"`), []string{"line 6", `connection "p"`, "refresh_at", "refresh_at = 0.8"}},
		{"scopes of numbers", base("scopes = [1, 2]"), []string{`connection "p"`, "scopes", "is a number, not a scope", `scopes = "openid offline_access"`}},
		{"unknown auth method", base(`token_endpoint_auth_method = "private_key_jwt"`), []string{"token_endpoint_auth_method", "client_secret_basic, client_secret_post, none"}},
		{"auth_params that replace OAuth's own", base(`auth_params = { state = "x", prompt = "consent" }`), []string{"auth_params", `"state" is set by tokentray itself`}},
		{"token_params that replace OAuth's own", base(`token_params = { grant_type = "password" }`), []string{"token_params", `"grant_type"`}},
		{"auth_params not a table", base(`auth_params = "audience=x"`), []string{"auth_params", "a table of strings"}},
		{"api_headers with the token's header", base(`api_headers = { authorization = "Bearer x" }`), []string{"api_headers", `"authorization" is set by tokentray itself`}},
		{"a port tokentray may not open", base(`proxy_port = 80`), []string{"proxy_port", "1024 to 65535"}},
		{"the same port twice", base(`proxy_port = 8799`) + "\n[[connection]]\nname = \"q\"\nprovider = \"generic\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost:8766/callback\"\nauth_url = \"https://a.example.com/a\"\ntoken_url = \"https://a.example.com/t\"\nproxy_port = 8799\n", []string{"proxy_port", "8799 is the port of connection #1 too"}},
		{"api_headers with a bad name", base(`api_headers = { "Company Id" = "1" }`), []string{"api_headers", `"Company Id" is not a header name`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tc.toml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestAllProblemsAreReportedAtOnce(t *testing.T) {
	_, err := Parse("c.toml", []byte(`[[connection]]
name = "a"
provider = "procore"
refresh_at = 2.0
[[connection]]
provider = "nope"`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) < 5 {
		t.Fatalf("want every problem listed, got %v", err)
	}
}

func TestUnknownKeysWarnButLoad(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(good+"refesh_at = 0.7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "refesh_at") {
		t.Fatalf("warnings = %v", cfg.Warnings)
	}
}

func TestMissingFileSaysHowToCreateIt(t *testing.T) {
	_, err := Load(tempdir.New(t) + "/none.toml")
	if !errors.Is(err, ErrNoFile) || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v", err)
	}
}

// TestREADMEAlertExamplesParse keeps the README's on_alert examples valid,
// and its etcd store's.
func TestREADMEAlertExamplesParse(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	// The README's server examples are for Linux: under Windows a Unix
	// path such as store_key_file's is not absolute, and the config says
	// so, rightly.
	unixPath := regexp.MustCompile(`"/[a-z]`)
	n := 0
	etcd := 0
	for _, b := range blocks {
		alert, shared := strings.Contains(b[1], "on_alert"), strings.Contains(b[1], `store = "etcd"`)
		if (!alert && !shared) || (runtime.GOOS == "windows" && unixPath.MatchString(b[1])) {
			continue
		}
		if shared {
			etcd++
		}
		cfg, err := Parse("README.md", []byte(b[1]))
		if err != nil || len(cfg.Warnings) > 0 || (alert && cfg.OnAlert == "") {
			t.Errorf("README example does not parse: %v %v\n%s", err, cfg, b[1])
		}
		if alert {
			n++
		}
	}
	if runtime.GOOS != "windows" && etcd == 0 {
		t.Error("found no store = \"etcd\" example in the README")
	}
	if n < 2 {
		t.Fatalf("found %d on_alert examples in the README, want 2", n)
	}
}

func TestTypeErrorsAreConfigErrors(t *testing.T) {
	_, err := Parse("c.toml", []byte("[[connection]]\nname = \"a\"\nrefresh_at = \"soon\"\n"))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("a value of the wrong type must be a ValidationError (exit 2), got %T %v", err, err)
	}
}

func TestScopesAsOneStringAsOAuthWritesThem(t *testing.T) {
	for _, scopes := range []string{`"openid offline_access  profile"`, `["openid", "offline_access", "profile"]`, `["openid offline_access", "profile"]`} {
		cfg, err := Parse("c.toml", []byte(good+"scopes = "+scopes+"\n"))
		if err != nil {
			t.Fatalf("scopes = %s: %v", scopes, err)
		}
		c, _ := cfg.Lookup("local")
		if strings.Join(c.Scopes, "|") != "openid|offline_access|profile" {
			t.Fatalf("scopes = %s gave %q", scopes, c.Scopes)
		}
	}
}

func TestGenericWithAnIssuerAloneDiscovers(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(`[[connection]]
name = "hydra"
provider = "generic"
issuer = "https://auth.example.com/"
client_id = "x"
redirect_uri = "http://localhost:8765/callback"
token_endpoint_auth_method = "client_secret_post"
auth_params = { audience = "https://api.example.com", prompt = "consent" }
token_params = { resource = "https://api.example.com" }
api_headers = { "Procore-Company-Id" = "12345" }
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
	c, _ := cfg.Lookup("hydra")
	if !c.Discover || c.Endpoints.Issuer != "https://auth.example.com/" || c.AuthMethod != "client_secret_post" ||
		c.AuthParams["audience"] != "https://api.example.com" || c.TokenParams["resource"] != "https://api.example.com" ||
		c.APIHeaders["Procore-Company-Id"] != "12345" {
		t.Fatalf("connection: %+v", c)
	}
}

func TestAnIssuerWithTheURLsSetStillReadsItsMetadata(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(good+"issuer = \"http://127.0.0.1:3000\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The metadata alone knows the device and revocation endpoints and the
	// methods; the URLs set stay as they are.
	if c, _ := cfg.Lookup("local"); !c.Discover || c.Endpoints.Issuer != "http://127.0.0.1:3000" || c.Endpoints.TokenURL == "" || c.Endpoints.AuthURL == "" {
		t.Fatalf("discover %t, endpoints %+v: with an issuer its metadata is read, the URLs set kept", c.Discover, c.Endpoints)
	}
}

func TestAConnectionsAlertCommandIsItsOwnElseTheFiles(t *testing.T) {
	cfg, err := Parse("config.toml", []byte(`on_alert = "notify-all"
[[connection]]
name = "own"
provider = "procore"
client_id = "a"
redirect_uri = "http://localhost:8765/callback"
on_alert = "page-me"

[[connection]]
name = "shared"
provider = "procore"
client_id = "b"
redirect_uri = "http://localhost:8766/callback"
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"own": "page-me", "shared": "notify-all"} {
		if r, err := cfg.Resolve(name); err != nil || r.AlertCommand != want {
			t.Errorf("%s: %v %+v, want the alert command %q", name, err, r, want)
		}
	}
}

func TestRemoteTables(t *testing.T) {
	cfg, err := Parse("config.toml", []byte(`[[remote]]
name = "moby-1"
ssh = "agent@moby-1"
ssh_options = ["Port=2222"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := cfg.Remote("moby-1"); err != nil || r.Command != "tokentray" || r.SSH != "agent@moby-1" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := cfg.Remote("nope"); err == nil || !strings.Contains(err.Error(), "moby-1") {
		t.Fatalf("an unknown remote: %v", err)
	}
	_, err = Parse("config.toml", []byte(`[[remote]]
name = "a b"
ssh = "-oProxyCommand=evil"
ssh_options = ["-F /tmp/x", "Port"]
`))
	for _, want := range []string{`remote "a b": name`, "ssh: \"-oProxyCommand=evil\" is not a destination", `ssh_options: "-F /tmp/x"`, `ssh_options: "Port"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// The providers' own settings: a tenant for Microsoft, a company for
// Procore, refresh-token lives where the answers do not say.
func TestProviderSettings(t *testing.T) {
	cfg, err := Parse("config.toml", []byte(`
refresh_token_warning = "10d"

[[connection]]
name = "graph"
provider = "entra"
environment = "usgov"
tenant = "contoso.onmicrosoft.us"
client_id = "abc"
redirect_uri = "http://localhost:8765/callback"

[[connection]]
name = "procore-ods"
provider = "procore"
environment = "on-demand-sandbox"
company_id = "4271"
client_id = "abc"
redirect_uri = "http://localhost:9876/callback"
refresh_token_warning = "36h"

[[connection]]
name = "okta"
provider = "generic"
issuer = "https://example.okta.com"
client_id = "x"
redirect_uri = "http://127.0.0.1:8765/cb"
refresh_token_idle = "7d"
refresh_token_lifetime = "90d"
access_token_lifetime = "30m"
`))
	if err != nil {
		t.Fatal(err)
	}
	graph, _ := cfg.Lookup("graph")
	if graph.Endpoints.AuthURL != "https://login.microsoftonline.us/contoso.onmicrosoft.us/oauth2/v2.0/authorize" || graph.RefreshTokenWarning != 10*24*time.Hour {
		t.Errorf("entra: %s, warning %v", graph.Endpoints.AuthURL, graph.RefreshTokenWarning)
	}
	ods, _ := cfg.Lookup("procore-ods")
	if ods.APIHeaders["Procore-Company-Id"] != "4271" || ods.Endpoints.APIBase != "https://api.procore.com" || ods.RefreshTokenWarning != 36*time.Hour {
		t.Errorf("procore on-demand sandbox: %v %s %v", ods.APIHeaders, ods.Endpoints.APIBase, ods.RefreshTokenWarning)
	}
	okta, _ := cfg.Lookup("okta")
	if r := okta.RefreshTokenRule; r.Idle != 7*24*time.Hour || r.Absolute != 90*24*time.Hour || okta.AccessLifetime != 30*time.Minute {
		t.Errorf("generic lifetimes: %+v, access %v", r, okta.AccessLifetime)
	}

	entra := "[[connection]]\nname = \"g\"\nprovider = \"entra\"\nclient_id = \"abc\"\nredirect_uri = \"http://localhost:1/cb\"\n"
	procore := "[[connection]]\nname = \"p\"\nprovider = \"procore\"\nclient_id = \"abc\"\nredirect_uri = \"http://localhost:1/cb\"\n"
	for _, tc := range []struct {
		toml string
		want []string
	}{
		{entra, []string{"tenant", "missing", "organizations"}},
		{entra + `tenant = "a/b"`, []string{"tenant", "not a tenant"}},
		{procore + `tenant = "x"`, []string{"tenant", "no tenant"}},
		{procore + `company_id = "12ab"`, []string{"company_id", "digits"}},
		{procore + "company_id = \"1\"\napi_headers = { \"procore-company-id\" = \"2\" }", []string{"company_id", "keep one"}},
		{entra + "tenant = \"common\"\ncompany_id = \"1\"", []string{"company_id", "only Procore"}},
		{procore + `refresh_token_idle = "soon"`, []string{"refresh_token_idle", "not a duration", `"60d"`}},
		{procore + `refresh_token_warning = "10s"`, []string{"refresh_token_warning", "shorter than"}},
		{"refresh_token_warning = \"soon\"\n" + procore, []string{"refresh_token_warning (top level)", `"7d"`}},
		{"[[connection]]\nname = \"d\"\nprovider = \"generic\"\nclient_id = \"x\"\nredirect_uri = \"http://127.0.0.1:1/cb\"\ntoken_url = \"https://a.example/token\"\ndevice_auth_url = \"https://a.example/device\"",
			[]string{"auth_url", "missing"}},
	} {
		_, err := Parse("config.toml", []byte(tc.toml))
		if err == nil {
			t.Errorf("%q: no error", tc.toml)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not mention %q", tc.toml, err, w)
			}
		}
	}
}

// An AT Protocol connection: the handle names the account, the client id
// is the loopback one made of the redirect URI and scopes, DPoP is on, and
// a host-name redirect is refused.
func TestATProtoConnections(t *testing.T) {
	cfg, err := Parse("config.toml", []byte(`
[[connection]]
name = "bsky"
provider = "atproto"
handle = "@Alice.bsky.social"
redirect_uri = "http://127.0.0.1:8765/callback"
`))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.Lookup("bsky")
	if c.Handle != "alice.bsky.social" || !c.Discover || c.ClientID != "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&scope=atproto+transition%3Ageneric" ||
		strings.Join(c.Scopes, " ") != "atproto transition:generic" {
		t.Fatalf("connection %+v", c)
	}
	base := "[[connection]]\nname = \"b\"\nprovider = \"atproto\"\n"
	for _, tc := range []struct {
		toml string
		want []string
	}{
		{base + `redirect_uri = "http://127.0.0.1:1/cb"`, []string{"handle", "missing"}},
		{base + "handle = \"alice\"\nredirect_uri = \"http://127.0.0.1:1/cb\"", []string{"handle", "not a handle"}},
		{base + "handle = \"alice.bsky.social\"\nredirect_uri = \"http://localhost:8765/cb\"", []string{"redirect_uri", "http://127.0.0.1:8765/cb"}},
		{base + "handle = \"alice.bsky.social\"\nredirect_uri = \"http://127.0.0.1:1/cb\"\nexport_file = \"~/t.json\"", []string{"export_file", "DPoP"}},
		{"[[connection]]\nname = \"g\"\nprovider = \"google\"\nclient_id = \"x\"\nredirect_uri = \"http://127.0.0.1:1/cb\"\nhandle = \"a.b.c\"", []string{"handle", "only the AT Protocol"}},
	} {
		_, err := Parse("config.toml", []byte(tc.toml))
		if err == nil {
			t.Errorf("%q: no error", tc.toml)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not mention %q", tc.toml, err, w)
			}
		}
	}
}

func TestThePostgresStoreNeedsAURLWithoutAPassword(t *testing.T) {
	conn := "[[connection]]\nname = \"p\"\nprovider = \"procore\"\nclient_id = \"abc\"\nredirect_uri = \"http://localhost:9876/callback\"\n"
	keyFile := "/etc/tokentray/store.key"
	if runtime.GOOS == "windows" {
		keyFile = `C:\tokentray\store.key`
	}
	for _, tc := range []struct {
		name, top string
		problem   string // "" when it loads
		warning   string
	}{
		{"a URL, a key file and an instance", `store = "postgres"
store_url = "postgres://tokentray@db.example/tokentray?sslmode=verify-full"
store_key_file = '` + keyFile + `'
instance = "moby-2"`, "", ""},
		{"key=value pairs, the credential's key, the host name", `store = "postgres"
store_url = "host=db.example dbname=tokentray user=tokentray"`, "", ""},
		{"no URL", `store = "postgres"`, "store_url: store = \"postgres\" needs it", ""},
		{"a password in the URL", `store = "postgres"
store_url = "postgres://tokentray:hunter2@db.example/tokentray"`, "PGPASSFILE", ""},
		{"a password in the pairs", `store = "postgres"
store_url = "host=db.example password=hunter2"`, "~/.pgpass", ""},
		{"a relative key file", `store = "postgres"
store_url = "host=db.example"
store_key_file = "store.key"`, "store_key_file: \"store.key\" is not an absolute path", ""},
		{"an instance that is not a name", `store = "postgres"
store_url = "host=db.example"
instance = "a b"`, "instance: \"a b\" is not a name", ""},
		{"the keys with another store", `store = "file"
store_url = "host=db.example"`, "", "store_url is ignored"},
		{"an unknown store", `store = "redis"`, `"postgres" or "etcd" (a PostgreSQL database or an etcd cluster`, ""},
		{"etcd: endpoints, TLS files, a key file and an instance", `store = "etcd"
store_endpoints = ["https://etcd-1.example:2379", "https://etcd-2.example:2379"]
store_tls_ca = '` + keyFile + `'
store_tls_cert = '` + keyFile + `'
store_tls_key = '` + keyFile + `'
store_key_file = '` + keyFile + `'
instance = "moby-2"`, "", ""},
		{"etcd: no endpoints", `store = "etcd"`, "store_endpoints: store = \"etcd\" needs it", ""},
		{"etcd: not a URL", `store = "etcd"
store_endpoints = ["etcd-1.example:2379"]`, "is not an etcd client URL", ""},
		{"etcd: a password in an endpoint", `store = "etcd"
store_endpoints = ["https://root:hunter2@etcd-1.example:2379"]`, "holds a user name or password", ""},
		{"etcd: a certificate without its key", `store = "etcd"
store_endpoints = ["https://etcd-1.example:2379"]
store_tls_cert = '` + keyFile + `'`, "give both", ""},
		{"etcd: a relative CA file", `store = "etcd"
store_endpoints = ["https://etcd-1.example:2379"]
store_tls_ca = "ca.pem"`, "store_tls_ca: \"ca.pem\" is not an absolute path", ""},
		{"etcd's keys with PostgreSQL", `store = "postgres"
store_url = "host=db.example"
store_endpoints = ["https://etcd-1.example:2379"]`, "", `store_endpoints is ignored: it is for store = "etcd"`},
		{"PostgreSQL's URL with etcd", `store = "etcd"
store_endpoints = ["https://etcd-1.example:2379"]
store_url = "host=db.example"`, "", `store_url is ignored: it is for store = "postgres"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("config.toml", []byte(tc.top+"\n"+conn))
			if tc.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.warning != "" && !strings.Contains(strings.Join(cfg.Warnings, "\n"), tc.warning) {
					t.Fatalf("warnings %q; want one with %q", cfg.Warnings, tc.warning)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("%v; want a problem with %q", err, tc.problem)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the problem quotes the password: %v", err)
			}
		})
	}
	cfg, err := Parse("config.toml", []byte("store = \"postgres\"\nstore_url = \"host=db\"\nstore_key_file = '"+keyFile+"'\ninstance = \"i-1\"\n"+conn))
	if err != nil || cfg.Store != StorePostgres || cfg.StoreURL != "host=db" || cfg.StoreKeyFile != keyFile || cfg.Instance != "i-1" {
		t.Fatalf("read back: %+v, %v", cfg, err)
	}
}

// The shared store's timings are settings: the lease's TTL at the top,
// each connection's request timeout in its table; a request timeout that
// the lease does not outlive breaks that connection alone, with what to
// change.
func TestTheTimingsOfASharedStoreAreSettings(t *testing.T) {
	top := "store = \"postgres\"\nstore_url = \"host=db.example\"\n"
	table := func(name, extra string) string {
		return "[[connection]]\nname = \"" + name + "\"\nprovider = \"generic\"\nclient_id = \"abc\"\nredirect_uri = \"http://127.0.0.1:9876/callback\"\n" +
			"auth_url = \"https://as.example/authorize\"\ntoken_url = \"https://as.example/token\"\n" + extra
	}
	cfg, err := parse("config.toml", []byte(top+"store_lease_ttl = \"12s\"\n"+table("short", "request_timeout = \"3s\"\n")+table("slow", "request_timeout = \"20s\"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StoreLeaseTTL != 12*time.Second {
		t.Fatalf("store_lease_ttl read as %s", cfg.StoreLeaseTTL)
	}
	if len(cfg.Connections) != 1 || cfg.Connections[0].Name != "short" || cfg.Connections[0].RequestTimeout != 3*time.Second {
		t.Fatalf("connections %v", cfg.Connections)
	}
	if len(cfg.Broken) != 1 || !strings.Contains(cfg.Broken[0].Error(), "request_timeout: 20s is not shorter than the shared store's lease (store_lease_ttl, 12s)") {
		t.Fatalf("broken %v", cfg.Broken)
	}
	// The default lease outlives the default request.
	if cfg, err := parse("config.toml", []byte(top+table("p", ""))); err != nil || len(cfg.Broken) != 0 || cfg.StoreLeaseTTL != 0 {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	for _, tc := range []struct{ text, problem string }{
		{top + "store_lease_ttl = \"2s\"\n" + table("p", ""), `store_lease_ttl: "2s" is not a duration from 5s to 10m`},
		{top + "store_lease_ttl = \"soon\"\n" + table("p", ""), `store_lease_ttl: "soon" is not a duration`},
		{top + table("p", "request_timeout = \"2m\"\n"), "request_timeout: 2m is longer than 30s"},
		{top + table("p", "request_timeout = \"500ms\"\n"), "request_timeout: 500ms is shorter than 1s"},
	} {
		cfg, err := parse("config.toml", []byte(tc.text))
		got := fmt.Sprint(err)
		if err == nil && len(cfg.Broken) > 0 {
			got = cfg.Broken[0].Error()
		}
		if !strings.Contains(got, tc.problem) {
			t.Errorf("%q: %s; want %q", tc.text, got, tc.problem)
		}
	}
	if cfg, err := parse("config.toml", []byte("store = \"file\"\nstore_lease_ttl = \"20s\"\n"+table("p", ""))); err != nil || !strings.Contains(strings.Join(cfg.Warnings, "\n"), "store_lease_ttl is ignored") {
		t.Fatalf("store_lease_ttl with the file store: %v, %v", cfg.Warnings, err)
	}
}
