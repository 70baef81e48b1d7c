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

// claimQuery returns the statement that leases a target's due rows in one
// statement. The CTE picks
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
//
// Due times and the lease the caller sees (lease_until) are on the
// caller's clock, as on SQLite; whether another daemon's lease has ended is
// decided on the server's clock (lease_server_until) when serverClock is
// its SQL expression, so a daemon whose clock runs ahead cannot take a live
// lease; with serverClock empty, on the caller's (WithLeasesOnStoreClock).
func claimQuery(serverClock string) string {
	leaseEnded, leaseEnd := "?", "?"
	if serverClock != "" {
		leaseEnded, leaseEnd = serverClock, serverClock+" + ?"
	}
	return `WITH due AS (
		SELECT id, next_attempt_at AS due_at FROM results
		WHERE target = ? AND state IN ('pending', 'sending') AND next_attempt_at <= ?
			AND (state = 'pending' OR lease_server_until IS NULL OR lease_server_until <= ` + leaseEnded + `)
		ORDER BY next_attempt_at, id
		LIMIT ?
		FOR UPDATE SKIP LOCKED)
	UPDATE results r SET state = 'sending', lease_owner = ?, lease_until = ?, next_attempt_at = ?, updated_at = ?,
		lease_server_until = ` + leaseEnd + `,
		outcome_unknown = (r.outcome_unknown OR r.state = 'sending')
	FROM due WHERE r.id = due.id
	RETURNING due.due_at, ` + qualified("r", sqlcore.ResultCols)
}

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
	claim, err := s.stmts.Get(ctx, s.q(s.claimQuery))
	if err == nil {
		args := []any{target, now.UnixMilli()}
		if s.storeClockLeases {
			args = append(args, now.UnixMilli()) // has the lease ended
		}
		args = append(args, limit, owner, until, until, now.UnixMilli())
		if s.storeClockLeases {
			args = append(args, until) // the lease's end
		} else {
			args = append(args, lease.Milliseconds()) // the lease, from the server's now
		}
		err = claim.SelectContext(ctx, &rows, args...)
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
