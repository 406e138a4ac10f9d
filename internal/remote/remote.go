// Package remote reaches the tokentray of another machine (a [[remote]]
// table: a server whose tokentray keeps the agents' connections) through
// the system's OpenSSH client, with the user's own ~/.ssh/config, keys,
// agent and known_hosts: nothing of SSH is re-implemented here. Calls share
// one control connection (ControlMaster), so that a second call costs no
// new handshake.
package remote

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/safetext"
)

// Remote is a [[remote]] with where its control connections live.
type Remote struct {
	config.Remote
	// ControlDir holds the control sockets (private to the user: the
	// socket directory of the local API).
	ControlDir string
}

// Command is ssh running the remote tokentray with args. The remote
// command line is quoted for the remote shell.
func (r Remote) Command(ctx context.Context, args ...string) *exec.Cmd {
	return r.command(ctx, nil, args...)
}

// command is Command with defaults of its own for ssh options: ssh takes
// the first value it is given for an option, so the [[remote]]'s own
// ssh_options come first and win.
func (r Remote) command(ctx context.Context, defaults []string, args ...string) *exec.Cmd {
	var sshArgs []string
	for _, o := range append(append(slices.Clone(r.SSHOptions), defaults...), alive...) {
		sshArgs = append(sshArgs, "-o", o)
	}
	// %C is 40 characters, and ssh adds 17 while it sets the socket up: a
	// socket path must fit in 104 bytes (macOS; 108 on Linux). Without
	// room, each call makes its own connection; so it does where the
	// directory is not the user's private one: ssh would otherwise send
	// the call through a control socket that another user planted there
	// (the local API refuses to start, or to be asked, there too, and says
	// why).
	if r.ControlDir != "" && len(r.ControlDir)+1+40+17 < 104 && socket.PrivateDir(r.ControlDir) == nil {
		sshArgs = append(sshArgs,
			"-o", "ControlMaster=auto",
			"-o", "ControlPath="+filepath.Join(r.ControlDir, "%C"),
			"-o", "ControlPersist=60")
	}
	words := []string{shellQuote(r.Remote.Command)}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	sshArgs = append(sshArgs, "--", r.SSH, strings.Join(words, " "))
	return exec.CommandContext(ctx, "ssh", sshArgs...)
}

// alive notices a dead connection within 45 s, not at the next TCP
// timeout, whichever call set up the control connection that the others
// share (a background one would otherwise keep none).
var alive = []string{"ServerAliveInterval=15", "ServerAliveCountMax=3"}

// shellQuote makes s one word of a POSIX shell command line.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=@:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Error is a remote tokentray's failure: what it said on stderr, and its
// exit code, which has the same meaning as here. Exit code 255 is ssh's
// own: the machine could not be reached or refused the login.
type Error struct {
	Remote   string
	ExitCode int
	Stderr   string
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if e.ExitCode == 255 {
		return fmt.Sprintf("%s cannot be reached over ssh: %s", e.Remote, msg)
	}
	return fmt.Sprintf("on %s: %s", e.Remote, strings.TrimPrefix(msg, "tokentray: "))
}

// errorOf is the error of a remote command that failed with err.
func (r Remote) errorOf(err error, stderr string) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return &Error{Remote: r.Name, ExitCode: exit.ExitCode(), Stderr: safetext.Clean(stderr)}
	}
	return fmt.Errorf("run ssh for %s: %w", r.Name, err)
}

