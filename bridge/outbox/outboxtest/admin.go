package outboxtest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

func testTargetState(t *testing.T, open Opener) {
	f := newFixture(t, open)
	st, err := f.s.TargetState(f.ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, outbox.TargetState{Target: "cv"}, st, "a target never set is active")

	paused := outbox.TargetState{
		Target: "cv", Paused: true, Reason: "Coachview answered 403: check the signing secret",
		PausedAt: f.clk.Now(), NextProbeAt: f.clk.Now().Add(15 * time.Minute),
	}
	require.NoError(t, f.s.SetTargetState(f.ctx, paused))
	got, err := f.s.TargetState(f.ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, paused.Target, got.Target)
	assert.True(t, got.Paused)
	assert.Equal(t, paused.Reason, got.Reason)
	sameTime(t, paused.PausedAt, got.PausedAt, "PausedAt")
	sameTime(t, paused.NextProbeAt, got.NextProbeAt, "NextProbeAt")

	other, err := f.s.TargetState(f.ctx, "cv-test")
	require.NoError(t, err)
	assert.False(t, other.Paused, "states are per target")

	require.NoError(t, f.s.SetTargetState(f.ctx, outbox.TargetState{Target: "cv"}))
	got, err = f.s.TargetState(f.ctx, "cv")
	require.NoError(t, err)
	assert.False(t, got.Paused)
	assert.Empty(t, got.Reason)
	assert.True(t, got.PausedAt.IsZero())
	assert.True(t, got.NextProbeAt.IsZero())
}

func testList(t *testing.T, open Opener) {
	f := newFixture(t, open)
	mk := func(target, conn, code, person string, st outbox.State) int64 {
		r := result(target, code, person, "v1")
		r.Connection = conn
		return f.drive(r, st).ID
	}
	// Rows that are claimed to reach their state come first: drive claims
	// the target's next due row.
	a := mk("cv", "moodle", "e1", "P1", outbox.StateDelivered)
	b := mk("cv", "csv", "e1", "p2", outbox.StateFailed)
	c := mk("cv", "moodle", "e2", "P1", outbox.StatePending)
	d := mk("cv-test", "csv", "e1", "p1", outbox.StatePending)
	e := mk("cv", "csv", "e3", "p1", outbox.StateRejected)

	tests := []struct {
		name   string
		filter outbox.Filter
		want   []int64
	}{
		{"everything, newest first", outbox.Filter{}, []int64{e, d, c, b, a}},
		{"by target", outbox.Filter{Target: "cv"}, []int64{e, c, b, a}},
		{"by connection", outbox.Filter{Connection: "csv"}, []int64{e, d, b}},
		{"by state", outbox.Filter{State: outbox.StatePending}, []int64{d, c}},
		{"by person, case-insensitively", outbox.Filter{PersonID: "p1"}, []int64{e, d, c, a}},
		{"by elearningcode", outbox.Filter{ElearningCode: "e1"}, []int64{d, b, a}},
		{"combined", outbox.Filter{Target: "cv", PersonID: "P1", State: outbox.StateDelivered}, []int64{a}},
		{"limit", outbox.Filter{Limit: 2}, []int64{e, d}},
		{"after an id", outbox.Filter{AfterID: d, Limit: 2}, []int64{c, b}},
		{"after the last id", outbox.Filter{AfterID: a}, []int64{}},
		{"no match", outbox.Filter{Target: "nowhere"}, []int64{}},
	}
	for _, tc := range tests {
		got, err := f.s.List(f.ctx, tc.filter)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, ids(got), tc.name)
	}

	_, err := f.s.List(f.ctx, outbox.Filter{State: "lost"})
	assert.Error(t, err, "an unknown state is an error, not an empty list")
}

func testListPaging(t *testing.T, open Opener) {
	f := newFixture(t, open)
	const n = 105
	require.NoError(t, f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		for i := range n {
			if _, err := tx.Enqueue(f.ctx, result("cv", "e1", fmt.Sprintf("p%d", i), "v1"), outbox.EnqueuePolicy{}); err != nil {
				return err
			}
		}
		return nil
	}))
	first, err := f.s.List(f.ctx, outbox.Filter{})
	require.NoError(t, err)
	assert.Len(t, first, 100, "the default limit")

	var seen []int64
	after := int64(0)
	for pages := 0; ; pages++ {
		require.Less(t, pages, n, "paging does not end")
		page, err := f.s.List(f.ctx, outbox.Filter{Target: "cv", Limit: 10, AfterID: after})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		seen = append(seen, ids(page)...)
		after = page[len(page)-1].ID
	}
	require.Len(t, seen, n)
	for i := 1; i < len(seen); i++ {
		assert.Less(t, seen[i], seen[i-1], "pages are newest first without overlap")
	}
}

