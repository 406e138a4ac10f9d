package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/config"
)

// testKeep is how long a test sign-in's tokens wait for a Save.
const testKeep = 30 * time.Minute

// Test is one test sign-in, as the editor asks for it: the connection as
// the form has it, nothing saved.
type Test struct {
	// Replacing is the connection being edited: its stored client secret is
	// used when Secret is empty.
	Replacing  string
	Connection config.Connection
	Secret     auth.Secret
}

// Tested is a test sign-in that got tokens. They are kept under ID for a
// Save of exactly the same connection and secret (Save.TestID).
type Tested struct {
	ID string
	// Check is the API check's result; nil without a check URL.
	Check *auth.CheckResult
	// Resolution is how the client authenticated (the method, and who
	// chose it), for the editor to say.
	Resolution auth.Resolution
}

// tested are the tokens of one test sign-in, until saved or too old.
type tested struct {
	test   Test
	tokens *auth.TokenSet
	at     time.Time
}

// TestSignIn signs in once with t's connection, on a keeper of its own
// whose tokens stay in memory, then calls the API check URL. Nothing is
// saved. A failed API check is an error too (its result in Tested.Check):
// the editor should not offer to keep a sign-in that does not work.
func (f *Fleet) TestSignIn(ctx context.Context, t Test) (Tested, error) {
	conn, problems := config.Check(t.Connection)
	if len(problems) > 0 {
		return Tested{}, problems
	}
	store := auth.NewMemoryStore()
	secret := t.Secret
	if secret == "" && t.Replacing != "" {
		secret, _ = f.opt.Store.ClientSecret(ctx, t.Replacing)
	}
	if secret != "" {
		_ = store.SetClientSecret(ctx, conn.Name, secret)
	}
	k := f.testKeeper(conn, store)
	if err := k.Login(ctx, auth.LoginOptions{}); err != nil {
		return Tested{}, err
	}
	tokens, err := store.LoadTokens(ctx, conn.Name)
	if err != nil {
		return Tested{}, err
	}
	out := Tested{Resolution: k.Status().Resolution}
	if conn.Endpoints.CheckURL != "" {
		check := k.Check(ctx)
		out.Check = &check
		if !check.OK() {
			return out, &CheckFailed{Result: check}
		}
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	out.ID = hex.EncodeToString(id[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, v := range f.tests {
		if now.Sub(v.at) > testKeep {
			delete(f.tests, k)
		}
	}
	f.tests[out.ID] = tested{test: Test{Connection: t.Connection, Secret: t.Secret}, tokens: tokens, at: now}
	return out, nil
}

// CheckFailed is a test sign-in that got tokens which the API refused.
type CheckFailed struct{ Result auth.CheckResult }

func (e *CheckFailed) Error() string {
	return "signed in, but the API check failed: " + e.Result.Error
}

// Next is what a person does about the check's failure.
func (e *CheckFailed) Next() *nextstep.Step { return e.Result.Next }

// testKeeper is the keeper of a test sign-in.
func (f *Fleet) testKeeper(conn *auth.Connection, store auth.Store) *auth.Keeper {
	if f.opt.NewTestKeeper != nil {
		return f.opt.NewTestKeeper(conn, store)
	}
	return auth.NewKeeper(conn, auth.KeeperOptions{Store: store, Locker: &auth.ProcessLocker{}, Logger: f.opt.Log})
}

// testTokens are the tokens of test id if it signed in with exactly this
// connection and secret; they are handed out once.
func (f *Fleet) testTokens(id string, c config.Connection, secret auth.Secret) (*auth.TokenSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tests[id]
	if !ok {
		return nil, errors.New("the test sign-in is no longer kept (they are kept for 30 minutes); test again or save without it")
	}
	if !reflect.DeepEqual(t.test.Connection, c) || t.test.Secret != secret {
		return nil, nil // the form changed since the test: its tokens are not for this
	}
	delete(f.tests, id)
	return t.tokens, nil
}
