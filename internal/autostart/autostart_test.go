package autostart

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestDesktopEntryQuotesTheCommand(t *testing.T) {
	got := string(DesktopEntry("tokentray", "c", []string{"/opt/my apps/tokentray", "--config", `/home/ada/$cfg "x".toml`}))
	want := `Exec="/opt/my apps/tokentray" --config "/home/ada/\$cfg \"x\".toml"`
	if !strings.Contains(got, want+"\n") {
		t.Fatalf("got:\n%s\nwant a line %s", got, want)
	}
}

func TestLaunchAgentIsValidXML(t *testing.T) {
	data := LaunchAgent("io.tokentray.tokentray", []string{"/Applications/tokentray.app/Contents/MacOS/tokentray", "a&b"})
	var v struct {
		Dict struct {
			Strings []string `xml:"array>string"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(data, &v); err != nil {
		t.Fatalf("plist is not XML: %v\n%s", err, data)
	}
	if len(v.Dict.Strings) != 2 || v.Dict.Strings[1] != "a&b" {
		t.Fatalf("ProgramArguments %q", v.Dict.Strings)
	}
	if !strings.Contains(string(data), "<key>RunAtLoad</key>\n\t<true/>") {
		t.Fatal("RunAtLoad missing")
	}
}

func TestRunValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{`C:\Program Files\tokentray\tokentray.exe`}, `"C:\Program Files\tokentray\tokentray.exe"`},
		{[]string{`C:\tokentray\tokentray.exe`, "--minimized"}, `C:\tokentray\tokentray.exe --minimized`},
		// Backslashes before the closing quote are doubled, or it is escaped.
		{[]string{`C:\t.exe`, `C:\My Config\`}, `C:\t.exe "C:\My Config\\"`},
		// A quote is escaped, and so are the backslashes before it.
		{[]string{`C:\t.exe`, `say "hi"`, `back\"slash`}, `C:\t.exe "say \"hi\"" "back\\\"slash"`},
		{[]string{`C:\t.exe`, ""}, `C:\t.exe ""`},
	} {
		if got := RunValue(tc.args); got != tc.want {
			t.Errorf("RunValue(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}
