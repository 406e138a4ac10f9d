// Items are the keyring's items (go-keyring) with the two things go-keyring
// leaves to its callers: a bound on how long any call may take, and
// secrets larger than the platform accepts.
//
// A locked or hung Secret Service blocks go-keyring forever, so calls run on
// a worker goroutine and the caller stops waiting after Timeout with an error
// that says what to do. The worker runs calls one at a time in the order they
// were made and skips those whose caller has given up: a write that hung can
// still land late, but never after a write made later. Large values are
// split into chunks written under a fresh generation before the header that
// points to them, so a crash mid-write leaves the previous value readable.
// There is never a fallback to a file. On the Secret Service, a call with no
// session bus, or no Secret Service on it, fails at once: go-keyring would
// start daemons (dbus-launch, D-Bus activation) that outlive the process.

package keyring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gokeyring "github.com/zalando/go-keyring"
)

// ErrNotFound means no secret is stored under the key.
var ErrNotFound = errors.New("not in the keyring")

// ErrUnavailable wraps every failure to reach the keyring.
var ErrUnavailable = errors.New("keyring unavailable")

// Backend is the keyring. The real one is go-keyring; tests swap in others.
type Backend interface {
	Get(service, user string) (string, error)
	Set(service, user, value string) error
	Delete(service, user string) error
}

// GoKeyring is the OS keyring through go-keyring. Where that is the Secret
// Service, every call first checks that one is there to answer
// (checkSecretService): go-keyring, finding none, would start daemons.
type GoKeyring struct{}

func (GoKeyring) Get(service, user string) (string, error) {
	var v string
	err := onLiveBus(func() (err error) {
		if err := checkSecretService(); err != nil {
			return err
		}
		v, err = gokeyring.Get(service, user)
		return err
	}, dropSharedBus)
	return v, err
}

func (GoKeyring) Set(service, user, value string) error {
	if len(value) > largeValue {
		// Sent again it would only break the new connection too.
		err := checkSecretService()
		if err == nil {
			err = gokeyring.Set(service, user, value)
		}
		if brokenBus(err) {
			dropSharedBus()
		}
		return err
	}
	return onLiveBus(func() error {
		if err := checkSecretService(); err != nil {
			return err
		}
		return gokeyring.Set(service, user, value)
	}, dropSharedBus)
}

func (GoKeyring) Delete(service, user string) error {
	return onLiveBus(func() error {
		if err := checkSecretService(); err != nil {
			return err
		}
		return gokeyring.Delete(service, user)
	}, dropSharedBus)
}

// onLiveBus runs a keyring call and, when it failed because the session bus
// connection was dead, drops that connection and runs the call once more.
// Each call sets or reads a whole item, so running it twice changes nothing.
func onLiveBus(call func() error, dropBus func()) error {
	err := call()
	if brokenBus(err) {
		dropBus()
		err = call()
	}
	return err
}

// DefaultTimeout bounds one keyring call. An unlock prompt answered by a
// person fits; a hung daemon does not hold the caller for long.
const DefaultTimeout = 10 * time.Second

// DefaultChunkSize returns the largest value stored in one item on this
// platform: Windows' credential manager refuses more than 2560 bytes, macOS'
// `security` fails near 3000; the Secret Service has no fixed limit.
func DefaultChunkSize() int {
	switch runtime.GOOS {
	case "windows", "darwin":
		return 2000
	default:
		return 1 << 20
	}
}

// Items is a bounded, chunking view of one keyring service.
type Items struct {
	Service   string
	Backend   Backend
	Timeout   time.Duration
	ChunkSize int

	start sync.Once
	queue chan *job

	mu    sync.Mutex
	heads map[string]string // the last header value read or written per key
}

// job is one backend call waiting for the worker.
type job struct {
	run       func() (string, error)
	done      chan result
	abandoned atomic.Bool // the caller stopped waiting before it ran
}

// result is a finished call's value; the caller reads it only from done, so
// a call that finishes after its caller gave up writes nothing it reads.
type result struct {
	value string
	err   error
}

// NewItems returns Items on the OS keyring with the platform's defaults.
func NewItems(service string) *Items {
	return &Items{Service: service, Backend: GoKeyring{}, Timeout: DefaultTimeout, ChunkSize: DefaultChunkSize()}
}

