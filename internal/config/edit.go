package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tokentray/tokentray/auth"
)

// The connection editor's side of the config: checking a connection field by
// field as it is typed, and writing it back into the user's file without
// losing what the user wrote there.

// Check validates one connection on its own. It returns the connection when
// it is complete, and otherwise its problems, each with its config key
// ("redirect_uri", "client_id", …) so that a form can show each next to
// its field.
func Check(raw Connection) (*auth.Connection, FieldErrors) {
	conn, errs := build(raw)
	if len(errs) > 0 {
		return nil, errs
	}
	return conn, nil
}

// editorKeys are the keys the editor sets, in the order a new table lists
// them. Every other key of a table (refresh_at, export_file, token_env,
// on_alert, keys of newer versions) is left as the user wrote it.
var editorKeys = []string{"name", "provider", "environment", "tenant", "company_id", "handle", "grant", "client_id", "redirect_uri", "scopes",
	"auth_url", "token_url", "revoke_url", "api_base", "check_url", "issuer"}

func editorValues(c Connection) map[string]string {
	v := map[string]string{
		"name": tomlString(c.Name), "provider": tomlString(c.Provider), "environment": tomlString(c.Environment),
		"grant": tomlString(c.Grant), "client_id": tomlString(c.ClientID), "redirect_uri": tomlString(c.RedirectURI),
		"auth_url": tomlString(c.AuthURL), "token_url": tomlString(c.TokenURL), "revoke_url": tomlString(c.RevokeURL),
		"api_base": tomlString(c.APIBase), "check_url": tomlString(c.CheckURL), "issuer": tomlString(c.Issuer),
		"tenant": tomlString(c.Tenant), "company_id": tomlString(c.CompanyID), "handle": tomlString(c.Handle),
	}
	if len(c.Scopes) > 0 {
		quoted := make([]string, len(c.Scopes))
		for i, s := range c.Scopes {
			quoted[i] = tomlString(s)
		}
		v["scopes"] = "[" + strings.Join(quoted, ", ") + "]"
	}
	for k, val := range v {
		if val == `""` {
			delete(v, k) // an empty field is left out, not written as ""
		}
	}
	return v
}

// SaveConnection writes c into the config file at path. With replacing set
// it rewrites the [[connection]] table of that name in place; otherwise it
// appends a new table. Comments, other tables and keys the editor does not
// manage are kept byte for byte. The new file is validated as a whole
// before it replaces the old one (atomically, keeping its mode), so a save
// never leaves a config that tokentray refuses.
func SaveConnection(path, replacing string, c Connection) error {
	e, err := PrepareSave(path, replacing, c)
	if err != nil {
		return err
	}
	return e.Write()
}

// Edit is a change to the config file, validated and not yet written: the
// tray stops what the change replaces before the file changes under it.
type Edit struct {
	// Config is the file as it will be once written.
	Config *Config
	text   []byte
	mode   fs.FileMode
}

// Write replaces the file atomically, keeping its mode.
func (e *Edit) Write() error { return writeAtomic(e.Config.Path, e.text, e.mode) }

// PrepareSave is SaveConnection without the write.
func PrepareSave(path, replacing string, c Connection) (*Edit, error) {
	old, mode, err := readForEdit(path)
	if err != nil {
		return nil, err
	}
	text, err := withConnection(old, replacing, c)
	if err != nil {
		return nil, err
	}
	// The saved table must come out whole; another table's problems are
	// its own, and stop no save.
	cfg, err := parse(path, []byte(text))
	if err != nil {
		return nil, err
	}
	if b, ok := cfg.BrokenNamed(c.Name); ok {
		return nil, &ValidationError{Path: path, Problems: prefixed(b)}
	}
	if _, ok := cfg.tables[c.Name]; !ok {
		return nil, fmt.Errorf("%s: connection %q did not come out of the saved file", path, c.Name)
	}
	return &Edit{Config: cfg, text: []byte(text), mode: mode}, nil
}

// PrepareRemove returns the edit that takes the [[connection]] table named
// name out of the file, from its header to the next table. Comments above
// the header stay: nothing tells whether they were about it.
func PrepareRemove(path, name string) (*Edit, error) {
	old, mode, err := readForEdit(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(old, "\n")
	span, ok := connectionTables(lines)[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q in %s", ErrNoSuchConnection, name, path)
	}
	from := span[0]
	for from > 0 && strings.TrimSpace(lines[from-1]) == "" {
		from-- // no gap of blank lines where it was
	}
	out := append(slices.Clone(lines[:from]), lines[span[1]:]...)
	text := strings.Join(out, "\n")
	cfg, err := parse(path, []byte(text))
	if err != nil {
		return nil, err
	}
	return &Edit{Config: cfg, text: []byte(text), mode: mode}, nil
}

// readForEdit reads the file and its mode; a missing file reads as a new
// one with a pointer to the docs.
func readForEdit(path string) (string, fs.FileMode, error) {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "# tokentray connections: see the README's Config section.\n", 0o600, nil
	case err != nil:
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	mode := fs.FileMode(0o600)
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
	}
	return string(old), mode, nil
}

