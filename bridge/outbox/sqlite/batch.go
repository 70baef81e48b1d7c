package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

var _ outbox.BatchFinisher = (*Store)(nil)

// FinishBatch records the outcomes of several attempts in one transaction,
// one fsync for all of them; see outbox.BatchFinisher. The batch takes one
// UPDATE (each row guarded by its own lease, as in Finish) and one INSERT of
// the attempts of the rows it updated, each statement of a fixed text that
// reads the rows from one JSON array parameter (compiling a statement costs
// more than running it); only when some row was not updated does a SELECT
// tell a lost lease from a missing row.
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

// finishJSON is one Finish as finishUpdate reads it from JSON.
type finishJSON struct {
	ID          int64  `json:"id"`
	State       string `json:"state"`
	Tries       int    `json:"tries"`
	Streak      int    `json:"streak"`
	StreakSince *int64 `json:"streak_since"`
	LastClass   string `json:"last_class"`
	LastStatus  int    `json:"last_status"`
	LastError   string `json:"last_error"`
	NextAttempt *int64 `json:"next_attempt_at"`
	Owner       string `json:"owner"`
}

// attemptJSON is one attempt as finishAttempts reads it from JSON.
type attemptJSON struct {
	ResultID int64  `json:"result_id"`
	At       int64  `json:"at"`
	Status   int    `json:"status"`
	Class    string `json:"class"`
	Response string `json:"response"`
	Error    string `json:"error"`
	Duration int64  `json:"duration_ns"`
}

// ptr is v's millisecond value, nil for NULL.
func ptr(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

// finishRows applies the Finishes fs[i] for i in chunk, setting errs[i]
// for the rows whose lease was lost or that are gone.
func (s *Store) finishRows(ctx context.Context, tx *sqlx.Tx, fs []outbox.Finish, chunk []int, now int64, errs []error) error {
	batch := make([]finishJSON, 0, len(chunk))
	for _, i := range chunk {
		f := fs[i]
		var due sql.NullInt64
		if f.State == outbox.StatePending {
			due = sqlcore.Millis(f.NextAttemptAt)
		}
		batch = append(batch, finishJSON{ID: f.ID, State: string(f.State), Tries: f.Tries, Streak: f.Streak,
			StreakSince: ptr(sqlcore.Millis(f.StreakSince)), LastClass: f.LastClass, LastStatus: f.Attempt.Status,
			LastError: f.LastError, NextAttempt: ptr(due), Owner: f.Owner})
	}
	doc, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("encode rows: %w", err)
	}
	var updated []int64
	if err := tx.SelectContext(ctx, &updated, finishUpdate, string(doc), now); err != nil {
		return fmt.Errorf("update rows: %w", err)
	}
	done := make(map[int64]bool, len(updated))
	for _, id := range updated {
		done[id] = true
	}
	attempts := make([]attemptJSON, 0, len(updated))
	var missed []int64
	for _, i := range chunk {
		f := fs[i]
		if !done[f.ID] {
			missed = append(missed, f.ID)
			continue
		}
		at := f.Attempt.At
		if at.IsZero() {
			at = sqlcore.FromMillis(sql.NullInt64{Int64: now, Valid: true})
		}
		attempts = append(attempts, attemptJSON{ResultID: f.ID, At: at.UnixMilli(), Status: f.Attempt.Status,
			Class: f.Attempt.Class, Response: excerpt(f.Attempt.Response), Error: f.Attempt.Error,
			Duration: int64(f.Attempt.Duration)})
	}
	if len(attempts) > 0 {
		doc, err := json.Marshal(attempts)
		if err != nil {
			return fmt.Errorf("encode attempts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, finishAttempts, string(doc)); err != nil {
			return fmt.Errorf("record attempts: %w", err)
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

// finishUpdate applies the Finishes of a JSON array of finishJSON (first
// parameter), each row guarded by its own lease, at now (second parameter,
// Unix milliseconds), and returns the ids it updated.
const finishUpdate = `WITH v AS (
		SELECT value->>'id' AS id, value->>'state' AS state, value->>'tries' AS tries, value->>'streak' AS streak,
			value->>'streak_since' AS streak_since, value->>'last_class' AS last_class,
			value->>'last_status' AS last_status, value->>'last_error' AS last_error,
			value->>'next_attempt_at' AS next_attempt_at, value->>'owner' AS owner
		FROM json_each(?1))
	UPDATE results SET
		state = v.state, tries = v.tries, streak = v.streak, streak_since = v.streak_since,
		last_class = v.last_class, last_status = v.last_status, last_error = v.last_error,
		next_attempt_at = v.next_attempt_at, lease_owner = '', lease_until = NULL,
		delivered_at = CASE WHEN v.state = 'delivered' THEN ?2 END, updated_at = ?2
	FROM v
	WHERE results.id = v.id AND results.state = 'sending' AND results.lease_owner = v.owner
	RETURNING results.id`

// finishAttempts records a JSON array of attemptJSON (its one parameter).
const finishAttempts = `INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
	SELECT value->>'result_id', value->>'at', value->>'status', value->>'class', value->>'response',
		value->>'error', value->>'duration_ns'
	FROM json_each(?)`
