// Package config reads and validates tokentray's TOML configuration. It knows
// the file format and the rules; it turns each [[connection]] into an
// auth.Connection and reports every problem at once, each naming the
// connection, the field and the fix.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/postgres/conninfo"
)

// File is the config file as written.
type File struct {
	Store string `toml:"store"`
	// StoreURL is the PostgreSQL store's (store = "postgres");
	// StoreEndpoints and the TLS files are the etcd store's (store =
	// "etcd"); StoreKeyFile and Instance are both's.
	StoreURL       string   `toml:"store_url"`
	StoreEndpoints []string `toml:"store_endpoints"`
	StoreTLSCA     string   `toml:"store_tls_ca"`
	StoreTLSCert   string   `toml:"store_tls_cert"`
	StoreTLSKey    string   `toml:"store_tls_key"`
	StoreKeyFile   string   `toml:"store_key_file"`
	Instance       string   `toml:"instance"`
	// StoreLeaseTTL is the shared store's lease ("45s").
	StoreLeaseTTL string `toml:"store_lease_ttl"`
	OnAlert       string `toml:"on_alert"`
	// RefreshTokenWarning is every connection's refresh_token_warning
	// unless it sets its own.
	RefreshTokenWarning string       `toml:"refresh_token_warning"`
	Connections         []Connection `toml:"connection"`
	Remotes             []Remote     `toml:"remote"`
}

// Remote is one [[remote]] table: a machine whose tokentray keeps
// connections of its own (a server), reached with the system's ssh.
type Remote struct {
	// Name names it here: its connections are NAME@REMOTE.
	Name string `toml:"name"`
	// SSH is the destination as ssh takes it: user@host, a Host of
	// ~/.ssh/config, or ssh://user@host:port.
	SSH string `toml:"ssh"`
	// SSHOptions are ssh's -o options, "Key=value" each.
	SSHOptions []string `toml:"ssh_options"`
	// Command is the tokentray there (default "tokentray").
	Command string `toml:"command"`
}

// Connection is one [[connection]] table as written.
type Connection struct {
	Name        string   `toml:"name"`
	Provider    string   `toml:"provider"`
	Environment string   `toml:"environment"`
	Grant       string   `toml:"grant"`
	ClientID    string   `toml:"client_id"`
	RedirectURI string   `toml:"redirect_uri"`
	Scopes      Scopes   `toml:"scopes"`
	RefreshAt   *float64 `toml:"refresh_at"`
	ExportFile  string   `toml:"export_file"`
	TokenEnv    string   `toml:"token_env"`
	OnAlert     string   `toml:"on_alert"`
	AuthURL     string   `toml:"auth_url"`
	TokenURL    string   `toml:"token_url"`
	RevokeURL   string   `toml:"revoke_url"`
	// DeviceAuthURL and TokenInfoURL override or add RFC 8628's device
	// authorization endpoint and a token-info endpoint.
	DeviceAuthURL string `toml:"device_auth_url"`
	TokenInfoURL  string `toml:"token_info_url"`
	// PARURL sends the authorization request to RFC 9126's endpoint first.
	PARURL string `toml:"par_url"`
	// DPoP binds the tokens to a key of the connection (RFC 9449).
	DPoP bool `toml:"dpop"`
	// Handle is an AT Protocol account (provider = "atproto").
	Handle   string `toml:"handle"`
	APIBase  string `toml:"api_base"`
	CheckURL string `toml:"check_url"`
	Issuer   string `toml:"issuer"`
	// AuthMethod is token_endpoint_auth_method (RFC 7591's values).
	AuthMethod  string `toml:"token_endpoint_auth_method"`
	AuthParams  Params `toml:"auth_params"`
	TokenParams Params `toml:"token_params"`
	// APIHeaders are sent with every API call through the proxy
	// (Procore-Company-Id).
	APIHeaders Params `toml:"api_headers"`
	// ProxyPort opens the proxy on 127.0.0.1:PORT too, for clients that
	// cannot speak to a unix socket (a key in a header is required).
	ProxyPort int `toml:"proxy_port"`
	// Tenant fills a preset's {tenant} (Microsoft Entra ID's directory).
	Tenant string `toml:"tenant"`
	// CompanyID is sent as Procore-Company-Id with the check and every
	// API call through the proxy.
	CompanyID string `toml:"company_id"`
	// The refresh token's life where the provider's answers do not say
	// (durations: "90d", "36h"), and how long before its end a person
	// hears of it.
	RefreshTokenIdle     string `toml:"refresh_token_idle"`
	RefreshTokenLifetime string `toml:"refresh_token_lifetime"`
	RefreshTokenWarning  string `toml:"refresh_token_warning"`
	// AccessTokenLifetime is assumed when the server sends no expires_in.
	AccessTokenLifetime string `toml:"access_token_lifetime"`
	// RequestTimeout bounds each token request ("10s").
	RequestTimeout string `toml:"request_timeout"`
}

// Params are extra request parameters: a TOML table of strings.
type Params map[string]string

// UnmarshalTOML accepts a table whose values are strings.
func (p *Params) UnmarshalTOML(v any) error {
	table, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("a %s is not valid here; write a table of strings, e.g. { audience = \"https://api.example.com\" }", tomlType(v))
	}
	out := Params{}
	for k, e := range table {
		str, ok := e.(string)
		if !ok {
			return fmt.Errorf("%s is a %s; every value must be a string in quotes, e.g. %s = \"…\"", k, tomlType(e), k)
		}
		out[k] = str
	}
	*p = out
	return nil
}

// tomlType names the type of a decoded TOML value as a person would.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64, float64:
		return "number"
	case bool:
		return "true/false value"
	case []any, []map[string]any:
		return "list"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// Scopes are the scopes to ask for: a TOML array of strings, or one string
// of scopes separated by spaces, as OAuth itself writes them ("openid
// offline_access").
type Scopes []string

