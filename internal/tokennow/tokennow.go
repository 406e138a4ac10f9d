// Package tokennow answers the plain `tokentray token NAME` that scripts run
// in loops: one request to the running tokentray and the token printed, in
// a process that links little more than this package. The command
// `tokentray` (cmd/tokentray) is that process; every other command line,
// and this one when no tokentray runs, it hands to tokentray-core, which
// holds the whole CLI, the in-process backend and the resident process.
// Go runs every linked package's initialisation before main, so a small
// program is the only way to keep that call near a hello world's cost.
package tokennow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/humanize"
)

// Run answers args if they are `token NAME` (no flags) and the tokentray
// listening at socketPath answers as expected: the token on stdout, or the
// API's error answer on stderr with its exit code. Otherwise it is not
// done, prints nothing, and the whole CLI takes over (it says why nothing
// runs, or does the work in-process).
func Run(args []string, stdout, stderr io.Writer, socketPath string) (code int, done bool) {
	if len(args) != 2 || args[0] != "token" || strings.HasPrefix(args[1], "-") {
		return 0, false
	}
	tok, refused, err := Fetch(socketPath, args[1])
	switch {
	case err != nil:
		return 0, false
	case refused != nil:
		PrintError(stderr, refused.Message, humanize.Advice(refused.Next, refused.Hint, humanize.Terminal))
		if refused.ExitCode != 0 {
			return refused.ExitCode, true
		}
		return apitype.ExitCodeOf(refused.Code), true
	}
	if w := Warning(args[1], tok); w != "" {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintln(stdout, tok.AccessToken)
	return apitype.ExitOK, true
}

// Fetch asks the tokentray listening at socketPath for name's access token
// with the server's default margin: one HTTP/1.0 exchange on a fresh
// connection, read to its end, without net/http. It returns the token, or
// the API's error answer (refused), or an error when there was no answer
// of the API: nothing runs (socket.IsNotRunning), or the answer is not one.
func Fetch(socketPath, name string) (tok *apitype.Token, refused *apitype.Error, err error) {
	conn, err := socket.Dial(socketPath, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	path := "/v1/connections/" + url.PathEscape(name) + "/token"
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\nHost: tokentray\r\n\r\n"); err != nil {
		return nil, nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	status, body, err := parseHTTP10(raw)
	if err != nil {
		return nil, nil, err
	}
	if status >= 400 {
		var e apitype.Error
		if json.Unmarshal(body, &e) != nil || e.Code == "" {
			return nil, nil, fmt.Errorf("the running tokentray answered HTTP %d", status)
		}
		return nil, &e, nil
	}
	var out apitype.Token
	if err := json.Unmarshal(body, &out); err != nil || out.AccessToken == "" {
		return nil, nil, errors.New("the running tokentray's answer is not what this version expects")
	}
	return &out, nil, nil
}

// parseHTTP10 splits an HTTP/1.x answer read to its end into its status
// and body.
func parseHTTP10(raw []byte) (status int, body []byte, err error) {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	fields := strings.Fields(string(line))
	if ok && len(fields) >= 2 && strings.HasPrefix(fields[0], "HTTP/1.") {
		if status, err = strconv.Atoi(fields[1]); err == nil {
			return status, body, nil
		}
	}
	return 0, nil, errors.New("the running tokentray's answer is not HTTP")
}

// Warning is the line for stderr when the token handed out is not a fresh
// one (the provider could not be reached, and it is still valid), or "".
func Warning(name string, tok *apitype.Token) string {
	if tok.Warning == "" {
		return ""
	}
	return fmt.Sprintf("tokentray: warning: %s was not refreshed (%s); this token expires at %s (in %s)",
		name, tok.Warning, tok.ExpiresAt.Local().Format("15:04:05"), humanize.Duration(time.Duration(tok.ExpiresIn)*time.Second))
}

// PrintError is how every command reports its failure on stderr: what went
// wrong, then what to do about it.
func PrintError(w io.Writer, msg, hint string) {
	fmt.Fprintln(w, "tokentray: "+msg)
	if hint != "" {
		fmt.Fprintln(w, "hint: "+hint)
	}
}
