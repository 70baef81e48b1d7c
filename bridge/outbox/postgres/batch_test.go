package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

func TestBatchConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunBatch(t, func(t *testing.T, clk clock.Clock) outbox.Store {
		return open(t, testdb.Postgres(t), postgres.WithClock(clk), postgres.WithLeasesOnStoreClock())
	})
}

// TestSmallFinishBatchesArePlannedOnce: a trickle of results, and a drain
// that records each outcome as soon as it is known, finish one or two rows
// at a time. The batch finish is a prepared statement; the server must
// keep one plan for it instead of planning it anew at every call. Found
// with pg_stat_statements on the strict drain: 10,046 plans for 10,044
// calls, about 0.16 ms each, more than the rest of a small batch's work.
// (With the arrays bound, a custom plan saw their length and always looked
// cheaper than the generic plan, which assumes ten rows.) With 20,000 rows
// of history and few pending the server kept the generic plan already, so
// the test drains a backlog.
func TestSmallFinishBatchesArePlannedOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	clk := clock.NewFake(outboxtest.Epoch)
	s := open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock(), postgres.WithMaxConns(1))
	const finishes = 30
	enqueueN(t, s, "cv", "backlog", 5000) // a backlog, as a drain finds it
	items, err := s.Claim(ctx, "cv", "w", 2*finishes, clk.Now(), time.Hour)
	require.NoError(t, err)
	require.Len(t, items, 2*finishes)
	for i := range finishes {
		batch := items[:1]
		if i%2 == 1 {
			batch = items[:2]
		}
		items = items[len(batch):]
		finishDelivered(t, s, "w", batch)
	}
	generic, custom, err := s.PreparedPlans(ctx, "AS v(id, state, tries")
	require.NoError(t, err)
	require.Equal(t, int64(finishes), generic+custom, "the batch finish is a prepared statement of the store's one connection")
	// PostgreSQL plans a statement's first five executions for their
	// parameters before it compares them with the generic plan.
	assert.LessOrEqual(t, custom, int64(5), "custom plans of %d batch finishes (%d generic)", finishes, generic)
	counts, err := s.Counts(ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, 45, counts[outbox.StateDelivered])
}

// TestDrainAfterTrickleAndIntakeScansNoRows: a new installation sends a
// few results one by one, then sources deliver thousands, in one batch or
// in many small ones. The drain of that intake reads no table rows
// sequentially, by the server's own counters. Found: the batch finish's
// generic plan, made while the table held a handful of rows, joined by a
// sequential scan and was kept; 20,000 results then took 25 s to drain and
// the server read 325 million rows, until autovacuum analysed the table.
func TestDrainAfterTrickleAndIntakeScansNoRows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		batches, batch int
	}{{"one batch", 1, 5000}, {"many batches", 50, 100}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			drainAfterTrickleAndIntake(t, tc.batches, tc.batch)
		})
	}
}

func drainAfterTrickleAndIntake(t *testing.T, batches, batch int) {
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	clk := clock.NewFake(outboxtest.Epoch)
	s := open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock(), postgres.WithMaxConns(2))
	db := raw(t, dsn)
	_, err := db.ExecContext(ctx, `ALTER TABLE results SET (autovacuum_enabled = false)`)
	require.NoError(t, err)
	drain := func(batch int) {
		t.Helper()
		for {
			items, err := s.Claim(ctx, "cv", "w", batch, clk.Now(), time.Hour)
			require.NoError(t, err)
			if len(items) == 0 {
				return
			}
			finishDelivered(t, s, "w", items)
		}
	}
	const trickle = 10
	for i := range trickle {
		enqueueN(t, s, "cv", fmt.Sprintf("trickle%d-", i), 1)
		drain(1)
	}
	for i := range batches {
		enqueueN(t, s, "cv", fmt.Sprintf("intake%d-", i), batch)
	}
	intake := batches * batch
	drain(18)

	// A claim and a finish update each row.
	stats := serverTableStats(t, db, "results", func(st tableStats) bool { return st.Updated >= int64(2*(trickle+intake)) })
	assert.Less(t, stats.SeqRead, int64(intake), "rows read by sequential scans: a batch finish scanned the table")
	counts, err := s.Counts(ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, trickle+intake, counts[outbox.StateDelivered])
}

// finishDelivered records items, claimed by owner, as delivered in one batch.
func finishDelivered(t *testing.T, s *postgres.Store, owner string, items []outbox.Item) {
	t.Helper()
	fs := make([]outbox.Finish, len(items))
	for j, it := range items {
		fs[j] = outbox.Finish{ID: it.ID, Owner: owner, State: outbox.StateDelivered, Tries: 1,
			Attempt: outbox.Attempt{Status: 200, Class: "delivered"}}
	}
	errs, err := s.FinishBatch(t.Context(), fs)
	require.NoError(t, err)
	for _, err := range errs {
		require.NoError(t, err)
	}
}
