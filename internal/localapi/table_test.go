package localapi_test

import (
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/importguard"
)

// The API is a table of handlers over its Backend: it decodes, encodes and
// maps errors to status codes. The operations live in the service, so this
// package reaches none of what they are made of (the keepers' fleet, the
// config, the event hub, the service itself): a second implementation of
// an operation here would need one of them.
func TestTheAPIIsATableOfHandlersOverItsBackend(t *testing.T) {
	importguard.Forbid(t, ".", 5, "an operation belongs to internal/service, the API only calls it",
		"internal/fleet", "internal/config", "internal/events", "internal/service", "internal/humanize")
}
