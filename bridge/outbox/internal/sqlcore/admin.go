package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// defaultListLimit is how many rows List returns when the filter sets no limit.
const defaultListLimit = 100

// List returns the rows matching f, newest (highest id) first. Pages follow
// by id: pass the last id of a page as f.AfterID to get the next one.
func (b *Base) List(ctx context.Context, f outbox.Filter) ([]outbox.Item, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, fmt.Errorf("list results: unknown state %q", f.State)
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if f.Connection != "" {
		add("connection = ?", f.Connection)
	}
	if f.State != "" {
		add("state = ?", string(f.State))
	}
	if f.PersonID != "" {
		add("person_key = ?", source.PersonKey(f.PersonID))
	}
	if f.ElearningCode != "" {
		add("elearningcode = ?", f.ElearningCode)
	}
	if f.AfterID > 0 {
		add("id < ?", f.AfterID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	query := `SELECT ` + ResultCols + ` FROM results`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var rows []ResultRow
	if err := b.db.SelectContext(ctx, &rows, b.q(query), args...); err != nil {
		return nil, fmt.Errorf("list results: %w", err)
	}
	return Items(rows), nil
}

// Get returns row id with its attempts, oldest first, read from one snapshot.
func (b *Base) Get(ctx context.Context, id int64) (outbox.Item, []outbox.Attempt, error) {
	var row ResultRow
	var arows []AttemptRow
	err := b.readTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &row, b.q(`SELECT `+ResultCols+` FROM results WHERE id = ?`), id)
		if errors.Is(err, sql.ErrNoRows) {
			return outbox.ErrNotFound
		}
		if err != nil {
			return err
		}
		return tx.SelectContext(ctx, &arows, b.q(`SELECT `+AttemptCols+` FROM attempts WHERE result_id = ? ORDER BY id`), id)
	})
	if err != nil {
		return outbox.Item{}, nil, fmt.Errorf("get result #%d: %w", id, err)
	}
	attempts := make([]outbox.Attempt, len(arows))
	for i, a := range arows {
		attempts[i] = a.Attempt()
	}
	return row.Item(), attempts, nil
}

// Retry makes a failed, probably-delivered, cancelled or pending row pending
// and due at now with a fresh retry schedule (Tries, Streak, StreakSince
// and LastClass reset; LastStatus and LastError kept as the last attempt's
// record). The outcome-unknown mark is reset only on a probably-delivered
// row: retrying it is the operator's word that Coachview lacks the result.
// It refuses, with ErrState, a row in any other state, a row whose XML an
// erasure removed, and a cancelled row whose pair has meanwhile got another
// active row.
func (b *Base) Retry(ctx context.Context, id int64, now time.Time) error {
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		var cur struct {
			State         string `db:"state"`
			Target        string `db:"target"`
			ElearningCode string `db:"elearningcode"`
			PersonKey     string `db:"person_key"`
			HasBody       bool   `db:"has_body"`
		}
		err := tx.GetContext(ctx, &cur, b.q(`SELECT state, target, elearningcode, person_key, body IS NOT NULL AS has_body
			FROM results WHERE id = ?`+b.rowLock), id)
		if errors.Is(err, sql.ErrNoRows) {
			return outbox.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read row: %w", err)
		}
		switch outbox.State(cur.State) {
		case outbox.StatePending, outbox.StateFailed, outbox.StateProbablyDelivered:
		case outbox.StateCancelled:
			var other int64
			err := tx.GetContext(ctx, &other, b.q(`SELECT id FROM results
				WHERE target = ? AND elearningcode = ? AND person_key = ? AND active`),
				cur.Target, cur.ElearningCode, cur.PersonKey)
			if err == nil {
				return fmt.Errorf("the pair has another active result #%d: %w", other, outbox.ErrState)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("look up the pair's active row: %w", err)
			}
		default:
			return fmt.Errorf("it is %s; only failed, probably-delivered, cancelled and pending results can be retried: %w", cur.State, outbox.ErrState)
		}
		if !cur.HasBody {
			return fmt.Errorf("its XML was erased (cvbridge forget): %w", outbox.ErrState)
		}
		// The operator's retry of a probably-delivered row says Coachview
		// does not have it: its 404s are then taken as they come.
		_, err = tx.ExecContext(ctx, b.q(`UPDATE results SET state = 'pending', active = TRUE, tries = 0, streak = 0,
			streak_since = NULL, last_class = '',
			outcome_unknown = CASE WHEN state = 'probably-delivered' THEN FALSE ELSE outcome_unknown END,
			next_attempt_at = ?, updated_at = ? WHERE id = ?`),
			now.UnixMilli(), now.UnixMilli(), id)
		if b.conflict(err) {
			// A concurrent Enqueue gave the pair an active row after the check.
			return fmt.Errorf("the pair got another active result meanwhile: %w", outbox.ErrState)
		}
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retry result #%d: %w", id, err)
	}
	return nil
}

// Cancel cancels a pending, failed, probably-delivered or waiting row; any
// other state is ErrState.
func (b *Base) Cancel(ctx context.Context, id int64, now time.Time) error {
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		// A waiting row's note ("waits for result #N") no longer holds.
		res, err := tx.ExecContext(ctx, b.q(`UPDATE results SET state = 'cancelled', active = FALSE, next_attempt_at = NULL, updated_at = ?,
			last_error = CASE WHEN state = 'waiting' THEN 'cancelled by the operator while it waited' ELSE last_error END
			WHERE id = ? AND state IN ('pending', 'failed', 'probably-delivered', 'waiting')`), now.UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		st, missed, err := missedRowState(ctx, tx, res, id)
		if err != nil || !missed {
			return err
		}
		return fmt.Errorf("it is %s; only pending, failed, probably-delivered and waiting results can be cancelled: %w", st, outbox.ErrState)
	})
	if err != nil {
		return fmt.Errorf("cancel result #%d: %w", id, err)
	}
	return nil
}

