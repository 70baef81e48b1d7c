package outboxtest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

func testEnqueueOutcomes(t *testing.T, open Opener) {
	const target = "cv"
	base := result(target, "e1", "P123", "v1")
	changed := func(r outbox.NewResult) outbox.NewResult {
		r.Body = []byte(`<CoachviewResultaat Elearningcode="e1" PersoonExterneId="P123">v2</CoachviewResultaat>`)
		r.SourceRef = "ref-v2"
		r.CompletedAt = Epoch.Add(-time.Hour)
		return r
	}
	lower := func(r outbox.NewResult) outbox.NewResult { r.PersonID = "p123"; return r }

	tests := []struct {
		name    string
		prior   outbox.State // state the pair's first row is driven to; "" for none
		prepare func(t *testing.T, f *fixture, prior outbox.Item)
		in      outbox.NewResult
		policy  outbox.EnqueuePolicy
		want    outbox.EnqueueOutcome
		states  []outbox.State // every row of the target afterwards, oldest first
		check   func(t *testing.T, f *fixture, prior outbox.Item, rows []outbox.Item)
	}{
		{
			name: "new pair is queued due now", in: base, want: outbox.Queued,
			states: []outbox.State{outbox.StatePending},
			check: func(t *testing.T, f *fixture, _ outbox.Item, rows []outbox.Item) {
				it := rows[0]
				assert.Equal(t, base.Body, it.Body)
				assert.Equal(t, "P123", it.PersonID, "the person id is kept as the LMS gave it")
				assert.Equal(t, "e1", it.ElearningCode)
				assert.Equal(t, "moodle", it.Connection)
				assert.Equal(t, base.SourceRef, it.SourceRef)
				sameTime(t, base.CompletedAt, it.CompletedAt, "CompletedAt")
				sameTime(t, f.clk.Now(), it.NextAttemptAt, "NextAttemptAt")
				sameTime(t, f.clk.Now(), it.CreatedAt, "CreatedAt")
				assert.Zero(t, it.Tries)
				assert.Empty(t, it.LeaseOwner)
			},
		},
		{
			name: "rejected result is stored as rejected", in: func() outbox.NewResult {
				r := base
				r.Body, r.RejectReason = nil, "Datum: not a date"
				return r
			}(), want: outbox.Rejected,
			states: []outbox.State{outbox.StateRejected},
			check: func(t *testing.T, _ *fixture, _ outbox.Item, rows []outbox.Item) {
				assert.Equal(t, "Datum: not a date", rows[0].LastError)
				assert.True(t, rows[0].NextAttemptAt.IsZero(), "a rejected row is never due")
			},
		},
		{
			name: "rejected result beside a delivered pair is still rejected", prior: outbox.StateDelivered,
			in: func() outbox.NewResult {
				r := changed(base)
				r.RejectReason = "Geslaagd missing"
				return r
			}(), want: outbox.Rejected,
			states: []outbox.State{outbox.StateDelivered, outbox.StateRejected},
		},
		{
			name: "same body while pending is unchanged", prior: outbox.StatePending, in: base, want: outbox.Unchanged,
			states: []outbox.State{outbox.StatePending},
			check: func(t *testing.T, _ *fixture, prior outbox.Item, rows []outbox.Item) {
				sameTime(t, prior.UpdatedAt, rows[0].UpdatedAt, "UpdatedAt (nothing written)")
				sameTime(t, prior.NextAttemptAt, rows[0].NextAttemptAt, "NextAttemptAt")
			},
		},
		{
			name: "same body with the person id in other case is unchanged", prior: outbox.StatePending,
			in: lower(base), want: outbox.Unchanged,
			states: []outbox.State{outbox.StatePending},
		},
		{
			name: "different body replaces a pending row when allowed", prior: outbox.StatePending,
			in: changed(base), policy: outbox.EnqueuePolicy{ReplacePending: true}, want: outbox.Replaced,
			states: []outbox.State{outbox.StatePending},
			check: func(t *testing.T, f *fixture, prior outbox.Item, rows []outbox.Item) {
				it := rows[0]
				assert.Equal(t, prior.ID, it.ID, "the row is updated in place")
				assert.Equal(t, changed(base).Body, it.Body)
				assert.Equal(t, "ref-v2", it.SourceRef)
				sameTime(t, Epoch.Add(-time.Hour), it.CompletedAt, "CompletedAt")
				sameTime(t, f.clk.Now(), it.NextAttemptAt, "NextAttemptAt")
			},
		},
		{
			name: "different body resets a pending row's retry history", prior: outbox.StatePending,
			prepare: func(t *testing.T, f *fixture, prior outbox.Item) {
				f.claimID(target, prior.ID, "w")
				require.NoError(t, f.s.Finish(f.ctx, outbox.Finish{
					ID: prior.ID, Owner: "w", State: outbox.StatePending, NextAttemptAt: f.clk.Now().Add(time.Hour),
					Tries: 3, Streak: 3, StreakSince: f.clk.Now(), LastClass: "transient",
					Attempt: outbox.Attempt{At: f.clk.Now(), Status: 503, Class: "transient"},
				}))
			},
			in: changed(base), policy: outbox.EnqueuePolicy{ReplacePending: true}, want: outbox.Replaced,
			states: []outbox.State{outbox.StatePending},
			check: func(t *testing.T, f *fixture, _ outbox.Item, rows []outbox.Item) {
				it := rows[0]
				assert.Equal(t, changed(base).Body, it.Body)
				assert.Zero(t, it.Tries)
				assert.Zero(t, it.Streak)
				sameTime(t, f.clk.Now(), it.NextAttemptAt, "NextAttemptAt (due now, not in an hour)")
			},
		},
		{
			name: "different body for a pending row is ignored without replace_pending", prior: outbox.StatePending,
			in: changed(base), want: outbox.Ignored,
			states: []outbox.State{outbox.StatePending, outbox.StateIgnored},
			check: func(t *testing.T, _ *fixture, prior outbox.Item, rows []outbox.Item) {
				assert.Equal(t, base.Body, rows[0].Body, "the queued row keeps its body")
				assert.Equal(t, changed(base).Body, rows[1].Body)
				assert.Contains(t, rows[1].LastError, "replace_pending is off")
				assert.True(t, rows[1].NextAttemptAt.IsZero(), "an ignored row is never due")
			},
		},
		{
			name: "different body re-arms a failed row", prior: outbox.StateFailed, in: changed(base), want: outbox.Replaced,
			states: []outbox.State{outbox.StatePending},
			check: func(t *testing.T, f *fixture, prior outbox.Item, rows []outbox.Item) {
				it := rows[0]
				assert.Equal(t, prior.ID, it.ID)
				assert.Equal(t, changed(base).Body, it.Body)
				assert.Zero(t, it.Tries)
				assert.Zero(t, it.Streak)
				sameTime(t, f.clk.Now(), it.NextAttemptAt, "NextAttemptAt")
			},
		},
		{
			name: "same body while failed is unchanged", prior: outbox.StateFailed, in: base, want: outbox.Unchanged,
			states: []outbox.State{outbox.StateFailed},
		},
		{
			name: "same body while delivered is unchanged", prior: outbox.StateDelivered, in: base, want: outbox.Unchanged,
			states: []outbox.State{outbox.StateDelivered},
		},
		{
			name: "same body while sending is unchanged", prior: outbox.StateSending, in: base, want: outbox.Unchanged,
			states: []outbox.State{outbox.StateSending},
		},
		{
			name: "different body after delivery is ignored naming the delivered row", prior: outbox.StateDelivered,
			in: changed(base), policy: outbox.EnqueuePolicy{ReplacePending: true}, want: outbox.Ignored,
			states: []outbox.State{outbox.StateDelivered, outbox.StateIgnored},
			check: func(t *testing.T, _ *fixture, prior outbox.Item, rows []outbox.Item) {
				assert.Equal(t, base.Body, rows[0].Body, "the delivered row is untouched")
				assert.Contains(t, rows[1].LastError, fmt.Sprintf("#%d", prior.ID))
				assert.Contains(t, rows[1].LastError, prior.DeliveredAt.Format("2006-01-02"))
				assert.Equal(t, changed(base).Body, rows[1].Body, "the ignored completion is kept for the operator")
			},
		},
		{
			name: "different body with the person id in other case after delivery is ignored", prior: outbox.StateDelivered,
			in: lower(changed(base)), want: outbox.Ignored,
			states: []outbox.State{outbox.StateDelivered, outbox.StateIgnored},
		},
		{
			name: "different body while sending waits in a row of its own", prior: outbox.StateSending,
			in: changed(base), policy: outbox.EnqueuePolicy{ReplacePending: true}, want: outbox.Waiting,
			states: []outbox.State{outbox.StateSending, outbox.StateWaiting},
			check: func(t *testing.T, _ *fixture, prior outbox.Item, rows []outbox.Item) {
				assert.Equal(t, base.Body, rows[0].Body, "the row being sent keeps its body")
				assert.Equal(t, rows[1].ID, rows[0].WaitingID, "the row being sent knows what waits for it")
				assert.Equal(t, changed(base).Body, rows[1].Body)
				assert.Contains(t, rows[1].LastError, fmt.Sprintf("#%d", prior.ID))
			},
		},
		{
			name: "different body while sending without replace_pending is ignored naming the row", prior: outbox.StateSending,
			in: changed(base), want: outbox.Ignored,
			states: []outbox.State{outbox.StateSending, outbox.StateIgnored},
			check: func(t *testing.T, _ *fixture, prior outbox.Item, rows []outbox.Item) {
				assert.Equal(t, base.Body, rows[0].Body, "the row being sent keeps its body")
				assert.Contains(t, rows[1].LastError, fmt.Sprintf("#%d", prior.ID))
			},
		},
		{
			name: "a cancelled row does not hold the pair", prior: outbox.StateCancelled, in: changed(base), want: outbox.Queued,
			states: []outbox.State{outbox.StateCancelled, outbox.StatePending},
		},
		{
			name: "a rejected row does not hold the pair", prior: outbox.StateRejected, in: base, want: outbox.Queued,
			states: []outbox.State{outbox.StateRejected, outbox.StatePending},
		},
		{
			name: "another elearningcode is another pair", prior: outbox.StateDelivered,
			in: func() outbox.NewResult { r := changed(base); r.ElearningCode = "e2"; return r }(), want: outbox.Queued,
			states: []outbox.State{outbox.StateDelivered, outbox.StatePending},
		},
		{
			name: "another target is another pair", prior: outbox.StateDelivered,
			in: func() outbox.NewResult { r := changed(base); r.Target = "cv-test"; return r }(), want: outbox.Queued,
			states: []outbox.State{outbox.StateDelivered},
			check: func(t *testing.T, f *fixture, _ outbox.Item, _ []outbox.Item) {
				assert.Equal(t, []outbox.State{outbox.StatePending}, states(f.all("cv-test")))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, open)
			var prior outbox.Item
			if tc.prior != "" {
				prior = f.drive(base, tc.prior)
			}
			if tc.prepare != nil {
				tc.prepare(t, f, prior)
			}
			f.clk.Advance(time.Minute)
			assert.Equal(t, tc.want, f.enqueue(tc.in, tc.policy))
			rows := f.all(target)
			require.Equal(t, tc.states, states(rows))
			if tc.check != nil {
				tc.check(t, f, prior, rows)
			}
		})
	}
}

