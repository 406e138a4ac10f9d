package postgres

import (
	"sync"
	"testing"
)

// Three instances see the same alert at once (the connection's needs_reauth,
// adopted by each): exactly one claims it and runs on_alert, the others
// learn which one did. A later generation is a new occurrence; an older
// one, or another kind, changes nothing of it.
func TestOneInstanceClaimsEachAlert(t *testing.T) {
	_, conn := open(t)
	names := []string{"moby-1", "moby-2", "moby-3"}
	stores := make([]*Store, len(names))
	for i, n := range names {
		stores[i], _ = instance(t, conn, n, LeaseOptions{})
	}
	claim := func(gen uint64) (winners []string, bys []string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				won, by, err := s.ClaimAlert(ctx, "p", "needs_reauth", gen)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if won {
					winners = append(winners, names[i])
				} else {
					bys = append(bys, by)
				}
			}()
		}
		close(start)
		wg.Wait()
		return winners, bys
	}
	for _, gen := range []uint64{100, 200} {
		winners, bys := claim(gen)
		if len(winners) != 1 {
			t.Fatalf("generation %d: claimed by %v; want exactly one instance", gen, winners)
		}
		for _, by := range bys {
			if by != winners[0] {
				t.Fatalf("generation %d: a loser was told %q claimed it; want %q", gen, by, winners[0])
			}
		}
	}
	// A late claim of an older generation is no new occurrence.
	if won, by, err := stores[0].ClaimAlert(ctx, "p", "needs_reauth", 150); err != nil || won || by == "" {
		t.Fatalf("an older generation: won %v by %q, %v; want lost", won, by, err)
	}
	// Another kind, or another connection, is a claim of its own.
	if won, _, err := stores[1].ClaimAlert(ctx, "p", "recovered", 200); err != nil || !won {
		t.Fatalf("another kind: %v, %v", won, err)
	}
	if won, _, err := stores[2].ClaimAlert(ctx, "q", "needs_reauth", 100); err != nil || !won {
		t.Fatalf("another connection: %v, %v", won, err)
	}
}
