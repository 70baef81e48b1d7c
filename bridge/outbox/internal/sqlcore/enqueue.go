package sqlcore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Tx is the outbox.Tx of one write transaction: a source batch's enqueues,
// cursor and marks, committed together. Both backends use it.
type Tx struct {
	b        *Base
	tx       *sqlx.Tx
	stmts    map[string]*sqlx.Stmt // the store's prepared statements bound to tx
	enqueued int                   // results offered to Enqueue
}

var _ outbox.Tx = (*Tx)(nil)

// InTx runs fn in one write transaction, committed when fn returns nil.
// When fn fails, nothing it did is kept and its error is returned unchanged.
//
// A source batch may enqueue hundreds of thousands of rows in one
// transaction. On PostgreSQL (Config.BatchSetup) it runs with sequential
// scans off: planned while the table was still empty, a sequential scan is
// cheapest, the plan is cached with the prepared statement, and it then
// scans every row the transaction added for each new one; no ANALYZE can
// see those rows before the commit. Every statement of the enqueue has an
// index that answers it. Found from outside: a 300,000-row file into a
// fresh database had reached 54,659 rows after 5 minutes.
//
// Once such a batch has committed, Config.AfterIntake learns how many
// results it offered.
func (b *Base) InTx(ctx context.Context, fn func(outbox.Tx) error) error {
	enqueued := 0
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		if b.batchSetup != "" {
			if _, err := tx.ExecContext(ctx, b.batchSetup); err != nil {
				return fmt.Errorf("set up the batch transaction: %w", err)
			}
		}
		t := &Tx{b: b, tx: tx}
		defer t.close()
		err := fn(t)
		enqueued = t.enqueued
		return err
	})
	if err == nil && enqueued > 0 && b.afterIntake != nil {
		b.afterIntake(ctx, enqueued)
	}
	return err
}

// stmt returns query (written with ? placeholders) as the store's prepared
// statement bound to the transaction. A source batch enqueues thousands of
// results in one transaction, and parsing and planning each statement anew
// would dominate its cost.
func (t *Tx) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.b.stmts.InTx(ctx, t.tx, t.b.q(query))
	if err != nil {
		return nil, err
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sqlx.Stmt)
	}
	t.stmts[query] = st
	return st, nil
}

// close closes the transaction's handles on the prepared statements; the
// statements stay prepared on the connection.
func (t *Tx) close() {
	for _, st := range t.stmts {
		_ = st.Close()
	}
}

// SaveCursor stores connection's cursor, replacing the previous one.
func (t *Tx) SaveCursor(ctx context.Context, connection string, cursor []byte) error {
	return SaveCursor(ctx, t.tx, t.b.now(), connection, cursor)
}

// Mark records mark for connection; marking twice is not an error.
func (t *Tx) Mark(ctx context.Context, connection, mark string) error {
	return Mark(ctx, t.tx, t.b.now(), connection, mark)
}

// ActiveRowQuery finds the pair's active row, if any (results_active_pair);
// RowLock is appended, so on PostgreSQL the row stays locked until the
// transaction ends and a concurrent Claim (which skips locked rows) or
// Enqueue cannot change it between the look-up and the decision taken on it.
const ActiveRowQuery = `SELECT id, state, body_hash, completed_at, updated_at, delivered_at, waiting_id FROM results
	WHERE target = ? AND elearningcode = ? AND person_key = ? AND active`