// UnmarshalTOML accepts both spellings.
func (s *Scopes) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*s = strings.Fields(v)
		return nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("%v is a %s, not a scope; write scopes = [\"openid\", \"offline_access\"] or scopes = \"openid offline_access\"", e, tomlType(e))
			}
			out = append(out, strings.Fields(str)...)
		}
		*s = out
		return nil
	}
	return fmt.Errorf("a %s is not a list of scopes; write scopes = [\"openid\", \"offline_access\"] or scopes = \"openid offline_access\"", tomlType(v))
}

// Overrides are the connection's own URLs, each empty where the preset's
// is used.
func (c Connection) Overrides() auth.Endpoints {
	return auth.Endpoints{AuthURL: c.AuthURL, TokenURL: c.TokenURL, RevokeURL: c.RevokeURL, APIBase: c.APIBase, CheckURL: c.CheckURL, Issuer: c.Issuer,
		DeviceAuthURL: c.DeviceAuthURL, TokenInfoURL: c.TokenInfoURL, PARURL: c.PARURL}
}

// SetOverrides sets the connection's own URLs.
func (c *Connection) SetOverrides(e auth.Endpoints) {
	c.AuthURL, c.TokenURL, c.RevokeURL, c.APIBase, c.CheckURL, c.Issuer = e.AuthURL, e.TokenURL, e.RevokeURL, e.APIBase, e.CheckURL, e.Issuer
	c.DeviceAuthURL, c.TokenInfoURL, c.PARURL = e.DeviceAuthURL, e.TokenInfoURL, e.PARURL
}

// Config is a loaded, validated configuration.
type Config struct {
	Path string
	// Store is where tokens and client secrets live: StoreKeyring (the
	// default), StoreFile, StorePostgres or StoreEtcd.
	Store string
	// StoreURL is the PostgreSQL store's connection string, without a
	// password (store = "postgres").
	StoreURL string
	// StoreEndpoints are the etcd cluster's client URLs, and StoreTLSCA,
	// StoreTLSCert and StoreTLSKey its TLS files (store = "etcd").
	StoreEndpoints                        []string
	StoreTLSCA, StoreTLSCert, StoreTLSKey string
	// StoreKeyFile is the file of the shared store's key; "" means the
	// systemd credential tokentray.key.
	StoreKeyFile string
	// Instance names this machine in a shared store; "" means the host
	// name.
	Instance string
	// StoreLeaseTTL is how long the shared store's lease lives without
	// renewal; 0 means DefaultStoreLeaseTTL.
	StoreLeaseTTL time.Duration
	OnAlert       string
	Connections   []*auth.Connection
	// Remotes are the [[remote]] tables, Command defaulted.
	Remotes []Remote
	// Warnings are problems that do not stop tokentray (unknown keys).
	Warnings []string
	// Broken are the [[connection]] tables that cannot be used as they
	// are, in the file's order. They stop no other connection: a typo in
	// one table must not leave every agent without tokens after a reboot.
	Broken []Broken
	// tables are the file's connection tables, by name (Resolve).
	tables map[string]Connection
}

// DefaultStoreLeaseTTL is the shared store's lease when store_lease_ttl is
// not set: the stores' own default.
const DefaultStoreLeaseTTL = auth.DefaultLeaseTTL

// The stores tokentray keeps tokens and client secrets in (store = …).
const (
	StoreKeyring  = "keyring"
	StoreFile     = "file"
	StorePostgres = "postgres"
	StoreEtcd     = "etcd"
)

// Shared reports whether the store is one that several machines share
// (PostgreSQL or etcd): it has a lease, an instance key and an instance
// name.
func (c *Config) Shared() bool { return c.Store == StorePostgres || c.Store == StoreEtcd }

// Resolved is one connection as tokentray runs it: what the auth core
// keeps, and what the file says the programs around it do, with the
// file's defaults applied. Everything but the core asks for this, never
// for a table of the file.
type Resolved struct {
	Auth *auth.Connection
	// Table is the connection's table as in the file: the editor's form,
	// and what a change of the file is compared on. Zero for a connection
	// that is not from a file (the demo's).
	Table Connection
	// ExportFile, if set, is written with every new access token.
	ExportFile string
	// TokenEnv names `tokentray exec`'s variable for the access token; ""
	// means the provider's name for it.
	TokenEnv string
	// AlertCommand is the on_alert command: the connection's own, else the
	// file's top-level one, else "" (none).
	AlertCommand string
}

// Broken is a [[connection]] table that cannot be used as it is: listed,
// alerted once, and refused with its problems when asked for by name.
type Broken struct {
	// Name is the table's name; "" when it has none.
	Name string
	// Label says which table it is ("connection \"ci\"", "connection #3").
	Label string
	// Problems are what to change, by key where there is one.
	Problems FieldErrors
}

