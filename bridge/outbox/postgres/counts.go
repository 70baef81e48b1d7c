package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// counters and hoursFrom read the results' counters: the compacted
// tables plus the changes not yet folded in (migration 0009), in one
// statement and so one snapshot. Pending and sending are counted together
// as 'queued' since migration 0011, as on SQLite.
const (
	counters = `SELECT target, state, n FROM result_counts
		UNION ALL SELECT target, state, entered - left_n FROM result_changes`
	hoursFrom = `SELECT target, hour, delivered, failed, backlog FROM result_hours
		UNION ALL SELECT target, hour,
			CASE WHEN state = 'delivered' THEN entered ELSE 0 END,
			CASE WHEN state = 'failed' THEN entered ELSE 0 END,
			CASE WHEN state = 'queued' THEN entered - left_n ELSE 0 END
		FROM result_changes`
)

// compactLockKey is the advisory lock one compaction at a time holds
// (the migration lock's key plus one).
const compactLockKey = migrationLockKey + 1

// compactEvery is how often compact folds result_changes in at most.
const compactEvery = 10 * time.Second

// compactQuery deletes every committed result_changes row and adds the
// rows it deleted to result_counts and result_hours, in one statement. A
// change committed meanwhile is not seen, so neither deleted nor added:
// the next compaction takes it.
const compactQuery = `WITH moved AS (
		DELETE FROM result_changes RETURNING target, state, hour, entered, left_n
	), counted AS (
		INSERT INTO result_counts (target, state, n)
		SELECT target, state, SUM(entered - left_n) FROM moved GROUP BY target, state ORDER BY target, state
		ON CONFLICT (target, state) DO UPDATE SET n = result_counts.n + excluded.n
	)
	INSERT INTO result_hours (target, hour, delivered, failed, backlog)
	SELECT target, hour,
		SUM(CASE WHEN state = 'delivered' THEN entered ELSE 0 END),
		SUM(CASE WHEN state = 'failed' THEN entered ELSE 0 END),
		SUM(CASE WHEN state = 'queued' THEN entered - left_n ELSE 0 END)
	FROM moved GROUP BY target, hour ORDER BY target, hour
	ON CONFLICT (target, hour) DO UPDATE SET delivered = result_hours.delivered + excluded.delivered,
		failed = result_hours.failed + excluded.failed, backlog = result_hours.backlog + excluded.backlog`

// compact folds result_changes into result_counts and result_hours, at
// most every compactEvery, in one transaction that holds an advisory lock:
// a daemon that finds another compacting leaves it to that one.
func (s *Store) compact(ctx context.Context) error {
	last := s.compacted.Load()
	now := time.Now().UnixNano()
	if now-last < int64(compactEvery) || !s.compacted.CompareAndSwap(last, now) {
		return nil
	}
	return s.Compact(ctx)
}

// Compact folds every committed result_changes row into result_counts and
// result_hours now, unless another transaction is doing so. Reads are
// right without it; it keeps them short.
func (s *Store) Compact(ctx context.Context) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("compact result counters: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var locked bool
	if err := tx.GetContext(ctx, &locked, `SELECT pg_try_advisory_xact_lock($1)`, compactLockKey); err != nil {
		return fmt.Errorf("compact result counters: %w", err)
	}
	if !locked {
		return nil
	}
	if _, err := tx.ExecContext(ctx, compactQuery); err != nil {
		return fmt.Errorf("compact result counters: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("compact result counters: %w", err)
	}
	return nil
}

// finishCounts adds a finish's own transitions to the counters (migration
// 0011) as result_changes rows, appended like the triggers' so that
// concurrent finishes never wait on one counter row. The batch finish
// (finishBatchQuery) counts its rows in its own statement.
var finishCounts = sqlcore.FinishCounts{
	MovedIDs: `SELECT value::bigint FROM json_array_elements_text(?::json)`,
	Add: func(exec sqlcore.Exec, moved []sqlcore.Moved, hour int64) error {
		for _, m := range moved {
			if err := exec(`INSERT INTO result_changes (target, state, hour, entered, left_n)
				VALUES (?, ?, ?, ?, 0), (?, 'queued', ?, 0, ?)`, m.Target, string(m.State), hour, m.N, m.Target, hour, m.N); err != nil {
				return fmt.Errorf("%d results of target %q %s: %w", m.N, m.Target, m.State, err)
			}
		}
		return nil
	},
}
