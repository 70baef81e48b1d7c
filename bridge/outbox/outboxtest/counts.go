package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// CountsOpener returns a new, empty store whose notion of now is clk and
// a connection to the database under it, through which the suite counts
// the results rows itself.
type CountsOpener func(t *testing.T, clk clock.Clock) (outbox.Store, *sqlx.DB)

// Compacter is implemented by a store that folds its counters' changes
// into totals now and then (PostgreSQL); the suite folds them in between
// steps so both the folded and the unfolded counters are checked.
type Compacter interface {
	Compact(ctx context.Context) error
}

// RunCounts checks the counters Counts and Hours read against a real
// COUNT(*) of the results table after every kind of state change a row
// can go through, one after another and concurrently.
func RunCounts(t *testing.T, open CountsOpener) {
	t.Run("EveryTransition", func(t *testing.T) {
		t.Parallel()
		testCountsEveryTransition(t, open)
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		testCountsConcurrent(t, open)
	})
	t.Run("Hours", func(t *testing.T) {
		t.Parallel()
		testCountsHours(t, open)
	})
}

// AssertCounts checks that Counts of every target, and of all targets,
// equals a COUNT(*) of db's results rows per state.
func AssertCounts(t *testing.T, s outbox.Store, db *sqlx.DB) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	var rows []struct {
		Target string `db:"target"`
		State  string `db:"state"`
		N      int    `db:"n"`
	}
	require.NoError(t, db.SelectContext(ctx, &rows, `SELECT target, state, COUNT(*) AS n FROM results GROUP BY target, state`))
	want := map[string]map[outbox.State]int{"": zeroCounts()}
	for _, r := range rows {
		if want[r.Target] == nil {
			want[r.Target] = zeroCounts()
		}
		want[r.Target][outbox.State(r.State)] += r.N
		want[""][outbox.State(r.State)] += r.N
	}
	var targets []string
	require.NoError(t, db.SelectContext(ctx, &targets, `SELECT DISTINCT target FROM result_counts`))
	for _, target := range targets {
		if want[target] == nil {
			want[target] = zeroCounts() // every row of it gone: its counters must say 0
		}
	}
	for target, w := range want {
		got, err := s.Counts(ctx, target)
		require.NoError(t, err)
		assert.Equal(t, w, got, "counts of target %q", target)
	}
}

func zeroCounts() map[outbox.State]int {
	m := make(map[outbox.State]int, len(outbox.States))
	for _, st := range outbox.States {
		m[st] = 0
	}
	return m
}

// countsFixture is a fixture whose check compares the counters with the table.
type countsFixture struct {
	*fixture
	db *sqlx.DB
}

func newCountsFixture(t *testing.T, open CountsOpener) *countsFixture {
	clk := clock.NewFake(Epoch)
	s, db := open(t, clk)
	return &countsFixture{fixture: &fixture{t: t, ctx: t.Context(), clk: clk, s: s}, db: db}
}

// check compares the counters with COUNT(*), before and after folding in
// the changes where the store folds them.
func (f *countsFixture) check(step string) {
	f.t.Helper()
	f.t.Run(step, func(t *testing.T) {
		AssertCounts(t, f.s, f.db)
		if c, ok := f.s.(Compacter); ok {
			require.NoError(t, c.Compact(f.ctx))
			AssertCounts(t, f.s, f.db)
		}
	})
}

