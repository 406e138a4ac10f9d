// Package auth is tokentray's core: it keeps OAuth 2.0 connections alive.
// It knows no UI and no CLI wording, and works through the interfaces it
// defines (Store, Locker, Clock); a program can use it as a library. The
// stores are in internal/store (the OS keyring, files); MemoryStore is here.
//
// What a person does about an error, or about a refresh token that ends,
// is a typed step (client/nextstep): its kind (sign in again, store the
// client secret, fix the client, wait, …), the connection, the time it
// turns on, and the cause in words that hold on every surface. Errors
// carry it (NextStepOf), and so do Status, Event and CheckResult, and the
// store keeps it with a failed refresh's outcome. Each surface says it in
// its own words (internal/humanize): the CLI names the command to run, the
// dashboard the button beside the text. No string here names a command
// line of the CLI (nowording_test.go). Error messages stay here: they say
// what failed, for a person and a log alike.
//
// A Keeper keeps one connection. Its states, and what moves it between them:
//
//	                 sign-in (Login)                 refresh due (refresh_at of the lifetime)
//	disconnected ─────────────────────▶ connected ◀────────────────────────▶ refreshing
//	     ▲                               ▲   │  ▲     saved: new access and refresh token
//	     │ Logout                        │   │  │
//	     │                       retry ok│   │  │ new client secret or settings, then a
//	     │                               │   │  │ refresh with the kept refresh token
//	     │              network, 5xx,    │   ▼  │
//	     │              timeout, 429 ──▶ degraded   client_refused ◀── invalid_client,
//	     │                 (backoff + jitter;         (refresh token      unauthorized_client
//	     │                  valid token still         kept)
//	     │                  handed out)
//	     │                               │
//	     └──────── needs_reauth ◀────────┘ invalid_grant, an expired or missing
//	                  (sign-in needed)     refresh token (from any state)
//
// A refresh, whoever asks for it (the schedule, Token, Refresh):
//
//  1. joins the refresh in flight in this process, if there is one (single
//     flight);
//  2. takes the connection's Locker (a file lock across processes);
//  3. re-reads the Store: another process may have refreshed meanwhile, and
//     its tokens are used if they will do;
//  4. calls the token endpoint, detached from the caller, so that a caller
//     who gives up never cancels a request the server may have processed;
//  5. saves the new tokens, refresh token first, before anyone is handed
//     the new access token (a refresh token is single-use: one not saved
//     is a connection lost);
//  6. unlocks and tells the subscribers (Subscribe) what happened.
//
// Failures are classified once (errors.go): invalid_grant kills the
// refresh token; invalid_client and unauthorized_client need a person but
// keep it; network errors, timeouts, 429 and 5xx are transient. A refresh is
// never retried another way (another client authentication method, another
// endpoint).
//
// Many machines, one grant. With a shared store (internal/store/postgres)
// the Locker is a Lease, timed by the engine's clock, and a refresh adds
// three steps (Lease): before step 4 it looks for the intent another
// holder left on the generation stored now and, if there is one, waits
// until it is the rescue window old (twice the request's timeout) and
// takes the refresh over by moving the generation; then it records its own
// intent, with a round trip that checks the lease has more than the
// request's timeout left; after step 5 it clears that intent. Its
// failures:
//
//   - The holder dies before presenting the refresh token: its intent is
//     left; the next holder waits out the rescue window, then refreshes
//     with the same refresh token, which is still live.
//   - The holder dies after the provider answered and before its commit,
//     or had no answer (a timeout): the next holder waits out the window
//     and presents the old refresh token. A provider with a reuse grace
//     answers; one without (Procore) refuses it, and the connection is
//     needs_reauth once, recorded dead, with the reason ("the refresh
//     answer was lost with instance moby-2 at …"): never a retry storm.
//   - The holder pauses (SIGSTOP, a VM migration) or is cut off past its
//     lease: it presents nothing once it wakes (Intend fails); if it had
//     presented, its commit, a compare-and-set on the generation, fails
//     once the next holder took the refresh over, so its result is dropped
//     and never lands over the newer one. Within the window its commit
//     wins and the waiting holder adopts it. Safety rests on the engine's
//     compare-and-set, not on clocks: the window only says when the next
//     holder stops waiting.
//   - The engine is unreachable: nobody takes the lease, so nobody
//     refreshes; the valid tokens held are handed out (degraded), and once
//     none is left, Token's error wraps ErrStoreUnreachable. The schedule
//     resumes when the engine answers.
//
// Every wait takes the injected Clock, and deadlines are wall-clock times:
// a laptop that slept through a refresh refreshes when it wakes (Wake, or
// within MaxSleep). Token values have a type (Secret) whose every printed
// form is redacted.
package auth
