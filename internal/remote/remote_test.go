package remote

import (
	"context"
	"os/exec"
	"strings"
	"testing"

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
