package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

var _ outbox.BatchFinisher = (*Store)(nil)

// FinishBatch records the outcomes of several attempts in one transaction;
// see outbox.BatchFinisher. It takes three round trips whatever the batch
// size: one UPDATE of every row still leased to its Finish's owner (each
// row guarded by its own lease, as in Finish), one INSERT of the attempts of
// the rows it updated, and, only when some row was not updated, one SELECT
// that tells a lost lease from a missing row.
func (s *Store) FinishBatch(ctx context.Context, fs []outbox.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	var b finishColumns
	for i, f := range fs {
		if err := outbox.CheckFinish(f); err != nil {
			errs[i] = err
			continue
		}
		b.add(i, f)
	}
	if len(b.index) == 0 {
		return errs, nil
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var updated []int64
		if err := tx.SelectContext(ctx, &updated, finishBatchUpdate,
			pq.Array(b.id), pq.Array(b.state), pq.Array(b.tries), pq.Array(b.streak), pq.Array(b.streakSince),
			pq.Array(b.lastClass), pq.Array(b.status), pq.Array(b.lastError), pq.Array(b.due), pq.Array(b.owner),
			now.UnixMilli()); err != nil {
			return fmt.Errorf("update rows: %w", err)
		}
		done := make(map[int64]bool, len(updated))
		for _, id := range updated {
			done[id] = true
		}
		var a attemptColumns
		var missed []int64
		for j, i := range b.index {
			f := fs[i]
			if !done[f.ID] {
				missed = append(missed, f.ID)
				continue
			}
			at := f.Attempt.At
			if at.IsZero() {
				at = now
			}
			a.add(f, b.id[j], at)
		}
		if len(a.resultID) > 0 {
			if _, err := tx.ExecContext(ctx, finishBatchAttempts, pq.Array(a.resultID), pq.Array(a.at), pq.Array(a.status),
				pq.Array(a.class), pq.Array(a.response), pq.Array(a.errText), pq.Array(a.duration)); err != nil {
				return fmt.Errorf("record attempts: %w", err)
			}
		}
		if len(missed) == 0 {
			return nil
		}
		return s.classifyMissed(ctx, tx, fs, b.index, done, missed, errs)
	})
	if err != nil {
		return nil, fmt.Errorf("finish %d results in one transaction: %w", len(fs), err)
	}
	return errs, nil
}

// classifyMissed sets the error of every Finish whose row the update did not
// touch: ErrNotFound when the row is gone, else ErrLeaseLost.
func (s *Store) classifyMissed(ctx context.Context, tx *sqlx.Tx, fs []outbox.Finish, index []int, done map[int64]bool, missed []int64, errs []error) error {
	var rows []struct {
		ID    int64  `db:"id"`
		State string `db:"state"`
	}
	if err := tx.SelectContext(ctx, &rows, `SELECT id, state FROM results WHERE id = ANY($1)`, pq.Array(missed)); err != nil {
		return fmt.Errorf("read the states of rows not updated: %w", err)
	}
	states := make(map[int64]string, len(rows))
	for _, r := range rows {
		states[r.ID] = r.State
	}
	for _, i := range index {
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

// finishBatchUpdate applies many Finishes at once, each row guarded by its
// own lease, and returns the ids it updated.
const finishBatchUpdate = `UPDATE results r SET
	state = v.state, tries = v.tries, streak = v.streak, streak_since = v.streak_since,
	last_class = v.last_class, last_status = v.last_status, last_error = v.last_error,
	next_attempt_at = v.next_attempt_at, lease_owner = '', lease_until = NULL,
	delivered_at = CASE WHEN v.state = 'delivered' THEN $11::bigint END, updated_at = $11::bigint
	FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::integer[], $5::bigint[], $6::text[], $7::integer[],
		$8::text[], $9::bigint[], $10::text[])
		AS v(id, state, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at, owner)
	WHERE r.id = v.id AND r.state = 'sending' AND r.lease_owner = v.owner
	RETURNING r.id`

// finishBatchAttempts records the attempts of the rows FinishBatch updated.
const finishBatchAttempts = `INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[], $4::text[], $5::text[], $6::text[], $7::bigint[])`

// finishColumns are the valid Finishes of a batch as column arrays; index
// maps each entry back to its position in the batch.
type finishColumns struct {
	index       []int
	id          []int64
	state       []string
	tries       []int64
	streak      []int64
	streakSince []sql.NullInt64
	lastClass   []string
	status      []int64
	lastError   []string
	due         []sql.NullInt64
	owner       []string
}

func (c *finishColumns) add(i int, f outbox.Finish) {
	var due sql.NullInt64
	if f.State == outbox.StatePending {
		due = sqlcore.Millis(f.NextAttemptAt)
	}
	c.index = append(c.index, i)
	c.id = append(c.id, f.ID)
	c.state = append(c.state, string(f.State))
	c.tries = append(c.tries, int64(f.Tries))
	c.streak = append(c.streak, int64(f.Streak))
	c.streakSince = append(c.streakSince, sqlcore.Millis(f.StreakSince))
	c.lastClass = append(c.lastClass, validText(f.LastClass))
	c.status = append(c.status, int64(f.Attempt.Status))
	c.lastError = append(c.lastError, validText(f.LastError))
	c.due = append(c.due, due)
	c.owner = append(c.owner, f.Owner)
}

// attemptColumns are the attempts to record, as column arrays.
type attemptColumns struct {
	resultID []int64
	at       []int64
	status   []int64
	class    []string
	response []string
	errText  []string
	duration []int64
}

func (c *attemptColumns) add(f outbox.Finish, id int64, at time.Time) {
	c.resultID = append(c.resultID, id)
	c.at = append(c.at, at.UnixMilli())
	c.status = append(c.status, int64(f.Attempt.Status))
	c.class = append(c.class, validText(f.Attempt.Class))
	c.response = append(c.response, excerpt(f.Attempt.Response))
	c.errText = append(c.errText, validText(f.Attempt.Error))
	c.duration = append(c.duration, int64(f.Attempt.Duration))
}
