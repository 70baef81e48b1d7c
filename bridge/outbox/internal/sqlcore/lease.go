package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// acquireLeaseQuery returns the statement that takes a free or expired
// lease, or renews the owner's own, in one statement; it returns no row
// when another owner holds the lease unexpired. Two daemons asking for a
// free lease at once meet on its primary key: the second waits for the
// first's insert and then sees an unexpired lease of another owner.
// acquired_at is kept on renewal: it tells since when the current owner
// holds the lease.
//
// serverNow empty: every time is the caller's now (three parameters: now,
// the expiry, now). Otherwise serverNow is the SQL expression of the
// server's clock and the times are taken from it (one parameter: the ttl).
func acquireLeaseQuery(serverNow string) string {
	now, expires := "?", "?"
	if serverNow != "" {
		now, expires = serverNow, serverNow+" + ?"
	}
	return `INSERT INTO leases (name, owner, expires_at, acquired_at) VALUES (?, ?, ` + expires + `, ` + now + `)
	ON CONFLICT (name) DO UPDATE SET
		acquired_at = CASE WHEN leases.owner = excluded.owner THEN leases.acquired_at ELSE excluded.acquired_at END,
		owner = excluded.owner, expires_at = excluded.expires_at
	WHERE leases.owner = excluded.owner OR leases.expires_at <= ` + now + `
	RETURNING owner`
}

// AcquireLease takes or renews the lease called name for owner until
// now+ttl; see outbox.Leaser. On a backend with a server clock
// (Config.ServerNow) now is not used: the server's clock decides.
func (b *Base) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, fmt.Errorf("acquire lease %q for %q: name and owner must be set and ttl (%s) positive", name, owner, ttl)
	}
	args := []any{name, owner, now.Add(ttl).UnixMilli(), now.UnixMilli(), now.UnixMilli()}
	if b.serverClock {
		args = []any{name, owner, ttl.Milliseconds()}
	}
	var got string
	b.writes.Lock()
	defer b.writes.Unlock()
	err := b.db.GetContext(ctx, &got, b.acquireLease, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %q for %q: %w", name, owner, err)
	}
	return true, nil
}

// ReleaseLease gives up owner's lease called name; see outbox.Leaser.
func (b *Base) ReleaseLease(ctx context.Context, name, owner string) error {
	b.writes.Lock()
	defer b.writes.Unlock()
	if _, err := b.db.ExecContext(ctx, b.q(`DELETE FROM leases WHERE name = ? AND owner = ?`), name, owner); err != nil {
		return fmt.Errorf("release lease %q of %q: %w", name, owner, err)
	}
	return nil
}

// missedRowState tells whether res, the result of a guarded update in tx
// of row id, missed the row and, if so, the state that made it miss;
// ErrNotFound when the row does not exist at all.
func missedRowState(ctx context.Context, tx *sqlx.Tx, res sql.Result, id int64) (state string, missed bool, err error) {
	n, err := res.RowsAffected()
	if err != nil {
		return "", false, fmt.Errorf("count updated rows: %w", err)
	}
	if n > 0 {
		return "", false, nil
	}
	state, err = rowState(ctx, tx, id)
	if err != nil {
		return "", false, err
	}
	return state, true, nil
}

// leaseLost tells why an update of row id in tx guarded by its lease
// changed nothing: ErrLeaseLost naming the row's state, or ErrNotFound.
func leaseLost(ctx context.Context, tx *sqlx.Tx, id int64) error {
	state, err := rowState(ctx, tx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("row is %s: %w", state, outbox.ErrLeaseLost)
}

// rowState reads row id's state in tx; ErrNotFound when there is no such row.
func rowState(ctx context.Context, tx *sqlx.Tx, id int64) (string, error) {
	var state string
	err := tx.GetContext(ctx, &state, tx.Rebind(`SELECT state FROM results WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", outbox.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read row state: %w", err)
	}
	return state, nil
}
