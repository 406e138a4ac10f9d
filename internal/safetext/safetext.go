// Package safetext makes text from outside safe to show: a provider's
// error answer, whatever a [[remote]] server's tokentray sends. That text is
// data, but a terminal takes an escape sequence in it as an order (set the
// window title, clear the screen, write the clipboard with OSC 52), a line
// break in it forges a line of the event log, and a bidi override makes it
// read as something else. Clean is applied where such text comes in, once,
// so that every surface downstream (the CLI, the log, the tray, a
// notification) shows it as it is. It imports nothing of tokentray.
package safetext

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

const esc = 0x1b

// Clean returns s as one line of plain text: escape sequences (CSI, OSC,
// DCS and the other strings, with whatever they carry) and control
// characters (C0, DEL, C1) are removed, a run of line breaks and tabs is one
// space, bidi embeddings, overrides and isolates are removed, and invalid
// UTF-8 is U+FFFD. Everything else, other scripts included, is kept. The
// result never holds an ESC, so no sequence can form from what is left.
func Clean(s string) string {
	if !needsCleaning(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	spaced := false // the last rune written stands for a line break
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			// One replacement for a run of bad bytes, as strings.ToValidUTF8.
			for i += n; i < len(s); i++ {
				if r, n := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || n != 1 {
					break
				}
			}
			b.WriteRune(utf8.RuneError)
			spaced = false
			continue
		case r == esc:
			i += escapeLen(s[i:])
			continue
		case r == 0x9b: // CSI as one C1 character
			i += n + csiLen(s[i+n:])
			continue
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // DCS, SOS, OSC, PM, APC
			i += n + stringLen(s[i+n:])
			continue
		case lineBreak(r):
			if !spaced {
				b.WriteByte(' ')
				spaced = true
			}
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r):
			// dropped: not text
		default:
			b.WriteRune(r)
			spaced = false
		}
		i += n
	}
	return b.String()
}

// needsCleaning is the fast path: most text (a code, a plain message) has
// nothing to remove, and Clean then returns it without copying.
func needsCleaning(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || r <= 0x9f || bidi(r) || lineBreak(r) {
			return true
		}
		i += n
	}
	return false
}

func lineBreak(r rune) bool {
	return r == '\n' || r == '\r' || r == '\t' || r == '\v' || r == '\f' || r == 0x85 || r == 0x2028 || r == 0x2029
}

// bidi reports the explicit directional formatting characters that can
// make text display in another order than it is read (Trojan Source,
// CVE-2021-42574): LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI.
func bidi(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// escapeLen is the length of the escape sequence that s starts with (s[0]
// is ESC), as ECMA-48 delimits it; a lone ESC is one byte.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch c := s[1]; {
	case c == '[':
		return 2 + csiLen(s[2:])
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		return 2 + stringLen(s[2:])
	case c >= 0x20 && c <= 0x2f: // intermediates, then a final byte (ESC ( B)
		i := 2
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e: // ESC 7, ESC c, ESC M, …
		return 2
	}
	return 1
}

// csiLen is the length of a control sequence's parameters, intermediates
// and final byte. A byte that cannot be in one ends it there: what follows
// is text again (and cleaned as such).
func csiLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x20 && c <= 0x3f:
		case c >= 0x40 && c <= 0x7e:
			return i + 1
		default:
			return i
		}
	}
	return len(s)
}

// stringLen is the length of a control string's content (an OSC's title
// or clipboard data) with its terminator: BEL, ST (ESC \ or U+009C), or CAN
// or SUB, which abort it. Another ESC ends it before that ESC, as it does
// on a terminal; with no end, the string runs to the end of s and all of
// it goes: its content is the payload, not text.
func stringLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0x07, 0x18, 0x1a:
			return i + 1
		case esc:
			if i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			return i
		case 0xc2:
			if i+1 < len(s) && s[i+1] == 0x9c {
				return i + 2
			}
		}
	}
	return len(s)
}

// markup escapes what the markup of notification bodies (a subset of
// HTML) gives a meaning to. The apostrophe stays: without a '<' no tag, and
// so no attribute it could close, can start; and GNOME Shell knows only
// the named entities &amp; &lt; &gt; &quot; &apos;, which not every other
// server does.
var markup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

// Markup returns s for a notification server that renders body markup,
// showing what s says rather than following a link or tag in it.
func Markup(s string) string { return markup.Replace(s) }

// CleanAll cleans, in place, every string that v (a pointer) leads to
// through exported struct fields, pointers, slices, arrays, maps and
// interfaces. It is meant for a wire type just decoded from outside: a
// field added to the type later is cleaned without anyone remembering to.
func CleanAll(v any) {
	cleanValue(reflect.ValueOf(v))
}

func cleanValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			if s := v.String(); needsCleaning(s) {
				v.SetString(Clean(s))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			cleanValue(v.Elem())
		}
	case reflect.Interface:
		if !v.IsNil() && v.CanSet() {
			v.Set(cleanCopy(v.Elem()))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				cleanValue(f)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			cleanValue(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		// Keys too: a map of names is shown by its keys.
		keys := v.MapKeys()
		for _, k := range keys {
			val := v.MapIndex(k)
			v.SetMapIndex(k, reflect.Value{})
			v.SetMapIndex(cleanCopy(k), cleanCopy(val))
		}
	}
}

// cleanCopy is a cleaned copy of v, for values that cannot be set where
// they are (map keys and values, an interface's value).
func cleanCopy(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	cleanValue(c)
	return c
}

// Lines is a writer that passes text from outside on line by line, each
// line cleaned (Clean), for output copied through as it comes, such as a
// server's words over ssh. Close writes a last line that had no end.
type Lines struct {
	w       io.Writer
	pending []byte
}

// NewLines returns a Lines writing to w.
func NewLines(w io.Writer) *Lines { return &Lines{w: w} }

func (l *Lines) Write(p []byte) (int, error) {
	l.pending = append(l.pending, p...)
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			break
		}
		line := Clean(string(l.pending[:i]))
		l.pending = l.pending[i+1:]
		if _, err := io.WriteString(l.w, line+"\n"); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Close writes what is left of the last line.
func (l *Lines) Close() error {
	if len(l.pending) == 0 {
		return nil
	}
	line := Clean(string(l.pending))
	l.pending = nil
	_, err := io.WriteString(l.w, line+"\n")
	return err
}