func testTxAtomicity(t *testing.T, open Opener) {
	f := newFixture(t, open)
	r1 := result("cv", "e1", "p1", "v1")
	r2 := result("cv", "e1", "p2", "v1")

	require.NoError(t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		if _, err := tx.Enqueue(f.ctx, r1, outbox.EnqueuePolicy{}); err != nil {
			return err
		}
		if err := tx.SaveCursor(f.ctx, "moodle", []byte("c1")); err != nil {
			return err
		}
		return tx.Mark(f.ctx, "moodle", "m1")
	}))

	errBatch := errors.New("adapter failed mid-batch")
	err := f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		if _, err := tx.Enqueue(f.ctx, r2, outbox.EnqueuePolicy{}); err != nil {
			return err
		}
		if err := tx.SaveCursor(f.ctx, "moodle", []byte("c2")); err != nil {
			return err
		}
		if err := tx.Mark(f.ctx, "moodle", "m2"); err != nil {
			return err
		}
		return errBatch
	})
	require.ErrorIs(t, err, errBatch, "InTx returns fn's error")

	cur, err := f.s.Cursor(f.ctx, "moodle")
	require.NoError(t, err)
	assert.Equal(t, []byte("c1"), cur, "the failed batch's cursor is rolled back")
	for mark, want := range map[string]bool{"m1": true, "m2": false} {
		got, err := f.s.Marked(f.ctx, "moodle", mark)
		require.NoError(t, err)
		assert.Equal(t, want, got, "mark %s", mark)
	}
	rows := f.all("cv")
	require.Len(t, rows, 1, "the failed batch's enqueue is rolled back")
	assert.Equal(t, "p1", rows[0].PersonID)
}

