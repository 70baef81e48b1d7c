package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

var _ outbox.BatchFinisher = (*Store)(nil)

// FinishBatch records the outcomes of several attempts in one transaction,
// one fsync for all of them; see outbox.BatchFinisher. The batch runs one
// UPDATE statement, prepared once, per row (each row guarded by its own
// lease, as in Finish) and, for each row it updated, one prepared INSERT of
// its attempt; only when some row was not updated does a SELECT tell a lost
// lease from a missing row.
func (s *Store) FinishBatch(ctx context.Context, fs []outbox.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	valid := make([]int, 0, len(fs))
	for i, f := range fs {
		if err := outbox.CheckFinish(f); err != nil {
			errs[i] = err
			continue
		}
		valid = append(valid, i)
	}
	if len(valid) == 0 {
		return errs, nil
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		return s.finishRows(ctx, tx, fs, valid, now.UnixMilli(), errs)
	})
	if err != nil {
		return nil, fmt.Errorf("finish %d results in one transaction: %w", len(fs), err)
	}
	return errs, nil
}

// finishRows applies the Finishes fs[i] for i in chunk, setting errs[i]
// for the rows whose lease was lost or that are gone.
func (s *Store) finishRows(ctx context.Context, tx *sqlx.Tx, fs []outbox.Finish, chunk []int, now int64, errs []error) error {
	update, err := s.stmts.InTx(ctx, tx, finishUpdate)
	if err != nil {
		return err
	}
	insert, err := s.stmts.InTx(ctx, tx, insertAttempt)
	if err != nil {
		return err
	}
	done := make(map[int64]bool, len(chunk))
	var missed []int64
	for _, i := range chunk {
		f := fs[i]
		var due, delivered sql.NullInt64
		switch f.State {
		case outbox.StatePending:
			due = sqlcore.Millis(f.NextAttemptAt)
		case outbox.StateDelivered:
			delivered = sql.NullInt64{Int64: now, Valid: true}
		}
		res, err := update.ExecContext(ctx, string(f.State), f.Tries, f.Streak, sqlcore.Millis(f.StreakSince), f.LastClass,
			f.Attempt.Status, f.LastError, due, delivered, now, f.ID, f.Owner)
		if err != nil {
			return fmt.Errorf("update row #%d: %w", f.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update row #%d: %w", f.ID, err)
		}
		if n != 1 {
			missed = append(missed, f.ID)
			continue
		}
		done[f.ID] = true
		at := f.Attempt.At.UnixMilli()
		if f.Attempt.At.IsZero() {
			at = now
		}
		if _, err := insert.ExecContext(ctx, f.ID, at, f.Attempt.Status, f.Attempt.Class, excerpt(f.Attempt.Response),
			f.Attempt.Error, int64(f.Attempt.Duration)); err != nil {
			return fmt.Errorf("record the attempt of row #%d: %w", f.ID, err)
		}
	}
	if len(missed) == 0 {
		return nil
	}
	query, qargs, err := sqlx.In(`SELECT id, state FROM results WHERE id IN (?)`, missed)
	if err != nil {
		return fmt.Errorf("build state query: %w", err)
	}
	var rows []struct {
		ID    int64  `db:"id"`
		State string `db:"state"`
	}
	if err := tx.SelectContext(ctx, &rows, query, qargs...); err != nil {
		return fmt.Errorf("read the states of rows not updated: %w", err)
	}
	states := make(map[int64]string, len(rows))
	for _, r := range rows {
		states[r.ID] = r.State
	}
	for _, i := range chunk {
		f := fs[i]
		if done[f.ID] {
			continue
		}
		if st, ok := states[f.ID]; ok {
			errs[i] = fmt.Errorf("finish result #%d as %s: row is %s: %w", f.ID, f.State, st, outbox.ErrLeaseLost)
		} else {
			errs[i] = fmt.Errorf("finish result #%d as %s: %w", f.ID, f.State, outbox.ErrNotFound)
		}
	}
	return nil
}

// finishUpdate applies one Finish to its row if the Finish's owner still
// holds the row's lease.
const finishUpdate = `UPDATE results SET
		state = ?, tries = ?, streak = ?, streak_since = ?, last_class = ?, last_status = ?, last_error = ?,
		next_attempt_at = ?, lease_owner = '', lease_until = NULL, delivered_at = ?, updated_at = ?
	WHERE id = ? AND state = 'sending' AND lease_owner = ?`

// insertAttempt records one attempt.
const insertAttempt = `INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
	VALUES (?, ?, ?, ?, ?, ?, ?)`
