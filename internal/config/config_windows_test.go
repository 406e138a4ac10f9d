package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

// On Windows the config lives in %APPDATA%\tokentray\config.toml, and
// --config takes a Windows path (a drive, backslashes, spaces).
func TestTheConfigOnWindows(t *testing.T) {
	appData := filepath.Join(tempdir.New(t), "Ann Lee", "AppData", "Roaming")
	t.Setenv("APPDATA", appData)
	p, err := DefaultPath()
	if err != nil || p != appData+`\tokentray\config.toml` {
		t.Fatalf("DefaultPath() = %s, %v; want it under %%APPDATA%%", p, err)
	}
	if !filepath.IsAbs(p) || filepath.VolumeName(p) == "" {
		t.Fatalf("%s is not a Windows path with a drive", p)
	}

	c := Connection{Name: "p", Provider: "procore", ClientID: "abc", RedirectURI: "http://localhost:8765/callback"}
	if err := SaveConnection(p, "", c); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(p)
	exported := `C:\Users\Ann Lee\procore_token.json`
	text = append(text, "export_file = '"+exported+"'\n"...)
	if err := os.WriteFile(p, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if r := mustResolve(t, cfg, "p"); r.ExportFile != exported {
		t.Fatalf("export_file: %q, want the Windows path %q", r.ExportFile, exported)
	}
}
