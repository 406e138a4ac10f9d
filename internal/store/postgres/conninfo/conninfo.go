// Package conninfo reads PostgreSQL connection strings as libpq takes
// them, without a driver: the config checks store_url with it, and so does
// the store before it connects.
package conninfo

import (
	"errors"
	"net/url"
	"strings"
	"unicode"
)

// RefusePassword refuses a connection string (store_url) that holds a
// password: in a config file it would sit in the clear. libpq's other ways
// carry it. The error never quotes the string.
func RefusePassword(conn string) error {
	refused := errors.New("store_url holds a password: tokentray keeps none in its config; remove it and give it in ~/.pgpass or the file PGPASSFILE names (0600), or in the PGPASSWORD environment of the service (a systemd credential), as libpq users do")
	var has bool
	if IsURL(conn) {
		var err error
		if has, err = urlHasPassword(conn); err != nil {
			return err
		}
	} else {
		kv, err := ParseKeywordValue(conn)
		if err != nil {
			return err
		}
		_, has = kv["password"]
	}
	if has {
		return refused
	}
	return nil
}

// IsURL reports whether conn is a URL (postgres:// or postgresql://)
// rather than key=value pairs.
func IsURL(conn string) bool {
	return strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://")
}

// urlHasPassword reports whether a postgres:// URL carries a password, in
// its user info or as a password= parameter. It reads the URL as libpq
// does, several hosts included, which net/url does not take.
func urlHasPassword(conn string) (bool, error) {
	_, rest, _ := strings.Cut(conn, "://")
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, _ := strings.Cut(rest, "?")
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 && strings.Contains(authority[:i], ":") {
		return true, nil
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return false, errors.New("store_url's parameters (after ?) are not key=value&key=value")
	}
	return params.Has("password"), nil
}

// ParseKeywordValue reads a libpq key=value connection string: pairs
// separated by white space, a value either bare or in single quotes, with
// backslash escaping the next character in both. Errors never quote the
// string, which may hold a password.
func ParseKeywordValue(conn string) (map[string]string, error) {
	out := map[string]string{}
	s := strings.TrimLeftFunc(conn, unicode.IsSpace)
	if s == "" {
		return nil, errors.New("store_url is empty: give a postgres:// URL or key=value pairs (host=… dbname=… user=…)")
	}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("store_url is neither a postgres:// URL nor key=value pairs (host=… dbname=… user=…)")
		}
		key := strings.TrimRightFunc(s[:eq], unicode.IsSpace)
		if strings.ContainsFunc(key, unicode.IsSpace) {
			return nil, errors.New("store_url: a key=value pair has no value, or a key has a space in it")
		}
		s = strings.TrimLeftFunc(s[eq+1:], unicode.IsSpace)
		var value strings.Builder
		quoted := strings.HasPrefix(s, "'")
		if quoted {
			s = s[1:]
		}
		closed := false
		for len(s) > 0 {
			c := s[0]
			switch {
			case c == '\\' && len(s) > 1:
				value.WriteByte(s[1])
				s = s[2:]
				continue
			case quoted && c == '\'':
				s, closed = s[1:], true
			case !quoted && unicode.IsSpace(rune(c)):
				closed = true
			default:
				value.WriteByte(c)
				s = s[1:]
				continue
			}
			break
		}
		if quoted && !closed {
			return nil, errors.New("store_url: a quoted value has no closing quote")
		}
		out[key] = value.String()
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	return out, nil
}
