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

func testClaimOrderAndLimit(t *testing.T, open Opener) {
	f := newFixture(t, open)
	t0 := f.clk.Now()
	rs := []outbox.NewResult{
		result("cv", "e1", "p1", "v1"),
		result("cv", "e1", "p2", "v1"),
		result("cv", "e1", "p3", "v1"),
	}
	for _, r := range rs {
		require.Equal(t, outbox.Queued, f.enqueue(r, outbox.EnqueuePolicy{}))
	}
	r1, r2, r3 := f.latest(rs[0]), f.latest(rs[1]), f.latest(rs[2])
	// Due times out of id order: r2 and r3 tie at t0+1s, r4 at t0+2s, r1 last.
	require.Len(t, f.claim("cv", "x", 10, time.Minute), 3)
	for id, due := range map[int64]time.Duration{r1.ID: 3 * time.Second, r2.ID: time.Second, r3.ID: time.Second} {
		require.NoError(t, f.s.Release(f.ctx, id, "x", t0.Add(due)))
	}
	f.clk.Advance(2 * time.Second)
	r4r := result("cv", "e1", "p4", "v1")
	require.Equal(t, outbox.Queued, f.enqueue(r4r, outbox.EnqueuePolicy{}))
	r4 := f.latest(r4r)
	other := result("cv-test", "e1", "p1", "v1")
	require.Equal(t, outbox.Queued, f.enqueue(other, outbox.EnqueuePolicy{}))

	f.clk.Set(t0.Add(5 * time.Second))
	first := f.claim("cv", "w1", 3, 30*time.Second)
	require.Equal(t, []int64{r2.ID, r3.ID, r4.ID}, ids(first), "ordered by due time, then id; at most limit")
	for _, it := range first {
		assert.Equal(t, outbox.StateSending, it.State)
		assert.Equal(t, "w1", it.LeaseOwner)
		sameTime(t, f.clk.Now().Add(30*time.Second), it.LeaseUntil, "LeaseUntil")
		assert.NotEmpty(t, it.Body, "claimed items carry their body")
		stored := f.get(it.ID)
		assert.Equal(t, outbox.StateSending, stored.State, "the claim is stored")
		assert.Equal(t, "w1", stored.LeaseOwner)
		sameTime(t, it.LeaseUntil, stored.LeaseUntil, "stored LeaseUntil")
	}
	assert.Equal(t, []int64{r1.ID}, ids(f.claim("cv", "w2", 3, 30*time.Second)))
	assert.Empty(t, f.claim("cv", "w3", 3, 30*time.Second), "nothing left to claim")
	assert.Equal(t, []int64{f.latest(other).ID}, ids(f.claim("cv-test", "w1", 3, 30*time.Second)),
		"claims are per target")
}

func testClaimSkipsNotDue(t *testing.T, open Opener) {
	f := newFixture(t, open)
	t0 := f.clk.Now()
	it := f.drive(result("cv", "e1", "p1", "v1"), outbox.StateSending)
	f.finish(it.ID, "setup", outbox.StatePending, 503, t0.Add(10*time.Minute))
	delivered := f.drive(result("cv", "e1", "p2", "v1"), outbox.StateDelivered)
	f.drive(result("cv", "e1", "p3", "v1"), outbox.StateFailed)

	f.clk.Set(t0.Add(10*time.Minute - time.Millisecond))
	assert.Empty(t, f.claim("cv", "w", 10, time.Minute), "not due yet")
	f.clk.Set(t0.Add(10 * time.Minute))
	assert.Equal(t, []int64{it.ID}, ids(f.claim("cv", "w", 10, time.Minute)), "due exactly at NextAttemptAt")
	f.clk.Advance(365 * 24 * time.Hour)
	assert.Equal(t, []int64{it.ID}, ids(f.claim("cv", "w", 10, time.Minute)),
		"delivered and failed rows are never claimed; the expired lease is")
	assert.Equal(t, outbox.StateDelivered, f.get(delivered.ID).State)
}

func testLeaseExpiry(t *testing.T, open Opener) {
	f := newFixture(t, open)
	t0 := f.clk.Now()
	r := result("cv", "e1", "p1", "v1")
	f.enqueue(r, outbox.EnqueuePolicy{})
	id := f.latest(r).ID
	require.Len(t, f.claim("cv", "A", 1, time.Minute), 1)

	f.clk.Set(t0.Add(time.Minute - time.Millisecond))
	assert.Empty(t, f.claim("cv", "B", 1, time.Minute), "A's lease still holds")
	f.clk.Set(t0.Add(time.Minute))
	got := f.claim("cv", "B", 1, time.Minute)
	require.Equal(t, []int64{id}, ids(got), "A's lease ran out: B may claim the row")
	assert.Equal(t, "B", got[0].LeaseOwner)

	err := f.s.Finish(f.ctx, outbox.Finish{ID: id, Owner: "A", State: outbox.StateDelivered, Attempt: outbox.Attempt{Status: 200}})
	require.ErrorIs(t, err, outbox.ErrLeaseLost, "A's late finish")
	require.ErrorIs(t, f.s.Release(f.ctx, id, "A", f.clk.Now()), outbox.ErrLeaseLost, "A's late release")

	f.finish(id, "B", outbox.StateDelivered, 200, time.Time{})
	it, attempts, err := f.s.Get(f.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, outbox.StateDelivered, it.State)
	assert.Len(t, attempts, 1, "A's lost finish recorded no attempt")
}

