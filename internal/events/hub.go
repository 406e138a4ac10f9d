// Package events is the running tokentray's event stream: the keepers'
// events and the app's own lines, as the local API's wire events
// (client/apitype), with the recent lines kept for windows that open later.
// The service feeds it; the API's GET /v1/events and the tray read it.
package events

import (
	"context"
	"reflect"
	"slices"
	"sync"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/op"
)

// recentLines is how many log lines a stream that opens later is sent.
const recentLines = 500

// subscriberBuffer is how many events a slow reader of the stream may fall
// behind before it is dropped (it connects again and gets a new snapshot);
// a stuck window must never hold up the keepers.
const subscriberBuffer = 256

// Hub turns the keepers' events and the app's own log lines into the API's
// event stream (GET /v1/events), and keeps the recent lines for windows
// that open later. Its owner (the resident process, a demo) tells it which
// keepers there are with SetKeepers, and writes its own lines with Log.
type Hub struct {
	clock auth.Clock

	mu      sync.Mutex
	keepers []*auth.Keeper
	follows map[*auth.Keeper]context.CancelFunc
	// remotes are the connections of [[remote]] servers, as their
	// tokentrays report them, by server, in the config's order.
	remotes     map[string][]apitype.Connection
	remoteOrder []string
	subs        map[chan apitype.Event]struct{}
	recent      []apitype.Event
	closed      bool
}

// NewHub returns a hub that follows no keeper yet.
func NewHub(clock auth.Clock) *Hub {
	if clock == nil {
		clock = auth.SystemClock{}
	}
	return &Hub{clock: clock, follows: map[*auth.Keeper]context.CancelFunc{}, subs: map[chan apitype.Event]struct{}{}}
}

// Keepers are the keepers followed now, in the order given.
func (h *Hub) Keepers() []*auth.Keeper {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.keepers)
}

// SetKeepers follows keepers from now on: new ones are followed, and each
// one no longer in the set is let go with a "removed" event.
func (h *Hub) SetKeepers(keepers []*auth.Keeper) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.keepers = slices.Clone(keepers)
	keep := map[*auth.Keeper]bool{}
	for _, k := range keepers {
		keep[k] = true
		if _, ok := h.follows[k]; !ok {
			h.follows[k] = h.follow(k)
			h.publishLocked(apitype.Event{Type: apitype.EventStatus, Connection: k.Connection().Name, Status: ptr(op.Describe(k))})
		}
	}
	for k, stop := range h.follows {
		if !keep[k] {
			stop()
			delete(h.follows, k)
			h.publishLocked(apitype.Event{Type: apitype.EventRemoved, Connection: k.Connection().Name})
		}
	}
}

// follow forwards k's events until the returned function is called.
func (h *Hub) follow(k *auth.Keeper) context.CancelFunc {
	events, stop := k.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-ctx.Done()
		stop()
	}()
	go func() {
		for e := range events {
			h.mu.Lock()
			if h.follows[k] != nil {
				h.publishLocked(apitype.Event{Time: e.Time, Type: apitype.EventStatus, Connection: e.Connection,
					Kind: string(e.Kind), Text: EventText(e), Status: ptr(op.Describe(k))})
			}
			h.mu.Unlock()
		}
	}()
	return cancel
}

// SetRemote makes conns the connections of remote server (NAME@REMOTE):
// each row that changed is a status event, each one gone a "removed" event.
// A nil conns lets the remote go.
func (h *Hub) SetRemote(remote string, conns []apitype.Connection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.remotes == nil {
		h.remotes = map[string][]apitype.Connection{}
	}
	old, known := h.remotes[remote]
	was := map[string]apitype.Connection{}
	for _, c := range old {
		was[c.Name] = c
	}
	for _, c := range conns {
		if prev, ok := was[c.Name]; !ok || !reflect.DeepEqual(prev, c) {
			h.publishLocked(apitype.Event{Type: apitype.EventStatus, Connection: c.Name, Status: ptr(c)})
		}
		delete(was, c.Name)
	}
	for _, c := range old {
		if _, gone := was[c.Name]; gone {
			h.publishLocked(apitype.Event{Type: apitype.EventRemoved, Connection: c.Name})
		}
	}
	switch {
	case conns == nil:
		delete(h.remotes, remote)
		h.remoteOrder = slices.DeleteFunc(h.remoteOrder, func(r string) bool { return r == remote })
	case !known:
		h.remoteOrder = append(h.remoteOrder, remote)
		fallthrough
	default:
		h.remotes[remote] = slices.Clone(conns)
	}
}