// Error lists the problems, for a request that names the connection.
func (b Broken) Error() string {
	lines := make([]string, len(b.Problems))
	for i, p := range b.Problems {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%s cannot be used until its table is fixed: %s", b.Label, strings.Join(lines, "; "))
}

// BrokenNamed is the broken table called name, if there is one.
func (c *Config) BrokenNamed(name string) (Broken, bool) {
	for _, b := range c.Broken {
		if b.Name == name && name != "" {
			return b, true
		}
	}
	return Broken{}, false
}

// Resolve returns connection name as tokentray runs it, or Lookup's error.
func (c *Config) Resolve(name string) (*Resolved, error) {
	conn, err := c.Lookup(name)
	if err != nil {
		return nil, err
	}
	return c.resolve(conn), nil
}

// All is every connection as tokentray runs it, in the file's order.
func (c *Config) All() []*Resolved {
	out := make([]*Resolved, 0, len(c.Connections))
	for _, conn := range c.Connections {
		out = append(out, c.resolve(conn))
	}
	return out
}

func (c *Config) resolve(conn *auth.Connection) *Resolved {
	t := c.tables[conn.Name]
	r := &Resolved{Auth: conn, Table: t, ExportFile: t.ExportFile, TokenEnv: t.TokenEnv, AlertCommand: t.OnAlert}
	if r.AlertCommand == "" {
		r.AlertCommand = c.OnAlert
	}
	return r
}

// checkRemotes validates the [[remote]] tables into cfg.Remotes.
func checkRemotes(cfg *Config, remotes []Remote) []string {
	var problems []string
	seen := map[string]bool{}
	for i, r := range remotes {
		label := fmt.Sprintf("remote #%d", i+1)
		if r.Name != "" {
			label = fmt.Sprintf("remote %q", r.Name)
		}
		switch {
		case r.Name == "":
			problems = append(problems, label+": name: missing; add name = \"my-server\" (its connections are then NAME@my-server)")
		case !nameRE().MatchString(r.Name):
			problems = append(problems, label+": name: may contain only letters, digits, '.', '_' and '-'")
		case seen[r.Name]:
			problems = append(problems, label+": name: used by another [[remote]] too")
		}
		seen[r.Name] = true
		switch {
		case r.SSH == "":
			problems = append(problems, label+": ssh: missing; set ssh = \"user@host\" (or a Host of ~/.ssh/config, or ssh://user@host:port)")
		case strings.HasPrefix(r.SSH, "-") || strings.ContainsAny(r.SSH, " \t\n"):
			problems = append(problems, fmt.Sprintf("%s: ssh: %q is not a destination: user@host, a Host of ~/.ssh/config, or ssh://user@host:port", label, r.SSH))
		}
		for _, o := range r.SSHOptions {
			if k, _, ok := strings.Cut(o, "="); !ok || k == "" || strings.HasPrefix(o, "-") || strings.ContainsAny(k, " \t\n") {
				problems = append(problems, fmt.Sprintf("%s: ssh_options: %q is not an ssh option as -o takes it, Key=value (e.g. \"Port=2222\")", label, o))
			}
		}
		if r.Command == "" {
			r.Command = "tokentray"
		}
		cfg.Remotes = append(cfg.Remotes, r)
	}
	return problems
}

// Remote returns the [[remote]] named name, or an error that lists them.
func (c *Config) Remote(name string) (Remote, error) {
	var names []string
	for _, r := range c.Remotes {
		if r.Name == name {
			return r, nil
		}
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		return Remote{}, fmt.Errorf("no remote named %q: %s has no [[remote]] tables (see the README's Servers and agents)", name, c.Path)
	}
	return Remote{}, fmt.Errorf("no remote named %q in %s; configured: %s", name, c.Path, strings.Join(names, ", "))
}

// Lookup returns the named connection or an error that lists the names:
// for a table that is there but broken, a ValidationError with its
// problems.
func (c *Config) Lookup(name string) (*auth.Connection, error) {
	for _, conn := range c.Connections {
		if conn.Name == name {
			return conn, nil
		}
	}
	if b, ok := c.BrokenNamed(name); ok {
		return nil, &ValidationError{Path: c.Path, Problems: b.lines()}
	}
	names := make([]string, 0, len(c.Connections))
	for _, conn := range c.Connections {
		names = append(names, conn.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no connection named %q: %s has no [[connection]] tables yet (see the README's Config section)", name, c.Path)
	}
	return nil, fmt.Errorf("no connection named %q in %s; configured: %s", name, c.Path, strings.Join(names, ", "))
}

// DefaultPath is os.UserConfigDir()/tokentray/config.toml.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w (pass --config PATH)", err)
	}
	return filepath.Join(dir, "tokentray", "config.toml"), nil
}

// ErrNoFile means the config file does not exist.
var ErrNoFile = errors.New("config file not found")

// Load reads and validates the file at path, as the running tokentray and
// the CLI take it: every table that is valid is in Connections, and the
// others in Broken.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist; create it (the README's Config section has an example) or pass --config PATH", ErrNoFile, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, b)
}

// FieldError is one problem of a connection's settings: the config key at
// fault ("" for the connection as a whole) and what to change. The CLI
// shows it as "key: message" in a ValidationError, the editor next to its
// field (ByKey); the wording is the same.
type FieldError struct {
	Key, Message string
}

func (e FieldError) String() string {
	if e.Key == "" {
		return e.Message
	}
	return e.Key + ": " + e.Message
}

// FieldErrors are every problem of one connection's settings. As an error
// it is a connection that cannot be used as it is.
type FieldErrors []FieldError

func (p FieldErrors) Error() string {
	if len(p) == 1 {
		return p[0].String()
	}
	return fmt.Sprintf("%d settings are not valid", len(p))
}

// ByKey is one message per key, problems of the same key joined with "; ".
func (p FieldErrors) ByKey() map[string]string {
	out := map[string]string{}
	for _, e := range p {
		if out[e.Key] != "" {
			out[e.Key] += "; " + e.Message
		} else {
			out[e.Key] = e.Message
		}
	}
	return out
}

