// Package tokennow answers the plain `tokentray token NAME` that scripts run
// in loops: one request to the running tokentray and the token printed, in
// a process that links little more than this package. The command
// `tokentray` (cmd/tokentray) is that process; every other command line,
// and this one when no tokentray runs, it hands to tokentray-core, which
// holds the whole CLI, the in-process backend and the resident process.
// Go runs every linked package's initialisation before main, so a small
// program is the only way to keep that call near a hello world's cost:
// this package links no fmt, encoding/json, net/url or client/apitype
// (answer.go reads the answer; its tests hold it to encoding/json and
// apitype), and nothing but the standard library's smallest packages.
package tokennow

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/humanize/duration"
)

// Exit codes of the CLI that this package gives (apitype.ExitOK,
// apitype.ExitFailure; a test holds them to apitype's).
const (
	exitOK      = 0
	exitFailure = 1
)

// Run answers args if they are `token NAME` (no flags) and the tokentray
// listening at socketPath answers as expected: the token on stdout, or the
// API's error answer on stderr with its exit code. Otherwise it is not
// done, prints nothing, and the whole CLI takes over (it says why nothing
// runs, or does the work in-process).
func Run(args []string, stdout, stderr io.Writer, socketPath string) (code int, done bool) {
	if len(args) != 2 || args[0] != "token" || len(args[1]) > 0 && args[1][0] == '-' {
		return 0, false
	}
	buf := make([]byte, 0, bufSize)
	tok, refused, answer, err := fetch(socketPath, args[1], buf)
	switch {
	case err != nil:
		return 0, false
	case refused.Code != "":
		// The API's hint is the next step said for a terminal already.
		PrintError(stderr, refused.Message, refused.Hint)
		if refused.ExitCode != 0 {
			return refused.ExitCode, true
		}
		return exitCodeOf(refused.Code), true
	}
	if w := Warning(args[1], tok.Warning, tok.ExpiresAt, tok.ExpiresIn); w != "" {
		_, _ = io.WriteString(stderr, w+"\n")
	}
	// The line goes out in one write, from the buffer's free end when the
	// token fits there (the answer stays untouched: tok points into it).
	out := append(answer[len(answer):len(answer):cap(answer)], tok.AccessToken...)
	_, _ = stdout.Write(append(out, '\n'))
	return exitOK, true
}

// bufSize is the buffer of one request: the request, the answer (a
// token's is a few hundred bytes) and the line printed. One allocation
// of one size, as every new size costs a short process page faults.
const bufSize = 4096

// Fetch asks the tokentray listening at socketPath for name's access token
// with the server's default margin: one HTTP/1.0 exchange on a fresh
// connection, read to its end, without net/http. It returns the token, or
// the API's error answer (refused), or an error when there was no answer
// of the API: nothing runs (socket.IsNotRunning), or the answer is not one.
func Fetch(socketPath, name string) (tok *Token, refused *Error, err error) {
	t, e, _, err := fetch(socketPath, name, make([]byte, 0, bufSize))
	switch {
	case err != nil:
		return nil, nil, err
	case e.Code != "":
		return nil, &e, nil
	}
	return &t, nil, nil
}

// fetch is Fetch in buf: the request is written there, then the answer
// read (answer is what was read), and the strings of tok and refused
// point into it. refused.Code is set when the API refused.
func fetch(socketPath, name string, buf []byte) (tok Token, refused Error, answer []byte, err error) {
	conn, err := socket.Dial(socketPath, 5*time.Second)
	if err != nil {
		return tok, refused, nil, err
	}
	defer conn.Close()
	req := append(buf[:0], "GET /v1/connections/"...)
	req = appendPathEscape(req, name)
	req = append(req, "/token HTTP/1.0\r\nHost: tokentray\r\n\r\n"...)
	if _, err := conn.Write(req); err != nil {
		return tok, refused, nil, err
	}
	answer, err = readAnswer(conn, req[:0])
	if err != nil {
		return tok, refused, nil, err
	}
	status, body, err := parseHTTP10(answer)
	if err != nil {
		return tok, refused, nil, err
	}
	if status >= 400 {
		e, ok := parseError(body)
		if !ok || e.Code == "" {
			return tok, refused, nil, errors.New("the running tokentray answered HTTP " + strconv.Itoa(status))
		}
		return tok, e, answer, nil
	}
	tok, ok := parseToken(body)
	if !ok || tok.AccessToken == "" {
		return Token{}, refused, nil, errors.New("the running tokentray's answer is not what this version expects")
	}
	return tok, refused, answer, nil
}

