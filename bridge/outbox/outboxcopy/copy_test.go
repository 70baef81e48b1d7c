package outboxcopy_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxcopy"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

var epoch = time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)

func openSQLite(t *testing.T, clk clock.Clock) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "outbox.db"), sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func openPostgres(t *testing.T, clk clock.Clock) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), testdb.Postgres(t), postgres.WithClock(clk), postgres.WithLeasesOnStoreClock())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// filler drives a store through its public API.
type filler struct {
	t   *testing.T
	s   outbox.Store
	clk *clock.Fake
}

func (f filler) enqueue(target, code, person, body string) outbox.EnqueueOutcome {
	f.t.Helper()
	var out outbox.EnqueueOutcome
	require.NoError(f.t, f.s.InTx(f.t.Context(), func(tx outbox.Tx) error {
		var err error
		out, err = tx.Enqueue(f.t.Context(), outbox.NewResult{Target: target, Connection: "moodle", ElearningCode: code,
			PersonID: person, SourceRef: "ref-" + person, CompletedAt: epoch.Add(-time.Hour),
			Body: []byte(fmt.Sprintf(`<CoachviewResultaat Elearningcode=%q PersoonExterneId=%q>%s</CoachviewResultaat>`, code, person, body))},
			outbox.EnqueuePolicy{})
		return err
	}))
	return out
}

// claimFinish claims target's next due row and finishes it in state with status.
func (f filler) claimFinish(target string, st outbox.State, status int) int64 {
	f.t.Helper()
	ctx := f.t.Context()
	items, err := f.s.Claim(ctx, target, "daemon-1", 1, f.clk.Now(), time.Minute)
	require.NoError(f.t, err)
	require.Len(f.t, items, 1)
	var next time.Time
	if st == outbox.StatePending {
		next = f.clk.Now().Add(10 * time.Minute)
	}
	require.NoError(f.t, f.s.Finish(ctx, outbox.Finish{ID: items[0].ID, Owner: "daemon-1", State: st, NextAttemptAt: next,
		Tries: 1, Streak: 1, StreakSince: f.clk.Now(), LastClass: "class-" + string(st), LastError: "error " + string(st),
		Attempt: outbox.Attempt{At: f.clk.Now(), Status: status, Class: "class-" + string(st), Response: "answer é", Error: "", Duration: 1234 * time.Millisecond}}))
	f.clk.Advance(time.Second)
	return items[0].ID
}

// fill gives s rows in every state, attempts, cursors, marks and a paused
// target, and purges one row so the last id given out exceeds the highest
// id present.
func fill(t *testing.T, s outbox.Store, clk *clock.Fake) {
	ctx := t.Context()
	f := filler{t: t, s: s, clk: clk}
	// delivered after two failed attempts
	require.Equal(t, outbox.Queued, f.enqueue("cv", "e1", "P1", "v1"))
	f.claimFinish("cv", outbox.StatePending, 503)
	clk.Advance(10 * time.Minute)
	f.claimFinish("cv", outbox.StatePending, 0)
	clk.Advance(10 * time.Minute)
	f.claimFinish("cv", outbox.StateDelivered, 200)
	// ignored beside the delivered row
	require.Equal(t, outbox.Ignored, f.enqueue("cv", "e1", "p1", "v2"))
	// failed
	require.Equal(t, outbox.Queued, f.enqueue("cv", "e2", "P2", "v1"))
	f.claimFinish("cv", outbox.StateFailed, 400)
	// rejected
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		out, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "csv", ElearningCode: "e3", PersonID: "P3",
			RejectReason: "Datum is not a date"}, outbox.EnqueuePolicy{})
		require.Equal(t, outbox.Rejected, out)
		return err
	}))
	// sending (claimed, lease running)
	require.Equal(t, outbox.Queued, f.enqueue("cv-test", "e1", "P4", "v1"))
	items, err := s.Claim(ctx, "cv-test", "daemon-2", 1, clk.Now(), time.Hour)
	require.NoError(t, err)
	require.Len(t, items, 1)
	// cancelled, and pending rows
	require.Equal(t, outbox.Queued, f.enqueue("cv", "e4", "P5", "v1"))
	rows, err := s.List(ctx, outbox.Filter{PersonID: "p5"})
	require.NoError(t, err)
	require.NoError(t, s.Cancel(ctx, rows[0].ID, clk.Now()))
	for i := range 5 {
		require.Equal(t, outbox.Queued, f.enqueue("cv", "e5", fmt.Sprintf("Q%d", i), "v1"))
	}
	// the newest row, cancelled long ago and purged: its id stays given out
	require.Equal(t, outbox.Queued, f.enqueue("cv", "e6", "gone", "v1"))
	rows, err = s.List(ctx, outbox.Filter{PersonID: "gone"})
	require.NoError(t, err)
	require.NoError(t, s.Cancel(ctx, rows[0].ID, epoch.Add(-365*24*time.Hour)))
	n, err := s.Purge(ctx, epoch.Add(-24*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		for _, c := range []struct{ conn, cur string }{{"moodle", "c-42"}, {"csv", ""}} {
			if err := tx.SaveCursor(ctx, c.conn, []byte(c.cur)); err != nil {
				return err
			}
		}
		for i := range 7 {
			if err := tx.Mark(ctx, "csv", fmt.Sprintf("file-%d.csv", i)); err != nil {
				return err
			}
		}
		return tx.Mark(ctx, "moodle", "attempt-1")
	}))
	require.NoError(t, s.SetTargetState(ctx, outbox.TargetState{Target: "cv-test", Paused: true,
		Reason: "Coachview answered 403", PausedAt: clk.Now(), NextProbeAt: clk.Now().Add(15 * time.Minute)}))
	require.NoError(t, s.SetTargetState(ctx, outbox.TargetState{Target: "cv"}))
}

