package keyring

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gokeyring "github.com/zalando/go-keyring"
)

// mapBackend is an in-memory keyring that can fail the n-th Set or hang.
type mapBackend struct {
	mu        sync.Mutex
	items     map[string]string
	sets      int
	failSetAt int // 1-based; 0 never
	maxValue  int
	hang      chan struct{}
	gets      int
}

func newMap() *mapBackend { return &mapBackend{items: map[string]string{}} }

func (m *mapBackend) Get(_, user string) (string, error) {
	if m.hang != nil {
		<-m.hang
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	v, ok := m.items[user]
	if !ok {
		return "", gokeyring.ErrNotFound
	}
	return v, nil
}

func (m *mapBackend) Set(_, user, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets++
	if m.failSetAt == m.sets {
		return errors.New("boom")
	}
	if m.maxValue > 0 && len(value) > m.maxValue {
		return gokeyring.ErrSetDataTooBig
	}
	m.items[user] = value
	return nil
}

func (m *mapBackend) Delete(_, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[user]; !ok {
		return gokeyring.ErrNotFound
	}
	delete(m.items, user)
	return nil
}

func TestLargeValuesAreChunkedWithinThePlatformLimit(t *testing.T) {
	b := newMap()
	b.maxValue = 2560 // Windows
	s := &Items{Service: "t", Backend: b, Timeout: time.Second, ChunkSize: 2000}
	ctx := context.Background()
	big := strings.Repeat("é0123456789", 700) // 8400 bytes, multi-byte runes
	if err := s.Set(ctx, "k", big); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "k")
	if err != nil || got != big {
		t.Fatalf("round trip: %v (len %d)", err, len(got))
	}
	if len(b.items) < 5 {
		t.Fatalf("expected a header and several chunks, got %d items", len(b.items))
	}
	// Shrinking to one item removes the old chunks.
	if err := s.Set(ctx, "k", "small"); err != nil {
		t.Fatal(err)
	}
	if len(b.items) != 1 {
		t.Fatalf("old chunks left behind: %d items", len(b.items))
	}
	if err := s.Delete(ctx, "k"); err != nil || len(b.items) != 0 {
		t.Fatalf("delete: %v, %d items left", err, len(b.items))
	}
}

func TestInterruptedChunkedWriteKeepsThePreviousValue(t *testing.T) {
	ctx := context.Background()
	for failAt := 1; failAt <= 6; failAt++ {
		b := newMap()
		s := &Items{Service: "t", Backend: b, Timeout: time.Second, ChunkSize: 10}
		old := strings.Repeat("a", 35)
		if err := s.Set(ctx, "k", old); err != nil {
			t.Fatal(err)
		}
		b.sets, b.failSetAt = 0, failAt
		if err := s.Set(ctx, "k", strings.Repeat("b", 45)); err == nil {
			t.Fatalf("failAt %d: write reported success", failAt)
		}
		got, err := s.Get(ctx, "k")
		if err != nil || got != old {
			t.Fatalf("failAt %d: after a failed write got %q, %v; want the previous value", failAt, got, err)
		}
	}
}

func TestHungKeyringTimesOutWithAHint(t *testing.T) {
	b := newMap()
	b.hang = make(chan struct{})
	defer close(b.hang)
	s := &Items{Service: "t", Backend: b, Timeout: 50 * time.Millisecond}
	_, err := s.Get(context.Background(), "k")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("err = %v", err)
	}
}

func TestNotFound(t *testing.T) {
	s := &Items{Service: "t", Backend: newMap(), Timeout: time.Second}
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if err := s.Delete(context.Background(), "k"); err != nil {
		t.Fatalf("deleting nothing: %v", err)
	}
}

// gatedBackend hangs its first Set until the gate opens, and records the
// order in which writes reach the keyring.
type gatedBackend struct {
	*mapBackend
	gate    chan struct{}
	mu      sync.Mutex
	first   bool
	applied []string
}

