package storecopy_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	filestore "github.com/tokentray/tokentray/internal/store/file"
	pgstore "github.com/tokentray/tokentray/internal/store/postgres"
	"github.com/tokentray/tokentray/internal/store/storecopy"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

var now = time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)

func signedIn(t *testing.T, s auth.Store, rt auth.Secret, since time.Time) *auth.TokenSet {
	t.Helper()
	ts := &auth.TokenSet{AccessToken: "at-" + rt, TokenType: "bearer", RefreshToken: rt, ObtainedAt: since,
		Lifetime: 90 * time.Minute, RefreshTokenSince: since, Generation: auth.NextGeneration(0, since), DPoPKey: "dpop-key"}
	if err := s.SaveTokens(context.Background(), "p", ts, auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	return ts
}

func side(s auth.Store) storecopy.Side {
	return storecopy.Side{Store: s, Locker: &auth.ProcessLocker{}}
}

// held reads what s holds for p: its refresh token ("" for none) and its
// client secret ("" for none).
func held(t *testing.T, s auth.Store) (auth.Secret, auth.Secret) {
	t.Helper()
	var rt, secret auth.Secret
	ts, err := s.LoadTokens(context.Background(), "p")
	switch {
	case err == nil:
		rt = ts.RefreshToken
	case !errors.Is(err, auth.ErrNotStored):
		t.Fatal(err)
	}
	secret, err = s.ClientSecret(context.Background(), "p")
	if err != nil && !errors.Is(err, auth.ErrNotStored) {
		t.Fatal(err)
	}
	return rt, secret
}

func TestACopyMovesTheTokensAndTheSecretAndLeavesOneLiveRefreshToken(t *testing.T) {
	from, to := auth.NewMemoryStore(), auth.NewMemoryStore()
	was := signedIn(t, from, "rt-1", now.Add(-time.Hour))
	_ = from.SetClientSecret(context.Background(), "p", "s3cret")

	res, err := storecopy.Copy(context.Background(), side(from), side(to), "p", now)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Tokens || !res.Secret || res.Finished {
		t.Fatalf("result %+v; want tokens and secret moved", res)
	}
	if rt, secret := held(t, from); rt != "" || secret != "" {
		t.Fatalf("the source still holds refresh token %q, secret %q", rt.Reveal(), secret.Reveal())
	}
	got, err := to.LoadTokens(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if got.RefreshToken != "rt-1" || got.AccessToken != "at-rt-1" || got.DPoPKey != "dpop-key" || !got.RefreshTokenSince.Equal(was.RefreshTokenSince) {
		t.Fatalf("target holds %+v; want the source's set", got)
	}
	if got.Generation <= was.Generation {
		t.Fatalf("target generation %d; want above the source's %d, never one used before", got.Generation, was.Generation)
	}
	if secret, _ := to.ClientSecret(context.Background(), "p"); secret != "s3cret" {
		t.Fatalf("target secret %q", secret.Reveal())
	}
}

func TestNothingInTheSourceIsNoError(t *testing.T) {
	res, err := storecopy.Copy(context.Background(), side(auth.NewMemoryStore()), side(auth.NewMemoryStore()), "p", now)
	if err != nil || !res.Nothing() {
		t.Fatalf("Copy = %+v, %v; want nothing done, no error", res, err)
	}
}

// A connection signed in on both sides is not chosen for the person:
// nothing moves, and the error says when each side's refresh token came.
func TestTokensInTheTargetAreNeverOverwritten(t *testing.T) {
	from, to := auth.NewMemoryStore(), auth.NewMemoryStore()
	signedIn(t, from, "rt-old", now.Add(-2*time.Hour))
	signedIn(t, to, "rt-there", now.Add(-time.Hour))
	_ = from.SetClientSecret(context.Background(), "p", "s3cret")

	_, err := storecopy.Copy(context.Background(), side(from), side(to), "p", now)
	var both *storecopy.TargetHasTokens
	if !errors.As(err, &both) || !errors.Is(err, storecopy.ErrTargetHasTokens) {
		t.Fatalf("Copy error %v; want TargetHasTokens", err)
	}
	if !both.SourceSince.Equal(now.Add(-2*time.Hour)) || !both.TargetSince.Equal(now.Add(-time.Hour)) {
		t.Fatalf("times %v, %v", both.SourceSince, both.TargetSince)
	}
	if rt, secret := held(t, from); rt != "rt-old" || secret != "s3cret" {
		t.Fatalf("the source lost something: %q, %q", rt.Reveal(), secret.Reveal())
	}
	if rt, secret := held(t, to); rt != "rt-there" || secret != "" {
		t.Fatalf("the target changed: %q, %q", rt.Reveal(), secret.Reveal())
	}
}

func TestAnotherClientSecretInTheTargetStopsTheCopy(t *testing.T) {
	from, to := auth.NewMemoryStore(), auth.NewMemoryStore()
	signedIn(t, from, "rt-1", now.Add(-time.Hour))
	_ = from.SetClientSecret(context.Background(), "p", "s3cret")
	_ = to.SetClientSecret(context.Background(), "p", "other")

	if _, err := storecopy.Copy(context.Background(), side(from), side(to), "p", now); !errors.Is(err, storecopy.ErrSecretsDiffer) {
		t.Fatalf("Copy error %v; want ErrSecretsDiffer", err)
	}
	if rt, secret := held(t, from); rt != "rt-1" || secret != "s3cret" {
		t.Fatalf("the source lost something: %q, %q", rt.Reveal(), secret.Reveal())
	}
	if rt, secret := held(t, to); rt != "" || secret != "other" {
		t.Fatalf("the target changed: %q, %q", rt.Reveal(), secret.Reveal())
	}

	// The same secret on both sides is no conflict.
	_ = to.SetClientSecret(context.Background(), "p", "s3cret")
	res, err := storecopy.Copy(context.Background(), side(from), side(to), "p", now)
	if err != nil || !res.Tokens || !res.Secret {
		t.Fatalf("Copy = %+v, %v", res, err)
	}
}

// failingDelete is a store whose deletions fail, as a locked keyring's
// would.
type failingDelete struct {
	*auth.MemoryStore
	fail bool
}

func (f *failingDelete) DeleteTokens(ctx context.Context, name string) error {
	if f.fail {
		return errors.New("the keyring is locked")
	}
	return f.MemoryStore.DeleteTokens(ctx, name)
}

// A run stopped between the target's commit and the source's deletion
// (here: the deletion fails) is finished by the next run, which finds the
// same refresh token on both sides; nothing is ever lost.
func TestARunStoppedAfterTheCommitIsFinishedByTheNext(t *testing.T) {
	from, to := &failingDelete{MemoryStore: auth.NewMemoryStore(), fail: true}, auth.NewMemoryStore()
	signedIn(t, from, "rt-1", now.Add(-time.Hour))

	_, err := storecopy.Copy(context.Background(), side(from), side(to), "p", now)
	if !errors.Is(err, storecopy.ErrSourceKept) {
		t.Fatalf("Copy error %v; want ErrSourceKept", err)
	}
	if rt, _ := held(t, to); rt != "rt-1" {
		t.Fatalf("target holds %q; want the committed copy", rt.Reveal())
	}
	from.fail = false
	res, err := storecopy.Copy(context.Background(), side(from), side(to), "p", now.Add(time.Minute))
	if err != nil || !res.Tokens || !res.Finished {
		t.Fatalf("second run = %+v, %v; want the deletion finished", res, err)
	}
	if rt, _ := held(t, from); rt != "" {
		t.Fatalf("the source still holds %q", rt.Reveal())
	}
	if rt, _ := held(t, to); rt != "rt-1" {
		t.Fatalf("target holds %q", rt.Reveal())
	}
}

// A keeper of the source that holds the connection's lock (a refresh under
// way) is waited for: the copy never takes a refresh token that is about
// to be spent.
func TestTheCopyWaitsForTheSourcesWriters(t *testing.T) {
	from, to := auth.NewMemoryStore(), auth.NewMemoryStore()
	signedIn(t, from, "rt-1", now.Add(-time.Hour))
	locker := &auth.ProcessLocker{}
	unlock, err := locker.Lock(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := storecopy.Copy(ctx, storecopy.Side{Store: from, Locker: locker}, side(to), "p", now)
		done <- err
	}()
	// The refresh under the lock rotates the token; the copy, once it gets
	// the lock, takes the rotated one.
	signedIn(t, from, "rt-2", now)
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cancel()
	if rt, _ := held(t, to); rt != "rt-2" {
		t.Fatalf("target holds %q; want the token rotated under the lock", rt.Reveal())
	}

	// A lock not given within the context's time: nothing moves.
	signedIn(t, from, "rt-3", now)
	_ = to.DeleteTokens(context.Background(), "p")
	unlock, _ = locker.Lock(context.Background(), "p")
	defer unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := storecopy.Copy(ctx, storecopy.Side{Store: from, Locker: locker}, side(to), "p", now); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Copy error %v; want the context's", err)
	}
	if rt, _ := held(t, from); rt != "rt-3" {
		t.Fatalf("the source holds %q", rt.Reveal())
	}
}

// The real stores, both ways: the file store a server used before into the
// PostgreSQL store it joins, and back.
func TestFromTheFileStoreToPostgreSQLAndBack(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	pg, err := pgstore.Open(context.Background(), pgstore.Options{URL: conn, Key: bytes.Repeat([]byte{7}, 32), Instance: "moby-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	lease, err := pg.NewLease(pgstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file, err := filestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	signedIn(t, file, "rt-1", now.Add(-time.Hour))
	_ = file.SetClientSecret(context.Background(), "p", "s3cret")
	fileSide, pgSide := side(file), storecopy.Side{Store: pg, Locker: lease}

	if res, err := storecopy.Copy(context.Background(), fileSide, pgSide, "p", now); err != nil || !res.Tokens || !res.Secret {
		t.Fatalf("file → postgres: %+v, %v", res, err)
	}
	if rt, secret := held(t, file); rt != "" || secret != "" {
		t.Fatalf("the file store still holds %q, %q", rt.Reveal(), secret.Reveal())
	}
	if rt, secret := held(t, pg); rt != "rt-1" || secret != "s3cret" {
		t.Fatalf("postgres holds %q, %q", rt.Reveal(), secret.Reveal())
	}
	if res, err := storecopy.Copy(context.Background(), pgSide, fileSide, "p", now.Add(time.Minute)); err != nil || !res.Tokens || !res.Secret {
		t.Fatalf("postgres → file: %+v, %v", res, err)
	}
	if rt, secret := held(t, pg); rt != "" || secret != "" {
		t.Fatalf("postgres still holds %q, %q", rt.Reveal(), secret.Reveal())
	}
	if rt, secret := held(t, file); rt != "rt-1" || secret != "s3cret" {
		t.Fatalf("the file store holds %q, %q", rt.Reveal(), secret.Reveal())
	}
}
