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

// FinishBatch records the outcomes of several attempts in one statement
// whatever the batch size, in one transaction with the settling of any
// completion that waited for one of these sends (sqlcore.ResolveWaiting);
// see outbox.BatchFinisher. The statement updates every row still leased
// to its Finish's owner (each row guarded by its own lease, as in Finish)
// and, in a data-modifying WITH, inserts the attempts of exactly the rows
// it updated. Only when some row was not updated does a second query tell
// a lost lease from a missing row. It is the one rule the PostgreSQL
// backend writes in its own SQL: one round trip instead of two per row.
func (s *Store) FinishBatch(ctx context.Context, fs []outbox.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	b := finishColumns{excerpt: s.Excerpt}
	now := s.now()
	for i, f := range fs {
		if err := outbox.CheckFinish(f); err != nil {
			errs[i] = err
			continue
		}
		b.add(i, f, now)
	}
	if len(b.index) == 0 {
		return errs, nil
	}
	var updated []finishedRow
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		finish, err := s.stmts.InTx(ctx, tx, finishBatchQuery)
		if err != nil {
			return err
		}
		if err := finish.SelectContext(ctx, &updated,
			pq.Array(b.id), pq.Array(b.state), pq.Array(b.tries), pq.Array(b.streak), pq.Array(b.streakSince),
			pq.Array(b.lastClass), pq.Array(b.status), pq.Array(b.lastError), pq.Array(b.due), pq.Array(b.owner),
			now.UnixMilli(), pq.Array(b.at), pq.Array(b.class), pq.Array(b.response), pq.Array(b.errText),
			pq.Array(b.duration), pq.Array(b.unknown)); err != nil {
			return err
		}
		for _, u := range updated {
			if u.WaitingID.Valid {
				if err := s.ResolveWaiting(ctx, tx, u.ID, u.WaitingID.Int64, outbox.State(u.State), now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish %d results in one transaction: %w", len(fs), err)
	}
	if len(updated) == len(b.index) {
		return errs, nil
	}
	done := make(map[int64]bool, len(updated))
	for _, u := range updated {
		done[u.ID] = true
	}
	var missed []int64
	for _, id := range b.id {
		if !done[id] {
			missed = append(missed, id)
		}
	}
	if err := s.classifyMissed(ctx, fs, b.index, done, missed, errs); err != nil {
		return nil, fmt.Errorf("finish %d results: %w", len(fs), err)
	}
	return errs, nil
}

// classifyMissed sets the error of every Finish whose row the update did not
// touch: ErrNotFound when the row is gone, else ErrLeaseLost.
func (s *Store) classifyMissed(ctx context.Context, fs []outbox.Finish, index []int, done map[int64]bool, missed []int64, errs []error) error {
	var rows []struct {
		ID    int64  `db:"id"`
		State string `db:"state"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, state FROM results WHERE id = ANY($1)`, pq.Array(missed)); err != nil {
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

// finishedRow is a row finishBatchQuery updated: its id, new state and
// waiting row (kept for ResolveWaiting to settle).
type finishedRow struct {
	ID        int64         `db:"id"`
	State     string        `db:"state"`
	WaitingID sql.NullInt64 `db:"waiting_id"`
}

// finishBatchQuery applies many Finishes at once, each row guarded by its
// own lease, as sqlcore's finish statement does one, records the attempts of
// the rows it updated, and returns them. Parameters 1–10 and 12–17 are the
// columns of finishColumns, 11 is now.
const finishBatchQuery = `WITH v AS (
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::integer[], $5::bigint[], $6::text[],
			$7::integer[], $8::text[], $9::bigint[], $10::text[], $12::bigint[], $13::text[], $14::text[],
			$15::text[], $16::bigint[], $17::boolean[])
		AS v(id, state, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at, owner,
			at, class, response, error, duration_ns, outcome_unknown)),
	u AS (
		UPDATE results r SET
			state = v.state, tries = v.tries, streak = v.streak, streak_since = v.streak_since,
			last_class = v.last_class, last_status = v.last_status, last_error = v.last_error,
			next_attempt_at = v.next_attempt_at, lease_owner = '', lease_until = NULL,
			delivered_at = CASE WHEN v.state = 'delivered' THEN $11::bigint END, updated_at = $11::bigint,
			outcome_unknown = (r.outcome_unknown OR v.outcome_unknown)
		FROM v
		WHERE r.id = v.id AND r.state = 'sending' AND r.lease_owner = v.owner
		RETURNING r.id, r.state, r.waiting_id),
	a AS (
		INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
		SELECT v.id, v.at, v.last_status, v.class, v.response, v.error, v.duration_ns FROM v JOIN u ON u.id = v.id)
	SELECT id, state, waiting_id FROM u`

// finishColumns are the valid Finishes of a batch, with their attempts, as
// column arrays; index maps each entry back to its position in the batch.
type finishColumns struct {
	excerpt     func(string) string // the store's response excerpt
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
	at          []int64
	class       []string
	response    []string
	errText     []string
	duration    []int64
	unknown     []bool
}

// add appends fs[i] = f; an attempt without a time is taken as made at now.
func (c *finishColumns) add(i int, f outbox.Finish, now time.Time) {
	var due sql.NullInt64
	if f.State == outbox.StatePending {
		due = sqlcore.Millis(f.NextAttemptAt)
	}
	at := f.Attempt.At
	if at.IsZero() {
		at = now
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
	c.at = append(c.at, at.UnixMilli())
	c.class = append(c.class, validText(f.Attempt.Class))
	c.response = append(c.response, c.excerpt(f.Attempt.Response))
	c.errText = append(c.errText, validText(f.Attempt.Error))
	c.duration = append(c.duration, int64(f.Attempt.Duration))
	c.unknown = append(c.unknown, f.OutcomeUnknown)
}
