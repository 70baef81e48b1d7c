package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// changes returns result_changes' rows as "target state entered-left"
// lines, in a fixed order.
func changes(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	var rows []string
	require.NoError(t, db.SelectContext(t.Context(), &rows, `SELECT target || ' ' || state || ' ' || entered || '-' || left_n
		FROM result_changes ORDER BY target, state, entered, left_n`))
	return rows
}

// TestDeliveryLeavesCountersToTheFinish: the drain's writes, a claim and
// a finish, queue no trigger work. A claim changes no counter (pending and
// sending are both the backlog); a finish adds its transitions once per
// statement, two result_changes rows per target and state however many
// rows it finished. Before migration 0011 a statement trigger copied every
// row each claim and finish changed into transition tables: a claim of 40
// rows appended "sending 40-0" and "pending 0-40".
func TestDeliveryLeavesCountersToTheFinish(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	clk := clock.NewFake(outboxtest.Epoch)
	s := open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock())
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		for i := range 40 {
			if _, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "csv", ElearningCode: "E1",
				PersonID: fmt.Sprintf("p%d", i), Body: fmt.Appendf(nil, "<r%d/>", i)}, outbox.EnqueuePolicy{}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.Compact(ctx))
	require.Empty(t, changes(t, db))

	items, err := s.Claim(ctx, "cv", "w", 40, clk.Now(), time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 40)
	assert.Empty(t, changes(t, db), "a claim changes no counter")
	outboxtest.AssertCounts(t, s, db)

	// 30 in one batch: 25 delivered, 5 parked, to one statement's counts.
	fs := make([]outbox.Finish, 30)
	for i, it := range items[:30] {
		st := outbox.StateDelivered
		if i >= 25 {
			st = outbox.StateFailed
		}
		fs[i] = outbox.Finish{ID: it.ID, Owner: "w", State: st, Tries: 1, Attempt: outbox.Attempt{Status: 200}}
	}
	errs, err := s.FinishBatch(ctx, fs)
	require.NoError(t, err)
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"cv delivered 25-0", "cv failed 5-0", "cv queued 0-30"}, changes(t, db),
		"one batch: one change per state entered and one out of the backlog")
	outboxtest.AssertCounts(t, s, db)
	require.NoError(t, s.Compact(ctx))

	// One by one, through the shared finish: a retry changes nothing.
	require.NoError(t, s.Finish(ctx, outbox.Finish{ID: items[30].ID, Owner: "w", State: outbox.StatePending, Tries: 1,
		NextAttemptAt: clk.Now().Add(time.Minute), Attempt: outbox.Attempt{Status: 503}}))
	assert.Empty(t, changes(t, db), "a retry stays in the backlog")
	require.NoError(t, s.Finish(ctx, outbox.Finish{ID: items[31].ID, Owner: "w", State: outbox.StateProbablyDelivered, Tries: 1,
		Attempt: outbox.Attempt{Status: 404}}))
	assert.Equal(t, []string{"cv probably-delivered 1-0", "cv queued 0-1"}, changes(t, db))
	require.NoError(t, s.Release(ctx, items[32].ID, "w", clk.Now()))
	assert.Len(t, changes(t, db), 2, "a release stays in the backlog")
	outboxtest.AssertCounts(t, s, db)

	// The operator's changes are counted by the row trigger.
	require.NoError(t, s.Confirm(ctx, items[31].ID, clk.Now()))
	require.NoError(t, s.Compact(ctx))
	outboxtest.AssertCounts(t, s, db)
}

