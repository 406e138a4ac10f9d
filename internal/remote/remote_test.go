package remote

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
)

func TestTheRemoteCommandLineIsOneWordPerArgument(t *testing.T) {
	r := Remote{Remote: config.Remote{Name: "moby", SSH: "agent@moby", SSHOptions: []string{"Port=2222"}, Command: "/opt/token tray/tokentray"}, ControlDir: "/run/user/1000/tokentray"}
	cmd := r.Command(context.Background(), "login", "it's", "--timeout", "5m0s")
	args := cmd.Args
	if args[0] != "ssh" || args[len(args)-2] != "agent@moby" || args[len(args)-3] != "--" {
		t.Fatalf("ssh args: %q", args)
	}
	if !strings.Contains(strings.Join(args, " "), "-o Port=2222") || !strings.Contains(strings.Join(args, " "), "ControlPath=/run/user/1000/tokentray/%C") {
		t.Fatalf("ssh options: %q", args)
	}
	// What the remote shell makes of it: the words as given.
	line := args[len(args)-1]
	out, err := exec.Command("sh", "-c", `printf '%s\n' `+line).Output()
	if err != nil || string(out) != "/opt/token tray/tokentray\nlogin\nit's\n--timeout\n5m0s\n" {
		t.Fatalf("the remote shell reads %q as %q (%v)", line, out, err)
	}
	long := Remote{Remote: r.Remote, ControlDir: "/tmp/" + strings.Repeat("d", 60)}
	if strings.Contains(strings.Join(long.Command(context.Background()).Args, " "), "ControlPath") {
		t.Fatal("a control socket path too long for a unix socket was used")
	}
}

// A server's sign-in with a code: the tokentray there (`login NAME --device
// --relay`) says the code first and the connection once signed in; the
// code is shown here in between.
func TestASignInWithACodeOnAServerShowsItsCodeHere(t *testing.T) {
	bin := t.TempDir()
	// The fake ssh runs the remote command line's words through sh, as
	// sshd would, with a fake tokentray that answers as a server does.
	ssh := `#!/bin/sh
for last; do :; done
printf '%s\n' "$last" > "$(dirname "$0")/command"
printf '{"user_code":"WDJB-MJHT","verification_uri":"https://github.com/login/device"}\n'
printf '{"name":"gh","state":"connected","usable":true,"grant":"authorization_code","last_refresh_ok":false,"has_refresh_token":true,"endpoints":{},"provider":"github"}\n'
`
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(ssh), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	r := Remote{Remote: config.Remote{Name: "moby", SSH: "agent@moby", Command: "tokentray"}, ControlDir: t.TempDir()}
	var shown apitype.DeviceSignIn
	c, err := r.DeviceLogin(context.Background(), "gh", func(code apitype.DeviceSignIn) { shown = code }, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if shown.UserCode != "WDJB-MJHT" || c.Name != "gh" || c.State != "connected" {
		t.Fatalf("shown %+v, connection %+v", shown, c)
	}
	line, _ := os.ReadFile(filepath.Join(bin, "command"))
	if !strings.Contains(string(line), "login gh --device --relay --timeout 1m0s") {
		t.Fatalf("ran %q there", line)
	}
}
