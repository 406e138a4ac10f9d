package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

const userFile = `# My connections. Keep this comment.
on_alert = "notify-admin"

[[connection]]
# the production one, used by the nightly sync
name = "procore"
provider = "procore"
client_id = "abc" # from the Developer Portal
redirect_uri = "http://localhost:8765/callback"
scopes = [
  "read",
]
export_file = "~/procore_token.json"
future_key = 42

[[connection]]
name = "other"
provider = "generic"
client_id = "x"
redirect_uri = "http://localhost:9000/cb"
auth_url = "http://127.0.0.1:9/auth"
token_url = "http://127.0.0.1:9/token"
`

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(tempdir.New(t), "config.toml")
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEditingAConnectionKeepsEverythingElse(t *testing.T) {
	p := writeTemp(t, userFile)
	c := Connection{Name: "procore", Provider: "procore", Environment: "sandbox", ClientID: "new-id",
		RedirectURI: "http://localhost:8766/callback", Scopes: []string{"read", "write"}}
	if err := SaveConnection(p, "procore", c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, keep := range []string{"# My connections. Keep this comment.", "on_alert = \"notify-admin\"",
		"# the production one, used by the nightly sync", `export_file = "~/procore_token.json"`, "future_key = 42",
		`client_id = "new-id" # from the Developer Portal`, `environment = "sandbox"`, `scopes = ["read", "write"]`,
		`redirect_uri = "http://localhost:8766/callback"`, "name = \"other\"", `token_url = "http://127.0.0.1:9/token"`} {
		if !strings.Contains(got, keep) {
			t.Errorf("the saved file lost or lacks %q:\n%s", keep, got)
		}
	}
	if strings.Contains(got, `"abc"`) || strings.Count(got, "scopes") != 1 {
		t.Errorf("old values remain:\n%s", got)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := cfg.Lookup("procore")
	if conn.Environment != "sandbox" || conn.ClientID != "new-id" || mustResolve(t, cfg, "procore").ExportFile != "~/procore_token.json" {
		t.Fatalf("loaded back: %+v", conn)
	}
	checkMode(t, p, 0o640) // the file's own
}

func TestAddingAConnectionAppendsATable(t *testing.T) {
	p := writeTemp(t, userFile)
	c := Connection{Name: "sandbox", Provider: "procore", Environment: "sandbox", ClientID: "sb",
		RedirectURI: "http://localhost:8767/callback"}
	if err := SaveConnection(p, "", c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(b), userFile[:len(userFile)-1]) {
		t.Fatalf("the existing text changed:\n%s", b)
	}
	cfg, err := Load(p)
	if err != nil || len(cfg.Connections) != 3 {
		t.Fatalf("%v, %d connections", err, len(cfg.Connections))
	}
	if err := SaveConnection(p, "", c); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("adding the same name again: %v", err)
	}
}

func TestASaveThatWouldBreakTheConfigWritesNothing(t *testing.T) {
	p := writeTemp(t, userFile)
	bad := Connection{Name: "procore", Provider: "procore", ClientID: "abc", RedirectURI: "http://192.168.8.124:9876/callback"}
	err := SaveConnection(p, "procore", bad)
	if err == nil || !strings.Contains(err.Error(), "redirect_uri") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != userFile {
		t.Fatal("a refused save changed the file")
	}
}

func TestSavingIntoAMissingFileCreatesIt(t *testing.T) {
	p := filepath.Join(tempdir.New(t), "tokentray", "config.toml")
	c := Connection{Name: "p", Provider: "procore", ClientID: "a\"b\\c", RedirectURI: "http://localhost:8765/callback"}
	if err := SaveConnection(p, "", c); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil || mustResolve(t, cfg, "p").Table.ClientID != "a\"b\\c" {
		t.Fatalf("%v %+v", err, cfg)
	}
	checkMode(t, p, 0o600)
}

func TestCheckNamesTheFieldOfEachProblem(t *testing.T) {
	_, errs := Check(Connection{Name: "p", Provider: "procore", RedirectURI: "http://192.168.8.124:9876/callback",
		TokenURL: "https://login.procore.com/oauth/token", Environment: "sandbox"})
	problems := errs.ByKey()
	for _, key := range []string{"client_id", "redirect_uri", "token_url"} {
		if problems[key] == "" {
			t.Errorf("no message for %s: %v", key, problems)
		}
	}
	if !strings.Contains(problems["redirect_uri"], "localhost") {
		t.Errorf("the redirect message does not say what to use: %q", problems["redirect_uri"])
	}
	if conn, problems := Check(Connection{Name: "p", Provider: "procore", ClientID: "a", RedirectURI: "http://localhost:8765/callback"}); conn == nil || problems != nil {
		t.Fatalf("a complete connection: %v", problems)
	}
}

func TestRemovingAConnectionKeepsEverythingElse(t *testing.T) {
	p := writeTemp(t, userFile)
	e, err := PrepareRemove(p, "procore")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != userFile {
		t.Fatal("PrepareRemove wrote the file; only Write may")
	}
	if len(e.Config.Connections) != 1 || e.Config.Connections[0].Name != "other" {
		t.Fatalf("the file after the removal has %d connections", len(e.Config.Connections))
	}
	if err := e.Write(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, gone := range []string{`name = "procore"`, "future_key", "export_file", "nightly sync"} {
		if strings.Contains(got, gone) {
			t.Errorf("the removed table left %q behind:\n%s", gone, got)
		}
	}
	for _, keep := range []string{"# My connections. Keep this comment.", `on_alert = "notify-admin"`, `name = "other"`, `token_url = "http://127.0.0.1:9/token"`} {
		if !strings.Contains(got, keep) {
			t.Errorf("the removal lost %q:\n%s", keep, got)
		}
	}
	checkMode(t, p, 0o640)
	if _, err := PrepareRemove(p, "procore"); err == nil || !strings.Contains(err.Error(), "procore") {
		t.Errorf("removing a connection that is not there: %v", err)
	}
}

func mustResolve(t *testing.T, cfg *Config, name string) *Resolved {
	t.Helper()
	r, err := cfg.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A problem reads the same in the CLI (a file's ValidationError) and in the
// editor (Check, by key): one FieldError, two presentations.
func TestTheFileAndTheFormWordAProblemAlike(t *testing.T) {
	raw := Connection{Name: "p", Provider: "procore", ClientID: "a", RedirectURI: "http://192.168.8.124:9876/callback"}
	_, errs := Check(raw)
	msg := errs.ByKey()["redirect_uri"]
	if msg == "" || len(errs) != 1 || errs.Error() != "redirect_uri: "+msg {
		t.Fatalf("Check: %v", errs)
	}
	_, err := Parse("config.toml", []byte("[[connection]]\nname = \"p\"\nprovider = \"procore\"\nclient_id = \"a\"\nredirect_uri = \"http://192.168.8.124:9876/callback\"\n"))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0] != `connection "p": redirect_uri: `+msg {
		t.Fatalf("Parse: %v", err)
	}
}

// checkMode fails the test unless the file at path has the permission bits
// want. Windows keeps only a read-only attribute, which Go reports as 0444
// (and its absence as 0666): there, want says only whether the file is
// writable.
func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		if want&0o200 != 0 {
			want = 0o666
		} else {
			want = 0o444
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
	}
}