func testGetWithAttempts(t *testing.T, open Opener) {
	f := newFixture(t, open)
	long := "a" + strings.Repeat("é", outbox.MaxResponseExcerpt) // byte MaxResponseExcerpt falls inside an "é"
	steps := []struct {
		state    outbox.State
		status   int
		response string
		err      string
	}{
		{outbox.StatePending, 0, "", "dial tcp: connection refused"},
		{outbox.StatePending, 503, long, ""},
		{outbox.StateDelivered, 200, "OK", ""},
	}
	it := f.drive(result("cv", "e1", "p1", "v1"), outbox.StatePending)
	for i, s := range steps {
		f.claimID("cv", it.ID, "w")
		var next time.Time
		if s.state == outbox.StatePending {
			next = f.clk.Now().Add(time.Minute)
		}
		require.NoError(t, f.s.Finish(f.ctx, outbox.Finish{
			ID: it.ID, Owner: "w", State: s.state, NextAttemptAt: next, Tries: i + 1,
			Attempt: outbox.Attempt{At: f.clk.Now(), Status: s.status, Response: s.response, Error: s.err, Duration: time.Duration(i+1) * time.Second},
		}))
		f.clk.Advance(time.Minute)
	}

	got, attempts, err := f.s.Get(f.ctx, it.ID)
	require.NoError(t, err)
	assert.Equal(t, outbox.StateDelivered, got.State)
	assert.Equal(t, it.Body, got.Body)
	require.Len(t, attempts, len(steps))
	for i, a := range attempts {
		assert.Equal(t, it.ID, a.ResultID)
		assert.Equal(t, steps[i].status, a.Status, "attempts oldest first")
		assert.Equal(t, steps[i].err, a.Error)
		sameTime(t, Epoch.Add(time.Duration(i)*time.Minute), a.At, "attempt At")
		assert.Equal(t, time.Duration(i+1)*time.Second, a.Duration)
		if i > 0 {
			assert.Greater(t, a.ID, attempts[i-1].ID)
		}
	}
	excerpt := attempts[1].Response
	assert.LessOrEqual(t, len(excerpt), outbox.MaxResponseExcerpt)
	assert.Greater(t, len(excerpt), outbox.MaxResponseExcerpt-utf8.UTFMax, "cut no shorter than needed")
	assert.True(t, utf8.ValidString(excerpt), "cut on a UTF-8 boundary")
	assert.True(t, strings.HasPrefix(long, excerpt), "the excerpt is the start of the response")
	assert.Equal(t, "OK", attempts[2].Response)

	_, _, err = f.s.Get(f.ctx, 4242)
	assert.ErrorIs(t, err, outbox.ErrNotFound)
}

func testCounts(t *testing.T, open Opener) {
	f := newFixture(t, open)
	// Rows that are claimed to reach their state come before pending ones:
	// drive claims the target's next due row.
	plan := []struct {
		target string
		state  outbox.State
	}{
		{"cv", outbox.StateDelivered}, {"cv", outbox.StateFailed}, {"cv", outbox.StateRejected},
		{"cv", outbox.StateCancelled}, {"cv", outbox.StatePending}, {"cv", outbox.StatePending},
		{"cv-test", outbox.StateDelivered}, {"cv-test", outbox.StateSending},
	}
	for i, p := range plan {
		f.drive(result(p.target, "e1", fmt.Sprintf("p%d", i), "v1"), p.state)
	}
	f.drive(result("cv", "e9", "p9", "v1"), outbox.StateIgnored) // adds a pending and an ignored row

	tests := []struct {
		name   string
		target string
		want   map[outbox.State]int
	}{
		{"one target", "cv", map[outbox.State]int{
			outbox.StatePending: 3, outbox.StateDelivered: 1, outbox.StateFailed: 1,
			outbox.StateRejected: 1, outbox.StateCancelled: 1, outbox.StateIgnored: 1,
		}},
		{"all targets", "", map[outbox.State]int{
			outbox.StatePending: 3, outbox.StateSending: 1, outbox.StateDelivered: 2, outbox.StateFailed: 1,
			outbox.StateRejected: 1, outbox.StateCancelled: 1, outbox.StateIgnored: 1,
		}},
		{"unknown target", "nowhere", map[outbox.State]int{}},
	}
	for _, tc := range tests {
		got, err := f.s.Counts(f.ctx, tc.target)
		require.NoError(t, err, tc.name)
		for _, st := range outbox.States {
			assert.Equal(t, tc.want[st], got[st], "%s: %s", tc.name, st)
		}
	}

	// What is not done yet, per target: cv's three pending and one
	// failed, cv-test's one sending.
	unfinished, err := f.s.Unfinished(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"cv": 4, "cv-test": 1}, unfinished)
}

