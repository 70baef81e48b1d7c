package outboxtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// replace is the default intake policy: a newer completion replaces one
// Coachview has not accepted.
var replace = outbox.EnqueuePolicy{ReplacePending: true}

// corrected is r with another body: the LMS corrected the completion.
func corrected(r outbox.NewResult, body string) outbox.NewResult {
	r.Body = []byte(fmt.Sprintf(`<CoachviewResultaat Elearningcode=%q PersoonExterneId=%q>%s</CoachviewResultaat>`, r.ElearningCode, r.PersonID, body))
	r.SourceRef = "ref-" + body
	return r
}

// sendingWithCorrection gives a new store a pair whose result (grade 6) owner
// has claimed and is sending, and a corrected completion (grade 8) that
// waits for it; it returns the fixture, the first completion and the row
// being sent.
func sendingWithCorrection(t *testing.T, open Opener, owner string) (*fixture, outbox.NewResult, outbox.Item) {
	t.Helper()
	f := newFixture(t, open)
	v6 := result("cv", "e1", "P1", "grade 6")
	require.Equal(t, outbox.Queued, f.enqueue(v6, replace))
	sent := f.claim("cv", owner, 1, time.Minute)
	require.Len(t, sent, 1)
	require.Equal(t, outbox.Waiting, f.enqueue(corrected(v6, "grade 8"), replace))
	return f, v6, sent[0]
}

