package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// claimQuery leases a target's due rows in one statement. The CTE picks
// them in claim order over the results_due index, locking each with FOR
// UPDATE SKIP LOCKED: rows another daemon's claim (or an Enqueue) is
// locking are passed over, not waited for, and a row whose lease another
// claim took meanwhile no longer matches once locked. So two daemons
// claiming at once get disjoint rows. Because a sending row's
// next_attempt_at is its lease end, one index range finds due pending rows
// and expired leases alike. The old due time comes back beside the row, so
// the caller can return the rows in claim order.
var claimQuery = `WITH due AS (
		SELECT id, next_attempt_at AS due_at FROM results
		WHERE target = ? AND state IN ('pending', 'sending') AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id
		LIMIT ?
		FOR UPDATE SKIP LOCKED)
	UPDATE results r SET state = 'sending', lease_owner = ?, lease_until = ?, next_attempt_at = ?, updated_at = ?
	FROM due WHERE r.id = due.id
	RETURNING due.due_at, ` + qualified("r", sqlcore.ResultCols)

// nextDueQuery finds a target's earliest due time over the results_due index.
const nextDueQuery = `SELECT MIN(next_attempt_at) FROM results
	WHERE target = ? AND state IN ('pending', 'sending')`

// claimedRow is a row as Claim's RETURNING gives it.
type claimedRow struct {
	DueAt int64 `db:"due_at"`
	sqlcore.ResultRow
}

// Claim leases up to limit due rows of target to owner until now+lease, in
// the order they became due (then by id), and returns them with their
// bodies. Due rows are pending rows whose NextAttemptAt has come and sending
// rows whose lease ran out. A claimed row's NextAttemptAt becomes its lease
// end, the time it is due again should its owner vanish.
func (s *Store) Claim(ctx context.Context, target, owner string, limit int, now time.Time, lease time.Duration) ([]outbox.Item, error) {
	if owner == "" {
		return nil, fmt.Errorf("claim for target %q: owner is empty", target)
	}
	if limit <= 0 || lease <= 0 {
		return nil, fmt.Errorf("claim for target %q: limit (%d) and lease (%s) must be positive", target, limit, lease)
	}
	until := now.Add(lease).UnixMilli()
	var rows []claimedRow
	claim, err := s.stmts.Get(ctx, s.q(claimQuery))
	if err == nil {
		err = claim.SelectContext(ctx, &rows, target, now.UnixMilli(), limit, owner, until, until, now.UnixMilli())
	}
	if err != nil {
		return nil, fmt.Errorf("claim for target %q: %w", target, err)
	}
	slices.SortFunc(rows, func(a, b claimedRow) int {
		return cmp.Or(cmp.Compare(a.DueAt, b.DueAt), cmp.Compare(a.ID, b.ID))
	})
	claimed := make([]outbox.Item, len(rows))
	for i, r := range rows {
		claimed[i] = r.Item()
	}
	return claimed, nil
}

// Finish records f.Attempt and gives the row its new state, if f.Owner still
// holds the row's lease (a lease that ran out but was not claimed by anyone
// else still counts: the attempt happened and must be recorded). The attempt's
// response is cut to outbox.MaxResponseExcerpt bytes on a UTF-8 boundary; a
// zero Attempt.At is taken as now.
func (s *Store) Finish(ctx context.Context, f outbox.Finish) error {
	switch f.State {
	case outbox.StateDelivered, outbox.StateFailed:
	case outbox.StatePending:
		if f.NextAttemptAt.IsZero() {
			return fmt.Errorf("finish result #%d: pending needs a next attempt time", f.ID)
		}
	default:
		return fmt.Errorf("finish result #%d: state %q is not delivered, pending or failed", f.ID, f.State)
	}
	now := s.now()
	var due, delivered sql.NullInt64
	if f.State == outbox.StatePending {
		due = sqlcore.Millis(f.NextAttemptAt)
	}
	if f.State == outbox.StateDelivered {
		delivered = sqlcore.Millis(now)
	}
	at := f.Attempt.At
	if at.IsZero() {
		at = now
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE results SET
			state = ?, tries = ?, streak = ?, streak_since = ?, last_class = ?, last_status = ?, last_error = ?,
			next_attempt_at = ?, lease_owner = '', lease_until = NULL, delivered_at = ?, updated_at = ?
			WHERE id = ? AND state = 'sending' AND lease_owner = ?`),
			string(f.State), f.Tries, f.Streak, sqlcore.Millis(f.StreakSince), f.LastClass, f.Attempt.Status, validText(f.LastError),
			due, delivered, now.UnixMilli(), f.ID, f.Owner)
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		if err := sqlcore.LeaseHeld(ctx, tx, res, f.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?)`),
			f.ID, at.UnixMilli(), f.Attempt.Status, f.Attempt.Class, excerpt(f.Attempt.Response), validText(f.Attempt.Error),
			int64(f.Attempt.Duration)); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish result #%d as %s: %w", f.ID, f.State, err)
	}
	return nil
}

// Release hands a claimed row back as pending, due at nextAttemptAt, without
// recording an attempt, if owner still holds its lease.
func (s *Store) Release(ctx context.Context, id int64, owner string, nextAttemptAt time.Time) error {
	if nextAttemptAt.IsZero() {
		return fmt.Errorf("release result #%d: next attempt time is zero", id)
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE results SET state = 'pending', lease_owner = '', lease_until = NULL,
			next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'sending' AND lease_owner = ?`),
			nextAttemptAt.UnixMilli(), s.now().UnixMilli(), id, owner)
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		return sqlcore.LeaseHeld(ctx, tx, res, id)
	})
	if err != nil {
		return fmt.Errorf("release result #%d: %w", id, err)
	}
	return nil
}

// NextDue returns the earliest time one of target's pending rows is due, or
// one of its sending rows' lease ends; ok is false when it has neither.
func (s *Store) NextDue(ctx context.Context, target string) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.db.GetContext(ctx, &next, s.q(nextDueQuery), target)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due time of target %q: %w", target, err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return sqlcore.FromMillis(next), true, nil
}

// excerpt cuts s to at most outbox.MaxResponseExcerpt bytes without
// splitting a UTF-8 sequence. Invalid UTF-8 (a binary answer) becomes U+FFFD
// first, so the excerpt is always valid text.
func excerpt(s string) string {
	s = validText(s)
	if len(s) <= outbox.MaxResponseExcerpt {
		return s
	}
	i := outbox.MaxResponseExcerpt
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// validText is s as PostgreSQL's TEXT accepts it: valid UTF-8 (invalid
// sequences become U+FFFD) without NUL bytes, which TEXT cannot hold.
func validText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