// ValidationError lists every problem found in a config file.
type ValidationError struct {
	Path     string
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return e.Path + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s has %d problems:\n  - %s", e.Path, len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

var (
	nameRE    = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envNameRE = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Parse validates the TOML text b, read from path, whole: a broken
// connection table is an error too (Strict).
func Parse(path string, b []byte) (*Config, error) {
	cfg, err := parse(path, b)
	if err != nil {
		return nil, err
	}
	if err := cfg.Strict(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parse validates the TOML text b, read from path. A file that cannot be
// read as TOML, or a top-level setting that every connection depends on,
// is an error; a connection table's own problems make it Broken.
func parse(path string, b []byte) (*Config, error) {
	var f File
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if key := pe.LastKey[strings.LastIndex(pe.LastKey, ".")+1:]; slices.Contains([]string{"scopes", "auth_params", "token_params"}, key) && !strings.Contains(pe.Message, "expected") {
				// A value that the field's own UnmarshalTOML refused.
				return nil, &ValidationError{Path: path, Problems: []string{where(b, pe.Position.Line) + ": " + key + ": " + pe.Message}}
			}
			return nil, &ValidationError{Path: path, Problems: []string{fmt.Sprintf("line %d: %s (TOML syntax)", pe.Position.Line, pe.Message)}}
		}
		return nil, &ValidationError{Path: path, Problems: []string{decodeProblem(b, err)}}
	}
	cfg := &Config{Path: path, Store: f.Store, StoreURL: f.StoreURL, StoreKeyFile: f.StoreKeyFile,
		StoreEndpoints: f.StoreEndpoints, StoreTLSCA: f.StoreTLSCA, StoreTLSCert: f.StoreTLSCert, StoreTLSKey: f.StoreTLSKey, Instance: f.Instance, OnAlert: f.OnAlert, tables: map[string]Connection{}}
	for _, key := range md.Undecoded() {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: unknown key %q is ignored (known connection keys: %s)", path, key.String(), strings.Join(knownKeys(), ", ")))
	}
	var problems []string
	switch f.Store {
	case "":
		cfg.Store = StoreKeyring
	case StoreKeyring, StoreFile, StorePostgres, StoreEtcd:
	default:
		problems = append(problems, fmt.Sprintf("store: %q is not a store tokentray has; use \"keyring\" (the OS keyring, the default), \"file\" (files only this user can read, for servers without a Secret Service) or \"postgres\" or \"etcd\" (a PostgreSQL database or an etcd cluster that several machines share)", f.Store))
	}
	problems = append(problems, checkSharedStore(cfg, f.StoreLeaseTTL)...)
	problems = append(problems, checkRemotes(cfg, f.Remotes)...)
	var topWarning time.Duration
	if f.RefreshTokenWarning != "" {
		d, err := ParseDuration(f.RefreshTokenWarning)
		if err != nil || d < time.Minute {
			problems = append(problems, fmt.Sprintf("refresh_token_warning (top level): %q is not a duration of a minute or more; write e.g. refresh_token_warning = \"7d\"", f.RefreshTokenWarning))
		}
		topWarning = d
	}
	// A table's own problems are its own (Broken); a second table of a
	// name, or of a proxy port, is the broken one: the first runs on.
	seen, ports := map[string]int{}, map[int]int{}
	for i, raw := range f.Connections {
		label := fmt.Sprintf("connection #%d", i+1)
		if raw.Name != "" {
			label = fmt.Sprintf("connection %q", raw.Name)
		}
		conn, errs := build(raw)
		if raw.RefreshTokenWarning == "" && topWarning > 0 {
			conn.RefreshTokenWarning = topWarning
		}
		if cfg.Shared() {
			ttl := cfg.StoreLeaseTTL
			if ttl == 0 {
				ttl = DefaultStoreLeaseTTL
			}
			if e, bad := leaseProblem(conn, ttl); bad {
				errs = append(errs, e)
			}
		}
		if raw.Name != "" {
			if first, dup := seen[raw.Name]; dup {
				label = fmt.Sprintf("connection #%d (%q)", i+1, raw.Name)
				errs = append(errs, FieldError{"name", fmt.Sprintf("%q is used by connection #%d too; names must be unique (they name the keyring items)", raw.Name, first)})
			} else {
				seen[raw.Name] = i + 1
			}
		}
		if p := raw.ProxyPort; p != 0 {
			if first, dup := ports[p]; dup {
				errs = append(errs, FieldError{"proxy_port", fmt.Sprintf("%d is the port of connection #%d too; each connection's proxy needs a port of its own", p, first)})
			} else {
				ports[p] = i + 1
			}
		}
		if len(errs) > 0 {
			name := raw.Name
			if seen[raw.Name] != i+1 {
				name = "" // a second table of a name is not the name's
			}
			cfg.Broken = append(cfg.Broken, Broken{Name: name, Label: label, Problems: errs})
			continue
		}
		cfg.Connections = append(cfg.Connections, conn)
		cfg.tables[conn.Name] = raw
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Path: path, Problems: problems}
	}
	return cfg, nil
}

// checkSharedStore checks the keys of a shared store: for store =
// "postgres" a connection string without a password, for store = "etcd"
// client URLs without one and TLS files given whole; for both an absolute
// key file and an instance name. A key of another store is ignored, with
// a warning.
func checkSharedStore(cfg *Config, leaseTTL string) []string {
	keys := []struct {
		key, value, store string
	}{
		{"store_url", cfg.StoreURL, StorePostgres},
		{"store_endpoints", strings.Join(cfg.StoreEndpoints, ","), StoreEtcd},
		{"store_tls_ca", cfg.StoreTLSCA, StoreEtcd},
		{"store_tls_cert", cfg.StoreTLSCert, StoreEtcd},
		{"store_tls_key", cfg.StoreTLSKey, StoreEtcd},
		{"store_key_file", cfg.StoreKeyFile, ""},
		{"instance", cfg.Instance, ""},
		{"store_lease_ttl", leaseTTL, ""},
	}
	for _, k := range keys {
		switch {
		case k.value == "" || k.store == cfg.Store || (k.store == "" && cfg.Shared()):
		case k.store == "":
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: %s is ignored: it is for a shared store (store = \"postgres\" or \"etcd\"), and this file says store = %q", cfg.Path, k.key, cfg.Store))
		default:
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: %s is ignored: it is for store = %q, and this file says store = %q", cfg.Path, k.key, k.store, cfg.Store))
		}
	}
	if !cfg.Shared() {
		return nil
	}
	var problems []string
	switch cfg.Store {
	case StorePostgres:
		if cfg.StoreURL == "" {
			problems = append(problems, `store_url: store = "postgres" needs it: the database to share, as a libpq URL or key=value pairs without a password, e.g. store_url = "postgres://tokentray@db.example/tokentray?sslmode=verify-full"`)
		} else if err := conninfo.RefusePassword(cfg.StoreURL); err != nil {
			problems = append(problems, err.Error())
		}
	case StoreEtcd:
		problems = append(problems, checkEtcd(cfg)...)
	}
	if cfg.StoreKeyFile != "" && !filepath.IsAbs(cfg.StoreKeyFile) {
		problems = append(problems, fmt.Sprintf("store_key_file: %q is not an absolute path; write the full path of a 0600 file of 32 random bytes (head -c 32 /dev/urandom), the same key on every instance", cfg.StoreKeyFile))
	}
	if cfg.Instance != "" && !nameRE().MatchString(cfg.Instance) {
		problems = append(problems, fmt.Sprintf("instance: %q is not a name: letters, digits, '.', '_' and '-', up to 64 (it names this machine to the others; the default is the host name)", cfg.Instance))
	}
	if leaseTTL != "" {
		d, err := ParseDuration(leaseTTL)
		if err != nil || d < 5*time.Second || d > 10*time.Minute {
			problems = append(problems, fmt.Sprintf("store_lease_ttl: %q is not a duration from 5s to 10m; write e.g. store_lease_ttl = \"20s\" (default %s)", leaseTTL, DefaultStoreLeaseTTL))
		} else {
			cfg.StoreLeaseTTL = d
		}
	}
	return problems
}