// sameContents asserts that b shows everything a shows, through the Store API.
func sameContents(t *testing.T, a, b outbox.Store) {
	t.Helper()
	ctx := t.Context()
	la, err := a.List(ctx, outbox.Filter{Limit: 1000})
	require.NoError(t, err)
	lb, err := b.List(ctx, outbox.Filter{Limit: 1000})
	require.NoError(t, err)
	require.NotEmpty(t, la)
	assert.Equal(t, la, lb, "List")
	for _, it := range la {
		ia, aa, err := a.Get(ctx, it.ID)
		require.NoError(t, err)
		ib, ab, err := b.Get(ctx, it.ID)
		require.NoError(t, err)
		assert.Equal(t, ia, ib, "Get #%d", it.ID)
		assert.Equal(t, aa, ab, "attempts of #%d", it.ID)
	}
	for _, target := range []string{"", "cv", "cv-test"} {
		ca, err := a.Counts(ctx, target)
		require.NoError(t, err)
		cb, err := b.Counts(ctx, target)
		require.NoError(t, err)
		assert.Equal(t, ca, cb, "Counts(%q)", target)
		sa, err := a.TargetState(ctx, target)
		require.NoError(t, err)
		sb, err := b.TargetState(ctx, target)
		require.NoError(t, err)
		assert.Equal(t, sa, sb, "TargetState(%q)", target)
	}
	for _, conn := range []string{"moodle", "csv", "none"} {
		ca, err := a.Cursor(ctx, conn)
		require.NoError(t, err)
		cb, err := b.Cursor(ctx, conn)
		require.NoError(t, err)
		assert.Equal(t, ca, cb, "Cursor(%q)", conn)
	}
	for _, m := range []struct{ conn, mark string }{{"csv", "file-0.csv"}, {"csv", "file-6.csv"}, {"moodle", "attempt-1"}, {"moodle", "file-0.csv"}} {
		ma, err := a.Marked(ctx, m.conn, m.mark)
		require.NoError(t, err)
		mb, err := b.Marked(ctx, m.conn, m.mark)
		require.NoError(t, err)
		assert.Equal(t, ma, mb, "Marked(%q, %q)", m.conn, m.mark)
	}
}

func TestCopySQLiteToPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(epoch)
	src := openSQLite(t, clk)
	fill(t, src, clk)
	dst := openPostgres(t, clk)

	rep, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{BatchSize: 3})
	require.NoError(t, err)
	assert.Equal(t, int64(11), rep.Copied.Results)
	assert.Equal(t, int64(4), rep.Copied.Attempts)
	assert.Equal(t, int64(2), rep.Copied.Cursors)
	assert.Equal(t, int64(8), rep.Copied.Marks)
	assert.Equal(t, int64(2), rep.Copied.TargetStates)
	assert.Equal(t, int64(12), rep.Copied.LastResultID, "the purged newest row's id counts as given out")
	assert.True(t, rep.Replaced.Empty())
	sameContents(t, src, dst)

	// The copy carries on where the source left off.
	f := filler{t: t, s: dst, clk: clk}
	require.Equal(t, outbox.Ignored, f.enqueue("cv", "e1", "P1", "v3"), "the delivered pair is still known")
	require.Equal(t, outbox.Queued, f.enqueue("cv", "e9", "new", "v1"))
	rows, err := dst.List(ctx, outbox.Filter{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []int64{14, 13}, []int64{rows[0].ID, rows[1].ID}, "new ids follow the last id the source gave out")
	items, err := dst.Claim(ctx, "cv-test", "daemon-3", 10, clk.Now().Add(2*time.Hour), time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 1, "the copied sending row's lease runs out as it would have")
	require.NoError(t, dst.Finish(ctx, outbox.Finish{ID: items[0].ID, Owner: "daemon-3", State: outbox.StateDelivered,
		Attempt: outbox.Attempt{Status: 200}}))
	_, attempts, err := dst.Get(ctx, items[0].ID)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	assert.Equal(t, int64(5), attempts[0].ID, "attempt ids follow the copied ones")
}

func TestCopyRefusesANonEmptyTarget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(epoch)
	src := openSQLite(t, clk)
	fill(t, src, clk)
	dst := openPostgres(t, clk)
	other := filler{t: t, s: dst, clk: clk}
	require.Equal(t, outbox.Queued, other.enqueue("elsewhere", "e1", "x", "v1"))

	_, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{})
	require.ErrorIs(t, err, outboxcopy.ErrTargetNotEmpty)
	assert.Contains(t, err.Error(), "1 results")
	rows, err := dst.List(ctx, outbox.Filter{})
	require.NoError(t, err)
	require.Len(t, rows, 1, "the refused target is untouched")
	assert.Equal(t, "elsewhere", rows[0].Target)

	rep, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{Force: true})
	require.NoError(t, err)
	assert.Equal(t, int64(1), rep.Replaced.Results, "the forced copy says what it replaced")
	sameContents(t, src, dst)
}

func TestCopyOfAnEmptyStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(epoch)
	src := openSQLite(t, clk)
	dst := openPostgres(t, clk)
	rep, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{})
	require.NoError(t, err)
	assert.True(t, rep.Copied.Empty())
	f := filler{t: t, s: dst, clk: clk}
	require.Equal(t, outbox.Queued, f.enqueue("cv", "e1", "p1", "v1"))
	rows, err := dst.List(ctx, outbox.Filter{})
	require.NoError(t, err)
	assert.Equal(t, int64(1), rows[0].ID, "ids start at 1")
}
