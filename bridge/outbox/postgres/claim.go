package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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
// the caller can return the rows in claim order. A row taken over from an
// expired lease was perhaps sent by its dead owner: its outcome is unknown
// from now on.
var claimQuery = `WITH due AS (
		SELECT id, next_attempt_at AS due_at FROM results
		WHERE target = ? AND state IN ('pending', 'sending') AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id
		LIMIT ?
		FOR UPDATE SKIP LOCKED)
	UPDATE results r SET state = 'sending', lease_owner = ?, lease_until = ?, next_attempt_at = ?, updated_at = ?,
		outcome_unknown = (r.outcome_unknown OR r.state = 'sending')
	FROM due WHERE r.id = due.id
	RETURNING due.due_at, ` + qualified("r", sqlcore.ResultCols)

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

// validText is s as PostgreSQL's TEXT accepts it: valid UTF-8 (invalid
// sequences become U+FFFD) without NUL bytes, which TEXT cannot hold.
func validText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