// checkEtcd checks the keys of store = "etcd": client URLs, with no user
// or password in them, and the TLS files as absolute paths, the
// certificate with its key.
func checkEtcd(cfg *Config) []string {
	var problems []string
	if len(cfg.StoreEndpoints) == 0 {
		problems = append(problems, `store_endpoints: store = "etcd" needs it: the cluster's client URLs, e.g. store_endpoints = ["https://etcd-1.example:2379", "https://etcd-2.example:2379", "https://etcd-3.example:2379"]`)
	}
	for _, e := range cfg.StoreEndpoints {
		u, err := url.Parse(e)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			if u != nil && u.User != nil {
				e = "(a URL with a user or password)"
			}
			problems = append(problems, fmt.Sprintf("store_endpoints: %q is not an etcd client URL; write it as \"https://HOST:2379\" (or http:// on a private network)", e))
		case u.User != nil:
			problems = append(problems, "store_endpoints: a URL holds a user name or password; tokentray keeps no password in its config: give this instance a client certificate the cluster trusts (store_tls_cert, store_tls_key)")
		}
	}
	for _, f := range [][2]string{{"store_tls_ca", cfg.StoreTLSCA}, {"store_tls_cert", cfg.StoreTLSCert}, {"store_tls_key", cfg.StoreTLSKey}} {
		if f[1] != "" && !filepath.IsAbs(f[1]) {
			problems = append(problems, fmt.Sprintf("%s: %q is not an absolute path; write the full path of the PEM file", f[0], f[1]))
		}
	}
	if (cfg.StoreTLSCert == "") != (cfg.StoreTLSKey == "") {
		problems = append(problems, "store_tls_cert, store_tls_key: give both (this instance's client certificate and its key) or neither")
	}
	return problems
}

// leaseProblem is what is wrong with a connection's request_timeout under
// a shared store's lease of ttl: a request must end within the lease that
// it was sent under (auth.Lease), or the connection never refreshes.
func leaseProblem(conn *auth.Connection, ttl time.Duration) (FieldError, bool) {
	timeout := conn.RequestTimeout
	if timeout == 0 {
		timeout = MaxRequestTimeout
	}
	if timeout < ttl {
		return FieldError{}, false
	}
	return FieldError{"request_timeout", fmt.Sprintf("%s is not shorter than the shared store's lease (store_lease_ttl, %s): a refresh token is presented only while the lease outlives the request; shorten request_timeout or lengthen store_lease_ttl", timeout, ttl)}, true
}

// Strict is the ValidationError of every broken table, or nil: for a
// file that is being written, which must come out whole.
func (c *Config) Strict() error {
	var problems []string
	for _, b := range c.Broken {
		problems = append(problems, prefixed(b)...)
	}
	if len(problems) > 0 {
		return &ValidationError{Path: c.Path, Problems: problems}
	}
	return nil
}

// prefixed are b's problems, each with its label, as a ValidationError
// lists them.
func prefixed(b Broken) []string {
	out := b.lines()
	for i := range out {
		out[i] = b.Label + ": " + out[i]
	}
	return out
}

func (b Broken) lines() []string {
	out := make([]string, len(b.Problems))
	for i, p := range b.Problems {
		out[i] = p.String()
	}
	return out
}

func knownKeys() []string {
	return []string{"name", "provider", "environment", "grant", "client_id", "redirect_uri", "scopes", "refresh_at",
		"export_file", "token_env", "on_alert", "auth_url", "token_url", "revoke_url", "api_base", "check_url", "issuer", "device_auth_url", "token_info_url", "par_url", "dpop", "handle",
		"token_endpoint_auth_method", "auth_params", "token_params", "api_headers", "proxy_port", "tenant", "company_id",
		"refresh_token_idle", "refresh_token_lifetime", "refresh_token_warning", "access_token_lifetime"}
}

// typeErrorRE matches the TOML decoder's message for a value of the wrong type.
var typeErrorRE = lazyRegexp(`^toml: line (\d+) \(last key "([^"]+)"\): (?:incompatible types: TOML value has type (\w+); destination has type \w+|(.*))$`)

// keyExamples show each key's type by example, for a value of the wrong type.
var keyExamples = map[string]string{
	"refresh_at":   "a number between 0 and 1, e.g. refresh_at = 0.8",
	"scopes":       `a list or one string, e.g. scopes = ["openid", "offline_access"] or scopes = "openid offline_access"`,
	"auth_params":  `a table of strings, e.g. auth_params = { audience = "https://api.example.com", prompt = "consent" }`,
	"token_params": `a table of strings, e.g. token_params = { resource = "https://api.example.com" }`,
	"api_headers":  `a table of strings, e.g. api_headers = { "Procore-Company-Id" = "12345" }`,
	"proxy_port":   "a port number, e.g. proxy_port = 8799",
	"connection":   "[[connection]] tables, one per connection (see the README's Config section)",
}

