//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
)

// readmeExamples are the README's agent examples, each as written there
// after its "<!-- example: NAME -->" line, for the harness's connection:
// e2e, its API path (oidc-provider's userinfo, /me) and its port.
func readmeExamples(t *testing.T, root string, port int) map[string]string {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)<!-- example: (\\S+) -->\n```\\w*\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		code := strings.NewReplacer("/connections/procore/", "/connections/e2e/", `"procore"]`, `"e2e"]`,
			"rest/v1.0/me", "me", "127.0.0.1:8799", fmt.Sprintf("127.0.0.1:%d", port)).Replace(m[2])
		out[m[1]] = code
	}
	for _, name := range []string{"agent.py", "agent_port.py", "agent.mjs"} {
		if out[name] == "" {
			t.Fatalf("the README has no example %s", name)
		}
	}
	return out
}

// agent runs one of the README's examples as an agent would: Debian's
// Python, or Node with the e2e package's undici; its output.
type agentRun struct {
	name string
	out  chan string
}

func (h *harness) startAgent(t *testing.T, root, name, code string) agentRun {
	var cmd *exec.Cmd
	switch {
	case strings.HasSuffix(name, ".py"):
		path := filepath.Join(h.dir, name)
		if err := os.WriteFile(path, []byte(code), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command("/usr/bin/python3", path)
	default:
		// Beside the e2e package's node_modules, where undici is.
		f, err := os.CreateTemp(filepath.Join(root, "internal", "e2e", "node"), ".agent-*.mjs")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(code)
		f.Close()
		t.Cleanup(func() { os.Remove(f.Name()) })
		cmd = exec.Command("node", f.Name())
	}
	// tokentray on PATH, as an installed one is.
	cmd.Env = append(append([]string{}, h.env...), "PATH="+h.dir+":"+os.Getenv("PATH"), "LANG=C.UTF-8")
	run := agentRun{name: name, out: make(chan string, 1)}
	go func() {
		out, err := cmd.CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nexit: "+err.Error())...)
		}
		run.out <- string(out)
	}()
	return run
}

// wait is the agent's output; it must have got the API's answer.
func (a agentRun) wait(t *testing.T, token string) {
	t.Helper()
	select {
	case out := <-a.out:
		if !strings.Contains(out, "sub") || strings.Contains(out, "exit:") {
			t.Fatalf("%s: %s", a.name, out)
		}
		if token != "" && strings.Contains(out, token) {
			t.Fatalf("%s printed the access token", a.name)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not finish", a.name)
	}
}

// squatter is a TLS server with a certificate of its own (httptest's,
// self-signed, for 127.0.0.1) on a port that is not tokentray's: a process
// that took an agent's proxy_port first. keys are the proxy keys its
// handler received, requests how many requests reached it.
type squatter struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	keys     []string
}

func startSquatter(t *testing.T) *squatter {
	s := &squatter{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.requests++
		s.keys = append(s.keys, r.Header.Get("Tokentray-Proxy-Key"))
		s.mu.Unlock()
		fmt.Fprint(w, `{"sub": "the squatter's answer"}`)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// Agents in Python (requests over the socket; httpx against the loopback
// port) and Node (undici's fetch over the socket), run as the README
// shows them, call oidc-provider's userinfo through the tray without any
// OAuth code: signed in; after a token rotation; and across a revoked
// grant, waiting until the notification's Re-authenticate has signed in.
// No token in what they print. The port's agent, pointed at a port that
// another process holds, fails its TLS handshake and hands it no key.
func TestAgentsInPythonAndNodeCallTheAPIThroughTokentray(t *testing.T) {
	h := setup(t)
	root, _ := filepath.Abs("../..")
	notifier, err := dbustest.StartNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer notifier.Close()
	display := startXvfb(t)
	port := freePort(t)
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	cfg, _ := os.ReadFile(cfgPath)
	_ = os.WriteFile(cfgPath, append(cfg, []byte(fmt.Sprintf("api_base = \"http://127.0.0.1:%d\"\nproxy_port = %d\n", h.port, port))...), 0o600)
	examples := readmeExamples(t, root, port)
	runAll := func() []agentRun {
		var runs []agentRun
		for _, name := range []string{"agent.py", "agent_port.py", "agent.mjs"} {
			runs = append(runs, h.startAgent(t, root, name, examples[name]))
		}
		return runs
	}

	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	_, item := h.startTray(t, display)
	waitColourOr(t, item, "green", h.statusText)
	seen := []string{keyringItem(t, "e2e")["access_token"].(string)}
	for _, a := range runAll() {
		a.wait(t, seen[0])
	}
	sq := startSquatter(t)
	squatted := readmeExamples(t, root, sq.Listener.Addr().(*net.TCPAddr).Port)["agent_port.py"]
	select {
	case out := <-h.startAgent(t, root, "agent_port_squatted.py", squatted).out:
		if !strings.Contains(out, "CERTIFICATE_VERIFY_FAILED") || !strings.Contains(out, "exit:") || strings.Contains(out, "squatter's answer") {
			t.Fatalf("agent_port.py against a squatted port: %s", out)
		}
	case <-time.After(time.Minute):
		t.Fatal("agent_port.py against a squatted port did not finish")
	}
	sq.Close() // waits for its connections: all it got is in sq
	sq.mu.Lock()
	if sq.requests != 0 || len(sq.keys) != 0 {
		t.Fatalf("the squatter received %d requests, with the keys %q", sq.requests, sq.keys)
	}
	sq.mu.Unlock()
	oldRT := keyringItem(t, "e2e")["refresh_token"].(string)

	// A rotation: the tray refreshes on its own; the agents go on.
	waitDue(obtained(t, "e2e"))
	for deadline := time.Now().Add(2 * lifetime); keyringItem(t, "e2e")["refresh_token"] == oldRT; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the tray did not refresh")
		}
	}
	seen = append(seen, keyringItem(t, "e2e")["access_token"].(string))
	for _, a := range runAll() {
		a.wait(t, seen[len(seen)-1])
	}

	// The grant is revoked (a used refresh token replayed); the tray turns red.
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {oldRT}, "client_id": {"tokentray-e2e"}, "client_secret": {clientSecret}}
	resp, err := http.PostForm(fmt.Sprintf("http://127.0.0.1:%d/token", h.port), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	click(t, item, findMenu(t, item, "e2e — "), "Refresh now")
	waitColour(t, item, "red")
	n, err := notifier.Next(30 * time.Second)
	if err != nil || n.Actions["act"] != "Re-authenticate" {
		t.Fatalf("notification %+v %v", n, err)
	}
	// The agents start now and wait for the sign-in.
	runs := runAll()
	sock := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "tokentray", "api.sock")
	for deadline := time.Now().Add(60 * time.Second); waitingRequests(t, sock) != len(runs); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d agents wait, want %d", waitingRequests(t, sock), len(runs))
		}
	}
	if err := notifier.Invoke(n.ID, "act"); err != nil {
		t.Fatal(err)
	}
	waitColour(t, item, "green")
	seen = append(seen, keyringItem(t, "e2e")["access_token"].(string))
	for _, a := range runs {
		a.wait(t, seen[len(seen)-1])
	}
	// Nor in the tray's log.
	log, _ := os.ReadFile(filepath.Join(h.dir, "tray.log"))
	for _, tok := range seen {
		if strings.Contains(string(log), tok) {
			t.Fatal("an access token is in the tray's log")
		}
	}
}