func (g *gatedBackend) Set(service, user, value string) error {
	g.mu.Lock()
	hang := !g.first
	g.first = true
	g.mu.Unlock()
	if hang {
		<-g.gate
	}
	g.mu.Lock()
	g.applied = append(g.applied, value)
	g.mu.Unlock()
	return g.mapBackend.Set(service, user, value)
}

// A write that hung and lands late must never land after a write made
// later: the later one would be overwritten with an older token set.
func TestAWriteThatHungNeverLandsAfterALaterOne(t *testing.T) {
	g := &gatedBackend{mapBackend: newMap(), gate: make(chan struct{})}
	s := &Items{Service: "t", Backend: g, Timeout: 50 * time.Millisecond, ChunkSize: 1 << 20}
	ctx := context.Background()
	g.items["k"] = "old"
	if err := s.set(ctx, "k", "A"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the hung write: %v", err)
	}
	if err := s.set(ctx, "k", "B"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write behind the hung one: %v, want a timeout", err)
	}
	close(g.gate) // the keyring wakes up: A lands late
	if err := s.set(ctx, "k", "C"); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	applied := strings.Join(g.applied, ",")
	g.mu.Unlock()
	if applied != "A,C" {
		t.Fatalf("writes reached the keyring as %q, want \"A,C\": in call order, and B (given up before it ran) never", applied)
	}
	if v, _ := s.Get(ctx, "k"); v != "C" {
		t.Fatalf("stored %q, want the last write", v)
	}
}

func TestAFailedLargeWriteNamesItsSize(t *testing.T) {
	b := newMap()
	b.failSetAt = 1
	s := &Items{Service: "t", Backend: b, Timeout: time.Second, ChunkSize: 64 << 20}
	err := s.Set(context.Background(), "k", strings.Repeat("x", 9<<20))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "9437184 bytes") {
		t.Fatalf("err = %v", err)
	}
}

// A save right after a read (every refresh) goes straight to the write: the
// fewer calls between the server's rotation and the saved successor, the
// smaller the window in which a crash loses the refresh token.
func TestASaveAfterAReadWritesWithoutReadingAgain(t *testing.T) {
	b := newMap()
	s := &Items{Service: "t", Backend: b, Timeout: time.Second, ChunkSize: 10}
	ctx := context.Background()
	if err := s.Set(ctx, "k", strings.Repeat("a", 35)); err != nil { // 4 chunks
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.gets = 0
	b.mu.Unlock()
	if err := s.Set(ctx, "k", "short"); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gets != 0 {
		t.Fatalf("the save read the keyring %d times first", b.gets)
	}
	if len(b.items) != 1 || b.items["k"] != "short" {
		t.Fatalf("items after replacing a chunked value: %v; the old chunks must be gone", b.items)
	}
}

func TestACallOnADeadBusRunsOnceMoreOnANewConnection(t *testing.T) {
	if !brokenBus(&net.OpError{Op: "write", Net: "unix", Err: os.NewSyscallError("write", syscall.EPIPE)}) {
		t.Skip("this platform's keyring holds no bus connection")
	}
	drops := 0
	drop := func() { drops++ }

	calls := 0
	err := onLiveBus(func() error {
		calls++
		if calls == 1 {
			return &net.OpError{Op: "write", Net: "unix", Err: os.NewSyscallError("write", syscall.EPIPE)}
		}
		return nil
	}, drop)
	if err != nil || calls != 2 || drops != 1 {
		t.Fatalf("a broken pipe: err %v after %d calls and %d drops; want one drop and one more call", err, calls, drops)
	}

	calls, drops = 0, 0
	refused := errors.New("org.freedesktop.Secret.Error.IsLocked")
	if err := onLiveBus(func() error { calls++; return refused }, drop); err != refused || calls != 1 || drops != 0 {
		t.Fatalf("a refusal by the keyring: err %v after %d calls and %d drops; it must not be retried", err, calls, drops)
	}
}
