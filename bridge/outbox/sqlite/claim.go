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

// claimDueQuery selects a target's due rows in claim order. Because a sending
// row's next_attempt_at is its lease end, one range over the results_due
// index finds due pending rows and expired leases alike.
const claimDueQuery = `SELECT ` + sqlcore.ResultCols + ` FROM results
	WHERE target = ? AND state IN ('pending', 'sending') AND next_attempt_at <= ?
	ORDER BY next_attempt_at, id LIMIT ?`

// claimLeaseQuery leases the rows whose ids are its last parameter, a JSON
// array: one statement text whatever the number of rows, so it is
// prepared once.
// A row taken over from an expired lease was perhaps sent by its dead
// owner: its outcome is unknown from now on.
const claimLeaseQuery = `UPDATE results SET state = 'sending', lease_owner = ?, lease_until = ?,
	next_attempt_at = ?, updated_at = ?, outcome_unknown = (outcome_unknown OR state = 'sending')
	WHERE id IN (SELECT value FROM json_each(?))`

// Claim leases up to limit due rows of target to owner until now+lease, in
// the order they became due (then by id), and returns them with their
// bodies. Due rows are pending rows whose NextAttemptAt has come and sending
// rows whose lease ran out. A claimed row's NextAttemptAt becomes its lease
// end, the time it is due again should its owner vanish; a row taken from
// an expired lease is marked OutcomeUnknown.
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
			it.OutcomeUnknown = it.OutcomeUnknown || it.State == outbox.StateSending
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