func testCountsEveryTransition(t *testing.T, open CountsOpener) {
	f := newCountsFixture(t, open)
	replace := outbox.EnqueuePolicy{ReplacePending: true}
	f.check("empty")

	// Enqueue: queued, unchanged, replaced, ignored, rejected.
	a := result("cv", "E1", "a", "v1")
	require.Equal(t, outbox.Queued, f.enqueue(a, replace))
	require.Equal(t, outbox.Unchanged, f.enqueue(a, replace))
	require.Equal(t, outbox.Replaced, f.enqueue(result("cv", "E1", "a", "v2"), replace))
	require.Equal(t, outbox.Queued, f.enqueue(result("other", "E1", "a", "v1"), replace))
	rej := result("cv", "E2", "r", "x")
	rej.Body, rej.RejectReason = nil, "Score is not a number"
	require.Equal(t, outbox.Rejected, f.enqueue(rej, replace))
	f.check("enqueued")

	// A batch rolled back counts nothing.
	boom := errors.New("boom")
	err := f.s.InTx(f.ctx, func(tx outbox.Tx) error {
		if _, err := tx.Enqueue(f.ctx, result("cv", "E9", "gone", "v1"), replace); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	f.check("rolled back")

	// Claim, then every finish: delivered, retry, parked, probably delivered.
	ids := map[string]int64{}
	for _, p := range []string{"d", "p", "x", "u"} {
		f.enqueue(result("cv", "E3", p, "v1"), replace)
		ids[p] = f.latest(result("cv", "E3", p, "v1")).ID
	}
	ids["a"] = f.latest(a).ID
	claimed := f.claim("cv", "w1", 100, time.Minute)
	require.Len(t, claimed, 5)
	f.check("claimed")
	f.clk.Advance(time.Second)
	f.finish(ids["d"], "w1", outbox.StateDelivered, 200, time.Time{})
	f.finish(ids["p"], "w1", outbox.StatePending, 503, f.clk.Now().Add(time.Minute))
	f.finish(ids["x"], "w1", outbox.StateFailed, 400, time.Time{})
	f.finish(ids["u"], "w1", outbox.StateProbablyDelivered, 404, time.Time{})
	require.NoError(t, f.s.Release(f.ctx, ids["a"], "w1", f.clk.Now()))
	f.check("finished")

	// A new completion of a delivered pair is ignored; of a parked one replaces it.
	require.Equal(t, outbox.Ignored, f.enqueue(result("cv", "E3", "d", "v2"), replace))
	require.Equal(t, outbox.Replaced, f.enqueue(result("cv", "E3", "x", "v2"), replace))
	f.check("ignored and replaced")

	// The operator: cancel, retry of a cancelled and a probably-delivered row, confirm.
	require.NoError(t, f.s.Cancel(f.ctx, ids["x"], f.clk.Now()))
	require.NoError(t, f.s.Retry(f.ctx, ids["x"], f.clk.Now()))
	require.NoError(t, f.s.Retry(f.ctx, ids["u"], f.clk.Now()))
	f.check("cancelled and retried")
	for _, it := range f.claim("cv", "w2", 100, time.Minute) {
		if it.ID == ids["u"] {
			f.finish(it.ID, "w2", outbox.StateProbablyDelivered, 404, time.Time{})
		} else {
			require.NoError(t, f.s.Release(f.ctx, it.ID, "w2", f.clk.Now()))
		}
	}
	require.NoError(t, f.s.Confirm(f.ctx, ids["u"], f.clk.Now()))
	f.check("confirmed")

	// A correction while sending waits, then is superseded (a retry) or
	// ignored (a 200); a lease taken over keeps its row sending.
	for i, end := range []outbox.State{outbox.StatePending, outbox.StateDelivered, outbox.StateFailed} {
		person := fmt.Sprintf("w%d", i)
		f.enqueue(result("cv", "E4", person, "v1"), replace)
		id := f.latest(result("cv", "E4", person, "v1")).ID
		f.clk.Advance(time.Second)
		var sent outbox.Item
		for _, it := range f.claim("cv", "w3", 100, time.Minute) {
			if it.ID == id {
				sent = it
			} else {
				require.NoError(t, f.s.Release(f.ctx, it.ID, "w3", f.clk.Now().Add(time.Hour)))
			}
		}
		require.Equal(t, id, sent.ID)
		require.Equal(t, outbox.Waiting, f.enqueue(result("cv", "E4", person, "v2"), replace))
		f.check("waiting " + person)
		if i == 2 {
			f.clk.Advance(2 * time.Minute)
			taken := f.claim("cv", "w4", 100, time.Minute)
			require.NotEmpty(t, taken, "the expired lease is taken over")
			f.check("taken over")
			for _, it := range taken {
				if it.ID != id {
					require.NoError(t, f.s.Release(f.ctx, it.ID, "w4", f.clk.Now().Add(time.Hour)))
				}
			}
			f.finish(id, "w4", end, 500, time.Time{})
		} else {
			f.finish(id, "w3", end, 200, f.clk.Now().Add(time.Minute))
		}
		f.check("settled " + person)
	}
	waiting := result("cv", "E5", "c", "v1")
	f.enqueue(waiting, replace)
	wid := f.latest(waiting).ID
	f.clk.Advance(time.Hour)
	for _, it := range f.claim("cv", "w5", 100, time.Minute) {
		if it.ID != wid {
			require.NoError(t, f.s.Release(f.ctx, it.ID, "w5", f.clk.Now().Add(time.Hour)))
		}
	}
	require.Equal(t, outbox.Waiting, f.enqueue(result("cv", "E5", "c", "v2"), replace))
	require.NoError(t, f.s.Cancel(f.ctx, f.latest(waiting).ID, f.clk.Now()), "the waiting row is cancelled")
	f.check("waiting cancelled")

	// The batch finish: every outcome, rows of two targets, a row whose
	// completion waits (settled within the batch), and a row whose lease
	// another worker holds.
	{
		b := f.s
		require.NoError(t, f.s.Release(f.ctx, wid, "w5", f.clk.Now()))
		for _, p := range []string{"b1", "b2", "b3", "b4", "b5"} {
			f.enqueue(result("cv", "E6", p, "v1"), replace)
			f.enqueue(result("other", "E6", p, "v1"), replace)
		}
		f.clk.Advance(time.Hour)
		claimed := append(f.claim("cv", "w6", 100, time.Minute), f.claim("other", "w6", 100, time.Minute)...)
		require.Greater(t, len(claimed), 8)
		require.Equal(t, outbox.Waiting, f.enqueue(result("cv", "E6", "b1", "v2"), replace))
		outcomes := []outbox.State{outbox.StateDelivered, outbox.StateFailed, outbox.StatePending, outbox.StateProbablyDelivered}
		var fs []outbox.Finish
		for i, it := range claimed {
			owner := "w6"
			if i == len(claimed)-1 {
				owner = "someone else" // lease lost: nothing moves
			}
			fs = append(fs, outbox.Finish{ID: it.ID, Owner: owner, State: outcomes[i%len(outcomes)], Tries: 1,
				NextAttemptAt: f.clk.Now().Add(time.Hour), Attempt: outbox.Attempt{At: f.clk.Now(), Status: 200}})
		}
		errs, err := b.FinishBatch(f.ctx, fs)
		require.NoError(t, err)
		for i, e := range errs {
			if i == len(errs)-1 {
				require.ErrorIs(t, e, outbox.ErrLeaseLost)
				continue
			}
			require.NoError(t, e)
		}
		f.check("batch finished")
	}

	// The purge deletes delivered and history rows.
	f.clk.Advance(48 * time.Hour)
	n, err := f.s.Purge(f.ctx, f.clk.Now(), 1000)
	require.NoError(t, err)
	require.Positive(t, n)
	f.check("purged")
}

// testCountsConcurrent enqueues, claims and finishes from several
// goroutines at once, then compares.
func testCountsConcurrent(t *testing.T, open CountsOpener) {
	f := newCountsFixture(t, open)
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errc := make(chan error, 2*workers)
	for w := range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range rounds {
				r := result("cv", fmt.Sprintf("E%d", i%5), fmt.Sprintf("p%d-%d", w, i%7), fmt.Sprintf("v%d", i))
				if err := f.s.InTx(f.ctx, func(tx outbox.Tx) error {
					_, err := tx.Enqueue(f.ctx, r, outbox.EnqueuePolicy{ReplacePending: true})
					return err
				}); err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("c%d", w)
			for i := range rounds {
				items, err := f.s.Claim(f.ctx, "cv", owner, 3, f.clk.Now(), time.Minute)
				if err != nil {
					errc <- err
					return
				}
				for j, it := range items {
					st := []outbox.State{outbox.StateDelivered, outbox.StatePending, outbox.StateFailed}[(i+j)%3]
					err := f.s.Finish(f.ctx, outbox.Finish{ID: it.ID, Owner: owner, State: st, Tries: 1,
						NextAttemptAt: f.clk.Now(), Attempt: outbox.Attempt{At: f.clk.Now(), Status: 200}})
					if err != nil && !errors.Is(err, outbox.ErrLeaseLost) {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	f.check("after concurrent work")
}

// testCountsHours checks the history the charts read: deliveries and
// parkings in the hour they happened, and the backlog at each hour's end.
func testCountsHours(t *testing.T, open CountsOpener) {
	f := newCountsFixture(t, open)
	start := f.clk.Now()
	for i := range 5 {
		f.enqueue(result("cv", "E1", fmt.Sprintf("p%d", i), "v1"), outbox.EnqueuePolicy{})
	}
	f.enqueue(result("beta", "E1", "b", "v1"), outbox.EnqueuePolicy{})
	f.clk.Advance(time.Hour) // hour 1: one delivered, one parked
	items := f.claim("cv", "w", 2, time.Minute)
	require.Len(t, items, 2)
	f.finish(items[0].ID, "w", outbox.StateDelivered, 200, time.Time{})
	f.finish(items[1].ID, "w", outbox.StateFailed, 400, time.Time{})
	f.clk.Advance(2 * time.Hour) // hour 3: two delivered in one batch, one more queued
	items = f.claim("cv", "w", 2, time.Minute)
	require.Len(t, items, 2)
	{
		var fs []outbox.Finish
		for _, it := range items {
			fs = append(fs, outbox.Finish{ID: it.ID, Owner: "w", State: outbox.StateDelivered, Tries: 1,
				Attempt: outbox.Attempt{At: f.clk.Now(), Status: 200}})
		}
		errs, err := f.s.FinishBatch(f.ctx, fs)
		require.NoError(t, err)
		for _, e := range errs {
			require.NoError(t, e)
		}
	}
	f.enqueue(result("cv", "E1", "late", "v1"), outbox.EnqueuePolicy{})
	f.check("hours")

	hours, err := f.s.Hours(f.ctx, "cv", start.Add(-time.Hour), f.clk.Now())
	require.NoError(t, err)
	require.Len(t, hours, 5)
	type row struct{ Delivered, Failed, Backlog int }
	var got []row
	for i, h := range hours {
		assert.Equal(t, start.Add(time.Duration(i-1)*time.Hour), h.Start)
		got = append(got, row{h.Delivered, h.Failed, h.Backlog})
	}
	assert.Equal(t, []row{{0, 0, 0}, {0, 0, 5}, {1, 1, 3}, {0, 0, 3}, {2, 0, 2}}, got)

	// The same after the counters are folded in, and for the other target.
	if c, ok := f.s.(Compacter); ok {
		require.NoError(t, c.Compact(f.ctx))
		again, err := f.s.Hours(f.ctx, "cv", start.Add(-time.Hour), f.clk.Now())
		require.NoError(t, err)
		assert.Equal(t, hours, again)
	}
	beta, err := f.s.Hours(f.ctx, "beta", start, f.clk.Now())
	require.NoError(t, err)
	require.Len(t, beta, 4)
	for _, h := range beta {
		assert.Equal(t, 1, h.Backlog)
	}
	_, err = f.s.Hours(f.ctx, "cv", f.clk.Now(), start)
	assert.Error(t, err, "now before since")
}
