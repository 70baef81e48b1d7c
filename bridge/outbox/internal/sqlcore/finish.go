package sqlcore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// finishSet is what a Finish writes to its row. The outcome-unknown mark
// only ever goes on: it is about the pair, not the attempt.
const finishSet = `UPDATE results SET
		state = ?, tries = ?, streak = ?, streak_since = ?, last_class = ?, last_status = ?, last_error = ?,
		next_attempt_at = ?, lease_owner = '', lease_until = NULL, delivered_at = ?, updated_at = ?,
		outcome_unknown = (outcome_unknown OR ?)
	WHERE id = ? AND state = 'sending' AND lease_owner = ?`

// FinishQuery applies one Finish to its row if the Finish's owner still
// holds the row's lease and no newer completion waits for the row: the
// common case, one statement. A row it misses is looked at again
// (finishWaited).
const FinishQuery = finishSet + ` AND waiting_id IS NULL`

// InsertAttemptQuery records one attempt.
const InsertAttemptQuery = `INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// ReleaseQuery hands a claimed row back as pending if the owner still
// holds its lease, and returns its waiting row, if any (RETURNING gives the
// row as updated, so the link is cleared later, by ResolveWaiting).
const ReleaseQuery = `UPDATE results SET state = 'pending', lease_owner = '', lease_until = NULL,
		next_attempt_at = ?, updated_at = ?
	WHERE id = ? AND state = 'sending' AND lease_owner = ?
	RETURNING waiting_id`

// NextDueQuery finds a target's earliest due time over the results_due index.
const NextDueQuery = `SELECT MIN(next_attempt_at) FROM results
	WHERE target = ? AND state IN ('pending', 'sending')`

// Finish records f.Attempt and gives the row its new state, if f.Owner still
// holds the row's lease (a lease that ran out but was not claimed by anyone
// else still counts: the attempt happened and must be recorded), and settles
// a completion that waited for this send (see ResolveWaiting). The attempt's
// response is cut to outbox.MaxResponseExcerpt bytes on a UTF-8 boundary; a
// zero Attempt.At is taken as now.
func (b *Base) Finish(ctx context.Context, f outbox.Finish) error {
	if err := outbox.CheckFinish(f); err != nil {
		return err
	}
	now := b.now()
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		st, err := b.finishStatements(ctx, tx)
		if err != nil {
			return err
		}
		if err := st.finish(ctx, f, now); err != nil {
			return err
		}
		return st.addCounts(ctx, now)
	})
	if err != nil {
		return fmt.Errorf("finish result #%d as %s: %w", f.ID, f.State, err)
	}
	return nil
}

// FinishBatch applies every Finish of fs in one transaction, each as Finish
// would; see outbox.BatchFinisher.
func (b *Base) FinishBatch(ctx context.Context, fs []outbox.Finish) ([]error, error) {
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
	now := b.now()
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		st, err := b.finishStatements(ctx, tx)
		if err != nil {
			return err
		}
		for _, i := range valid {
			err := st.finish(ctx, fs[i], now)
			switch {
			case errors.Is(err, outbox.ErrLeaseLost), errors.Is(err, outbox.ErrNotFound):
				errs[i] = fmt.Errorf("finish result #%d as %s: %w", fs[i].ID, fs[i].State, err)
			case err != nil:
				return fmt.Errorf("row #%d: %w", fs[i].ID, err)
			}
		}
		return st.addCounts(ctx, now)
	})
	if err != nil {
		return nil, fmt.Errorf("finish %d results in one transaction: %w", len(fs), err)
	}
	return errs, nil
}

// finishStmts are the prepared statements of finishing rows, bound to one
// transaction, and, where the finish counts its own transitions
// (Config.CountFinishes), what the transaction's finishes moved so far.
type finishStmts struct {
	b      *Base
	tx     *sqlx.Tx
	update *sqlx.Stmt
	insert *sqlx.Stmt
	moved  []int64 // rows that left the backlog, kept where the finish counts its own transitions
}

// finishStatements binds the finish statements to tx.
func (b *Base) finishStatements(ctx context.Context, tx *sqlx.Tx) (*finishStmts, error) {
	update, err := b.stmts.InTx(ctx, tx, b.finishQ)
	if err != nil {
		return nil, err
	}
	insert, err := b.stmts.InTx(ctx, tx, b.insertAttemptQ)
	if err != nil {
		return nil, err
	}
	return &finishStmts{b: b, tx: tx, update: update, insert: insert}, nil
}

// finish applies f at now: the row, its attempt, and a completion that
// waited for it. A lost lease or a missing row writes nothing.
func (st *finishStmts) finish(ctx context.Context, f outbox.Finish, now time.Time) error {
	b := st.b
	var due, delivered sql.NullInt64
	switch f.State {
	case outbox.StatePending:
		due = Millis(f.NextAttemptAt)
	case outbox.StateDelivered:
		delivered = Millis(now)
	}
	args := []any{string(f.State), f.Tries, f.Streak, Millis(f.StreakSince), f.LastClass, f.Attempt.Status, b.text(f.LastError),
		due, delivered, now.UnixMilli(), f.OutcomeUnknown, f.ID, f.Owner}
	updated, err := st.updateRow(ctx, args)
	if err != nil {
		return err
	}
	var waitingID int64
	if !updated {
		if waitingID, err = st.finishWaited(ctx, f, args); err != nil {
			return err
		}
	}
	st.count(f.ID, f.State)
	at := f.Attempt.At
	if at.IsZero() {
		at = now
	}
	if _, err := st.insert.ExecContext(ctx, f.ID, at.UnixMilli(), f.Attempt.Status, f.Attempt.Class, b.Excerpt(f.Attempt.Response),
		b.text(f.Attempt.Error), int64(f.Attempt.Duration)); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if waitingID != 0 {
		// The counters first: settling the waiting completion moves this
		// row on, which its trigger counts from the state entered here.
		if err := st.addCounts(ctx, now); err != nil {
			return err
		}
		return b.ResolveWaiting(ctx, st.tx, f.ID, waitingID, f.State, now)
	}
	return nil
}

// updateRow runs FinishQuery with args and reports whether it updated the
// row.
func (st *finishStmts) updateRow(ctx context.Context, args []any) (bool, error) {
	res, err := st.update.ExecContext(ctx, args...)
	if err != nil {
		return false, fmt.Errorf("update row: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update row: %w", err)
	}
	return n > 0, nil
}

// finishWaited looks at the row of f, which FinishQuery missed: if f's owner
// holds its lease and a newer completion waits for it, the row is finished
// (with args, FinishQuery's arguments) and the waiting row's id returned;
// otherwise the lease was lost or the row is gone.
func (st *finishStmts) finishWaited(ctx context.Context, f outbox.Finish, args []any) (int64, error) {
	b := st.b
	var row struct {
		State      string        `db:"state"`
		LeaseOwner string        `db:"lease_owner"`
		WaitingID  sql.NullInt64 `db:"waiting_id"`
	}
	err := st.tx.GetContext(ctx, &row, b.q(`SELECT state, lease_owner, waiting_id FROM results WHERE id = ?`+b.rowLock), f.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, outbox.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("read row state: %w", err)
	}
	if outbox.State(row.State) != outbox.StateSending || row.LeaseOwner != f.Owner || !row.WaitingID.Valid {
		return 0, fmt.Errorf("row is %s: %w", row.State, outbox.ErrLeaseLost)
	}
	if _, err := st.tx.ExecContext(ctx, b.q(finishSet), args...); err != nil {
		return 0, fmt.Errorf("update row: %w", err)
	}
	return row.WaitingID.Int64, nil
}

// count notes that row id went from sending to state, where the finish
// counts its own transitions. Pending stays in the backlog's counter, so
// only the other states are noted.
func (st *finishStmts) count(id int64, state outbox.State) {
	if st.b.finishCounts != nil && state != outbox.StatePending {
		st.moved = append(st.moved, id)
	}
}

// FinishCounts is how a backend's finish adds its own transitions to the
// counters its schema keeps (Config.FinishCounts).
type FinishCounts struct {
	// MovedIDs is a subquery whose one column is the ids of the JSON array
	// of integers bound to its one parameter: the rows finished, read back
	// for their targets and states by one statement prepared once, however
	// many there are.
	MovedIDs string
	// Add adds to the counters, at the hour of history given, that each
	// of moved's rows left the backlog ('queued': pending and sending) for
	// the state it names. exec runs one statement, prepared once per
	// store, in the finish's transaction.
	Add func(exec Exec, moved []Moved, hour int64) error
}

// Moved is N rows of Target that a transaction's finishes moved out of the
// backlog into State.
type Moved struct {
	Target string       `db:"target"`
	State  outbox.State `db:"state"`
	N      int          `db:"n"`
}

// Exec runs one statement, written with ? placeholders, with args.
type Exec func(query string, args ...any) error

// addCounts adds what the transaction's finishes moved out of the backlog
// to the counters, as FinishCounts says. The rows are read back in one
// query, for their targets and the states they entered (nothing else
// changed them since: a waiting completion is settled after this ran).
func (st *finishStmts) addCounts(ctx context.Context, now time.Time) error {
	if len(st.moved) == 0 {
		return nil
	}
	b := st.b
	ids, err := json.Marshal(st.moved)
	if err != nil {
		return fmt.Errorf("count finished results: %w", err)
	}
	st.moved = st.moved[:0]
	read, err := b.stmts.InTx(ctx, st.tx, b.countMovedQ)
	if err != nil {
		return err
	}
	var moved []Moved
	if err := read.SelectContext(ctx, &moved, string(ids)); err != nil {
		return fmt.Errorf("count finished results: %w", err)
	}
	exec := func(query string, args ...any) error {
		stmt, err := b.stmts.InTx(ctx, st.tx, b.q(query))
		if err != nil {
			return err
		}
		_, err = stmt.ExecContext(ctx, args...)
		return err
	}
	if err := b.finishCounts.Add(exec, moved, now.UnixMilli()/hourMillis); err != nil {
		return fmt.Errorf("count finished results: %w", err)
	}
	return nil
}

// ResolveWaiting settles, in tx at now, the completion waiting (row
// waitingID) for the send of row id, which has just ended in state:
//
//   - delivered or probably-delivered: Coachview registered the result that
//     was in flight and registers only one per person and part, so the
//     waiting completion becomes ignored;
//   - anything else (pending, failed, or handed back unsent): the sent row
//     is superseded, kept with its attempts as history, and the waiting
//     completion becomes the pair's pending row, due now with a fresh
//     retry schedule, keeping the pair's outcome-unknown mark.
//
// A waiting row the operator cancelled (or erasure deleted) meanwhile is
// left alone.
func (b *Base) ResolveWaiting(ctx context.Context, tx *sqlx.Tx, id, waitingID int64, state outbox.State, now time.Time) error {
	if _, err := tx.ExecContext(ctx, b.q(`UPDATE results SET waiting_id = NULL WHERE id = ?`), id); err != nil {
		return fmt.Errorf("unlink waiting result #%d: %w", waitingID, err)
	}
	if state == outbox.StateDelivered || state == outbox.StateProbablyDelivered {
		reason := fmt.Sprintf("Coachview accepted result #%d, whose send was in flight when this completion arrived; "+
			"Coachview registers only one result per person and part", id)
		if state == outbox.StateProbablyDelivered {
			reason = fmt.Sprintf("Coachview probably registered result #%d, whose send was in flight when this completion arrived; "+
				"Coachview registers only one result per person and part", id)
		}
		if _, err := tx.ExecContext(ctx, b.q(`UPDATE results SET state = 'ignored', active = FALSE, last_error = ?, updated_at = ?
			WHERE id = ? AND state = 'waiting'`), reason, now.UnixMilli(), waitingID); err != nil {
			return fmt.Errorf("ignore waiting result #%d: %w", waitingID, err)
		}
		return nil
	}
	var waitingState string
	err := tx.GetContext(ctx, &waitingState, b.q(`SELECT state FROM results WHERE id = ?`+b.rowLock), waitingID)
	if errors.Is(err, sql.ErrNoRows) || err == nil && outbox.State(waitingState) != outbox.StateWaiting {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read waiting result #%d: %w", waitingID, err)
	}
	var unknown bool
	if err := tx.GetContext(ctx, &unknown, b.q(`SELECT outcome_unknown FROM results WHERE id = ?`), id); err != nil {
		return fmt.Errorf("read result #%d: %w", id, err)
	}
	// The sent row leaves the pair rule first, so the waiting one may enter it.
	reason := fmt.Sprintf("superseded by result #%d, a newer completion that arrived while this one was being sent; "+
		"Coachview had not accepted this one", waitingID)
	if _, err := tx.ExecContext(ctx, b.q(`UPDATE results SET state = 'superseded', active = FALSE, next_attempt_at = NULL,
		last_error = ?, updated_at = ? WHERE id = ?`), reason, now.UnixMilli(), id); err != nil {
		return fmt.Errorf("supersede result #%d: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, b.q(`UPDATE results SET state = 'pending', active = TRUE, tries = 0, streak = 0,
		streak_since = NULL, last_class = '', last_error = ?, next_attempt_at = ?, outcome_unknown = ?, updated_at = ?
		WHERE id = ?`), fmt.Sprintf("replaces result #%d, which Coachview had not accepted", id),
		now.UnixMilli(), unknown, now.UnixMilli(), waitingID); err != nil {
		return fmt.Errorf("queue waiting result #%d: %w", waitingID, err)
	}
	return nil
}

// Release hands a claimed row back as pending, due at nextAttemptAt, without
// recording an attempt, if owner still holds its lease. A completion that
// waited for it takes its place at once (see ResolveWaiting).
func (b *Base) Release(ctx context.Context, id int64, owner string, nextAttemptAt time.Time) error {
	if nextAttemptAt.IsZero() {
		return fmt.Errorf("release result #%d: next attempt time is zero", id)
	}
	err := b.inTx(ctx, func(tx *sqlx.Tx) error {
		now := b.now()
		var waiting sql.NullInt64
		err := tx.GetContext(ctx, &waiting, b.q(ReleaseQuery), nextAttemptAt.UnixMilli(), now.UnixMilli(), id, owner)
		if errors.Is(err, sql.ErrNoRows) {
			return leaseLost(ctx, tx, id)
		}
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		if waiting.Valid {
			return b.ResolveWaiting(ctx, tx, id, waiting.Int64, outbox.StatePending, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release result #%d: %w", id, err)
	}
	return nil
}

// NextDue returns the earliest time one of target's pending rows is due, or
// one of its sending rows' lease ends; ok is false when it has neither.
func (b *Base) NextDue(ctx context.Context, target string) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := b.db.GetContext(ctx, &next, b.q(NextDueQuery), target); err != nil {
		return time.Time{}, false, fmt.Errorf("next due time of target %q: %w", target, err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return FromMillis(next), true, nil
}

// Excerpt cuts s, as the backend stores text, to at most
// outbox.MaxResponseExcerpt bytes without splitting a UTF-8 sequence.
// Invalid UTF-8 (a binary answer) becomes U+FFFD first, so the excerpt is
// always valid text.
func (b *Base) Excerpt(s string) string {
	s = b.text(strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= outbox.MaxResponseExcerpt {
		return s
	}
	i := outbox.MaxResponseExcerpt
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
