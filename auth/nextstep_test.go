package auth

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// What an older tokentray kept after a failed refresh: the error and its
// advice in words (last_hint), no step. Those words are shown as they are,
// in the status and in the event of the state they leave the keeper in,
// until a new outcome replaces them.
func TestAdviceAnOlderTokentrayKeptInWordsIsShownAsItIs(t *testing.T) {
	r := newRig(t)
	r.signedIn()
	now := r.clock.Now().UTC().Format(time.RFC3339)
	older := `{"v":1,"access_token":"at-initial","token_type":"bearer","refresh_token":"rt-old","obtained_at":"` + now + `","lifetime_seconds":5400,` +
		`"last_error":"refresh failed: HTTP 503 Service Unavailable","last_refresh":"` + now + `",` +
		`"last_hint":"The provider had a server error; tokentray retries with backoff."}`
	ts, err := UnmarshalTokenSet([]byte(older))
	if err != nil {
		t.Fatal(err)
	}
	r.store.put(r.conn.Name, ts)
	k := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	events, stop := k.Subscribe()
	defer stop()
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := k.Status()
	if st.State != StateDegraded || st.Next != nil || st.Hint != "The provider had a server error; tokentray retries with backoff." {
		t.Fatalf("status: %s, next %+v, hint %q; want degraded with the older words as they are", st.State, st.Next, st.Hint)
	}
	if e := <-events; e.Kind != EventState || e.To != StateDegraded || e.Hint != st.Hint || e.Next != nil {
		t.Fatalf("event %+v, want the state with the older words", e)
	}

	// A new failure names its step, and the older words go.
	r.srv.then(replyUnavailable)
	_ = k.Refresh(context.Background())
	st = k.Status()
	if st.Hint != "" || st.Next == nil || st.Next.Kind != nextstep.Wait {
		t.Fatalf("after a new failure: next %+v, hint %q", st.Next, st.Hint)
	}
	if stored := r.store.stored(r.conn.Name); stored.LastHint != "" || stored.LastNext == nil || stored.LastNext.Kind != nextstep.Wait {
		t.Fatalf("stored: hint %q, next %+v", stored.LastHint, stored.LastNext)
	}
}

// The step is kept with the tokens (last_next), so that another process
// and a restart name it too.
func TestTheStepIsKeptWithTheTokens(t *testing.T) {
	r := newRig(t)
	r.signedIn()
	r.srv.then(replyInvalidClient)
	_ = r.k.Refresh(context.Background())
	b, err := MarshalTokenSet(r.store.stored(r.conn.Name))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Next *nextstep.Step `json:"last_next"`
		Hint string         `json:"last_hint"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.Next == nil || raw.Next.Kind != nextstep.FixClient || raw.Hint != "" {
		t.Fatalf("stored %s (%v)", b, err)
	}
	k := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := k.Status(); st.State != StateClientRefused || st.Next == nil || *st.Next != *raw.Next {
		t.Fatalf("after a restart: %s, next %+v, want %+v", st.State, st.Next, raw.Next)
	}
}