// testCorrectionWhileSending: a corrected completion that arrives while the
// pair's result is being sent is never lost. Whatever ends that send other
// than Coachview's 200 (a retry, a park, a hand-back at shutdown, a crash
// whose lease runs out and is taken again), the correction is what the pair
// sends next and the old body is kept as superseded history; only a 200
// makes the correction ignored. Found at an independent Coachview stand-in:
// a correction that arrived mid-send was stored as ignored, the send got a
// 503, and the old grade was delivered later.
func testCorrectionWhileSending(t *testing.T, open Opener) {
	ends := []struct {
		name string
		end  func(f *fixture, it outbox.Item)
	}{
		{"503 retry", func(f *fixture, it outbox.Item) {
			f.finish(it.ID, "w1", outbox.StatePending, 503, f.clk.Now().Add(time.Hour))
		}},
		{"500 park", func(f *fixture, it outbox.Item) { f.finish(it.ID, "w1", outbox.StateFailed, 500, time.Time{}) }},
		{"404 retry", func(f *fixture, it outbox.Item) {
			f.finish(it.ID, "w1", outbox.StatePending, 404, f.clk.Now().Add(time.Hour))
		}},
		{"release at shutdown", func(f *fixture, it outbox.Item) {
			require.NoError(f.t, f.s.Release(f.ctx, it.ID, "w1", f.clk.Now().Add(time.Hour)))
		}},
		{"batch 503", func(f *fixture, it outbox.Item) {
			errs, err := f.s.FinishBatch(f.ctx, []outbox.Finish{{ID: it.ID, Owner: "w1", State: outbox.StatePending,
				NextAttemptAt: f.clk.Now().Add(time.Hour), Tries: 1, Attempt: outbox.Attempt{Status: 503}}})
			require.NoError(f.t, err)
			require.NoError(f.t, errs[0])
		}},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, v6, sent := sendingWithCorrection(t, open, "w1")
			v8 := corrected(v6, "grade 8")
			require.Equal(t, outbox.Unchanged, f.enqueue(v8, replace), "read again: nothing new")
			f.clk.Advance(time.Second)
			tc.end(f, sent)

			rows := f.all("cv")
			require.Equal(t, []outbox.State{outbox.StateSuperseded, outbox.StatePending}, states(rows))
			assert.Equal(t, v6.Body, rows[0].Body, "the old version is kept for the operator")
			assert.Contains(t, rows[0].LastError, fmt.Sprintf("#%d", rows[1].ID))
			assert.Zero(t, rows[0].WaitingID)
			next := f.claim("cv", "w2", 10, time.Minute)
			require.Len(t, next, 1, "the correction is due at once")
			assert.Equal(t, v8.Body, next[0].Body, "the next attempt sends the correction")
			assert.Zero(t, next[0].Tries, "with a fresh retry schedule")
		})
	}

	t.Run("200 makes the correction ignored", func(t *testing.T) {
		t.Parallel()
		f, _, sent := sendingWithCorrection(t, open, "w1")
		f.finish(sent.ID, "w1", outbox.StateDelivered, 200, time.Time{})
		rows := f.all("cv")
		require.Equal(t, []outbox.State{outbox.StateDelivered, outbox.StateIgnored}, states(rows))
		assert.Contains(t, rows[1].LastError, fmt.Sprintf("accepted result #%d", sent.ID))
		assert.Zero(t, rows[0].WaitingID)
		assert.Empty(t, f.claim("cv", "w2", 10, time.Minute), "nothing more is sent for the pair")
	})

	t.Run("a crash mid-send resends the body in flight, then the correction", func(t *testing.T) {
		t.Parallel()
		f, v6, sent := sendingWithCorrection(t, open, "dead")
		f.clk.Advance(2 * time.Minute)
		again := f.claim("cv", "w2", 10, time.Minute)
		require.Len(t, again, 1)
		assert.Equal(t, sent.ID, again[0].ID)
		assert.Equal(t, v6.Body, again[0].Body, "Coachview may hold the body in flight: its answer decides")
		assert.True(t, again[0].OutcomeUnknown, "the dead owner may have sent it")
		f.finish(again[0].ID, "w2", outbox.StatePending, 503, f.clk.Now())
		next := f.claim("cv", "w3", 10, time.Minute)
		require.Len(t, next, 1)
		assert.Equal(t, corrected(v6, "grade 8").Body, next[0].Body)
		assert.True(t, next[0].OutcomeUnknown, "the pair keeps the mark: Coachview may have the old body")
	})

	t.Run("later completions while one waits", func(t *testing.T) {
		t.Parallel()
		f, v6, sent := sendingWithCorrection(t, open, "w1")
		require.Equal(t, outbox.Waiting, f.enqueue(corrected(v6, "grade 9"), replace), "the newest waits in the same row")
		rows := f.all("cv")
		require.Equal(t, []outbox.State{outbox.StateSending, outbox.StateWaiting}, states(rows))
		assert.Equal(t, corrected(v6, "grade 9").Body, rows[1].Body)

		require.Equal(t, outbox.Unchanged, f.enqueue(v6, replace), "back to the body in flight")
		rows = f.all("cv")
		require.Equal(t, []outbox.State{outbox.StateSending, outbox.StateSuperseded}, states(rows), "the waiting one is withdrawn")
		f.finish(sent.ID, "w1", outbox.StatePending, 503, f.clk.Now())
		next := f.claim("cv", "w2", 10, time.Minute)
		require.Len(t, next, 1)
		assert.Equal(t, v6.Body, next[0].Body)
	})

	t.Run("the operator may cancel a waiting correction", func(t *testing.T) {
		t.Parallel()
		f, v6, sent := sendingWithCorrection(t, open, "w1")
		waiting := f.all("cv")[1]
		require.NoError(t, f.s.Cancel(f.ctx, waiting.ID, f.clk.Now()))
		f.finish(sent.ID, "w1", outbox.StatePending, 503, f.clk.Now())
		rows := f.all("cv")
		require.Equal(t, []outbox.State{outbox.StatePending, outbox.StateCancelled}, states(rows))
		assert.Equal(t, v6.Body, rows[0].Body)
		assert.Equal(t, "cancelled by the operator while it waited", rows[1].LastError, "not the stale note that it waits")
	})
}

