package postgres

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

// activeRowQuery finds and locks the pair's active row, if any
// (results_active_pair). The lock keeps a concurrent Claim (which skips
// locked rows) or Enqueue from changing the row between this look-up and
// the decision taken on it.
const activeRowQuery = `SELECT id, state, body_hash, updated_at, delivered_at FROM results
	WHERE target = ? AND elearningcode = ? AND person_key = ? AND active
	FOR UPDATE`

// insertQuery adds a results row; active is State.Active of its state.
const insertQuery = `INSERT INTO results
	(target, connection, elearningcode, person_id, person_key, source_ref, completed_at, body, body_hash,
	 state, active, last_error, next_attempt_at, created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertActiveQuery adds a pending row unless another transaction added
// the pair's active row first, in which case it returns no id.
const insertActiveQuery = insertQuery + `
	ON CONFLICT (target, elearningcode, person_key) WHERE active DO NOTHING
	RETURNING id`

// replaceQuery gives a pending or failed row a new body and makes it pending
// with a fresh retry schedule.
const replaceQuery = `UPDATE results SET
	body = ?, body_hash = ?, source_ref = ?, completed_at = ?, state = 'pending',
	tries = 0, streak = 0, streak_since = NULL, last_class = '',
	next_attempt_at = ?, updated_at = ?
	WHERE id = ?`

// maxPairRaces bounds how often Enqueue looks the pair up again after
// another transaction inserted its active row first. Each round sees a
// committed row, so more than a couple of rounds means rows keep vanishing
// (purged or cancelled) under it.
const maxPairRaces = 3

// activeRow is what Enqueue needs to know of the pair's active row.
type activeRow struct {
	ID          int64         `db:"id"`
	State       string        `db:"state"`
	BodyHash    []byte        `db:"body_hash"`
	UpdatedAt   int64         `db:"updated_at"`
	DeliveredAt sql.NullInt64 `db:"delivered_at"`
}

// Enqueue stores r inside the transaction and says what it did, by the same
// rules as the SQLite backend:
//
//   - r.RejectReason set: a new rejected row with LastError = the reason → Rejected.
//   - no active (pending, sending, delivered, failed) row: a new pending row
//     due now → Queued.
//   - an active row with the same body (compared by SHA-256) → Unchanged.
//   - a pending row with a different body: with p.ReplacePending the row gets
//     the new body and a fresh retry schedule and is due now → Replaced;
//     without it the new completion is stored as an ignored row → Ignored.
//   - a failed row with a different body: replaced and pending again → Replaced.
//   - a delivered or sending row with a different body: stored as an
//     ignored row naming the row that was sent → Ignored.
//
// The pair's active row stays locked until the transaction ends, so
// transactions enqueueing the same pair run one after the other. Two source
// batches that enqueue overlapping pairs in opposite orders can deadlock;
// PostgreSQL then aborts one of them, and that batch is retried as a whole.
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

	for range maxPairRaces {
		cur, found, err := t.activeRow(ctx, r, key)
		if err != nil {
			return "", err
		}
		if found {
			return t.onActive(ctx, cur, r, p, key, hash, now)
		}
		inserted, err := t.insertPending(ctx, r, key, hash, now)
		if err != nil {
			return "", err
		}
		if inserted {
			return outbox.Queued, nil
		}
		// Another transaction committed the pair's active row after our
		// look-up: look again and decide on that row.
	}
	return "", fmt.Errorf("enqueue for target %q, elearningcode %q: the pair's active row kept changing under concurrent transactions; retry the batch",
		r.Target, r.ElearningCode)
}

// activeRow looks up and locks the pair's active row.
func (t *txn) activeRow(ctx context.Context, r outbox.NewResult, key string) (activeRow, bool, error) {
	lookup, err := t.stmt(ctx, activeRowQuery)
	if err != nil {
		return activeRow{}, false, fmt.Errorf("enqueue: prepare the pair lookup: %w", err)
	}
	var cur activeRow
	err = lookup.GetContext(ctx, &cur, r.Target, r.ElearningCode, key)
	if errors.Is(err, sql.ErrNoRows) {
		return activeRow{}, false, nil
	}
	if err != nil {
		return activeRow{}, false, fmt.Errorf("enqueue for target %q, elearningcode %q: look up the pair's active row: %w", r.Target, r.ElearningCode, err)
	}
	return cur, true, nil
}

// onActive applies the rules for a pair that has active row cur.
func (t *txn) onActive(ctx context.Context, cur activeRow, r outbox.NewResult, p outbox.EnqueuePolicy, key string, hash []byte, now time.Time) (outbox.EnqueueOutcome, error) {
	if bytes.Equal(cur.BodyHash, hash) {
		return outbox.Unchanged, nil
	}
	var reason string
	switch outbox.State(cur.State) {
	case outbox.StatePending:
		if p.ReplacePending {
			return outbox.Replaced, t.replace(ctx, cur.ID, r, hash, now)
		}
		reason = fmt.Sprintf("a different result for this pair is already queued as result #%d (replace_pending is off)", cur.ID)
	case outbox.StateFailed:
		return outbox.Replaced, t.replace(ctx, cur.ID, r, hash, now)
	case outbox.StateDelivered:
		reason = fmt.Sprintf("already delivered to Coachview on %s as result #%d; Coachview registers only one result per person and part",
			sqlcore.FromMillis(cur.DeliveredAt).Format(time.RFC3339), cur.ID)
	default: // sending
		reason = fmt.Sprintf("already being sent to Coachview as result #%d (claimed %s); Coachview registers only one result per person and part",
			cur.ID, time.UnixMilli(cur.UpdatedAt).UTC().Format(time.RFC3339))
	}
	return t.record(ctx, r, key, hash, outbox.StateIgnored, reason, now)
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

// insert adds a new rejected or ignored row for r.
func (t *txn) insert(ctx context.Context, r outbox.NewResult, key string, hash []byte, state outbox.State, lastError string, now time.Time) error {
	ins, err := t.stmt(ctx, insertQuery)
	if err != nil {
		return fmt.Errorf("enqueue: prepare insert: %w", err)
	}
	_, err = ins.ExecContext(ctx,
		r.Target, r.Connection, r.ElearningCode, r.PersonID, key, r.SourceRef, sqlcore.Millis(r.CompletedAt), nullable(r.Body), nullable(hash),
		string(state), state.Active(), lastError, nil, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("enqueue for target %q, elearningcode %q: insert %s row: %w", r.Target, r.ElearningCode, state, err)
	}
	return nil
}

// insertPending adds a new pending row for r, due now, and reports false
// when the pair got an active row from another transaction first.
func (t *txn) insertPending(ctx context.Context, r outbox.NewResult, key string, hash []byte, now time.Time) (bool, error) {
	ins, err := t.stmt(ctx, insertActiveQuery)
	if err != nil {
		return false, fmt.Errorf("enqueue: prepare insert: %w", err)
	}
	var id int64
	err = ins.GetContext(ctx, &id,
		r.Target, r.Connection, r.ElearningCode, r.PersonID, key, r.SourceRef, sqlcore.Millis(r.CompletedAt), r.Body, hash,
		string(outbox.StatePending), true, "", now.UnixMilli(), now.UnixMilli(), now.UnixMilli())
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("enqueue for target %q, elearningcode %q: insert pending row: %w", r.Target, r.ElearningCode, err)
	}
	return true, nil
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

// nullable is b as a statement argument: NULL when b is nil, so a rejected
// row without a body reads back with a nil Body, as from SQLite.
func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