// TestFinishCountsUpgrade: a database an older cvbridge left at schema 10,
// its counters partly folded into result_counts (pending and sending
// apart) and partly still in result_changes, migrates to the backlog
// counted as one: Counts and Hours read what they read before, and follow
// claims and finishes from then on.
func TestFinishCountsUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	require.NoError(t, postgres.SchemaUpTo(ctx, db, 10))

	now := time.Now()
	recent := now.Add(-90 * time.Minute).UnixMilli()
	put := func(target, person string, st outbox.State) {
		_, err := db.ExecContext(ctx, `INSERT INTO results
			(target, connection, elearningcode, person_id, person_key, body, body_hash, state, active, next_attempt_at, created_at, updated_at)
			VALUES ($1, 'csv', 'E1', $2, $2, '<old/>', convert_to($2, 'UTF8'), $3, $4, $5, $5, $5)`,
			target, person, string(st), st.Active(), recent)
		require.NoError(t, err)
	}
	for i, st := range outbox.States {
		put("cv", fmt.Sprintf("s%d", i), st)
	}
	for i := range 6 {
		put("cv", fmt.Sprintf("q%d", i), outbox.StatePending)
		put("beta", fmt.Sprintf("b%d", i), outbox.StatePending)
	}
	// Fold what schema 10's triggers counted so far, as its compaction did.
	_, err := db.ExecContext(ctx, `WITH moved AS (
			DELETE FROM result_changes RETURNING target, state, hour, entered, left_n
		), counted AS (
			INSERT INTO result_counts (target, state, n) SELECT target, state, SUM(entered - left_n) FROM moved GROUP BY 1, 2
			ON CONFLICT (target, state) DO UPDATE SET n = result_counts.n + excluded.n
		)
		INSERT INTO result_hours (target, hour, delivered, failed, backlog)
		SELECT target, hour, SUM(CASE WHEN state = 'delivered' THEN entered ELSE 0 END),
			SUM(CASE WHEN state = 'failed' THEN entered ELSE 0 END),
			SUM(CASE WHEN state IN ('pending', 'sending') THEN entered - left_n ELSE 0 END)
		FROM moved GROUP BY 1, 2
		ON CONFLICT (target, hour) DO UPDATE SET delivered = result_hours.delivered + excluded.delivered,
			failed = result_hours.failed + excluded.failed, backlog = result_hours.backlog + excluded.backlog`)
	require.NoError(t, err)
	// Then an older daemon claims four and delivers two: changes not folded in.
	_, err = db.ExecContext(ctx, `UPDATE results SET state = 'sending', lease_owner = 'old', updated_at = $1
		WHERE person_id IN ('q0', 'q1', 'q2', 'q3', 'b0')`, recent)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE results SET state = 'delivered', active = TRUE, lease_owner = '', delivered_at = $1, updated_at = $1
		WHERE person_id IN ('q0', 'q1')`, recent)
	require.NoError(t, err)
	require.NotEmpty(t, changes(t, db))

	s := open(t, dsn)
	outboxtest.AssertCounts(t, s, db)
	history := func() (delivered, backlog int) {
		hours, err := s.Hours(ctx, "cv", now.Add(-3*time.Hour), now)
		require.NoError(t, err)
		for _, h := range hours {
			delivered += h.Delivered
		}
		return delivered, hours[len(hours)-1].Backlog
	}
	delivered, backlog := history()
	assert.Equal(t, 3, delivered, "the delivered row of every state, and the two the old daemon delivered")
	assert.Equal(t, 2+6-2, backlog, "pending and sending of every state, and the six queued less the two delivered")

	claimed, err := s.Claim(ctx, "cv", "w", 10, now, time.Minute)
	require.NoError(t, err)
	require.NotEmpty(t, claimed)
	outboxtest.AssertCounts(t, s, db)
	for _, it := range claimed {
		require.NoError(t, s.Finish(ctx, outbox.Finish{ID: it.ID, Owner: "w", State: outbox.StateDelivered, Tries: 1,
			Attempt: outbox.Attempt{Status: 200}}))
	}
	outboxtest.AssertCounts(t, s, db)
	require.NoError(t, s.Compact(ctx))
	outboxtest.AssertCounts(t, s, db)
	delivered, _ = history()
	assert.Equal(t, 3+len(claimed), delivered)
}