// testOutcomeUnknown: the mark that an attempt's outcome is unknown is set
// by a Finish that says so and by a claim that takes an expired lease, kept
// across later attempts and replacements, and reset by the operator's
// retry; a probably-delivered row holds the pair, is not claimed, and the
// operator confirms or retries it.
func testOutcomeUnknown(t *testing.T, open Opener) {
	f := newFixture(t, open)
	r := result("cv", "e1", "P1", "v1")
	f.enqueue(r, replace)
	it := f.claim("cv", "w1", 1, time.Minute)[0]
	assert.False(t, it.OutcomeUnknown)
	require.NoError(t, f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: "w1", State: outbox.StatePending,
		NextAttemptAt: f.clk.Now(), Tries: 1, LastClass: "transient", OutcomeUnknown: true,
		Attempt: outbox.Attempt{Class: "transient", Error: "timeout"}}))
	it = f.claim("cv", "w1", 1, time.Minute)[0]
	assert.True(t, it.OutcomeUnknown, "a timeout leaves the outcome unknown")
	require.NoError(t, f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: "w1", State: outbox.StatePending,
		NextAttemptAt: f.clk.Now(), Tries: 2, Attempt: outbox.Attempt{Status: 503}}))
	assert.True(t, f.get(it.ID).OutcomeUnknown, "a later answer does not clear it: Coachview may hold the earlier attempt")

	it = f.claim("cv", "w1", 1, time.Minute)[0]
	require.NoError(t, f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: "w1", State: outbox.StateProbablyDelivered,
		Tries: 3, LastError: "404 after an unknown outcome", Attempt: outbox.Attempt{Status: 404}}))
	got := f.get(it.ID)
	assert.Equal(t, outbox.StateProbablyDelivered, got.State)
	assert.Empty(t, f.claim("cv", "w1", 10, time.Minute), "not retried")
	assert.Equal(t, outbox.Ignored, f.enqueue(corrected(r, "v2"), replace), "it holds the pair")
	assert.Equal(t, 1, mustCounts(t, f)[outbox.StateProbablyDelivered])

	require.NoError(t, f.s.Retry(f.ctx, it.ID, f.clk.Now()))
	got = f.get(it.ID)
	assert.Equal(t, outbox.StatePending, got.State)
	assert.False(t, got.OutcomeUnknown, "the operator's retry starts afresh")
	it = f.claim("cv", "w1", 1, time.Minute)[0]
	require.NoError(t, f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: "w1", State: outbox.StateProbablyDelivered,
		Tries: 1, Attempt: outbox.Attempt{Status: 404}}))
	require.NoError(t, f.s.Confirm(f.ctx, it.ID, f.clk.Now()))
	got = f.get(it.ID)
	assert.Equal(t, outbox.StateDelivered, got.State)
	sameTime(t, f.clk.Now(), got.DeliveredAt, "DeliveredAt")
	assert.ErrorIs(t, f.s.Confirm(f.ctx, it.ID, f.clk.Now()), outbox.ErrState, "only a probably-delivered row is confirmed")

	t.Run("an expired lease taken over", func(t *testing.T) {
		f := newFixture(t, open)
		f.enqueue(result("cv", "e1", "P2", "v1"), replace)
		first := f.claim("cv", "dead", 1, time.Minute)[0]
		assert.False(t, first.OutcomeUnknown)
		f.clk.Advance(2 * time.Minute)
		taken := f.claim("cv", "w2", 1, time.Minute)[0]
		assert.True(t, taken.OutcomeUnknown, "the dead owner may have sent it")
		assert.True(t, f.get(taken.ID).OutcomeUnknown, "and the store says so too")
	})
}

// mustCounts returns the store's counts over all targets.
func mustCounts(t *testing.T, f *fixture) map[outbox.State]int {
	t.Helper()
	c, err := f.s.Counts(f.ctx, "")
	require.NoError(t, err)
	return c
}

// testIgnoredRecordedOnceEverywhere: with replace_pending off, reading the
// same different completion again at every poll records it once, on every
// backend. SQLite used to add an ignored row per poll where PostgreSQL
// recorded one.
func testIgnoredRecordedOnceEverywhere(t *testing.T, open Opener) {
	f := newFixture(t, open)
	r := result("cv", "e1", "P1", "v1")
	f.enqueue(r, outbox.EnqueuePolicy{})
	other := corrected(r, "v2")
	assert.Equal(t, outbox.Ignored, f.enqueue(other, outbox.EnqueuePolicy{}))
	for range 3 {
		assert.Equal(t, outbox.Unchanged, f.enqueue(other, outbox.EnqueuePolicy{}))
	}
	f.claim("cv", "w1", 1, time.Minute)
	for range 2 {
		assert.Equal(t, outbox.Unchanged, f.enqueue(other, outbox.EnqueuePolicy{}), "nor while it is being sent")
	}
	assert.Equal(t, []outbox.State{outbox.StateSending, outbox.StateIgnored}, states(f.all("cv")))
}

