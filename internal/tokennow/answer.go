package tokennow

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Token is apitype.Token, the answer of GET /v1/connections/NAME/token,
// as this package reads it: apitype stays the definition (the server
// writes it, and a test holds these fields and their JSON names to it),
// but importing it would link its hashing into every `tokentray token`.
type Token struct {
	AccessToken string
	TokenType   string
	ExpiresAt   time.Time
	ExpiresIn   int64
	APIBase     string
	Provider    string
	Warning     string
}

// Error is apitype.Error, the body of every error answer, read the same way.
type Error struct {
	Code     string
	Message  string
	Hint     string
	ExitCode int
	Fields   map[string]string
}

// parseToken reads body as encoding/json reads it into an apitype.Token,
// or says it cannot (ok false). It is not a JSON decoder but the reader of
// the two answers this package asks for, written for a process that starts
// for this one answer: encoding/json and its reflection cost that process
// more than the request. Where the two could differ it gives up (a key
// that matches a field only without regard to case, a string that is not
// valid UTF-8 or holds a lone surrogate, nesting deeper than 64), and so
// does its caller, which leaves the work to the whole CLI; where it gives
// an answer, that is encoding/json's (TestTheSmallReaderAgreesWithEncodingJSON,
// FuzzTheSmallReaderNeverDisagrees).
func parseToken(body []byte) (tok Token, ok bool) {
	r := reader{b: body}
	for key, first := "", true; r.next(&key, &first); {
		switch key {
		case "access_token":
			ok = r.str(&tok.AccessToken)
		case "token_type":
			ok = r.str(&tok.TokenType)
		case "expires_at":
			ok = r.time(&tok.ExpiresAt)
		case "expires_in":
			ok = r.int(&tok.ExpiresIn, 64)
		case "api_base":
			ok = r.str(&tok.APIBase)
		case "provider":
			ok = r.str(&tok.Provider)
		case "warning":
			ok = r.str(&tok.Warning)
		default:
			ok = r.other(key, tokenKeys)
		}
		if !ok {
			return tok, false
		}
	}
	return tok, r.end()
}

// parseError reads body as encoding/json reads it into an apitype.Error.
func parseError(body []byte) (e Error, ok bool) {
	r := reader{b: body}
	for key, first := "", true; r.next(&key, &first); {
		switch key {
		case "error":
			ok = r.str(&e.Code)
		case "message":
			ok = r.str(&e.Message)
		case "hint":
			ok = r.str(&e.Hint)
		case "exit_code":
			var n int64
			if ok = r.int(&n, strconv.IntSize); ok && !r.null {
				e.ExitCode = int(n)
			}
		case "fields":
			ok = r.strings(&e.Fields)
		default:
			ok = r.other(key, errorKeys)
		}
		if !ok {
			return e, false
		}
	}
	return e, r.end()
}

var (
	tokenKeys = []string{"access_token", "token_type", "expires_at", "expires_in", "api_base", "provider", "warning"}
	errorKeys = []string{"error", "message", "hint", "exit_code", "fields"}
)

// reader reads one JSON text from b at i. The strings it reads without
// escapes are b's bytes, not copies (no allocation of their size): b must
// not change while they are used, and no caller changes an answer read.
type reader struct {
	b []byte
	i int
	// null: the value just read was the literal null (which leaves a
	// field as it was, as encoding/json does).
	null bool
	// bad: the text is not what was expected.
	bad bool
}

// maxDepth bounds the nesting of values skipped: beyond it, give up.
const maxDepth = 64

// next moves to the next member of the object at the reader, *first
// telling that it is at the object's opening brace: it sets *key and
// leaves the reader at the member's value, which the caller must read;
// false at the object's end, or where the text is not an object (then
// bad is set).
func (r *reader) next(key *string, first *bool) bool {
	if *first {
		*first = false
		if r.peek() != '{' {
			r.bad = true
			return false
		}
		r.i++
		if r.peek() == '}' {
			r.i++
			return false
		}
	} else {
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return false
		default:
			r.bad = true
			return false
		}
	}
	if r.peek() != '"' {
		r.bad = true
		return false
	}
	k, ok := r.quoted()
	if !ok || r.peek() != ':' {
		r.bad = true
		return false
	}
	r.i++
	r.space()
	*key = k
	return true
}

// end says whether the object read was one and nothing but white space
// follows it.
func (r *reader) end() bool {
	r.space()
	return !r.bad && r.i == len(r.b)
}

// object reads an object to its end, each member's value with value.
func (r *reader) object(value func(key string) bool) bool {
	for key, first := "", true; r.next(&key, &first); {
		if !value(key) {
			return false
		}
	}
	return !r.bad
}