func testFinishStates(t *testing.T, open Opener) {
	tests := []struct {
		name      string
		state     outbox.State
		status    int
		next      time.Duration // from now, for pending
		delivered bool
	}{
		{name: "delivered", state: outbox.StateDelivered, status: 200, delivered: true},
		{name: "pending for a retry", state: outbox.StatePending, status: 503, next: 5 * time.Minute},
		{name: "failed", state: outbox.StateFailed, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, open)
			it := f.drive(result("cv", "e1", "p1", "v1"), outbox.StateSending)
			f.clk.Advance(10 * time.Second)
			now := f.clk.Now()
			var next time.Time
			if tc.next > 0 {
				next = now.Add(tc.next)
			}
			fin := outbox.Finish{
				ID: it.ID, Owner: "setup", State: tc.state, NextAttemptAt: next,
				Tries: 2, Streak: 2, StreakSince: now.Add(-time.Hour), LastClass: "class-" + tc.name, LastError: "error-" + tc.name,
				Attempt: outbox.Attempt{
					At: now.Add(-2 * time.Second), Status: tc.status, Class: "class-" + tc.name,
					Response: "response-" + tc.name, Error: "", Duration: 1500 * time.Millisecond,
				},
			}
			require.NoError(t, f.s.Finish(f.ctx, fin))

			got, attempts, err := f.s.Get(f.ctx, it.ID)
			require.NoError(t, err)
			assert.Equal(t, tc.state, got.State)
			assert.Equal(t, 2, got.Tries)
			assert.Equal(t, 2, got.Streak)
			sameTime(t, now.Add(-time.Hour), got.StreakSince, "StreakSince")
			assert.Equal(t, "class-"+tc.name, got.LastClass)
			assert.Equal(t, tc.status, got.LastStatus)
			assert.Equal(t, "error-"+tc.name, got.LastError)
			assert.Empty(t, got.LeaseOwner, "the lease is cleared")
			assert.True(t, got.LeaseUntil.IsZero(), "the lease is cleared")
			if tc.state == outbox.StatePending {
				sameTime(t, next, got.NextAttemptAt, "NextAttemptAt")
			} else {
				assert.True(t, got.NextAttemptAt.IsZero(), "a %s row has no next attempt", tc.state)
			}
			if tc.delivered {
				sameTime(t, now, got.DeliveredAt, "DeliveredAt")
			} else {
				assert.True(t, got.DeliveredAt.IsZero(), "DeliveredAt is only set on delivery")
			}
			require.Len(t, attempts, 1)
			a := attempts[0]
			assert.Equal(t, it.ID, a.ResultID)
			sameTime(t, fin.Attempt.At, a.At, "attempt At")
			assert.Equal(t, tc.status, a.Status)
			assert.Equal(t, "class-"+tc.name, a.Class)
			assert.Equal(t, "response-"+tc.name, a.Response)
			assert.Equal(t, 1500*time.Millisecond, a.Duration)

			err = f.s.Finish(f.ctx, fin)
			assert.ErrorIs(t, err, outbox.ErrLeaseLost, "a finished row is no longer leased")
			f.clk.Advance(tc.next)
			claimed := f.claim("cv", "w", 10, time.Minute)
			if tc.state == outbox.StatePending {
				assert.Equal(t, []int64{it.ID}, ids(claimed), "a pending row is claimable at NextAttemptAt")
			} else {
				assert.Empty(t, claimed)
			}
		})
	}

	t.Run("unknown row", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open)
		err := f.s.Finish(f.ctx, outbox.Finish{ID: 4242, Owner: "w", State: outbox.StateDelivered})
		assert.ErrorIs(t, err, outbox.ErrNotFound)
	})
	t.Run("row not claimed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open)
		it := f.drive(result("cv", "e1", "p1", "v1"), outbox.StatePending)
		err := f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: "w", State: outbox.StateDelivered})
		assert.ErrorIs(t, err, outbox.ErrLeaseLost)
		assert.Equal(t, outbox.StatePending, f.get(it.ID).State)
	})
}

