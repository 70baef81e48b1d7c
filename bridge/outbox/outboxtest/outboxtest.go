// Package outboxtest is the conformance suite of the outbox.Store contract.
// Every backend (SQLite, PostgreSQL) runs the same Run from its own tests,
// so they behave alike down to the edge cases the delivery and intake
// packages rely on.
//
// The suite drives time only through the clock.Fake it hands to open, with
// times on whole milliseconds (the precision backends store).
package outboxtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// Epoch is the time every test's fake clock starts at.
var Epoch = time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)

// Opener returns a new, empty store whose notion of now is clk, and arranges
// (with t.Cleanup) for it to be closed when t ends. It is called once per
// subtest, from parallel subtests.
type Opener func(t *testing.T, clk clock.Clock) outbox.Store

// Run runs the conformance suite against the stores open returns. Every
// store must also be an outbox.Leaser.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"EnqueueOutcomes", testEnqueueOutcomes},
		{"TxCommitsAndRollsBackTogether", testTxAtomicity},
		{"CursorsAndMarks", testCursorsAndMarks},
		{"ClaimOrderAndLimit", testClaimOrderAndLimit},
		{"ClaimSkipsRowsNotDue", testClaimSkipsNotDue},
		{"LeaseExpiry", testLeaseExpiry},
		{"FinishStates", testFinishStates},
		{"Release", testRelease},
		{"NextDue", testNextDue},
		{"TargetState", testTargetState},
		{"ListFilters", testList},
		{"ListPaging", testListPaging},
		{"GetWithAttempts", testGetWithAttempts},
		{"Counts", testCounts},
		{"OldestPending", testOldestPending},
		{"RetryAndCancel", testRetryAndCancel},
		{"RetryCancelledClash", testRetryCancelledClash},
		{"Purge", testPurge},
		{"ConcurrentClaimers", testConcurrentClaimers},
		{"OneActiveRowPerPair", testOneActiveRowPerPair},
		{"HistoryIsRecordedOnce", testHistoryIsRecordedOnce},
		{"LeaseTakeoverAndRenewal", testLeaseTakeoverAndRenewal},
		{"LeaseRelease", testLeaseRelease},
		{"LeaseContention", testLeaseContention},
		{"CorrectionWhileSending", testCorrectionWhileSending},
		{"EarlierAttemptNeverReplacesALater", testEarlierAttemptNeverReplacesALater},
		{"OutcomeUnknown", testOutcomeUnknown},
		{"IgnoredRecordedOnceEverywhere", testIgnoredRecordedOnceEverywhere},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// fixture is one store with its fake clock.
type fixture struct {
	t   *testing.T
	ctx context.Context
	clk *clock.Fake
	s   outbox.Store
}

func newFixture(t *testing.T, open Opener) *fixture {
	t.Helper()
	clk := clock.NewFake(Epoch)
	return &fixture{t: t, ctx: t.Context(), clk: clk, s: open(t, clk)}
}

// result is a NewResult for the pair (target, code, person) with body.
func result(target, code, person, body string) outbox.NewResult {
	return outbox.NewResult{
		Target:        target,
		Connection:    "moodle",
		ElearningCode: code,
		PersonID:      person,
		SourceRef:     "ref-" + body,
		CompletedAt:   Epoch.Add(-24 * time.Hour),
		Body:          []byte(fmt.Sprintf(`<CoachviewResultaat Elearningcode=%q PersoonExterneId=%q>%s</CoachviewResultaat>`, code, person, body)),
	}
}

// enqueue enqueues r in its own transaction.
func (f *fixture) enqueue(r outbox.NewResult, p outbox.EnqueuePolicy) outbox.EnqueueOutcome {
	f.t.Helper()
	var out outbox.EnqueueOutcome
	require.NoError(f.t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		var err error
		out, err = tx.Enqueue(f.ctx, r, p)
		return err
	}))
	return out
}

// latest returns the newest row of r's pair.
func (f *fixture) latest(r outbox.NewResult) outbox.Item {
	f.t.Helper()
	rows, err := f.s.List(f.ctx, outbox.Filter{Target: r.Target, ElearningCode: r.ElearningCode, PersonID: r.PersonID, Limit: 1})
	require.NoError(f.t, err)
	require.Len(f.t, rows, 1, "no row for %s/%s/%s", r.Target, r.ElearningCode, r.PersonID)
	return rows[0]
}