var (
	tableStart          = lazyRegexp(`^\s*\[\[\s*connection\s*\]\]\s*(#.*)?$`)
	anyTable            = lazyRegexp(`^\s*\[`)
	keyLine             = lazyRegexp(`^(\s*)([A-Za-z0-9_-]+)\s*=`)
	ErrNoSuchConnection = errors.New("no [[connection]] table has that name")
	ErrNameTaken        = errors.New("a connection of that name exists already")
)

// withConnection returns text with c written into it.
func withConnection(text, replacing string, c Connection) (string, error) {
	lines := strings.Split(text, "\n")
	tables := connectionTables(lines)
	for name := range tables {
		if name == c.Name && name != replacing {
			return "", fmt.Errorf("%w: %q; choose another name", ErrNameTaken, c.Name)
		}
	}
	values := editorValues(c)
	if replacing == "" {
		var b strings.Builder
		b.WriteString(strings.TrimRight(text, "\n"))
		b.WriteString("\n\n[[connection]]\n")
		for _, k := range editorKeys {
			if v, ok := values[k]; ok {
				fmt.Fprintf(&b, "%s = %s\n", k, v)
			}
		}
		return b.String(), nil
	}
	span, ok := tables[replacing]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrNoSuchConnection, replacing)
	}
	var out []string
	out = append(out, lines[:span[0]+1]...) // up to and including the [[connection]] line
	written := map[string]bool{}
	lastKey := len(out) - 1
	for i := span[0] + 1; i < span[1]; i++ {
		line := lines[i]
		m := keyLine().FindStringSubmatch(line)
		if m == nil || !slices.Contains(editorKeys, m[2]) {
			out = append(out, line)
			if m != nil {
				lastKey = len(out) - 1
			}
			continue
		}
		key, indent := m[2], m[1]
		end := i
		if rest := line[len(m[0]):]; strings.Contains(stripComment(rest), "[") && !strings.Contains(stripComment(rest), "]") {
			for end < span[1]-1 && !strings.Contains(stripComment(lines[end]), "]") {
				end++ // a multi-line array
			}
		}
		comment := ""
		if end == i {
			comment = trailingComment(line[len(m[0]):])
		}
		i = end
		v, keep := values[key]
		if !keep || written[key] {
			continue // cleared in the editor (or a duplicate key): the line goes
		}
		written[key] = true
		out = append(out, indent+key+" = "+v+comment)
		lastKey = len(out) - 1
	}
	var missing []string
	for _, k := range editorKeys {
		if v, ok := values[k]; ok && !written[k] {
			missing = append(missing, k+" = "+v)
		}
	}
	out = append(out[:lastKey+1], append(missing, out[lastKey+1:]...)...)
	out = append(out, lines[span[1]:]...)
	return strings.Join(out, "\n"), nil
}

// connectionTables maps each [[connection]] table's name to its line span
// [header, next table or end).
func connectionTables(lines []string) map[string][2]int {
	out := map[string][2]int{}
	for i := 0; i < len(lines); i++ {
		if !tableStart().MatchString(lines[i]) {
			continue
		}
		end := i + 1
		for end < len(lines) && !anyTable().MatchString(lines[end]) {
			end++
		}
		var one struct {
			Name string `toml:"name"`
		}
		if _, err := toml.Decode(strings.Join(lines[i+1:end], "\n"), &one); err == nil && one.Name != "" {
			out[one.Name] = [2]int{i, end}
		}
		i = end - 1
	}
	return out
}

// trailingComment returns " # …" after a one-line value, or "".
func trailingComment(value string) string {
	if i := commentStart(value); i >= 0 {
		return " " + strings.TrimSpace(value[i:])
	}
	return ""
}

func stripComment(s string) string {
	if i := commentStart(s); i >= 0 {
		return s[:i]
	}
	return s
}

// commentStart finds a '#' outside TOML strings.
func commentStart(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return i
		}
	}
	return -1
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func writeAtomic(path string, b []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.toml")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