func testRelease(t *testing.T, open Opener) {
	f := newFixture(t, open)
	t0 := f.clk.Now()
	it := f.drive(result("cv", "e1", "p1", "v1"), outbox.StateSending)

	assert.ErrorIs(t, f.s.Release(f.ctx, it.ID, "someone-else", t0), outbox.ErrLeaseLost)
	assert.ErrorIs(t, f.s.Release(f.ctx, 4242, "setup", t0), outbox.ErrNotFound)

	require.NoError(t, f.s.Release(f.ctx, it.ID, "setup", t0.Add(5*time.Minute)))
	got, attempts, err := f.s.Get(f.ctx, it.ID)
	require.NoError(t, err)
	assert.Equal(t, outbox.StatePending, got.State)
	sameTime(t, t0.Add(5*time.Minute), got.NextAttemptAt, "NextAttemptAt")
	assert.Empty(t, got.LeaseOwner)
	assert.Zero(t, got.Tries, "a release is not an attempt")
	assert.Empty(t, attempts, "a release records no attempt")

	assert.ErrorIs(t, f.s.Release(f.ctx, it.ID, "setup", t0), outbox.ErrLeaseLost, "released twice")
	f.clk.Set(t0.Add(5*time.Minute - time.Millisecond))
	assert.Empty(t, f.claim("cv", "w", 1, time.Minute))
	f.clk.Set(t0.Add(5 * time.Minute))
	assert.Equal(t, []int64{it.ID}, ids(f.claim("cv", "w", 1, time.Minute)))
}

func testNextDue(t *testing.T, open Opener) {
	f := newFixture(t, open)
	t0 := f.clk.Now()
	due := func(want time.Time, what string) {
		t.Helper()
		got, ok, err := f.s.NextDue(f.ctx, "cv")
		require.NoError(t, err)
		require.True(t, ok, what)
		sameTime(t, want, got, what)
	}
	_, ok, err := f.s.NextDue(f.ctx, "cv")
	require.NoError(t, err)
	assert.False(t, ok, "no rows")

	r1 := result("cv", "e1", "p1", "v1")
	f.enqueue(r1, outbox.EnqueuePolicy{})
	id1 := f.latest(r1).ID
	require.Len(t, f.claim("cv", "w", 1, 10*time.Minute), 1)
	due(t0.Add(10*time.Minute), "a sending row is due when its lease ends")

	f.clk.Advance(time.Minute)
	r2 := result("cv", "e1", "p2", "v1")
	f.enqueue(r2, outbox.EnqueuePolicy{})
	id2 := f.latest(r2).ID
	f.enqueue(result("cv-test", "e1", "p1", "v1"), outbox.EnqueuePolicy{})
	due(t0.Add(time.Minute), "the earliest pending row")

	require.Len(t, f.claim("cv", "w", 1, 2*time.Minute), 1)
	due(t0.Add(3*time.Minute), "the earliest lease end")

	f.finish(id2, "w", outbox.StateDelivered, 200, time.Time{})
	due(t0.Add(10*time.Minute), "delivered rows are never due")
	f.finish(id1, "w", outbox.StateFailed, 400, time.Time{})
	_, ok, err = f.s.NextDue(f.ctx, "cv")
	require.NoError(t, err)
	assert.False(t, ok, "failed rows are never due")
}

func testConcurrentClaimers(t *testing.T, open Opener) {
	f := newFixture(t, open)
	const rows, workers, batch = 500, 8, 7
	require.NoError(t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		for i := range rows {
			if _, err := tx.Enqueue(f.ctx, result("cv", "e1", fmt.Sprintf("p%d", i), "v1"), outbox.EnqueuePolicy{}); err != nil {
				return err
			}
		}
		return nil
	}))

	var (
		mu      sync.Mutex
		claimed = map[int64]int{}
		errs    []error
		wg      sync.WaitGroup
	)
	for w := range workers {
		owner := fmt.Sprintf("worker-%d", w)
		wg.Go(func() {
			for {
				items, err := f.s.Claim(f.ctx, "cv", owner, batch, f.clk.Now(), time.Hour)
				if err == nil && len(items) == 0 {
					return
				}
				for _, it := range items {
					if err == nil {
						err = f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: owner, State: outbox.StateDelivered,
							Attempt: outbox.Attempt{Status: 200, Class: "delivered"}})
					}
				}
				mu.Lock()
				for _, it := range items {
					claimed[it.ID]++
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	assert.Len(t, claimed, rows, "every row was claimed")
	for id, n := range claimed {
		assert.Equal(t, 1, n, "row #%d was claimed %d times", id, n)
	}
	counts, err := f.s.Counts(f.ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, rows, counts[outbox.StateDelivered])
}
