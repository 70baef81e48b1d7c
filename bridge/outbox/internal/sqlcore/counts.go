package sqlcore

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// hourMillis is the length of a result_hours bucket in Unix milliseconds.
const hourMillis = int64(time.Hour / time.Millisecond)

// keptHours is how long the purge keeps result_hours rows: the charts
// show a day, and a week leaves room for clocks and longer views.
const keptHours = 7 * 24 * time.Hour

// countsQuery returns the statement Counts and Hours read the counts of
// rows per (target, state) from: the counters of Config.Counters (default
// result_counts), whose 'queued' rows hold pending and sending together.
// Sending is counted live, the few rows in flight of each target with a
// backlog found through results_target_state, and pending is queued less
// sending. One statement, so one snapshot.
func countsQuery(counters string) string {
	if counters == "" {
		counters = `SELECT target, state, n FROM result_counts`
	}
	return `SELECT target, CASE WHEN state = 'queued' THEN 'pending' ELSE state END AS state, n FROM (` + counters + `) c
		UNION ALL
		SELECT q.target, s.state, s.sign * (SELECT COUNT(*) FROM results r WHERE r.target = q.target AND r.state = 'sending')
		FROM (SELECT DISTINCT target FROM (` + counters + `) c WHERE state = 'queued') q
		CROSS JOIN (SELECT 'sending' AS state, 1 AS sign UNION ALL SELECT 'pending', -1) s`
}

// Counts returns the number of rows of target ("" for all targets) in each
// state; every state is present in the map, zero when it has no rows. It
// reads the counters the schema's triggers keep (countsQuery), a few
// rows per target whatever the size of the outbox.
func (b *Base) Counts(ctx context.Context, target string) (map[outbox.State]int, error) {
	b.compact(ctx)
	query := `SELECT state, SUM(n) AS n FROM (` + b.countsFrom + `) c`
	var args []any
	if target != "" {
		query += ` WHERE target = ?`
		args = append(args, target)
	}
	query += ` GROUP BY state`
	var rows []struct {
		State string `db:"state"`
		N     int    `db:"n"`
	}
	if err := b.db.SelectContext(ctx, &rows, b.q(query), args...); err != nil {
		return nil, fmt.Errorf("count results of target %q: %w", target, err)
	}
	counts := make(map[outbox.State]int, len(outbox.States))
	for _, st := range outbox.States {
		counts[st] = 0
	}
	for _, r := range rows {
		counts[outbox.State(r.State)] = r.N
	}
	return counts, nil
}

// Unfinished returns, per target, how many of its results are not done
// (pending, sending, waiting, failed or probably delivered), for the
// targets that have any, from the counters as Counts reads them.
func (b *Base) Unfinished(ctx context.Context) (map[string]int, error) {
	b.compact(ctx)
	var rows []struct {
		Target string `db:"target"`
		N      int    `db:"n"`
	}
	err := b.db.SelectContext(ctx, &rows, `SELECT target, SUM(n) AS n FROM (`+b.countsFrom+`) c
		WHERE state IN ('pending', 'sending', 'waiting', 'failed', 'probably-delivered') GROUP BY target HAVING SUM(n) > 0`)
	if err != nil {
		return nil, fmt.Errorf("count the unfinished results per target: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Target] = r.N
	}
	return out, nil
}

// Hours returns target's delivery history from since's hour to now's, one
// outbox.Hour per hour, oldest first. Deliveries and parkings are read as
// counted per hour; the backlog at an hour's end is today's backlog less
// the net change of every later hour, read from the same snapshot.
func (b *Base) Hours(ctx context.Context, target string, since, now time.Time) ([]outbox.Hour, error) {
	first, last := since.UnixMilli()/hourMillis, now.UnixMilli()/hourMillis
	if last < first {
		return nil, fmt.Errorf("history of target %q: %s is before %s", target, now.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	b.compact(ctx)
	var backlog int64
	var rows []struct {
		Hour      int64 `db:"hour"`
		Delivered int64 `db:"delivered"`
		Failed    int64 `db:"failed"`
		Backlog   int64 `db:"backlog"`
	}
	err := b.readTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &backlog, b.q(`SELECT COALESCE(SUM(n), 0) FROM (`+b.countsFrom+`) c
			WHERE target = ? AND state IN ('pending', 'sending')`), target)
		if err != nil {
			return err
		}
		// Later hours than now's (a clock set back) count towards the net
		// change after each hour shown.
		return tx.SelectContext(ctx, &rows, b.q(`SELECT hour, SUM(delivered) AS delivered, SUM(failed) AS failed,
			SUM(backlog) AS backlog FROM (`+b.hoursFrom+`) h WHERE target = ? AND hour >= ? GROUP BY hour ORDER BY hour`),
			target, first)
	})
	if err != nil {
		return nil, fmt.Errorf("history of target %q: %w", target, err)
	}
	out := make([]outbox.Hour, last-first+1)
	for i := range out {
		out[i].Start = time.UnixMilli((first + int64(i)) * hourMillis).UTC()
	}
	// Walk back from the newest hour: each hour's end level is the level
	// after it less what the later hours added.
	level := backlog
	j := len(rows) - 1
	for ; j >= 0 && rows[j].Hour > last; j-- {
		level -= rows[j].Backlog
	}
	for i := len(out) - 1; i >= 0; i-- {
		h := first + int64(i)
		out[i].Backlog = int(level)
		if j >= 0 && rows[j].Hour == h {
			out[i].Delivered, out[i].Failed = int(rows[j].Delivered), int(rows[j].Failed)
			level -= rows[j].Backlog
			j--
		}
	}
	return out, nil
}

// compact runs the backend's Config.Compact, if any. A failure is left to
// the next read: the counters read are right without it, only slower to add up.
func (b *Base) compact(ctx context.Context) {
	if b.compactFn != nil {
		_ = b.compactFn(ctx)
	}
}

// pruneHours deletes result_hours rows older than keptHours.
func (b *Base) pruneHours(ctx context.Context, tx *sqlx.Tx) error {
	cutoff := b.now().Add(-keptHours).UnixMilli() / hourMillis
	if _, err := tx.ExecContext(ctx, b.q(`DELETE FROM result_hours WHERE hour < ?`), cutoff); err != nil {
		return fmt.Errorf("delete hours of history before %s: %w",
			time.UnixMilli(cutoff*hourMillis).UTC().Format(time.RFC3339), err)
	}
	return nil
}
