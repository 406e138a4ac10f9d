package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

const goodAndHalfWritten = `[[connection]]
name = "good"
provider = "generic"
client_id = "c"
redirect_uri = "http://localhost:8765/callback"
auth_url = "https://a.example.com/a"
token_url = "https://a.example.com/t"

[[connection]]
name = "half"
provider = "generic"
client_id = "c"
token_url = "https://a.example.com/t"

[[connection]]
name = "good"
provider = "generic"
client_id = "c2"
redirect_uri = "http://localhost:8766/callback"
auth_url = "https://a.example.com/a"
token_url = "https://a.example.com/t"
`

// A table's problems are its own: the file loads with every valid
// connection; the broken ones are listed with their problems by key and
// refused by name; a second table of a name is the broken one.
func TestOneBrokenTableStopsNoOther(t *testing.T) {
	path := filepath.Join(tempdir.New(t), "config.toml")
	if err := os.WriteFile(path, []byte(goodAndHalfWritten), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(cfg.Connections) != 1 || cfg.Connections[0].Name != "good" || cfg.Connections[0].ClientID != "c" {
		t.Fatalf("connections: %+v", cfg.Connections)
	}
	if len(cfg.Broken) != 2 {
		t.Fatalf("broken: %+v", cfg.Broken)
	}
	half, ok := cfg.BrokenNamed("half")
	if !ok || half.Problems.ByKey()["redirect_uri"] == "" || half.Problems.ByKey()["auth_url"] == "" {
		t.Fatalf("half: %+v", half)
	}
	if second := cfg.Broken[1]; second.Name != "" || !strings.Contains(second.Label, "#3") || second.Problems.ByKey()["name"] == "" {
		t.Fatalf("the second table named good: %+v", second)
	}
	var ve *ValidationError
	if _, err := cfg.Lookup("half"); !errors.As(err, &ve) || !strings.Contains(err.Error(), "redirect_uri") {
		t.Fatalf("Lookup(half): %v", err)
	}
	if _, err := cfg.Lookup("good"); err != nil {
		t.Fatalf("Lookup(good): %v", err)
	}
	if _, err := Parse(path, []byte(goodAndHalfWritten)); !errors.As(err, &ve) || !strings.Contains(err.Error(), `connection "half"`) {
		t.Fatalf("Parse, whole: %v", err)
	}
	// Saving the good one is not held up by the broken one; saving a
	// broken table is refused, and writes nothing.
	edit, err := PrepareSave(path, "good", cfg.tables["good"])
	if err != nil {
		t.Fatalf("save good beside a broken table: %v", err)
	}
	if len(edit.Config.Broken) != 2 {
		t.Fatalf("after the save: %+v", edit.Config.Broken)
	}
	if _, err := PrepareSave(path, "", Connection{Name: "new", Provider: "generic", ClientID: "c"}); !errors.As(err, &ve) || !strings.Contains(err.Error(), "redirect_uri") {
		t.Fatalf("a broken save: %v", err)
	}
}

// What every connection depends on still stops the start.
func TestATopLevelProblemStopsTheStart(t *testing.T) {
	path := filepath.Join(tempdir.New(t), "config.toml")
	for _, text := range []string{"store = \"redis\"\n" + goodAndHalfWritten, "[[connection]\nname = \"x\"\n"} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil {
			t.Fatalf("%q loaded", text)
		}
	}
}

// A connection that signs in with a code only may name just its issuer:
// the device endpoint comes from the issuer's metadata at the sign-in.
func TestACodeOnlyConnectionMayNameJustItsIssuer(t *testing.T) {
	cfg, err := Parse("config.toml", []byte("[[connection]]\nname = \"dev\"\nprovider = \"generic\"\nclient_id = \"c\"\nissuer = \"https://idp.example.com\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Connections[0]; !c.Discover || c.RedirectURI.Raw != "" {
		t.Fatalf("%+v", c)
	}
}
