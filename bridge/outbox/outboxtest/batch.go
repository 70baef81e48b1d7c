package outboxtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// RunBatch runs the conformance suite of outbox.BatchFinisher against the
// stores open returns, each of which must implement it: a batch applies
// each Finish as Finish does, each row guarded by its own lease.
func RunBatch(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"BatchAppliesEachFinish", testBatchApplies},
		{"BatchPerRowOutcomes", testBatchPerRowOutcomes},
		{"BatchEmpty", testBatchEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

func batcher(t *testing.T, f *fixture) outbox.BatchFinisher {
	t.Helper()
	return f.s
}

// testBatchApplies: delivered, pending and failed in one batch land exactly
// as three Finish calls would, attempts included.
func testBatchApplies(t *testing.T, open Opener) {
	f := newFixture(t, open)
	b := batcher(t, f)
	for _, p := range []string{"p1", "p2", "p3"} {
		f.enqueue(result("cv", "e1", p, "v1"), outbox.EnqueuePolicy{})
	}
	items := f.claim("cv", "w1", 3, time.Minute)
	require.Len(t, items, 3)
	f.clk.Advance(10 * time.Second)
	now := f.clk.Now()
	next := now.Add(5 * time.Minute)
	fin := func(it outbox.Item, st outbox.State, status int, next time.Time) outbox.Finish {
		return outbox.Finish{
			ID: it.ID, Owner: "w1", State: st, NextAttemptAt: next,
			Tries: 1, Streak: 1, StreakSince: now, LastClass: "class-" + string(st), LastError: "error-" + string(st),
			Attempt: outbox.Attempt{At: now.Add(-time.Second), Status: status, Class: "class-" + string(st),
				Response: "response-" + string(st), Duration: 800 * time.Millisecond},
		}
	}
	fs := []outbox.Finish{
		fin(items[0], outbox.StateDelivered, 200, time.Time{}),
		fin(items[1], outbox.StatePending, 503, next),
		fin(items[2], outbox.StateFailed, 400, time.Time{}),
	}
	errs, err := b.FinishBatch(f.ctx, fs)
	require.NoError(t, err)
	require.Len(t, errs, 3)
	for i, e := range errs {
		assert.NoError(t, e, "finish %d", i)
	}
	for i, want := range fs {
		got, attempts, err := f.s.Get(f.ctx, want.ID)
		require.NoError(t, err)
		assert.Equal(t, want.State, got.State, "row %d", i)
		assert.Equal(t, want.LastError, got.LastError)
		assert.Equal(t, want.Attempt.Status, got.LastStatus)
		assert.Empty(t, got.LeaseOwner, "the lease is cleared")
		switch want.State {
		case outbox.StateDelivered:
			sameTime(t, now, got.DeliveredAt, "DeliveredAt")
		case outbox.StatePending:
			sameTime(t, next, got.NextAttemptAt, "NextAttemptAt")
		}
		require.Len(t, attempts, 1, "one attempt recorded for row %d", i)
		assert.Equal(t, want.Attempt.Class, attempts[0].Class)
		assert.Equal(t, want.Attempt.Response, attempts[0].Response)
		assert.Equal(t, want.Attempt.Duration, attempts[0].Duration)
		sameTime(t, want.Attempt.At, attempts[0].At, "attempt At")
	}
	counts, err := f.s.Counts(f.ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, 1, counts[outbox.StateDelivered])
	assert.Equal(t, 1, counts[outbox.StatePending])
	assert.Equal(t, 1, counts[outbox.StateFailed])
}

// testBatchPerRowOutcomes: a lost lease, a missing row, an invalid Finish
// and a second Finish of a row each fail alone; the rest of the batch is
// applied.
func testBatchPerRowOutcomes(t *testing.T, open Opener) {
	f := newFixture(t, open)
	b := batcher(t, f)
	for _, p := range []string{"p1", "p2"} {
		f.enqueue(result("cv", "e1", p, "v1"), outbox.EnqueuePolicy{})
	}
	mine := f.claim("cv", "w1", 2, time.Minute)
	require.Len(t, mine, 2)
	// w1's lease on both runs out; w2 takes the first row over.
	f.clk.Advance(2 * time.Minute)
	taken := f.claim("cv", "w2", 1, time.Minute)
	require.Len(t, taken, 1)
	lost, kept := mine[0], mine[1]
	if taken[0].ID != lost.ID {
		lost, kept = kept, lost
	}
	delivered := func(id int64, st outbox.State) outbox.Finish {
		return outbox.Finish{ID: id, Owner: "w1", State: st, Tries: 1, Streak: 1, StreakSince: f.clk.Now(),
			Attempt: outbox.Attempt{Status: 200, Class: "delivered"}}
	}
	errs, err := b.FinishBatch(f.ctx, []outbox.Finish{
		delivered(lost.ID, outbox.StateDelivered),
		delivered(kept.ID+1000, outbox.StateDelivered),
		delivered(kept.ID, outbox.StateSending),
		delivered(kept.ID, outbox.StateDelivered),
		delivered(kept.ID, outbox.StateFailed), // the same row again: its lease went with the first
	})
	require.NoError(t, err)
	require.Len(t, errs, 5)
	assert.ErrorIs(t, errs[0], outbox.ErrLeaseLost, "w2 holds the row now")
	assert.ErrorIs(t, errs[1], outbox.ErrNotFound)
	assert.ErrorContains(t, errs[2], "is not delivered, pending, failed or probably-delivered")
	assert.NoError(t, errs[3])
	assert.ErrorIs(t, errs[4], outbox.ErrLeaseLost, "a row is finished once")

	got, attempts, err := f.s.Get(f.ctx, lost.ID)
	require.NoError(t, err)
	assert.Equal(t, outbox.StateSending, got.State, "the row w2 holds is untouched")
	assert.Equal(t, "w2", got.LeaseOwner)
	assert.Empty(t, attempts, "no attempt recorded for a lost lease")
	got, attempts, err = f.s.Get(f.ctx, kept.ID)
	require.NoError(t, err)
	assert.Equal(t, outbox.StateDelivered, got.State, "an expired but untaken lease still records its attempt")
	assert.Len(t, attempts, 1)
}

// testBatchEmpty: an empty batch is a no-op.
func testBatchEmpty(t *testing.T, open Opener) {
	f := newFixture(t, open)
	errs, err := batcher(t, f).FinishBatch(f.ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, errs)
}
