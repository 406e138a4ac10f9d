package desktop

import (
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/importguard"
)

// The shell is a client of the service: every action of the menu and of a
// notification is a service method, and what the service follows (its
// keepers' alerts, the [[remote]] servers over ssh) reaches it as data. A
// shell that reached for the keepers, the fleet or ssh again would be a
// second implementation of an operation.
func TestTheShellIsAClientOfTheService(t *testing.T) {
	importguard.Forbid(t, ".", 3, "the shell asks the service (internal/service) instead",
		"internal/fleet", "internal/remote", "internal/op", "internal/localapi")
}
