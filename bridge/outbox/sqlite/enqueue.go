package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// activeRowQuery finds the pair's active row, if any (results_active_pair).
const activeRowQuery = `SELECT id, state, body_hash, updated_at, delivered_at FROM results
	WHERE target = ? AND elearningcode = ? AND person_key = ? AND active`

// insertQuery adds a results row; active is State.Active of its state.
const insertQuery = `INSERT INTO results
	(target, connection, elearningcode, person_id, person_key, source_ref, completed_at, body, body_hash,
	 state, active, last_error, next_attempt_at, created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// replaceQuery gives a pending or failed row a new body and makes it pending
// with a fresh retry schedule.
const replaceQuery = `UPDATE results SET
	body = ?, body_hash = ?, source_ref = ?, completed_at = ?, state = 'pending',
	tries = 0, streak = 0, streak_since = NULL, last_class = '',
	next_attempt_at = ?, updated_at = ?
	WHERE id = ?`

// activeRow is what Enqueue needs to know of the pair's active row.
type activeRow struct {
	ID          int64         `db:"id"`
	State       string        `db:"state"`
	BodyHash    []byte        `db:"body_hash"`
	UpdatedAt   int64         `db:"updated_at"`
	DeliveredAt sql.NullInt64 `db:"delivered_at"`
}

// Enqueue stores r inside the transaction and says what it did. The rules,
// applied to the pair (target, Elearningcode, lower(PersonID)):
//
//   - r.RejectReason set: a new rejected row with LastError = the reason,
//     whatever else the pair holds (rejected rows are not part of the pair
//     rule) → Rejected.
//   - no active (pending, sending, delivered, failed) row: a new pending row
//     due now → Queued.
//   - an active row with the same body (compared by SHA-256): nothing is
//     written → Unchanged.
//   - a pending row with a different body: with p.ReplacePending the row gets
//     the new body, source ref and completion time, a fresh retry schedule
//     and is due now → Replaced; without it the new completion is stored as
//     an ignored row → Ignored.
//   - a failed row with a different body: the row gets the new body and is
//     pending again with a fresh retry schedule, so a corrected completion
//     re-arms a parked pair → Replaced.
//   - a delivered or sending row with a different body: Coachview registers
//     only one result per person and part, so the new completion is stored
//     as an ignored row naming the row that was sent → Ignored.
//
// A fresh retry schedule means Tries, Streak, StreakSince and LastClass are
// reset; LastStatus and LastError are kept as the last attempt's record.
func (t *txn) Enqueue(ctx context.Context, r outbox.NewResult, p outbox.EnqueuePolicy) (outbox.EnqueueOutcome, error) {
	if r.Target == "" {
		return "", errors.New("enqueue: target is empty")
	}
	now := t.s.now()
	key := strings.ToLower(r.PersonID)

	if r.RejectReason != "" {
		return t.record(ctx, r, key, outbox.RejectionHash(r), outbox.StateRejected, r.RejectReason, now)
	}
	if r.ElearningCode == "" || r.PersonID == "" {
		return "", fmt.Errorf("enqueue for target %q: elearningcode %q and person id must both be set (or the result rejected)", r.Target, r.ElearningCode)
	}
	if len(r.Body) == 0 {
		return "", fmt.Errorf("enqueue for target %q, elearningcode %q: body is empty (or the result rejected)", r.Target, r.ElearningCode)
	}
	sum := sha256.Sum256(r.Body)
	hash := sum[:]

	lookup, err := t.stmt(ctx, activeRowQuery)
	if err != nil {
		return "", fmt.Errorf("enqueue: prepare the pair lookup: %w", err)
	}
	var cur activeRow
	err = lookup.GetContext(ctx, &cur, r.Target, r.ElearningCode, key)
	if errors.Is(err, sql.ErrNoRows) {
		if err := t.insert(ctx, r, key, hash, outbox.StatePending, "", now); err != nil {
			return "", err
		}
		return outbox.Queued, nil
	}
	if err != nil {
		return "", fmt.Errorf("enqueue for target %q, elearningcode %q: look up the pair's active row: %w", r.Target, r.ElearningCode, err)
	}
	if bytes.Equal(cur.BodyHash, hash) {
		return outbox.Unchanged, nil
	}

	switch outbox.State(cur.State) {
	case outbox.StatePending:
		if !p.ReplacePending {
			reason := fmt.Sprintf("a different result for this pair is already queued as result #%d (replace_pending is off)", cur.ID)
			if err := t.insert(ctx, r, key, hash, outbox.StateIgnored, reason, now); err != nil {
				return "", err
			}
			return outbox.Ignored, nil
		}
		if err := t.replace(ctx, cur.ID, r, hash, now); err != nil {
			return "", err
		}
		return outbox.Replaced, nil
	case outbox.StateFailed:
		if err := t.replace(ctx, cur.ID, r, hash, now); err != nil {
			return "", err
		}
		return outbox.Replaced, nil
	case outbox.StateDelivered:
		reason := fmt.Sprintf("already delivered to Coachview on %s as result #%d; Coachview registers only one result per person and part",
			sqlcore.FromMillis(cur.DeliveredAt).Format(time.RFC3339), cur.ID)
		return t.record(ctx, r, key, hash, outbox.StateIgnored, reason, now)
	default: // sending
		reason := fmt.Sprintf("already being sent to Coachview as result #%d (claimed %s); Coachview registers only one result per person and part",
			cur.ID, time.UnixMilli(cur.UpdatedAt).UTC().Format(time.RFC3339))
		return t.record(ctx, r, key, hash, outbox.StateIgnored, reason, now)
	}
}

// historyQuery counts the pair's rows in a history state with a given hash.
const historyQuery = `SELECT COUNT(*) FROM results
	WHERE person_key = ? AND target = ? AND elearningcode = ? AND state = ? AND body_hash = ?`

// record stores r as an ignored or rejected row, unless the pair already has
// an identical one (same state and hash): then it writes nothing and reports
// Unchanged, so a source re-reading a window leaves one row, not one a poll.
func (t *txn) record(ctx context.Context, r outbox.NewResult, key string, hash []byte, state outbox.State, reason string, now time.Time) (outbox.EnqueueOutcome, error) {
	q, err := t.stmt(ctx, historyQuery)
	if err != nil {
		return "", fmt.Errorf("enqueue: prepare the history lookup: %w", err)
	}
	var n int
	if err := q.GetContext(ctx, &n, key, r.Target, r.ElearningCode, string(state), hash); err != nil {
		return "", fmt.Errorf("enqueue for target %q, elearningcode %q: look up %s rows: %w", r.Target, r.ElearningCode, state, err)
	}
	if n > 0 {
		return outbox.Unchanged, nil
	}
	if err := t.insert(ctx, r, key, hash, state, reason, now); err != nil {
		return "", err
	}
	if state == outbox.StateRejected {
		return outbox.Rejected, nil
	}
	return outbox.Ignored, nil
}

// insert adds a new row for r in state; only a pending row is due (now).
func (t *txn) insert(ctx context.Context, r outbox.NewResult, key string, hash []byte, state outbox.State, lastError string, now time.Time) error {
	var due sql.NullInt64
	if state == outbox.StatePending {
		due = sqlcore.Millis(now)
	}
	ins, err := t.stmt(ctx, insertQuery)
	if err != nil {
		return fmt.Errorf("enqueue: prepare insert: %w", err)
	}
	_, err = ins.ExecContext(ctx,
		r.Target, r.Connection, r.ElearningCode, r.PersonID, key, r.SourceRef, sqlcore.Millis(r.CompletedAt), r.Body, hash,
		string(state), state.Active(), lastError, due, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("enqueue for target %q, elearningcode %q: insert %s row: %w", r.Target, r.ElearningCode, state, err)
	}
	return nil
}

// replace gives row id r's body and makes it pending, due now, with a fresh
// retry schedule.
func (t *txn) replace(ctx context.Context, id int64, r outbox.NewResult, hash []byte, now time.Time) error {
	upd, err := t.stmt(ctx, replaceQuery)
	if err != nil {
		return fmt.Errorf("enqueue: prepare replace: %w", err)
	}
	_, err = upd.ExecContext(ctx,
		r.Body, hash, r.SourceRef, sqlcore.Millis(r.CompletedAt), now.UnixMilli(), now.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("enqueue for target %q, elearningcode %q: replace result #%d: %w", r.Target, r.ElearningCode, id, err)
	}
	return nil
}