func testCursorsAndMarks(t *testing.T, open Opener) {
	f := newFixture(t, open)
	cur, err := f.s.Cursor(f.ctx, "moodle")
	require.NoError(t, err)
	assert.Nil(t, cur, "no cursor before the first save")

	for _, c := range []string{"c1", "c2"} {
		require.NoError(t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
			return tx.SaveCursor(f.ctx, "moodle", []byte(c))
		}))
	}
	require.NoError(t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		if err := tx.SaveCursor(f.ctx, "csv", []byte("other")); err != nil {
			return err
		}
		for range 2 { // marking twice in one transaction is no error
			if err := tx.Mark(f.ctx, "moodle", "attempt-17"); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		return tx.Mark(f.ctx, "moodle", "attempt-17") // nor in a later one
	}))

	cur, err = f.s.Cursor(f.ctx, "moodle")
	require.NoError(t, err)
	assert.Equal(t, []byte("c2"), cur, "the last save wins")
	cur, err = f.s.Cursor(f.ctx, "csv")
	require.NoError(t, err)
	assert.Equal(t, []byte("other"), cur, "cursors are per connection")

	tests := []struct {
		name, connection, mark string
		want                   bool
	}{
		{"recorded mark", "moodle", "attempt-17", true},
		{"other mark", "moodle", "attempt-18", false},
		{"same mark of another connection", "csv", "attempt-17", false},
	}
	for _, tc := range tests {
		got, err := f.s.Marked(f.ctx, tc.connection, tc.mark)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func testOneActiveRowPerPair(t *testing.T, open Opener) {
	f := newFixture(t, open)
	const workers, rounds = 8, 5
	errs := make(chan error, workers*rounds)
	outcomes := make(chan outbox.EnqueueOutcome, workers*rounds)
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range rounds {
				r := result("cv", "e1", []string{"P1", "p1"}[w%2], fmt.Sprintf("w%d-%d", w, i))
				err := f.s.InTx(f.ctx, func(tx outbox.Tx) error {
					out, err := tx.Enqueue(f.ctx, r, outbox.EnqueuePolicy{ReplacePending: true})
					outcomes <- out
					return err
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	close(errs)
	close(outcomes)
	for err := range errs {
		require.NoError(t, err)
	}
	counted := map[outbox.EnqueueOutcome]int{}
	for o := range outcomes {
		counted[o]++
	}
	assert.Equal(t, 1, counted[outbox.Queued], "outcomes: %v", counted)
	assert.Equal(t, workers*rounds-1, counted[outbox.Replaced], "outcomes: %v", counted)
	assert.Equal(t, []outbox.State{outbox.StatePending}, states(f.all("cv")))
}

func testRetryCancelledClash(t *testing.T, open Opener) {
	f := newFixture(t, open)
	r := result("cv", "e1", "P1", "v1")
	cancelled := f.drive(r, outbox.StateCancelled)
	r2 := r
	r2.Body, r2.PersonID = []byte("v2"), "p1"
	require.Equal(t, outbox.Queued, f.enqueue(r2, outbox.EnqueuePolicy{}))

	err := f.s.Retry(f.ctx, cancelled.ID, f.clk.Now())
	require.ErrorIs(t, err, outbox.ErrState, "retrying the cancelled row would make a second active row")
	assert.Equal(t, []outbox.State{outbox.StateCancelled, outbox.StatePending}, states(f.all("cv")))

	// Once the other row is cancelled too, the first may be retried.
	other := f.latest(r2)
	require.NoError(t, f.s.Cancel(f.ctx, other.ID, f.clk.Now()))
	require.NoError(t, f.s.Retry(f.ctx, cancelled.ID, f.clk.Now()))
	assert.Equal(t, []outbox.State{outbox.StatePending, outbox.StateCancelled}, states(f.all("cv")))
}
