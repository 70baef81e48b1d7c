package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// finishAtOnceQuery is sqlcore's finish statement for a whole batch: the
// Finishes come as one JSON array (?2), one object per row, so the text
// is the same whatever the batch size and is prepared once; ?1 is now.
// Each row is guarded by its own lease, and a row a newer completion waits
// for is left to the one-by-one finish, which settles the waiting one.
const finishAtOnceQuery = `UPDATE results SET
		state = v.state, tries = v.tries, streak = v.streak, streak_since = v.streak_since,
		last_class = v.last_class, last_status = v.last_status, last_error = v.last_error,
		next_attempt_at = v.next_attempt_at, lease_owner = '', lease_until = NULL,
		delivered_at = CASE WHEN v.state = 'delivered' THEN ?1 END, updated_at = ?1,
		outcome_unknown = (results.outcome_unknown OR v.outcome_unknown)
	FROM (SELECT value ->> 'id' AS id, value ->> 'state' AS state, value ->> 'tries' AS tries,
			value ->> 'streak' AS streak, value ->> 'streak_since' AS streak_since,
			value ->> 'last_class' AS last_class, value ->> 'status' AS last_status,
			value ->> 'last_error' AS last_error, value ->> 'next_attempt_at' AS next_attempt_at,
			value ->> 'owner' AS owner, value ->> 'outcome_unknown' AS outcome_unknown
		FROM json_each(?2)) AS v
	WHERE results.id = v.id AND results.state = 'sending' AND results.lease_owner = v.owner
		AND results.waiting_id IS NULL
	RETURNING results.id`

// insertAttemptsQuery records the attempts of the rows (?2, a JSON array
// of ids) that finishAtOnceQuery finished, from the same JSON (?1).
const insertAttemptsQuery = `INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
	SELECT value ->> 'id', value ->> 'at', value ->> 'status', value ->> 'class', value ->> 'response',
		value ->> 'error', value ->> 'duration_ns'
	FROM json_each(?1) WHERE value ->> 'id' IN (SELECT value FROM json_each(?2))`

// finishRow is one Finish with its attempt, as finishAtOnceQuery reads it.
type finishRow struct {
	ID             int64  `json:"id"`
	State          string `json:"state"`
	Tries          int    `json:"tries"`
	Streak         int    `json:"streak"`
	StreakSince    *int64 `json:"streak_since"`
	LastClass      string `json:"last_class"`
	Status         int    `json:"status"`
	LastError      string `json:"last_error"`
	NextAttemptAt  *int64 `json:"next_attempt_at"`
	Owner          string `json:"owner"`
	OutcomeUnknown bool   `json:"outcome_unknown"`
	At             int64  `json:"at"`
	Class          string `json:"class"`
	Response       string `json:"response"`
	Error          string `json:"error"`
	DurationNS     int64  `json:"duration_ns"`
}

// finishAtOnce is the store's sqlcore.Config.BatchFinish: two statements
// for the whole batch instead of two per row.
func (s *Store) finishAtOnce(ctx context.Context, tx *sqlx.Tx, fs []outbox.Finish, now time.Time) ([]int64, error) {
	rows := make([]finishRow, len(fs))
	for i, f := range fs {
		at := f.Attempt.At
		if at.IsZero() {
			at = now
		}
		r := finishRow{ID: f.ID, State: string(f.State), Tries: f.Tries, Streak: f.Streak,
			StreakSince: millisOrNil(f.StreakSince), LastClass: f.LastClass, Status: f.Attempt.Status,
			LastError: f.LastError, Owner: f.Owner, OutcomeUnknown: f.OutcomeUnknown,
			At: at.UnixMilli(), Class: f.Attempt.Class, Response: s.Excerpt(f.Attempt.Response),
			Error: f.Attempt.Error, DurationNS: int64(f.Attempt.Duration)}
		if f.State == outbox.StatePending {
			r.NextAttemptAt = millisOrNil(f.NextAttemptAt)
		}
		rows[i] = r
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("encode finishes: %w", err)
	}
	update, err := s.stmts.InTx(ctx, tx, finishAtOnceQuery)
	if err != nil {
		return nil, err
	}
	var done []int64
	if err := update.SelectContext(ctx, &done, now.UnixMilli(), string(doc)); err != nil {
		return nil, fmt.Errorf("update rows: %w", err)
	}
	if len(done) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(done)
	if err != nil {
		return nil, fmt.Errorf("encode ids: %w", err)
	}
	insert, err := s.stmts.InTx(ctx, tx, insertAttemptsQuery)
	if err != nil {
		return nil, err
	}
	if _, err := insert.ExecContext(ctx, string(doc), string(ids)); err != nil {
		return nil, fmt.Errorf("record attempts: %w", err)
	}
	return done, nil
}

// millisOrNil is t in Unix milliseconds, or nil (JSON null, SQL NULL) for
// the zero time.
func millisOrNil(t time.Time) *int64 {
	m := sqlcore.Millis(t)
	if !m.Valid {
		return nil
	}
	return &m.Int64
}