// decodeProblem turns a decoder error into a problem that names the
// connection, the key and the fix.
func decodeProblem(b []byte, err error) string {
	m := typeErrorRE().FindStringSubmatch(err.Error())
	if m == nil {
		return err.Error()
	}
	line, _ := strconv.Atoi(m[1])
	key := m[2][strings.LastIndex(m[2], ".")+1:]
	if m[4] != "" { // a type's own UnmarshalTOML said what is wrong
		return where(b, line) + ": " + key + ": " + m[4]
	}
	want, ok := keyExamples[key]
	if !ok {
		want = fmt.Sprintf(`a string in quotes, e.g. %s = "…"`, key)
	}
	got := map[string]string{"int64": "number", "float64": "number", "bool": "true/false value", "slice": "list", "map": "table"}[m[3]]
	if got == "" {
		got = m[3]
	}
	return fmt.Sprintf("%s: %s: a %s is not valid here; write %s", where(b, line), key, got, want)
}

// where names line n of the config text b and the connection it is in.
func where(b []byte, n int) string {
	w := fmt.Sprintf("line %d", n)
	if name := connectionAt(string(b), n); name != "" {
		w += fmt.Sprintf(": connection %q", name)
	}
	return w
}

// connectionAt is the name of the [[connection]] table that holds line n
// (1-based) of text, if it has one.
func connectionAt(text string, n int) string {
	lines := strings.Split(text, "\n")
	name := ""
	for i := 0; i < n && i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(l, "[[connection]]"):
			name = ""
			for _, next := range lines[i+1:] {
				next = strings.TrimSpace(next)
				if strings.HasPrefix(next, "[") {
					break
				}
				if k, v, ok := strings.Cut(next, "="); ok && strings.TrimSpace(k) == "name" {
					name = strings.Trim(strings.TrimSpace(stripComment(v)), `"'`)
					break
				}
			}
		case strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[connection."):
			name = ""
		}
	}
	return name
}

// build validates one connection table.
func build(raw Connection) (*auth.Connection, FieldErrors) {
	var errs FieldErrors
	add := func(key, format string, a ...any) { errs = append(errs, FieldError{key, fmt.Sprintf(format, a...)}) }

	if raw.Name == "" {
		add("name", "missing; add name = \"my-connection\" (letters, digits, '.', '_' or '-')")
	} else if !nameRE().MatchString(raw.Name) {
		add("name", "%q may contain only letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)", raw.Name)
	}

	conn := &auth.Connection{Name: raw.Name, ClientID: raw.ClientID, Scopes: raw.Scopes, Environment: raw.Environment,
		AuthMethod: raw.AuthMethod, AuthParams: raw.AuthParams, TokenParams: raw.TokenParams, APIHeaders: raw.APIHeaders,
		ProxyPort: raw.ProxyPort, DPoP: raw.DPoP}

	if raw.AuthMethod != "" && !slices.Contains(auth.AuthMethods, raw.AuthMethod) {
		add("token_endpoint_auth_method", "%q is not one tokentray speaks; use %s (the method the client is registered with at the provider)", raw.AuthMethod, strings.Join(auth.AuthMethods, ", "))
	}
	errs = append(errs, checkParams("auth_params", raw.AuthParams, reservedAuthParams)...)
	errs = append(errs, checkParams("token_params", raw.TokenParams, reservedTokenParams)...)
	errs = append(errs, checkHeaders("api_headers", raw.APIHeaders)...)
	errs = append(errs, lifetimes(raw, conn)...)
	if p := raw.ProxyPort; p != 0 && (p < 1024 || p > 65535) {
		add("proxy_port", "%d is not a port tokentray may open: choose one from 1024 to 65535, e.g. 8799", p)
	}

	preset, ok := auth.LookupPreset(raw.Provider)
	switch {
	case raw.Provider == "":
		add("provider", "missing; set provider = \"generic\" (any OAuth 2.0 server) or one of the presets: %s", strings.Join(auth.PresetNames(), ", "))
	case !ok:
		add("provider", "unknown provider %q; choose one of: %s", raw.Provider, strings.Join(auth.PresetNames(), ", "))
	}
	conn.Provider = preset

	switch auth.Grant(raw.Grant) {
	case "", auth.GrantAuthorizationCode:
		conn.Grant = auth.GrantAuthorizationCode
	case auth.GrantClientCredentials:
		conn.Grant = auth.GrantClientCredentials
	default:
		add("grant", "unknown grant %q; use \"authorization_code\" (sign in through the browser, the default) or \"client_credentials\" (a service account)", raw.Grant)
	}

	if raw.TokenEnv != "" && !envNameRE().MatchString(raw.TokenEnv) {
		add("token_env", "%q is not an environment variable name; use capitals, digits and _, e.g. PROCORE_ACCESS_TOKEN", raw.TokenEnv)
	}

	if raw.ExportFile != "" && (raw.DPoP || raw.Provider == "atproto") {
		add("export_file", "a DPoP-bound token (dpop = true) works only with proofs of a key that stays in tokentray, so a file of it is useless: remove export_file and call the API through tokentray (the proxy adds the proofs)")
	}
	if raw.ExportFile != "" && !filepath.IsAbs(raw.ExportFile) && !strings.HasPrefix(raw.ExportFile, "~/") {
		add("export_file", "%q must be an absolute path or start with ~/ (it is written by the tray, whose working directory is not yours)", raw.ExportFile)
	}

	if strings.TrimSpace(raw.ClientID) == "" && raw.Provider != "atproto" {
		add("client_id", "missing; copy the Client ID of your app from the provider's developer portal")
	}

	if raw.RefreshAt != nil {
		if r := *raw.RefreshAt; !(r > 0 && r < 1) {
			add("refresh_at", "%v is outside (0, 1); it is the fraction of the token's lifetime after which tokentray refreshes, e.g. 0.8", r)
		}
		conn.RefreshAt = *raw.RefreshAt
	} else {
		conn.RefreshAt = auth.DefaultRefreshAt
	}

	overrides := raw.Overrides()
	for _, f := range overrides.Fields() {
		if *f.URL == "" {
			continue
		}
		if err := auth.ValidateEndpointURL(*f.URL); err != nil {
			add(f.Key, "%v", err)
		}
	}

	if preset != nil {
		if preset.Name == "generic" && raw.Environment != "" {
			add("environment", "the generic provider has no environments; remove environment = %q", raw.Environment)
		} else {
			ep, err := preset.Resolve(raw.Environment, overrides)
			if err != nil {
				add("environment", "%v", err)
			} else {
				switch {
				case auth.NeedsTenant(ep) && raw.Tenant == "":
					add("tenant", "missing; %s URLs name the directory: set tenant = \"<directory (tenant) id or domain>\", or \"organizations\", \"common\" or \"consumers\" for a multi-tenant app", preset.Title)
				case auth.NeedsTenant(ep) && !tenantRE().MatchString(raw.Tenant):
					add("tenant", "%q is not a tenant id or domain (letters, digits, '.', '-')", raw.Tenant)
				case raw.Tenant != "" && !auth.NeedsTenant(ep):
					add("tenant", "the %s provider has no tenant; remove tenant = %q", preset.Name, raw.Tenant)
				}
				conn.Endpoints = auth.WithTenant(ep, raw.Tenant)
				if conn.Environment == "" {
					conn.Environment = preset.DefaultEnvironment
				}
				errs = append(errs, crossEnvironment(preset, conn.Environment, overrides)...)
			}
		}
		if preset.Name == "generic" {
			// With an issuer, its metadata supplies what is not set here:
			// also with auth_url and token_url set, it alone knows the
			// device and revocation endpoints, a PAR requirement and the
			// authentication methods. Those URLs then carry a connection
			// whose issuer does not answer (auth.Keeper.resolved).
			conn.Discover = raw.Issuer != ""
			// A sign-in with a code needs no authorize URL; one through the
			// browser (a redirect_uri) does.
			if !conn.Discover && conn.Grant == auth.GrantAuthorizationCode && raw.AuthURL == "" && (raw.DeviceAuthURL == "" || raw.RedirectURI != "") {
				add("auth_url", "missing; set issuer (the server's URL, to discover its endpoints), auth_url (the authorization endpoint), or device_auth_url for sign-ins with a code only")
			}
			if !conn.Discover && raw.TokenURL == "" {
				add("token_url", "missing; set issuer (the server's URL, to discover its endpoints) or token_url (the token endpoint)")
			}
		}
	}

	if preset != nil && preset.Name == "atproto" {
		errs = append(errs, atprotoConnection(raw, conn)...)
	} else if raw.Handle != "" {
		add("handle", "only the AT Protocol has handles; remove it, or set provider = \"atproto\"")
	}

	if conn.Grant == auth.GrantAuthorizationCode {
		switch {
		case raw.RedirectURI == "" && (conn.Endpoints.DeviceAuthURL != "" || raw.Issuer != ""):
			// Signed in with a code only (`login --device`): no redirect.
			// With an issuer, its metadata names the device endpoint; one
			// that names none says so at the sign-in.
		case raw.RedirectURI == "":
			add("redirect_uri", "missing; register http://localhost:8765/callback (or another port) with the provider and set exactly that here")
		default:
			conn.RedirectURI, errs = redirectURI(raw, preset, errs)
		}
	}
	return conn, errs
}

