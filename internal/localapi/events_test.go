//go:build unix

package localapi_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
)

// stream follows the fixture's event stream; events arrive on the channel.
func (f *fixture) stream(t *testing.T) (<-chan apitype.Event, <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, done := make(chan apitype.Event, 1000), make(chan error, 1)
	go func() {
		done <- f.client.Events(ctx, func(e apitype.Event) error { events <- e; return nil })
	}()
	return events, done
}

// next returns the next event that match accepts, failing after a minute
// (the machine may be busy; nothing here waits for a time to pass).
func next(t *testing.T, events <-chan apitype.Event, what string, match func(apitype.Event) bool) apitype.Event {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case e := <-events:
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s on the event stream", what)
		}
	}
}

func TestTheEventStreamOpensWithEveryStatusAndTheRecentLinesThenFollows(t *testing.T) {
	f := serve(t, true)
	f.hub.Log("", "tokentray started")
	events, _ := f.stream(t)

	// The snapshot: p's status, the line written before the stream opened, ready.
	var opening []apitype.Event
	for e := range events {
		opening = append(opening, e)
		if e.Type == apitype.EventReady {
			break
		}
	}
	if len(opening) != 3 || opening[0].Type != apitype.EventStatus || opening[0].Status == nil ||
		opening[0].Status.Name != "p" || opening[0].Status.State != apitype.StateConnected || opening[0].Status.APIBase != "https://api.example.com" ||
		opening[1].Type != apitype.EventLog || opening[1].Text != "tokentray started" {
		t.Fatalf("the opening snapshot: %+v", opening)
	}

	// The stream outlives the server's read timeout (300 ms here): it is
	// an answer that lasts, not a request that is slow to arrive.
	time.Sleep(time.Second)
	if err := f.keeper.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := next(t, events, "refreshed event", func(e apitype.Event) bool { return e.Kind == string(auth.EventRefreshed) })
	if e.Connection != "p" || e.Status == nil || !e.Status.Usable || e.Status.LastRefresh.IsZero() || e.Text == "" {
		t.Fatalf("the refreshed event: %+v", e)
	}

	f.hub.SetKeepers(nil)
	next(t, events, "removed event", func(e apitype.Event) bool { return e.Type == apitype.EventRemoved && e.Connection == "p" })
}

func TestTheEventStreamEndsWhenTheServerStops(t *testing.T) {
	f := serve(t, true)
	events, done := f.stream(t)
	next(t, events, "ready", func(e apitype.Event) bool { return e.Type == apitype.EventReady })
	f.stop()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("the stream ended with %v, want io.EOF", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the stream outlived the server")
	}
}