// Login signs connection name of the remote in with this machine's
// browser: the remote tokentray prepares the sign-in and keeps its PKCE
// verifier and state; the browser's callback is caught here, on the
// registered loopback redirect URI, and its address relayed over the same
// ssh connection; the remote checks the state and exchanges the code. No
// token, verifier or secret reaches this machine. show is told the URL
// before the browser opens.
func (r Remote) Login(ctx context.Context, name string, open func(string) error, show func(string), timeout time.Duration) (*apitype.Connection, error) {
	cmd := r.Command(ctx, "login", name, "--relay", "--timeout", timeout.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run ssh for %s: %w", r.Name, err)
	}
	lines := bufio.NewReader(stdout)
	fail := func(what string) error {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			return r.errorOf(err, stderr.String())
		}
		return fmt.Errorf("%s: the tokentray there %s", r.Name, what)
	}
	var started apitype.PasteSignIn
	if err := readJSON(lines, &started); err != nil {
		return nil, fail("did not start the sign-in (" + err.Error() + "); is it a tokentray of this version?")
	}
	safetext.CleanAll(&started)
	ru, err := auth.ParseRedirectURI(started.RedirectURI)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	if show != nil {
		show(started.AuthorizeURL)
	}
	var out apitype.Connection
	relay := &auth.Relay{Name: name + "@" + r.Name, RedirectURI: ru, AuthorizeURL: started.AuthorizeURL, OpenBrowser: open, Timeout: timeout,
		Forward: func(_ context.Context, callback string) error {
			if _, err := io.WriteString(stdin, callback+"\n"); err != nil {
				return fail("stopped before the address could be passed on")
			}
			if err := readJSON(lines, &out); err != nil {
				return fail("did not complete the sign-in")
			}
			safetext.CleanAll(&out)
			return nil
		}}
	if err := relay.Run(ctx); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		return nil, r.errorOf(err, stderr.String())
	}
	return &out, nil
}

// DeviceLogin signs connection name of the remote in with a code (RFC
// 8628): the tokentray there asks for it and keeps the tokens; show is
// told the code and URL, for a person to enter on any device.
func (r Remote) DeviceLogin(ctx context.Context, name string, show func(apitype.DeviceSignIn), timeout time.Duration) (*apitype.Connection, error) {
	args := []string{"login", name, "--device", "--relay"}
	if timeout > 0 {
		args = append(args, "--timeout", timeout.String())
	}
	cmd := r.Command(ctx, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run ssh for %s: %w", r.Name, err)
	}
	lines := bufio.NewReader(stdout)
	var code apitype.DeviceSignIn
	var out apitype.Connection
	if err := readJSON(lines, &code); err == nil && code.UserCode != "" {
		safetext.CleanAll(&code)
		if show != nil {
			show(code)
		}
		if err := readJSON(lines, &out); err == nil {
			if err := cmd.Wait(); err != nil {
				return nil, r.errorOf(err, stderr.String())
			}
			safetext.CleanAll(&out)
			return &out, nil
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, r.errorOf(err, stderr.String())
	}
	return nil, fmt.Errorf("%s: the tokentray there did not complete the sign-in with a code; is it a tokentray of this version?", r.Name)
}

// readJSON reads one line of JSON into v.
func readJSON(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if len(bytes.TrimSpace(line)) == 0 {
		if err == nil {
			err = errors.New("an empty line")
		}
		return err
	}
	return json.Unmarshal(line, v)
}

// Connections are the remote tokentray's connections, named NAME@REMOTE.
func (r Remote) Connections(ctx context.Context, timeout time.Duration) ([]apitype.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := r.Command(ctx, "status", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var conns []apitype.Connection
	if jerr := json.Unmarshal(out, &conns); jerr != nil {
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s did not answer within %s", r.Name, timeout)
			}
			return nil, r.errorOf(err, stderr.String())
		}
		return nil, fmt.Errorf("%s: the tokentray there answered no status (%v); is it a tokentray of this version?", r.Name, jerr)
	}
	// A status with connections it could not read exits 1 after the list:
	// the list is the answer, each row with its error.
	if err := r.admitConnections(conns); err != nil {
		return nil, err
	}
	for i := range conns {
		conns[i].Name += "@" + r.Name
		conns[i].Remote = r.Name
	}
	return conns, nil
}

// Refresh asks the remote tokentray to refresh connection name now.
func (r Remote) Refresh(ctx context.Context, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := r.Command(ctx, "refresh", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s did not answer within %s", r.Name, timeout)
		}
		return r.errorOf(err, stderr.String())
	}
	return nil
}
