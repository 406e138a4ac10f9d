package events

import (
	"fmt"
	"testing"
)

// A reader that stops reading is dropped rather than holding up the
// keepers: publishing never blocks, and the reader's stream ends.
func TestASlowReaderIsDroppedNotWaitedFor(t *testing.T) {
	h := NewHub(nil)
	defer h.Close()
	_, live, cancel := h.subscribe()
	defer cancel()
	for i := range subscriberBuffer + 10 {
		h.Log("", fmt.Sprint("line ", i))
	}
	n := 0
	for range live {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("the slow reader got %d events before its stream was closed, want %d", n, subscriberBuffer)
	}
	// A new reader gets the lines it missed in its snapshot.
	snapshot, _, cancel2 := h.subscribe()
	defer cancel2()
	if got := len(snapshot); got != subscriberBuffer+10+1 {
		t.Fatalf("snapshot of %d events, want every line and ready", got)
	}
}
