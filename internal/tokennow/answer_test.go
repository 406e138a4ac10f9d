package tokennow

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
)

// answers are bodies of the API's token and error answers as the server
// writes them (encoding/json, escaping HTML), and ones it never writes.
func answers(t testing.TB) (tokens, errs []string) {
	marshal := func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	at := time.Date(2026, 12, 6, 13, 39, 24, 850937830, time.UTC)
	tokens = []string{
		marshal(apitype.Token{AccessToken: "at-0123456789", TokenType: "bearer", ExpiresAt: at, ExpiresIn: 3599, Provider: "generic"}),
		marshal(apitype.Token{AccessToken: "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("x", 1500), TokenType: "Bearer", ExpiresAt: at, ExpiresIn: 120,
			APIBase: "https://api.procore.com", Provider: "procore"}),
		// The warning path: the server's own words, with what encoding/json escapes.
		marshal(apitype.Token{AccessToken: "at-old", TokenType: "bearer", ExpiresAt: at.Add(-time.Hour), ExpiresIn: 299, Provider: "generic",
			Warning: `refresh failed: Post "http://127.0.0.1:1/token?a=1&b=<2>": dial tcp 127.0.0.1:1: connect: connection refused — ünïcödé 😀` + "\t\n\u2028"}),
		marshal(apitype.Token{AccessToken: "at", ExpiresAt: at.In(time.FixedZone("", 3600))}),
		`{"access_token":"a","access_token":"b","expires_in":-0,"unknown":{"x":[1,2.5e-3,true,false,null,{"y":"z"}]},"expires_at":null}`,
		`{"access_token":"a","access_token":null,"token_type":"\u0062\ud83d\ude00\/\\\"\b\f\n\r\t"}`,
		` {"access_token":"a"} ` + "\r\n\t",
		// Not understood: encoding/json's errors, and what this reader gives up on.
		`{"access_token":"a"`, `{"access_token":"a"}x`, `{"access_token":5}`, `{"expires_in":1.5,"access_token":"a"}`,
		`{"expires_in":1e3,"access_token":"a"}`, `{"expires_in":"5","access_token":"a"}`, `{"expires_in":99999999999999999999,"access_token":"a"}`,
		`{"expires_at":"yesterday","access_token":"a"}`, `{"expires_at":5,"access_token":"a"}`, `{"Access_Token":"a"}`, `{"ACCESS_TOKEN":"a"}`,
		`{"acceſs_token":"a"}`, `{"access_token":"\ud83d"}`, `{"access_token":"a` + "\xff" + `"}`, `{"access_token":"a` + "\n" + `"}`,
		`{"access_token":"\x"}`, `{"access_token":"a",}`, `{,}`, `[]`, `null`, `"a"`, ``, `{"access_token":01}`, `{"a":-}`,
		`{"a":[1,]}`, `{"a":tru}`, `{"access_token":"a"}{}`, `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	}
	errs = []string{
		marshal(apitype.Error{Code: apitype.CodeUnknownConnection, Message: `no connection named "nope"`, Hint: "Configured: p, q", ExitCode: apitype.ExitUsage}),
		marshal(apitype.Error{Code: apitype.CodeInvalidConfig, Message: "e2e: redirect_uri <is> not local", ExitCode: apitype.ExitUsage,
			Fields: map[string]string{"redirect_uri": "use http://localhost:PORT/…", "scopes": ""}}),
		marshal(apitype.Error{Code: apitype.CodeNeedsSignIn, Message: "sign in again"}),
		`{"error":"x","fields":{"a":"1"},"fields":{"b":"2"},"exit_code":3,"exit_code":null}`,
		`{"error":"x","fields":{"a":"1"},"fields":null}`, `{"error":"x","fields":{"a":null}}`,
		`{"error":"x","fields":{"a":1}}`, `{"error":"x","fields":[]}`, `{"error":"x","exit_code":1.0}`, `{"error":"x","Exit_Code":1}`,
		`{"error":"x","exit_code":9223372036854775808}`, `{"error":"x","hint":7}`, `{"message":"no code"}`,
	}
	return tokens, errs
}

// The small reader gives encoding/json's answer or none; every answer the
// server writes, it understands.
func TestTheSmallReaderAgreesWithEncodingJSON(t *testing.T) {
	tokens, errs := answers(t)
	for i, body := range tokens {
		ok := agreeToken(t, []byte(body))
		if i < 7 && !ok {
			t.Errorf("the server's answer %q is not understood", body)
		}
		if i >= 7 && ok {
			t.Errorf("%q is understood, but encoding/json fails or the reader must give up", body)
		}
	}
	for i, body := range errs {
		if ok := agreeError(t, []byte(body)); i < 6 && !ok {
			t.Errorf("the server's error answer %q is not understood", body)
		}
	}
}

func FuzzTheSmallReaderNeverDisagrees(f *testing.F) {
	tokens, errs := answers(f)
	for _, body := range append(tokens, errs...) {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		agreeToken(t, body)
		agreeError(t, body)
	})
}

// agreeToken: where parseToken understands body, encoding/json reads the
// same apitype.Token from it.
func agreeToken(t *testing.T, body []byte) bool {
	t.Helper()
	got, ok := parseToken(body)
	if !ok {
		return false
	}
	var want apitype.Token
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("%q: the reader read %+v, encoding/json fails: %v", body, got, err)
	}
	if !sameFields(got, want) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("%q: the reader read %+v, encoding/json %+v", body, got, want)
	}
	return true
}

func agreeError(t *testing.T, body []byte) bool {
	t.Helper()
	got, ok := parseError(body)
	if !ok {
		return false
	}
	var want apitype.Error
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("%q: the reader read %+v, encoding/json fails: %v", body, got, err)
	}
	if !sameFields(got, want) {
		t.Fatalf("%q: the reader read %+v, encoding/json %+v", body, got, want)
	}
	return true
}

// readPast are apitype's fields that the reader skips on purpose: an error
// answer's hint is its next step said for a terminal already, which is all
// this program prints, so the step itself (next) is not read.
var readPast = map[string]bool{"apitype.Error.Next": true}

// sameFields: a (this package's) and b (apitype's) have the same fields,
// of the same types and values (times compared by their text), but those
// read past.
func sameFields(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.NumField() != vb.NumField()-skipped(vb.Type()) {
		return false
	}
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.FieldByName(va.Type().Field(i).Name)
		if !fb.IsValid() || fa.Type() != fb.Type() {
			return false
		}
		if tm, ok := fa.Interface().(time.Time); ok {
			if tm.String() != fb.Interface().(time.Time).String() {
				return false
			}
		} else if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			return false
		}
	}
	return true
}

// Token and Error are apitype's, field for field, and the reader knows
// every key of theirs: a field added there fails here until it is here.
func TestTheReadersTypesAreApitypes(t *testing.T) {
	for _, c := range []struct {
		ours, theirs reflect.Type
		keys         []string
	}{
		{reflect.TypeFor[Token](), reflect.TypeFor[apitype.Token](), tokenKeys},
		{reflect.TypeFor[Error](), reflect.TypeFor[apitype.Error](), errorKeys},
	} {
		if c.ours.NumField() != c.theirs.NumField()-skipped(c.theirs) {
			t.Errorf("%s has %d fields, %s %d (%d read past)", c.ours, c.ours.NumField(), c.theirs, c.theirs.NumField(), skipped(c.theirs))
		}
		for i := range c.theirs.NumField() - skipped(c.theirs) {
			f := c.theirs.Field(i)
			if readPast[c.theirs.String()+"."+f.Name] {
				t.Fatalf("%s.%s is read past but not the last field", c.theirs, f.Name)
			}
			mine, ok := c.ours.FieldByName(f.Name)
			if !ok || mine.Type != f.Type {
				t.Errorf("%s.%s (%s) is not in %s as it is", c.theirs, f.Name, f.Type, c.ours)
			}
			if key, _, _ := strings.Cut(f.Tag.Get("json"), ","); key != c.keys[i] {
				t.Errorf("%s.%s is %q on the wire; the reader's key %d is %q", c.theirs, f.Name, key, i, c.keys[i])
			}
		}
	}
}

// skipped is how many of typ's fields are read past; they come last.
func skipped(typ reflect.Type) int {
	n := 0
	for i := range typ.NumField() {
		if readPast[typ.String()+"."+typ.Field(i).Name] {
			n++
		}
	}
	return n
}

// exitCodeOf is apitype.ExitCodeOf for every error code apitype defines.
func TestExitCodeOfIsApitypes(t *testing.T) {
	if exitOK != apitype.ExitOK || exitFailure != apitype.ExitFailure {
		t.Fatal("the exit codes differ from apitype's")
	}
	_, here, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(here), "..", "..", "client", "apitype", "apitype.go")
	file, err := parser.ParseFile(token.NewFileSet(), src, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{"", "no_such_code"}
	ast.Inspect(file, func(n ast.Node) bool {
		if spec, ok := n.(*ast.ValueSpec); ok && strings.HasPrefix(spec.Names[0].Name, "Code") && len(spec.Values) == 1 {
			if lit, ok := spec.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				code, _ := strconv.Unquote(lit.Value)
				codes = append(codes, code)
			}
		}
		return true
	})
	if len(codes) < 10 {
		t.Fatalf("found only the codes %q in %s", codes, src)
	}
	for _, code := range codes {
		if got, want := exitCodeOf(code), apitype.ExitCodeOf(code); got != want {
			t.Errorf("exitCodeOf(%q) = %d, apitype's %d", code, got, want)
		}
	}
}

func TestPathEscapeIsNetURLs(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, s := range []string{"", "procore-sandbox", "a b/c?d;e,f", "ünï", string(all)} {
		if got, want := string(appendPathEscape(nil, s)), url.PathEscape(s); got != want {
			t.Errorf("appendPathEscape(%q) = %q, url.PathEscape %q", s, got, want)
		}
	}
}

// parseHTTP10 takes what the first two of strings.Fields took.
func TestParseHTTP10(t *testing.T) {
	for raw, want := range map[string]int{
		"HTTP/1.0 200 OK\r\n\r\n{}":                    200,
		"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n{}":     404,
		"  HTTP/1.0\t\v500  \r\n\r\n":                  500,
		"HTTP/1.0 200\r\n\r\n":                         200,
		"HTTP/1.0 200 Öl\r\n\r\n":                      200,
		"HTTP/1.0 200 OK\r\n":                          0,
		"HTTP/2 200 OK\r\n\r\n":                        0,
		"HTTP/1.0 abc\r\n\r\n{}":                       0,
		"HTTP/1.0\r\n\r\n":                             0,
		"SSH-2.0-OpenSSH_9.2\r\n":                      0,
		"HTTP/1.0\u00a0200 OK\r\n\r\n":                 0,
		"HTTP/1.0 200\u00a0OK\r\n\r\n":                 0, // strings.Fields: 200; given up on (the whole CLI takes over)
		"HTTP/1.0 20\u00850 OK\r\n\r\n":                0,
		"HTTP/1.0 +200 OK\r\n\r\n":                     200,
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n": 200,
	} {
		status, _, err := parseHTTP10([]byte(raw))
		if (err == nil) != (want != 0) || status != want {
			t.Errorf("%q: %d, %v; want %d", raw, status, err, want)
		}
	}
}
