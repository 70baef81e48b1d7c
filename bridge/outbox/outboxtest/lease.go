package outboxtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// leaser returns the fixture's store as an outbox.Leaser: every backend
// offers leases, since several daemons may share its database.
func (f *fixture) leaser() outbox.Leaser { return f.s }

// acquire asks for lease name for owner at the clock's now.
func (f *fixture) acquire(l outbox.Leaser, name, owner string, ttl time.Duration) bool {
	f.t.Helper()
	ok, err := l.AcquireLease(f.ctx, name, owner, ttl, f.clk.Now())
	require.NoError(f.t, err)
	return ok
}

func testLeaseTakeoverAndRenewal(t *testing.T, open Opener) {
	f := newFixture(t, open)
	l := f.leaser()
	t0 := f.clk.Now()
	const ttl = time.Minute

	require.True(t, f.acquire(l, "poll:moodle", "A", ttl), "a free lease is taken")
	assert.True(t, f.acquire(l, "poll:csv", "B", ttl), "leases are per name")
	assert.True(t, f.acquire(l, "poll:moodle", "A", ttl), "the holder may ask again")
	assert.False(t, f.acquire(l, "poll:moodle", "B", ttl), "held by A")

	f.clk.Set(t0.Add(30 * time.Second))
	require.True(t, f.acquire(l, "poll:moodle", "A", ttl), "A renews until t0+90s")
	f.clk.Set(t0.Add(90*time.Second - time.Millisecond))
	assert.False(t, f.acquire(l, "poll:moodle", "B", ttl), "the renewal holds past the first expiry")

	f.clk.Set(t0.Add(90 * time.Second))
	assert.True(t, f.acquire(l, "poll:moodle", "B", ttl), "expired exactly at now+ttl: B takes over")
	assert.False(t, f.acquire(l, "poll:moodle", "A", ttl), "A lost it to B")
	f.clk.Advance(ttl - time.Millisecond)
	assert.False(t, f.acquire(l, "poll:moodle", "A", ttl), "B's lease runs from its takeover")

	// An owner whose lease expired, but was not taken, may renew it.
	f.clk.Set(t0.Add(time.Hour))
	assert.True(t, f.acquire(l, "poll:csv", "B", ttl), "B renews its expired, untaken lease")
	assert.False(t, f.acquire(l, "poll:csv", "A", ttl))

	for _, tc := range []struct {
		name, lease, owner string
		ttl                time.Duration
	}{
		{"empty name", "", "A", ttl},
		{"empty owner", "poll:x", "", ttl},
		{"zero ttl", "poll:x", "A", 0},
	} {
		_, err := l.AcquireLease(f.ctx, tc.lease, tc.owner, tc.ttl, f.clk.Now())
		assert.Error(t, err, tc.name)
	}
}

func testLeaseRelease(t *testing.T, open Opener) {
	f := newFixture(t, open)
	l := f.leaser()
	const ttl = time.Hour

	require.True(t, f.acquire(l, "poll:moodle", "A", ttl))
	require.NoError(t, l.ReleaseLease(f.ctx, "poll:moodle", "B"), "releasing someone else's lease is no error")
	assert.False(t, f.acquire(l, "poll:moodle", "B", ttl), "and does not release it")

	require.NoError(t, l.ReleaseLease(f.ctx, "poll:moodle", "A"))
	assert.True(t, f.acquire(l, "poll:moodle", "B", ttl), "a released lease is free at once")
	require.NoError(t, l.ReleaseLease(f.ctx, "poll:moodle", "A"), "releasing a lease not held is no error")
	assert.False(t, f.acquire(l, "poll:moodle", "A", ttl), "B still holds it")
	require.NoError(t, l.ReleaseLease(f.ctx, "never-taken", "A"))
}

func testLeaseContention(t *testing.T, open Opener) {
	f := newFixture(t, open)
	l := f.leaser()
	const owners, rounds = 8, 5
	for round := range rounds {
		name := fmt.Sprintf("poll:round-%d", round)
		var (
			mu      sync.Mutex
			winners []string
			errs    []error
			wg      sync.WaitGroup
		)
		for o := range owners {
			owner := fmt.Sprintf("daemon-%d", o)
			wg.Go(func() {
				ok, err := l.AcquireLease(f.ctx, name, owner, time.Minute, f.clk.Now())
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				if ok {
					winners = append(winners, owner)
				}
			})
		}
		wg.Wait()
		require.Empty(t, errs)
		require.Len(t, winners, 1, "round %d: exactly one owner gets the lease, got %v", round, winners)
		for o := range owners {
			owner := fmt.Sprintf("daemon-%d", o)
			assert.Equal(t, owner == winners[0], f.acquire(l, name, owner, time.Minute), "round %d: %s", round, owner)
		}
	}
}