// chunkPrefix marks a header item whose chunks live elsewhere. The header is
// "tokentray-chunked:v1:<generation>:<count>".
const chunkPrefix = "tokentray-chunked:v1:"

// Get returns the secret stored under key.
func (s *Items) Get(ctx context.Context, key string) (string, error) {
	head, err := s.get(ctx, key)
	if err != nil {
		return "", err
	}
	s.remember(key, head)
	gen, n, chunked := parseHeader(head)
	if !chunked {
		return head, nil
	}
	var b strings.Builder
	for i := range n {
		part, err := s.get(ctx, chunkKey(key, gen, i))
		if errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("keyring item %q is split into %d parts and part %d is missing: it was changed outside tokentray; sign in again", key, n, i+1)
		}
		if err != nil {
			return "", err
		}
		b.WriteString(part)
	}
	return b.String(), nil
}

// Set stores value under key, split into chunks when it is larger than
// ChunkSize. The previous value stays readable until the new one is complete.
//
// The old header, needed to remove the old chunks, is the one these Items
// last read or wrote when it has one: a refresh reads the tokens just before
// it saves the new ones, and skipping a second read shortens the time in
// which a crash loses a refresh token that the server has already rotated.
// A header changed meanwhile by another process costs at most some orphaned
// chunks, never a secret.
func (s *Items) Set(ctx context.Context, key, value string) error {
	head, known := s.recall(key)
	if !known {
		var err error
		head, err = s.get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	oldGen, oldN, oldChunked := parseHeader(head)
	size := s.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize()
	}
	if len(value) <= size && !strings.HasPrefix(value, chunkPrefix) {
		if err := s.set(ctx, key, value); err != nil {
			return err
		}
		s.remember(key, value)
	} else {
		gen := newGeneration()
		parts := split(value, size)
		for i, p := range parts {
			if err := s.set(ctx, chunkKey(key, gen, i), p); err != nil {
				s.deleteChunks(ctx, key, gen, i)
				return err
			}
		}
		header := chunkPrefix + gen + ":" + strconv.Itoa(len(parts))
		if err := s.set(ctx, key, header); err != nil {
			s.deleteChunks(ctx, key, gen, len(parts))
			return err
		}
		s.remember(key, header)
	}
	if oldChunked {
		s.deleteChunks(ctx, key, oldGen, oldN)
	}
	return nil
}

// Delete removes key and its chunks. A missing key is not an error.
func (s *Items) Delete(ctx context.Context, key string) error {
	head, err := s.get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := s.call(ctx, "delete", key, func() (string, error) { return "", s.Backend.Delete(s.Service, key) }); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.forget(key)
	if gen, n, chunked := parseHeader(head); chunked {
		s.deleteChunks(ctx, key, gen, n)
	}
	return nil
}

// remember keeps what the item holds now, or only its header when chunked:
// secrets themselves are not cached.
func (s *Items) remember(key, value string) {
	if _, _, chunked := parseHeader(value); !chunked {
		value = ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.heads == nil {
		s.heads = map[string]string{}
	}
	s.heads[key] = value
}

func (s *Items) recall(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.heads[key]
	return v, ok
}

func (s *Items) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.heads, key)
}

func (s *Items) get(ctx context.Context, key string) (string, error) {
	return s.call(ctx, "read", key, func() (string, error) { return s.Backend.Get(s.Service, key) })
}

func (s *Items) set(ctx context.Context, key, value string) error {
	_, err := s.call(ctx, "write", key, func() (string, error) { return "", s.Backend.Set(s.Service, key, value) })
	if err != nil && len(value) > largeValue {
		return fmt.Errorf("%w (the value is %d bytes; a D-Bus message is limited, 32 MiB by default: keep ChunkSize at its default or lower)", err, len(value))
	}
	return err
}

// largeValue is the size above which a failed write is likely the bus's
// message limit rather than the keyring itself.
const largeValue = 8 << 20

// deleteChunks removes chunks 0..n-1 of a generation, best effort: a chunk
// left behind is garbage, never a lost secret.
func (s *Items) deleteChunks(ctx context.Context, key, gen string, n int) {
	for i := range n {
		_, _ = s.call(ctx, "delete", key, func() (string, error) { return "", s.Backend.Delete(s.Service, chunkKey(key, gen, i)) })
	}
}