// RemoteConnections are the remote servers' connections now.
func (h *Hub) RemoteConnections() []apitype.Connection {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.remoteConnectionsLocked()
}

func (h *Hub) remoteConnectionsLocked() []apitype.Connection {
	var out []apitype.Connection
	for _, r := range h.remoteOrder {
		out = append(out, h.remotes[r]...)
	}
	return out
}

// RemoteConnection is the remote connection named name (NAME@REMOTE).
func (h *Hub) RemoteConnection(name string) (apitype.Connection, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.remoteConnectionsLocked() {
		if c.Name == name {
			return c, true
		}
	}
	return apitype.Connection{}, false
}

// Log adds a line about connection (or, with "", about the app) to the
// event log: a notification shown, a sign-in started, a config not applied.
func (h *Hub) Log(connection, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishLocked(apitype.Event{Type: apitype.EventLog, Connection: connection, Text: text})
}

// publishLocked sends e to every stream; a stream that cannot keep up is
// closed. Lines for people are kept for later streams.
func (h *Hub) publishLocked(e apitype.Event) {
	if e.Time.IsZero() {
		e.Time = h.clock.Now()
	}
	if e.Text != "" {
		line := apitype.Event{Time: e.Time, Type: apitype.EventLog, Connection: e.Connection, Text: e.Text}
		h.recent = append(h.recent, line)
		if len(h.recent) > recentLines {
			h.recent = slices.Delete(h.recent, 0, len(h.recent)-recentLines)
		}
	}
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns the opening snapshot (every connection's status, the
// recent lines, then "ready") and the live events after it. Nothing falls
// between the two: both are taken under the hub's lock.
func (h *Hub) subscribe() (snapshot []apitype.Event, live chan apitype.Event, cancel func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	for _, k := range h.keepers {
		snapshot = append(snapshot, apitype.Event{Time: now, Type: apitype.EventStatus, Connection: k.Connection().Name, Status: ptr(op.Describe(k))})
	}
	for _, c := range h.remoteConnectionsLocked() {
		snapshot = append(snapshot, apitype.Event{Time: now, Type: apitype.EventStatus, Connection: c.Name, Status: ptr(c)})
	}
	snapshot = append(snapshot, h.recent...)
	snapshot = append(snapshot, apitype.Event{Time: now, Type: apitype.EventReady})
	live = make(chan apitype.Event, subscriberBuffer)
	if h.closed {
		close(live)
		return snapshot, live, func() {}
	}
	h.subs[live] = struct{}{}
	return snapshot, live, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[live]; ok {
			delete(h.subs, live)
			close(live)
		}
	}
}

// Follow calls f with the opening snapshot (every connection's status, the
// recent lines, then "ready") and every event after it, until ctx ends, f
// returns an error, or the hub ends the stream (Close, or f fell too far
// behind: the caller follows again and gets a new snapshot). It returns
// f's error, or nil.
func (h *Hub) Follow(ctx context.Context, f func(apitype.Event) error) error {
	snapshot, live, cancel := h.subscribe()
	defer cancel()
	for _, e := range snapshot {
		if err := f(e); err != nil {
			return err
		}
	}
	for {
		select {
		case e, ok := <-live:
			if !ok {
				return nil
			}
			if err := f(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// Subscribe follows the hub's events from now on, for a reader in this
// process; like a stream, it is closed when the reader falls too far
// behind (or at Close), and the reader subscribes again.
func (h *Hub) Subscribe() (<-chan apitype.Event, func()) {
	_, live, cancel := h.subscribe()
	return live, cancel
}

// Close lets go of every keeper and ends every stream.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for k, stop := range h.follows {
		stop()
		delete(h.follows, k)
	}
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

func ptr[T any](v T) *T { return &v }