// attempt is r completed at day (days after Epoch's day) with body.
func attempt(r outbox.NewResult, day int, body string) outbox.NewResult {
	r = corrected(r, body)
	r.CompletedAt = Epoch.AddDate(0, 0, day)
	return r
}

// testEarlierAttemptNeverReplacesALater: an export that lists a person's
// attempts at a course part, a retake's pass after an earlier fail, in any
// order (or a later file that re-reads an old attempt) must not have the
// earlier attempt replace the later one Coachview has not accepted yet:
// Coachview keeps the first result it registers. Found from outside: a
// file with the 20-03 pass above the 14-03 fail queued the fail. An
// earlier attempt is recorded as ignored, naming the newer row; equal or
// unknown times leave the order of arrival to decide (a correction of the
// same attempt).
func testEarlierAttemptNeverReplacesALater(t *testing.T, open Opener) {
	base := result("cv", "e1", "P1", "")
	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open)
		pass := attempt(base, 6, "pass 8")
		require.Equal(t, outbox.Queued, f.enqueue(pass, replace))
		assert.Equal(t, outbox.Ignored, f.enqueue(attempt(base, 0, "fail 4"), replace))
		assert.Equal(t, outbox.Unchanged, f.enqueue(attempt(base, 0, "fail 4"), replace), "read again: recorded once")
		rows := f.all("cv")
		require.Equal(t, []outbox.State{outbox.StatePending, outbox.StateIgnored}, states(rows))
		assert.Equal(t, pass.Body, rows[0].Body)
		assert.Contains(t, rows[1].LastError, fmt.Sprintf("before result #%d", rows[0].ID))

		assert.Equal(t, outbox.Replaced, f.enqueue(attempt(base, 6, "pass 9"), replace), "a correction of the same day replaces")
		assert.Equal(t, outbox.Replaced, f.enqueue(attempt(base, 7, "pass 10"), replace), "a later attempt replaces")
		noDate := corrected(base, "undated")
		noDate.CompletedAt = time.Time{}
		assert.Equal(t, outbox.Replaced, f.enqueue(noDate, replace), "without a time, arrival decides")
	})
	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open)
		require.Equal(t, outbox.Queued, f.enqueue(attempt(base, 6, "pass 8"), replace))
		it := f.claim("cv", "w1", 1, time.Minute)[0]
		f.finish(it.ID, "w1", outbox.StateFailed, 500, time.Time{})
		assert.Equal(t, outbox.Ignored, f.enqueue(attempt(base, 0, "fail 4"), replace))
		assert.Equal(t, outbox.StateFailed, f.all("cv")[0].State)
	})
	t.Run("sending, and waiting", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open)
		require.Equal(t, outbox.Queued, f.enqueue(attempt(base, 3, "fail 5"), replace))
		sent := f.claim("cv", "w1", 1, time.Minute)[0]
		assert.Equal(t, outbox.Ignored, f.enqueue(attempt(base, 0, "fail 4"), replace), "older than the one in flight")
		pass := attempt(base, 6, "pass 8")
		require.Equal(t, outbox.Waiting, f.enqueue(pass, replace))
		assert.Equal(t, outbox.Ignored, f.enqueue(attempt(base, 4, "fail 5b"), replace), "older than the one waiting")
		assert.Equal(t, outbox.Unchanged, f.enqueue(attempt(base, 3, "fail 5"), replace),
			"the body in flight read again (a cumulative export) does not withdraw the later one waiting")
		f.finish(sent.ID, "w1", outbox.StatePending, 503, f.clk.Now())
		next := f.claim("cv", "w2", 10, time.Minute)
		require.Len(t, next, 1)
		assert.Equal(t, pass.Body, next[0].Body, "the latest attempt is what the pair sends")
	})
}