// call runs one backend call on the worker, waiting at most Timeout for
// it, including the time spent behind earlier calls.
func (s *Items) call(ctx context.Context, op, key string, f func() (string, error)) (string, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s.start.Do(func() {
		s.queue = make(chan *job, 1024)
		go s.work()
	})
	j := &job{run: f, done: make(chan result, 1)}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	giveUp := func(err error) (string, error) {
		j.abandoned.Store(true)
		return "", err
	}
	timedOut := fmt.Errorf("%w: %s %q in service %q got no answer within %s: the keyring may be locked (unlock it, e.g. by signing in to the desktop session) or its daemon is hung (restart gnome-keyring-daemon or your Secret Service)",
		ErrUnavailable, op, key, s.Service, timeout)
	select {
	case s.queue <- j:
	case <-timer.C:
		return giveUp(timedOut)
	case <-ctx.Done():
		return giveUp(fmt.Errorf("keyring %s %q: %w", op, key, ctx.Err()))
	}
	select {
	case r := <-j.done:
		return r.value, s.wrap(op, key, r.err)
	case <-timer.C:
		return giveUp(timedOut)
	case <-ctx.Done():
		return giveUp(fmt.Errorf("keyring %s %q: %w", op, key, ctx.Err()))
	}
}

// work runs the queued calls one at a time. go-keyring offers no way to
// cancel a call, so a hung one holds the worker until it returns; the calls
// behind it wait, and those given up by then are skipped.
func (s *Items) work() {
	for j := range s.queue {
		if j.abandoned.Load() {
			continue
		}
		v, err := j.run()
		j.done <- result{v, err}
	}
}

func (s *Items) wrap(op, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gokeyring.ErrNotFound):
		return fmt.Errorf("keyring item %q in service %q: %w", key, s.Service, ErrNotFound)
	case errors.Is(err, gokeyring.ErrSetDataTooBig):
		return fmt.Errorf("%w: %s %q: the value is too large for this platform's keyring (lower the chunk size)", ErrUnavailable, op, key)
	case errors.Is(err, ErrUnavailable):
		// The backend's own diagnosis of the session (no bus, no Secret
		// Service) says what to do. It is the same for every item and names
		// none, so that a caller failing on several says it once.
		return err
	}
	msg := err.Error()
	hint := ""
	switch {
	case strings.Contains(msg, "org.freedesktop.secrets"), strings.Contains(msg, "ServiceUnknown"):
		hint = ": no Secret Service is running on the session bus; install and start one (gnome-keyring or KeePassXC with Secret Service enabled)"
	case strings.Contains(msg, "prompt") || strings.Contains(msg, "locked") || strings.Contains(msg, "failed to unlock"):
		hint = ": the keyring is locked and was not unlocked (no unlock prompt could be shown, or it was dismissed); unlock it, e.g. by signing in to the desktop or in Passwords and Keys, and tokentray retries"
	case strings.Contains(msg, "DBUS_SESSION_BUS_ADDRESS"), strings.Contains(msg, "dbus") && !strings.Contains(msg, "broken pipe"):
		hint = ": no D-Bus session bus is reachable; run tokentray inside a desktop session (or dbus-run-session)"
	}
	return fmt.Errorf("%w: %s %q in service %q: %v%s", ErrUnavailable, op, key, s.Service, err, hint)
}

func parseHeader(v string) (gen string, n int, ok bool) {
	rest, found := strings.CutPrefix(v, chunkPrefix)
	if !found {
		return "", 0, false
	}
	gen, count, found := strings.Cut(rest, ":")
	if !found {
		return "", 0, false
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > 1000 {
		return "", 0, false
	}
	return gen, n, true
}

func chunkKey(key, gen string, i int) string {
	return key + "#" + gen + "." + strconv.Itoa(i+1)
}

// split cuts s into parts of at most size bytes, never inside a UTF-8
// sequence: some keyrings store text, not bytes.
func split(s string, size int) []string {
	var parts []string
	for len(s) > size {
		cut := size
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = size
		}
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	return append(parts, s)
}

func newGeneration() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