// Confirm records a probably-delivered row as delivered at now, on the
// operator's word that Coachview has the result; any other state is
// ErrState.
func (b *Base) Confirm(ctx context.Context, id int64, now time.Time) error {
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, b.q(`UPDATE results SET state = 'delivered', delivered_at = ?, updated_at = ?,
			last_error = 'confirmed as delivered by the operator'
			WHERE id = ? AND state = 'probably-delivered'`), now.UnixMilli(), now.UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		st, missed, err := missedRowState(ctx, tx, res, id)
		if err != nil || !missed {
			return err
		}
		return fmt.Errorf("it is %s; only probably-delivered results can be confirmed: %w", st, outbox.ErrState)
	})
	if err != nil {
		return fmt.Errorf("confirm result #%d: %w", id, err)
	}
	return nil
}

// Purge applies the retention to rows last updated before cutoff, oldest
// first: it deletes up to limit rows in a history state (ignored,
// rejected, superseded, cancelled) with their attempts, and erases up to
// limit delivered rows: their bodies and Coachview's responses go, the rows
// stay, as the record that Coachview accepted their pairs (it registers one
// result per pair; a deleted row let a later completion of the pair be sent
// again). It returns how many rows it deleted or erased. Each step is one
// short transaction over its partial index (results_purge, results_erase)
// that, where the backend locks rows, skips rows other transactions hold;
// callers purge in batches until it returns less than limit.
func (b *Base) Purge(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge results: limit %d must be positive", limit)
	}
	n, err := b.purge(ctx, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("purge results updated before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	return int(n), nil
}

// PurgeQuery is Purge's statement, deleting one batch of old history rows
// over the results_purge index, with skipLocked (Config.SkipLocked) appended
// to the subquery choosing them. Its state condition is written as
// SQLite's index has it (migration 0013), which SQLite needs to see that
// the partial index applies; PostgreSQL's, an IN list, follows from it.
func PurgeQuery(skipLocked string) string {
	return `DELETE FROM results WHERE id IN (
	SELECT id FROM results
	WHERE (state = 'ignored' OR state = 'rejected' OR state = 'superseded' OR state = 'cancelled')
		AND updated_at < ?
	ORDER BY updated_at, id
	LIMIT ?` + skipLocked + `)
	RETURNING id`
}

// erasable chooses one batch of old delivered rows that still hold their
// body, over the results_erase index (its condition as the index has it).
const erasable = `SELECT id FROM results WHERE state = 'delivered' AND body IS NOT NULL AND updated_at < ?
	ORDER BY updated_at, id LIMIT ?`

// purge deletes a batch of history rows, then erases a batch of delivered
// rows in a transaction of its own (both under the writer lock).
func (b *Base) purge(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	deleted, err := b.deleteHistory(ctx, cutoff, limit)
	if err != nil {
		return 0, err
	}
	var ids []int64
	err = b.inTx(ctx, func(tx *sqlx.Tx) error {
		// The rows are chosen (and, where the backend locks rows, locked)
		// once, so their responses and bodies go together even while
		// another daemon erases too.
		if err := tx.SelectContext(ctx, &ids, b.eraseQuery, cutoff.UnixMilli(), limit); err != nil || len(ids) == 0 {
			return err
		}
		for _, stmt := range []string{`UPDATE attempts SET response = '' WHERE result_id IN (?)`, `UPDATE results SET body = NULL WHERE id IN (?)`} {
			query, args, err := sqlx.In(stmt, ids)
			if err == nil {
				_, err = tx.ExecContext(ctx, b.q(query), args...)
			}
			if err != nil {
				return fmt.Errorf("erase delivered results and Coachview's responses: %w", err)
			}
		}
		return nil
	})
	return deleted + int64(len(ids)), err
}

// deleteHistory deletes the hours of history older than the charts keep,
// then runs PurgeQuery and deletes the attempts of the rows it deleted, in
// one transaction.
func (b *Base) deleteHistory(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var ids []int64
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := b.pruneHours(ctx, tx); err != nil {
			return err
		}
		if err := tx.SelectContext(ctx, &ids, b.purgeQuery, cutoff.UnixMilli(), limit); err != nil {
			return err
		}
		return DeleteAttempts(ctx, tx, ids)
	})
	return int64(len(ids)), err
}

// attemptsChunk is how many result ids one DELETE of DeleteAttempts names,
// well below either database's limit on a statement's parameters.
const attemptsChunk = 500

// DeleteAttempts deletes the attempts of the results ids, which tx has
// deleted. Nothing else removes them: PostgreSQL's attempts table has no
// foreign key to results since migration 0013, as checking it cost every
// recorded attempt a lookup and a row lock (SQLite's still cascades; this
// then finds nothing left to delete).
func DeleteAttempts(ctx context.Context, tx *sqlx.Tx, ids []int64) error {
	for chunk := range slices.Chunk(ids, attemptsChunk) {
		query, args, err := sqlx.In(`DELETE FROM attempts WHERE result_id IN (?)`, chunk)
		if err == nil {
			_, err = tx.ExecContext(ctx, tx.Rebind(query), args...)
		}
		if err != nil {
			return fmt.Errorf("delete the attempts of %d deleted results: %w", len(ids), err)
		}
	}
	return nil
}