func (r *reader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek is the next byte after white space, or 0 at the end.
func (r *reader) peek() byte {
	r.space()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// str reads a string, or null, into *dst.
func (r *reader) str(dst *string) bool {
	if r.literal("null") {
		return true
	}
	r.null = false
	if r.peek() != '"' {
		return false
	}
	s, ok := r.quoted()
	*dst = s
	return ok
}

// int reads an integer that fits in bits, or null, into *dst: what
// encoding/json takes for an int field (strconv.ParseInt of the number's
// text; a fraction or an exponent is refused).
func (r *reader) int(dst *int64, bits int) bool {
	if r.literal("null") {
		return true
	}
	r.null = false
	start := r.i
	if !r.number() {
		return false
	}
	n, err := strconv.ParseInt(string(r.b[start:r.i]), 10, bits)
	*dst = n
	return err == nil
}

// time reads any value and gives its text to time.Time.UnmarshalJSON, as
// encoding/json does (a string in RFC 3339; null leaves *dst as it was).
func (r *reader) time(dst *time.Time) bool {
	start := r.i
	if !r.skip(0) {
		return false
	}
	return dst.UnmarshalJSON(r.b[start:r.i]) == nil
}

// strings reads an object of strings into the map *dst, made if nil and
// added to otherwise; null sets it to nil.
func (r *reader) strings(dst *map[string]string) bool {
	if r.literal("null") {
		*dst = nil
		return true
	}
	return r.object(func(key string) bool {
		var v string
		if !r.str(&v) {
			return false
		}
		if *dst == nil {
			*dst = map[string]string{}
		}
		(*dst)[key] = v
		return true
	})
}

// other skips the value of a key that is none of known: encoding/json
// ignores it, unless it matches one of them without regard to case (for
// ASCII; any other key is given up on, as Unicode's folding is wider).
func (r *reader) other(key string, known []string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			return false
		}
	}
	for _, k := range known {
		if equalFoldASCII(key, k) {
			return false
		}
	}
	return r.skip(0)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// skip reads any value.
func (r *reader) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch r.peek() {
	case '{':
		return r.object(func(string) bool { return r.skip(depth + 1) })
	case '[':
		r.i++
		if r.peek() == ']' {
			r.i++
			return true
		}
		for {
			if !r.skip(depth + 1) {
				return false
			}
			switch r.peek() {
			case ',':
				r.i++
			case ']':
				r.i++
				return true
			default:
				return false
			}
		}
	case '"':
		_, ok := r.quoted()
		return ok
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	return r.number()
}

// literal reads word if it is next, and says whether it was null.
func (r *reader) literal(word string) bool {
	r.space()
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		return false
	}
	r.i += len(word)
	r.null = word == "null"
	return true
}

// number reads a number as JSON writes it.
func (r *reader) number() bool {
	r.space()
	digits := func() int {
		n := 0
		for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case digits() == 0:
		return false
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if digits() == 0 {
			return false
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// quoted reads a string (at its opening quote) and decodes it.
func (r *reader) quoted() (string, bool) {
	r.i++
	start := r.i
	// Most strings have no escape: they are their bytes.
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			return unsafe.String(unsafe.SliceData(s), len(s)), utf8.Valid(s)
		case c == '\\':
			return r.escaped(start)
		case c < 0x20:
			return "", false
		}
		r.i++
	}
	return "", false
}

// escaped goes on with a string from its first backslash.
func (r *reader) escaped(start int) (string, bool) {
	out := append([]byte(nil), r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return string(out), utf8.Valid(out)
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			return "", false
		}
		e := r.b[r.i+1]
		r.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			c, ok := r.hex4()
			if !ok {
				return "", false
			}
			if 0xd800 <= c && c < 0xdc00 { // a pair's first half: the second must follow
				if r.i+1 >= len(r.b) || r.b[r.i] != '\\' || r.b[r.i+1] != 'u' {
					return "", false
				}
				r.i += 2
				lo, ok := r.hex4()
				if !ok || lo < 0xdc00 || lo >= 0xe000 {
					return "", false
				}
				c = 0x10000 + (c-0xd800)<<10 + (lo - 0xdc00)
			} else if 0xdc00 <= c && c < 0xe000 {
				return "", false
			}
			out = utf8.AppendRune(out, c)
		default:
			return "", false
		}
	}
	return "", false
}

func (r *reader) hex4() (rune, bool) {
	if len(r.b)-r.i < 4 {
		return 0, false
	}
	var c rune
	for _, h := range r.b[r.i : r.i+4] {
		switch {
		case '0' <= h && h <= '9':
			h -= '0'
		case 'a' <= h && h <= 'f':
			h -= 'a' - 10
		case 'A' <= h && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		c = c<<4 | rune(h)
	}
	r.i += 4
	return c, true
}