// redirectURI is raw's redirect URI, parsed, and its problem, if any.
func redirectURI(raw Connection, preset *auth.Preset, errs FieldErrors) (auth.RedirectURI, FieldErrors) {
	ru, err := auth.ParseRedirectURI(raw.RedirectURI)
	switch {
	case err != nil:
		return ru, append(errs, FieldError{"redirect_uri", err.Error()})
	case preset != nil && preset.Name == "procore" && ru.Loopback && !strings.EqualFold(ru.Host, "localhost"):
		return ru, append(errs, FieldError{"redirect_uri", fmt.Sprintf("%q: Procore accepts plain http only for localhost; use http://localhost:%d%s and register exactly that", raw.RedirectURI, ru.Port, ru.Path)})
	}
	return ru, errs
}

// Parameters that OAuth itself sets: an extra parameter must not replace
// them (the state, PKCE, the grant), or tokentray could not keep its word.
var (
	reservedAuthParams  = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"}
	reservedTokenParams = []string{"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id", "client_secret", "scope"}
)

func checkParams(key string, params map[string]string, reserved []string) FieldErrors {
	var errs FieldErrors
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case name == "":
			errs = append(errs, FieldError{key, "a parameter has an empty name"})
		case slices.Contains(reserved, name):
			errs = append(errs, FieldError{key, fmt.Sprintf("%q is set by tokentray itself (OAuth defines it); remove it%s", name, scopeNote(name))})
		}
	}
	return errs
}

// checkHeaders checks the names of extra API headers: HTTP field names,
// and none that the proxy sets itself or must never send.
func checkHeaders(key string, headers map[string]string) FieldErrors {
	var errs FieldErrors
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case name == "" || strings.Trim(name, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
			errs = append(errs, FieldError{key, fmt.Sprintf("%q is not a header name (letters, digits and -, e.g. Procore-Company-Id)", name)})
		case canon == "Authorization" || canon == "Cookie" || canon == "Host" || strings.HasPrefix(canon, "Proxy-") || strings.HasPrefix(canon, "Tokentray-"):
			errs = append(errs, FieldError{key, fmt.Sprintf("%q is set by tokentray itself, or never sent; remove it", name)})
		case strings.ContainsAny(headers[name], "\r\n"):
			errs = append(errs, FieldError{key, fmt.Sprintf("the value of %q has a line break", name)})
		}
	}
	return errs
}

func scopeNote(name string) string {
	if name == "scope" {
		return ", and list the scopes in scopes = [...]"
	}
	return ""
}

