// Package autostart registers tokentray to start when the user logs in: an
// XDG autostart .desktop file on Linux and the BSDs, a LaunchAgent on macOS,
// the Run key on Windows. The formats are built here, platform-neutral, so
// that every one of them is tested on any machine.
package autostart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Entry is tokentray's registration. Zero Dir means the platform's place.
type Entry struct {
	// ID is a reverse-DNS id (LaunchAgent label, .desktop file name).
	ID string
	// Name is shown to people.
	Name string
	// Args is the command line: the executable and its arguments.
	Args []string
	// Dir overrides where the file is written (tests).
	Dir string
}

// ForThisExecutable returns the entry that starts the running binary, or an
// error when that binary is a temporary one (go run) that will not exist at
// the next login.
func ForThisExecutable(id, name string, args ...string) (*Entry, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the tokentray executable: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	if strings.HasPrefix(exe, os.TempDir()) || strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return nil, errors.New("this tokentray runs from a temporary build (go run); build it first (bash .ci/app puts one in bin/) and start that one")
	}
	return &Entry{ID: id, Name: name, Args: append([]string{exe}, args...)}, nil
}

// DesktopEntry is the XDG autostart file. Version 1.0: older validators
// refuse newer versions, and nothing here needs them.
func DesktopEntry(name, comment string, args []string) []byte {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = desktopQuote(a)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "[Desktop Entry]\nType=Application\nVersion=1.0\nName=%s\nComment=%s\nExec=%s\nTerminal=false\nX-GNOME-Autostart-enabled=true\n",
		name, comment, strings.Join(quoted, " "))
	return b.Bytes()
}

// desktopQuote quotes an Exec argument: inside double quotes, `"`, "`",
// "$" and "\" are escaped with a backslash; "%" is doubled.
func desktopQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`%") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// LaunchAgent is the macOS property list that starts args at login.
func LaunchAgent(label string, args []string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n\t<key>Label</key>\n\t<string>")
	_ = xml.EscapeText(&b, []byte(label))
	b.WriteString("</string>\n\t<key>ProgramArguments</key>\n\t<array>\n")
	for _, a := range args {
		b.WriteString("\t\t<string>")
		_ = xml.EscapeText(&b, []byte(a))
		b.WriteString("</string>\n")
	}
	b.WriteString("\t</array>\n\t<key>RunAtLoad</key>\n\t<true/>\n\t<key>ProcessType</key>\n\t<string>Interactive</string>\n</dict>\n</plist>\n")
	return b.Bytes()
}

// RunValue is the Windows Run key's value: the command line, each argument
// quoted so that Windows' CommandLineToArgvW (the rules every Go and C
// program splits its command line with) gives it back as it was: a
// backslash is literal except before a quote, so the backslashes before a
// quote, and before the closing quote, are doubled.
func RunValue(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quoteArg(a)
	}
	return strings.Join(quoted, " ")
}

func quoteArg(s string) string {
	if s == "" {
		return `""`
	}
	if !strings.ContainsAny(s, " \t\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteByte(s[i])
	}
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}