// maxAnswer is as much of an answer as is read.
const maxAnswer = 1 << 20

// readAnswer reads r to its end, or to maxAnswer, into b. (r is the
// connection's own interface type: a conversion to io.Reader would look
// up its method table at run time, a page fault in a short process.)
func readAnswer(r io.ReadWriteCloser, b []byte) ([]byte, error) {
	for len(b) < maxAnswer {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), maxAnswer)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// parseHTTP10 splits an HTTP/1.x answer read to its end into its status
// and body: a status line whose first field is HTTP/1.x and second a
// number (fields separated by white space), and a head that ends.
func parseHTTP10(raw []byte) (status int, body []byte, err error) {
	head, body, ok := cut(raw, "\r\n\r\n")
	line, _, _ := cut(head, "\r\n")
	version, rest := field(line)
	code, rest := field(rest)
	if ok && len(version) >= 7 && string(version[:7]) == "HTTP/1." && (len(rest) == 0 || rest[0] < 0x80) {
		if status, err = strconv.Atoi(string(code)); err == nil {
			return status, body, nil
		}
	}
	return 0, nil, errors.New("the running tokentray's answer is not HTTP")
}

// cut is bytes.Cut.
func cut(b []byte, sep string) (before, after []byte, found bool) {
	for i := 0; i+len(sep) <= len(b); i++ {
		if string(b[i:i+len(sep)]) == sep {
			return b[:i], b[i+len(sep):], true
		}
	}
	return b, nil, false
}

// field is the first of strings.Fields(string(line)) and what follows it,
// for ASCII: a byte beyond ASCII (Unicode has more white space) makes it
// none.
func field(line []byte) (f, rest []byte) {
	isSpace := func(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }
	i := 0
	for i < len(line) && isSpace(line[i]) {
		i++
	}
	start := i
	for i < len(line) && !isSpace(line[i]) {
		if line[i] >= 0x80 {
			return nil, nil
		}
		i++
	}
	return line[start:i], line[i:]
}

// appendPathEscape appends url.PathEscape(s): a path segment's bytes,
// %-escaped but for letters, digits and -_.~$&+:=@ (a test holds it to
// net/url's).
func appendPathEscape(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			b = append(b, c)
		case c == '-', c == '_', c == '.', c == '~', c == '$', c == '&', c == '+', c == ':', c == '=', c == '@':
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

// exitCodeOf is apitype.ExitCodeOf, for an error answer without its exit
// code (every one of this version's has it; a test holds the two to each
// other for every error code apitype defines).
func exitCodeOf(code string) int {
	switch code {
	case "not_found", "unknown_connection", "bad_request", "min_valid_unmeetable", "invalid_config", "remote_connection", "token_bound":
		return 2
	case "client_refused", "needs_sign_in":
		return 3
	case "provider_unreachable", "api_unreachable", "store_unreachable":
		return 4
	}
	return exitFailure
}

// Warning is the line for stderr when the token handed out is not a fresh
// one (warning, the token's Warning, says why: the provider could not be
// reached, and it is still valid until expiresAt, in expiresIn seconds),
// or "" when warning is.
func Warning(name, warning string, expiresAt time.Time, expiresIn int64) string {
	if warning == "" {
		return ""
	}
	return "tokentray: warning: " + name + " was not refreshed (" + warning + "); this token expires at " +
		expiresAt.Local().Format("15:04:05") + " (in " + duration.String(time.Duration(expiresIn)*time.Second) + ")"
}

// PrintError is how every command reports its failure on stderr: what went
// wrong, then what to do about it.
func PrintError(w io.Writer, msg, hint string) {
	_, _ = io.WriteString(w, "tokentray: "+msg+"\n")
	if hint != "" {
		_, _ = io.WriteString(w, "hint: "+hint+"\n")
	}
}