// insertQuery adds a results row; active is State.Active of its state.
const insertQuery = `INSERT INTO results
	(target, connection, elearningcode, person_id, person_key, source_ref, completed_at, body, body_hash,
	 state, active, last_error, next_attempt_at, created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// InsertActiveQuery adds a pending row unless another transaction added
// the pair's active row first, in which case it changes nothing.
const InsertActiveQuery = insertQuery + `
	ON CONFLICT (target, elearningcode, person_key) WHERE active DO NOTHING`

// replaceQuery gives a pending or failed row a new body and makes it pending
// with a fresh retry schedule.
const replaceQuery = `UPDATE results SET
	body = ?, body_hash = ?, source_ref = ?, completed_at = ?, state = 'pending',
	tries = 0, streak = 0, streak_since = NULL, last_class = '',
	next_attempt_at = ?, updated_at = ?
	WHERE id = ?`

// HistoryQuery counts the pair's rows in a history state with a given hash,
// over results_person: on PostgreSQL it names every column of that index;
// SQLite's index leaves out the state, which claims and finishes change,
// and reads it from the pair's few rows (its migration 0010).
const HistoryQuery = `SELECT COUNT(*) FROM results
	WHERE person_key = ? AND target = ? AND elearningcode = ? AND state = ? AND body_hash = ?`

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
	CompletedAt sql.NullInt64 `db:"completed_at"`
	UpdatedAt   int64         `db:"updated_at"`
	DeliveredAt sql.NullInt64 `db:"delivered_at"`
	WaitingID   sql.NullInt64 `db:"waiting_id"`
}

// Enqueue stores r inside the transaction and says what it did. These are
// the outbox's rules for a new completion, applied to its pair (target,
// Elearningcode, source.PersonKey(PersonID)), the PersoonExterneId compared
// case-insensitively, as Coachview does:
//
//   - r.RejectReason set: a new rejected row with LastError = the reason
//     (rejected rows are not part of the pair rule) → Rejected.
//   - no active row: a new pending row due now → Queued.
//   - an active row with the same body (compared by SHA-256): nothing is
//     written → Unchanged. If that row is being sent and a different,
//     waiting completion was queued behind it, the waiting one is
//     withdrawn (superseded): the newest completion is the one in flight.
//   - a completion dated before the pair's pending, failed, sending or
//     waiting one (both with a completion time) never takes its place: it
//     is an earlier attempt, read late or listed after a retake, and is
//     stored as ignored, naming the newer row → Ignored. Equal or missing
//     times leave the order of arrival to decide, as below.
//   - a pending or failed row with a different body: with p.ReplacePending
//     (failed rows always) the row gets the new body, source ref and
//     completion time and a fresh retry schedule, and is due now → Replaced.
//   - a sending row with a different body: with p.ReplacePending the new
//     completion waits in a row of its own (state waiting, or the pair's
//     waiting row gets its body) → Waiting. When the send in flight ends,
//     a 200 makes the waiting row ignored; any other outcome supersedes
//     the sent row, and the waiting one is pending and due at once.
//   - a delivered or probably-delivered row with a different body:
//     Coachview registers only one result per person and part, so the new
//     completion is stored as an ignored row naming the row that was sent
//     → Ignored. So is a different completion for a pending or sending
//     row without p.ReplacePending.
//
// Ignored and rejected rows are written once: the same one again (same
// state and hash) is Unchanged, so sources that re-read a window do not
// pile up history rows. A fresh retry schedule means Tries, Streak,
// StreakSince and LastClass are reset; LastStatus, LastError and
// OutcomeUnknown are kept as the pair's record.
//
// On PostgreSQL the pair's active row stays locked until the transaction
// ends, so transactions enqueueing the same pair run one after the other;
// two that insert the pair at once meet on the pair index, and the second
// decides again on the first's row.
func (t *Tx) Enqueue(ctx context.Context, r outbox.NewResult, p outbox.EnqueuePolicy) (outbox.EnqueueOutcome, error) {
	if r.Target == "" {
		return "", errors.New("enqueue: target is empty")
	}
	t.enqueued++
	now := t.b.now()
	key := source.PersonKey(r.PersonID) // the sink stores ids trimmed: its trimming changes no stored key
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

// activeRow looks up (and, on PostgreSQL, locks) the pair's active row.
func (t *Tx) activeRow(ctx context.Context, r outbox.NewResult, key string) (activeRow, bool, error) {
	lookup, err := t.stmt(ctx, ActiveRowQuery+t.b.rowLock)
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
func (t *Tx) onActive(ctx context.Context, cur activeRow, r outbox.NewResult, p outbox.EnqueuePolicy, key string, hash []byte, now time.Time) (outbox.EnqueueOutcome, error) {
	state := outbox.State(cur.State)
	if bytes.Equal(cur.BodyHash, hash) {
		if state == outbox.StateSending && cur.WaitingID.Valid {
			return outbox.Unchanged, t.withdrawWaiting(ctx, cur, r, now)
		}
		return outbox.Unchanged, nil
	}
	var reason string
	if state == outbox.StatePending || state == outbox.StateFailed || state == outbox.StateSending {
		if reason := completedBefore(r, cur.ID, cur.CompletedAt); reason != "" {
			return t.record(ctx, r, key, hash, outbox.StateIgnored, reason, now)
		}
	}
	switch state {
	case outbox.StatePending:
		if p.ReplacePending {
			return outbox.Replaced, t.replace(ctx, cur.ID, r, hash, now)
		}
		reason = fmt.Sprintf("a different result for this pair is already queued as result #%d (replace_pending is off)", cur.ID)
	case outbox.StateFailed:
		return outbox.Replaced, t.replace(ctx, cur.ID, r, hash, now)
	case outbox.StateSending:
		if p.ReplacePending {
			return t.wait(ctx, cur, r, key, hash, now)
		}
		reason = fmt.Sprintf("a different result for this pair is being sent to Coachview as result #%d (replace_pending is off)", cur.ID)
	case outbox.StateProbablyDelivered:
		reason = fmt.Sprintf("Coachview probably registered result #%d already (it answered 404 after an attempt whose outcome is unknown); "+
			"Coachview registers only one result per person and part", cur.ID)
	default: // delivered
		reason = fmt.Sprintf("already delivered to Coachview on %s as result #%d; Coachview registers only one result per person and part",
			FromMillis(cur.DeliveredAt).Format(time.RFC3339), cur.ID)
	}
	return t.record(ctx, r, key, hash, outbox.StateIgnored, reason, now)
}

// completedBefore returns why r, completed before the pair's row id
// (completed at, in Unix milliseconds), does not take its place, or ""
// when it is not older or either time is unknown.
func completedBefore(r outbox.NewResult, id int64, completed sql.NullInt64) string {
	if r.CompletedAt.IsZero() || !completed.Valid || r.CompletedAt.UnixMilli() >= completed.Int64 {
		return ""
	}
	return fmt.Sprintf("completed on %s, before result #%d (completed on %s), which is the one sent: an earlier attempt does not replace a later one",
		r.CompletedAt.Format(time.DateOnly), id, FromMillis(completed).In(r.CompletedAt.Location()).Format(time.DateOnly))
}

// waitingRow is what Enqueue needs to know of the pair's waiting row.
type waitingRow struct {
	State       string        `db:"state"`
	BodyHash    []byte        `db:"body_hash"`
	CompletedAt sql.NullInt64 `db:"completed_at"`
}

// wait stores r as the completion that waits for the send in flight of the
// pair's row cur: in the pair's waiting row if it has one, else in a new one.
func (t *Tx) wait(ctx context.Context, cur activeRow, r outbox.NewResult, key string, hash []byte, now time.Time) (outbox.EnqueueOutcome, error) {
	if cur.WaitingID.Valid {
		var w waitingRow
		err := t.tx.GetContext(ctx, &w, t.b.q(`SELECT state, body_hash, completed_at FROM results WHERE id = ?`+t.b.rowLock), cur.WaitingID.Int64)
		switch {
		case err == nil && outbox.State(w.State) == outbox.StateWaiting:
			if bytes.Equal(w.BodyHash, hash) {
				return outbox.Unchanged, nil
			}
			if reason := completedBefore(r, cur.WaitingID.Int64, w.CompletedAt); reason != "" {
				return t.record(ctx, r, key, hash, outbox.StateIgnored, reason, now)
			}
			_, err := t.tx.ExecContext(ctx, t.b.q(`UPDATE results SET body = ?, body_hash = ?, source_ref = ?, completed_at = ?,
				updated_at = ? WHERE id = ?`), r.Body, hash, t.b.text(r.SourceRef), Millis(r.CompletedAt), now.UnixMilli(), cur.WaitingID.Int64)
			if err != nil {
				return "", fmt.Errorf("enqueue for target %q, elearningcode %q: update waiting result #%d: %w", r.Target, r.ElearningCode, cur.WaitingID.Int64, err)
			}
			return outbox.Waiting, nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return "", fmt.Errorf("enqueue for target %q, elearningcode %q: read waiting result #%d: %w", r.Target, r.ElearningCode, cur.WaitingID.Int64, err)
		}
		// The operator cancelled it, or forget deleted it: wait anew.
	}
	reason := fmt.Sprintf("waits for result #%d, which is being sent to Coachview: sent next unless Coachview accepts #%d", cur.ID, cur.ID)
	id, err := t.insert(ctx, r, key, hash, outbox.StateWaiting, reason, now, true)
	if err != nil {
		return "", err
	}
	if _, err := t.tx.ExecContext(ctx, t.b.q(`UPDATE results SET waiting_id = ? WHERE id = ?`), id, cur.ID); err != nil {
		return "", fmt.Errorf("enqueue for target %q, elearningcode %q: link waiting result #%d: %w", r.Target, r.ElearningCode, id, err)
	}
	return outbox.Waiting, nil
}

// withdrawWaiting supersedes the waiting row of cur, a sending row whose
// body r, read again, equals, unless the waiting completion was completed
// after r: an earlier attempt read again (a cumulative export) does not
// withdraw a later one.
func (t *Tx) withdrawWaiting(ctx context.Context, cur activeRow, r outbox.NewResult, now time.Time) error {
	var waitingCompleted sql.NullInt64
	if err := t.tx.GetContext(ctx, &waitingCompleted, t.b.q(`SELECT completed_at FROM results WHERE id = ?`), cur.WaitingID.Int64); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil // deleted by forget meanwhile: nothing waits
		}
		return fmt.Errorf("enqueue: read waiting result #%d: %w", cur.WaitingID.Int64, err)
	}
	if completedBefore(r, cur.WaitingID.Int64, waitingCompleted) != "" {
		return nil
	}
	reason := fmt.Sprintf("withdrawn: a later completion equals result #%d, which is being sent", cur.ID)
	if _, err := t.tx.ExecContext(ctx, t.b.q(`UPDATE results SET state = 'superseded', active = FALSE, last_error = ?, updated_at = ?
		WHERE id = ? AND state = 'waiting'`), reason, now.UnixMilli(), cur.WaitingID.Int64); err != nil {
		return fmt.Errorf("enqueue: withdraw waiting result #%d: %w", cur.WaitingID.Int64, err)
	}
	if _, err := t.tx.ExecContext(ctx, t.b.q(`UPDATE results SET waiting_id = NULL WHERE id = ?`), cur.ID); err != nil {
		return fmt.Errorf("enqueue: unlink waiting result #%d: %w", cur.WaitingID.Int64, err)
	}
	return nil
}

// record stores r as an ignored or rejected row, unless the pair already has
// an identical one (same state and hash): then it writes nothing and reports
// Unchanged, so a source re-reading a window leaves one row, not one a poll.
func (t *Tx) record(ctx context.Context, r outbox.NewResult, key string, hash []byte, state outbox.State, reason string, now time.Time) (outbox.EnqueueOutcome, error) {
	q, err := t.stmt(ctx, HistoryQuery)
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
	if _, err := t.insert(ctx, r, key, hash, state, reason, now, false); err != nil {
		return "", err
	}
	if state == outbox.StateRejected {
		return outbox.Rejected, nil
	}
	return outbox.Ignored, nil
}

// insert adds a new row for r in an inactive state (rejected, ignored,
// waiting) and, when withID, returns its id. RETURNING costs an SQLite
// insert about as much as the insert itself, so it is asked for only
// where the id is needed (a waiting row, which its sending row links to).
func (t *Tx) insert(ctx context.Context, r outbox.NewResult, key string, hash []byte, state outbox.State, lastError string, now time.Time, withID bool) (int64, error) {
	query := insertQuery
	if withID {
		query += ` RETURNING id`
	}
	ins, err := t.stmt(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("enqueue: prepare insert: %w", err)
	}
	args := []any{r.Target, r.Connection, r.ElearningCode, r.PersonID, key, t.b.text(r.SourceRef), Millis(r.CompletedAt), Nullable(r.Body), Nullable(hash),
		string(state), state.Active(), t.b.text(lastError), nil, now.UnixMilli(), now.UnixMilli()}
	var id int64
	if withID {
		err = ins.GetContext(ctx, &id, args...)
	} else {
		_, err = ins.ExecContext(ctx, args...)
	}
	if err != nil {
		return 0, fmt.Errorf("enqueue for target %q, elearningcode %q: insert %s row: %w", r.Target, r.ElearningCode, state, err)
	}
	return id, nil
}

// insertPending adds a new pending row for r, due now, and reports false
// when the pair got an active row from another transaction first.
func (t *Tx) insertPending(ctx context.Context, r outbox.NewResult, key string, hash []byte, now time.Time) (bool, error) {
	ins, err := t.stmt(ctx, InsertActiveQuery)
	if err != nil {
		return false, fmt.Errorf("enqueue: prepare insert: %w", err)
	}
	res, err := ins.ExecContext(ctx,
		r.Target, r.Connection, r.ElearningCode, r.PersonID, key, t.b.text(r.SourceRef), Millis(r.CompletedAt), r.Body, hash,
		string(outbox.StatePending), true, "", now.UnixMilli(), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("enqueue for target %q, elearningcode %q: insert pending row: %w", r.Target, r.ElearningCode, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("enqueue for target %q, elearningcode %q: insert pending row: %w", r.Target, r.ElearningCode, err)
	}
	return n == 1, nil
}

// replace gives row id r's body and makes it pending, due now, with a fresh
// retry schedule.
func (t *Tx) replace(ctx context.Context, id int64, r outbox.NewResult, hash []byte, now time.Time) error {
	upd, err := t.stmt(ctx, replaceQuery)
	if err != nil {
		return fmt.Errorf("enqueue: prepare replace: %w", err)
	}
	if _, err := upd.ExecContext(ctx, r.Body, hash, t.b.text(r.SourceRef), Millis(r.CompletedAt), now.UnixMilli(), now.UnixMilli(), id); err != nil {
		return fmt.Errorf("enqueue for target %q, elearningcode %q: replace result #%d: %w", r.Target, r.ElearningCode, id, err)
	}
	return nil
}

// Nullable is b as a statement argument: NULL when b is nil, so a rejected
// row without a body reads back with a nil Body on either backend.
func Nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