// get returns row id.
func (f *fixture) get(id int64) outbox.Item {
	f.t.Helper()
	it, _, err := f.s.Get(f.ctx, id)
	require.NoError(f.t, err)
	return it
}

// all returns every row of target, oldest first.
func (f *fixture) all(target string) []outbox.Item {
	f.t.Helper()
	rows, err := f.s.List(f.ctx, outbox.Filter{Target: target, Limit: 1000})
	require.NoError(f.t, err)
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows
}

// claim claims up to limit rows of target for owner at the clock's now.
func (f *fixture) claim(target, owner string, limit int, lease time.Duration) []outbox.Item {
	f.t.Helper()
	items, err := f.s.Claim(f.ctx, target, owner, limit, f.clk.Now(), lease)
	require.NoError(f.t, err)
	return items
}

// claimID claims the next due row of its target and requires it to be id.
func (f *fixture) claimID(target string, id int64, owner string) outbox.Item {
	f.t.Helper()
	items := f.claim(target, owner, 1, time.Minute)
	require.Len(f.t, items, 1, "nothing to claim for %s", target)
	require.Equal(f.t, id, items[0].ID, "claimed the wrong row of %s", target)
	return items[0]
}

// finish finishes a row claimed by owner with a plain attempt.
func (f *fixture) finish(id int64, owner string, st outbox.State, status int, next time.Time) {
	f.t.Helper()
	require.NoError(f.t, f.s.Finish(f.ctx, outbox.Finish{
		ID: id, Owner: owner, State: st, NextAttemptAt: next, Tries: 1, Streak: 1,
		StreakSince: f.clk.Now(), LastClass: "class-" + string(st),
		Attempt: outbox.Attempt{At: f.clk.Now(), Status: status, Class: "class-" + string(st), Duration: time.Second},
	}))
}

// drive enqueues r (a new pair) and takes its row to state st, returning it.
// A cancelled row has one attempt, answered 503. An ignored row is made by a
// second, different completion for the pair while the first is still
// pending; the pending row stays.
func (f *fixture) drive(r outbox.NewResult, st outbox.State) outbox.Item {
	f.t.Helper()
	if st == outbox.StateRejected {
		r.RejectReason = "Datum is not a date"
		r.Body = nil
		require.Equal(f.t, outbox.Rejected, f.enqueue(r, outbox.EnqueuePolicy{}))
		return f.latest(r)
	}
	require.Equal(f.t, outbox.Queued, f.enqueue(r, outbox.EnqueuePolicy{}))
	it := f.latest(r)
	switch st {
	case outbox.StatePending:
	case outbox.StateSending:
		f.claimID(r.Target, it.ID, "setup")
	case outbox.StateDelivered:
		f.claimID(r.Target, it.ID, "setup")
		f.finish(it.ID, "setup", outbox.StateDelivered, 200, time.Time{})
	case outbox.StateFailed:
		f.claimID(r.Target, it.ID, "setup")
		f.finish(it.ID, "setup", outbox.StateFailed, 400, time.Time{})
	case outbox.StateCancelled:
		// As an operator cancels a result: after an attempt that failed,
		// so the cancelled row has an attempt for the purge to delete.
		f.claimID(r.Target, it.ID, "setup")
		f.finish(it.ID, "setup", outbox.StatePending, 503, f.clk.Now().Add(time.Hour))
		require.NoError(f.t, f.s.Cancel(f.ctx, it.ID, f.clk.Now()))
	case outbox.StateIgnored:
		other := r
		other.Body = append([]byte("other "), r.Body...)
		require.Equal(f.t, outbox.Ignored, f.enqueue(other, outbox.EnqueuePolicy{}))
		it = f.latest(r)
	default:
		f.t.Fatalf("drive: cannot reach state %q", st)
	}
	it = f.get(it.ID)
	require.Equal(f.t, st, it.State)
	return it
}

// states lists the states of items in order.
func states(items []outbox.Item) []outbox.State {
	out := make([]outbox.State, len(items))
	for i, it := range items {
		out[i] = it.State
	}
	return out
}

// ids lists the ids of items in order.
func ids(items []outbox.Item) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// sameTime asserts that got is the instant want.
func sameTime(t *testing.T, want, got time.Time, what string) {
	t.Helper()
	assert.Truef(t, want.Equal(got), "%s: want %s, got %s", what, want, got)
}