func testRetryAndCancel(t *testing.T, open Opener) {
	tests := []struct {
		state         outbox.State
		retry, cancel bool
	}{
		{state: outbox.StatePending, retry: true, cancel: true},
		{state: outbox.StateSending},
		{state: outbox.StateDelivered},
		{state: outbox.StateFailed, retry: true, cancel: true},
		{state: outbox.StateRejected},
		{state: outbox.StateIgnored},
		{state: outbox.StateCancelled, retry: true},
	}
	for _, tc := range tests {
		t.Run(string(tc.state), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, open)
			retried := f.drive(result("cv", "e1", "p1", "v1"), tc.state)
			cancelled := f.drive(result("cv", "e1", "p2", "v1"), tc.state)
			f.clk.Advance(time.Hour)

			err := f.s.Cancel(f.ctx, cancelled.ID, f.clk.Now())
			if tc.cancel {
				require.NoError(t, err)
				assert.Equal(t, outbox.StateCancelled, f.get(cancelled.ID).State)
			} else {
				require.ErrorIs(t, err, outbox.ErrState)
				assert.Equal(t, tc.state, f.get(cancelled.ID).State, "a refused cancel changes nothing")
			}

			err = f.s.Retry(f.ctx, retried.ID, f.clk.Now())
			if tc.retry {
				require.NoError(t, err)
				got := f.get(retried.ID)
				assert.Equal(t, outbox.StatePending, got.State)
				assert.Zero(t, got.Tries, "a fresh retry schedule")
				assert.Zero(t, got.Streak, "a fresh retry schedule")
				sameTime(t, f.clk.Now(), got.NextAttemptAt, "due now")
				assert.Contains(t, ids(f.claim("cv", "w", 10, time.Minute)), retried.ID, "claimable at once")
			} else {
				require.ErrorIs(t, err, outbox.ErrState)
				assert.Equal(t, tc.state, f.get(retried.ID).State, "a refused retry changes nothing")
			}
		})
	}
	t.Run("unknown row", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open)
		assert.ErrorIs(t, f.s.Retry(f.ctx, 4242, f.clk.Now()), outbox.ErrNotFound)
		assert.ErrorIs(t, f.s.Cancel(f.ctx, 4242, f.clk.Now()), outbox.ErrNotFound)
	})
}

func testPurge(t *testing.T, open Opener) {
	f := newFixture(t, open)
	// One target per row, so drive's claims never meet another due row.
	old := map[int64]outbox.State{}
	for i, st := range []outbox.State{outbox.StateDelivered, outbox.StateRejected, outbox.StateCancelled, outbox.StateIgnored,
		outbox.StateDelivered, outbox.StateRejected, outbox.StateDelivered, outbox.StateDelivered} {
		old[f.drive(result(fmt.Sprintf("cv-%s-%d", st, i), "e1", "old", "v1"), st).ID] = st
	}
	beside, err := f.s.List(f.ctx, outbox.Filter{Target: "cv-ignored-3", State: outbox.StatePending})
	require.NoError(t, err)
	require.Len(t, beside, 1, "the pending row beside the ignored one")
	kept := []int64{
		f.drive(result("cv-failed", "e1", "kept", "v1"), outbox.StateFailed).ID,
		f.drive(result("cv-pending", "e1", "kept", "v1"), outbox.StatePending).ID,
		f.drive(result("cv-sending", "e1", "kept", "v1"), outbox.StateSending).ID,
		beside[0].ID,
	}
	f.clk.Advance(48 * time.Hour)
	cutoff := f.clk.Now()
	kept = append(kept, f.drive(result("cv-recent", "e1", "recent", "v1"), outbox.StateDelivered).ID) // updated exactly at cutoff
	f.clk.Advance(time.Hour)

	var batches []int
	for range 4 {
		n, err := f.s.Purge(f.ctx, cutoff, 3)
		require.NoError(t, err)
		batches = append(batches, n)
	}
	assert.Equal(t, []int{6, 2, 0, 0}, batches, "at most limit rows deleted, and limit erased, per call")
	for id, st := range old {
		it, attempts, err := f.s.Get(f.ctx, id)
		if st == outbox.StateDelivered {
			// Kept, as the record that Coachview accepted the pair, erased.
			require.NoError(t, err)
			assert.Nil(t, it.Body, "the delivered row's body is erased")
			require.NotEmpty(t, attempts)
			assert.Empty(t, attempts[0].Response, "and Coachview's responses")
			continue
		}
		assert.ErrorIs(t, err, outbox.ErrNotFound, "the old %s row is purged", st)
	}
	// A completion of the purged pair read later (a cumulative export, a
	// regrade) is not sent a second time.
	assert.Equal(t, outbox.Ignored, f.enqueue(result("cv-delivered-0", "e1", "old", "v2"), replace))
	for _, id := range kept {
		_, attempts, err := f.s.Get(f.ctx, id)
		require.NoError(t, err, "row #%d is kept", id)
		if id == kept[0] {
			assert.Len(t, attempts, 1, "a kept row keeps its attempts")
		}
	}
}
