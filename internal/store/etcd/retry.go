package etcd

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// transient reports whether err is what a member's death or a leader
// election causes: the same call, to another member or a moment later,
// succeeds once a leader is elected (a second or two).
func transient(err error) bool {
	switch {
	case err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost):
		return true
	}
	return status.Code(err) == codes.Unavailable
}

// retry calls f until it returns an error that is not transient, or ctx
// ends (then the last error). etcd's client resends only what it knows
// never reached a member; a write whose answer was lost in an election is
// left to the caller, which compares what it reads next with what it sent
// (put, delete, ClaimAlert): a retry here is never a second write of a
// different value.
func retry[T any](ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	wait := 50 * time.Millisecond
	for {
		v, err := f(ctx)
		if !transient(err) {
			return v, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}
