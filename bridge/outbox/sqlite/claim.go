package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// claimDueQuery selects a target's due rows in claim order. Because a sending
// row's next_attempt_at is its lease end, one range over the results_due
// index finds due pending rows and expired leases alike.
const claimDueQuery = `SELECT ` + sqlcore.ResultCols + ` FROM results
	WHERE target = ? AND state IN ('pending', 'sending') AND next_attempt_at <= ?
	ORDER BY next_attempt_at, id LIMIT ?`

// claimLeaseQuery leases the rows whose ids are its last parameter, a JSON
// array: one statement text whatever the number of rows, so it is
// prepared once.
const claimLeaseQuery = `UPDATE results SET state = 'sending', lease_owner = ?, lease_until = ?,
	next_attempt_at = ?, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))`

// nextDueQuery finds a target's earliest due time over the results_due index.
const nextDueQuery = `SELECT MIN(next_attempt_at) FROM results
	WHERE target = ? AND state IN ('pending', 'sending')`

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
	until := now.Add(lease)
	var claimed []outbox.Item
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		due, err := s.stmts.InTx(ctx, tx, claimDueQuery)
		if err != nil {
			return err
		}
		var rows []sqlcore.ResultRow
		if err := due.SelectContext(ctx, &rows, target, now.UnixMilli(), limit); err != nil {
			return fmt.Errorf("select due rows: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		doc, err := json.Marshal(ids)
		if err != nil {
			return fmt.Errorf("encode ids: %w", err)
		}
		leaseRows, err := s.stmts.InTx(ctx, tx, claimLeaseQuery)
		if err != nil {
			return err
		}
		if _, err := leaseRows.ExecContext(ctx, owner, until.UnixMilli(), until.UnixMilli(), now.UnixMilli(), string(doc)); err != nil {
			return fmt.Errorf("lease due rows: %w", err)
		}
		claimed = sqlcore.Items(rows)
		for i := range claimed {
			it := &claimed[i]
			it.State = outbox.StateSending
			it.LeaseOwner = owner
			it.LeaseUntil = time.UnixMilli(until.UnixMilli()).UTC()
			it.NextAttemptAt = it.LeaseUntil
			it.UpdatedAt = time.UnixMilli(now.UnixMilli()).UTC()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim for target %q: %w", target, err)
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
		update, err := s.stmts.InTx(ctx, tx, finishUpdate)
		if err != nil {
			return err
		}
		res, err := update.ExecContext(ctx,
			string(f.State), f.Tries, f.Streak, sqlcore.Millis(f.StreakSince), f.LastClass, f.Attempt.Status, f.LastError,
			due, delivered, now.UnixMilli(), f.ID, f.Owner)
		if err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		if err := sqlcore.LeaseHeld(ctx, tx, res, f.ID); err != nil {
			return err
		}
		insert, err := s.stmts.InTx(ctx, tx, insertAttempt)
		if err != nil {
			return err
		}
		if _, err := insert.ExecContext(ctx,
			f.ID, at.UnixMilli(), f.Attempt.Status, f.Attempt.Class, excerpt(f.Attempt.Response), f.Attempt.Error,
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
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= outbox.MaxResponseExcerpt {
		return s
	}
	i := outbox.MaxResponseExcerpt
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