// crossEnvironment refuses an override that points at another environment's
// host of the same provider: mixing environments fails at the provider with
// misleading errors ("unknown client", 401 on /me).
func crossEnvironment(p *auth.Preset, env string, o auth.Endpoints) FieldErrors {
	own := hostsOf(p.Environments[env])
	var errs FieldErrors
	others := p.EnvironmentNames()
	sort.Strings(others)
	for _, f := range o.Fields() {
		h := hostOf(*f.URL)
		if h == "" || own[h] {
			continue
		}
		for _, other := range others {
			if other != env && hostsOf(p.Environments[other])[h] {
				errs = append(errs, FieldError{f.Key, fmt.Sprintf("%s belongs to the %s environment but this connection uses environment %q; all URLs must come from one environment: remove the override or change environment", *f.URL, other, env)})
			}
		}
	}
	return errs
}

func hostsOf(e auth.Endpoints) map[string]bool {
	m := map[string]bool{}
	for _, f := range e.Fields() {
		if h := hostOf(*f.URL); h != "" && f.Key != "issuer" {
			m[h] = true
		}
	}
	return m
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// lazyRegexp compiles expr when first used: every process links the config
// package, and the one a script runs most (`tokentray token NAME` with the
// resident process running) never reads a config file.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

var tenantRE = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)

// MaxRequestTimeout is the longest request_timeout: the keeper's default,
// which its HTTP client's bound matches.
const MaxRequestTimeout = auth.DefaultRequestTimeout

// lifetimes reads the connection's durations and its company id into conn.
func lifetimes(raw Connection, conn *auth.Connection) FieldErrors {
	var errs FieldErrors
	read := func(key, value string, dst *time.Duration, least time.Duration, example string) {
		if value == "" {
			return
		}
		d, err := ParseDuration(value)
		switch {
		case err != nil:
			errs = append(errs, FieldError{key, fmt.Sprintf("%q is not a duration; write e.g. %s = %q", value, key, example)})
		case d < least:
			errs = append(errs, FieldError{key, fmt.Sprintf("%s is shorter than %s; write e.g. %s = %q", value, least, key, example)})
		default:
			*dst = d
		}
	}
	read("refresh_token_idle", raw.RefreshTokenIdle, &conn.RefreshTokenRule.Idle, time.Hour, "60d")
	read("refresh_token_lifetime", raw.RefreshTokenLifetime, &conn.RefreshTokenRule.Absolute, time.Hour, "365d")
	read("refresh_token_warning", raw.RefreshTokenWarning, &conn.RefreshTokenWarning, time.Minute, "7d")
	read("access_token_lifetime", raw.AccessTokenLifetime, &conn.AccessLifetime, time.Minute, "2h")
	read("request_timeout", raw.RequestTimeout, &conn.RequestTimeout, time.Second, "10s")
	if conn.RequestTimeout > MaxRequestTimeout {
		errs = append(errs, FieldError{"request_timeout", fmt.Sprintf("%s is longer than %s, the most a token request is given; write e.g. request_timeout = \"10s\"", raw.RequestTimeout, MaxRequestTimeout)})
		conn.RequestTimeout = 0
	}
	if conn.RefreshTokenRule.Known() {
		conn.RefreshTokenRule.About = "refresh_token_idle and refresh_token_lifetime in the config"
	}
	if raw.CompanyID != "" {
		switch {
		case raw.Provider != "procore":
			errs = append(errs, FieldError{"company_id", "only Procore has company ids; for another API, set the header it wants in api_headers"})
		case strings.Trim(raw.CompanyID, "0123456789") != "":
			errs = append(errs, FieldError{"company_id", fmt.Sprintf("%q is not a Procore company id (digits, as in the company's URL in Procore)", raw.CompanyID)})
		default:
			for name := range raw.APIHeaders {
				if http.CanonicalHeaderKey(name) == "Procore-Company-Id" {
					errs = append(errs, FieldError{"company_id", "api_headers sets Procore-Company-Id too; keep one of them"})
				}
			}
			conn.APIHeaders = maps.Clone(conn.APIHeaders)
			if conn.APIHeaders == nil {
				conn.APIHeaders = map[string]string{}
			}
			conn.APIHeaders["Procore-Company-Id"] = raw.CompanyID
		}
	}
	return errs
}

// ParseDuration reads a duration as Go writes them ("36h", "90m") or in
// whole days ("90d"), the unit providers state refresh-token lives in.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// atprotoConnection completes an AT Protocol connection: its handle (or an
// issuer), the loopback client id made of its redirect URI and scopes when
// it names none, and the redirect URI on a loopback address.
func atprotoConnection(raw Connection, conn *auth.Connection) FieldErrors {
	var errs FieldErrors
	add := func(key, format string, a ...any) { errs = append(errs, FieldError{key, fmt.Sprintf(format, a...)}) }
	conn.Handle = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(raw.Handle), "@"))
	switch {
	case conn.Handle == "" && raw.Issuer == "":
		add("handle", "missing; set handle = \"alice.bsky.social\" (the account to sign in; its server is found from it)")
	case conn.Handle != "" && !auth.ValidHandle(conn.Handle):
		add("handle", "%q is not a handle: a domain name such as alice.bsky.social", raw.Handle)
	}
	if conn.Grant != auth.GrantAuthorizationCode {
		add("grant", "the AT Protocol signs people in; remove grant")
	}
	conn.Discover = true
	if len(conn.Scopes) == 0 {
		conn.Scopes = []string{"atproto", "transition:generic"}
	}
	ru, err := auth.ParseRedirectURI(raw.RedirectURI)
	if raw.RedirectURI != "" && err == nil && (!ru.Loopback || strings.EqualFold(ru.Host, "localhost")) {
		add("redirect_uri", "%q: the AT Protocol's native apps use a loopback address, not a host name: http://127.0.0.1:%d%s", raw.RedirectURI, max(ru.Port, 8765), ru.Path)
	}
	if strings.TrimSpace(raw.ClientID) == "" && err == nil && ru.Loopback {
		conn.ClientID = auth.LoopbackClientID(ru.Raw, conn.Scopes)
	}
	return errs
}
