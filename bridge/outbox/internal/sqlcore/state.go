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

// SaveCursor stores connection's cursor in tx, replacing the previous one,
// updated at now; it is outbox.Tx's SaveCursor.
func SaveCursor(ctx context.Context, tx *sqlx.Tx, now time.Time, connection string, cursor []byte) error {
	if cursor == nil {
		cursor = []byte{}
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO cursors (connection, cursor, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (connection) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`),
		connection, cursor, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("save cursor of connection %q: %w", connection, err)
	}
	return nil
}

// Mark records mark for connection in tx, created at now; marking twice is
// not an error. It is outbox.Tx's Mark.
func Mark(ctx context.Context, tx *sqlx.Tx, now time.Time, connection, mark string) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO marks (connection, mark, created_at) VALUES (?, ?, ?)
		ON CONFLICT (connection, mark) DO NOTHING`),
		connection, mark, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("mark %q of connection %q: %w", mark, connection, err)
	}
	return nil
}

// Cursor returns connection's stored cursor, nil if none.
func (b *Base) Cursor(ctx context.Context, connection string) ([]byte, error) {
	var cur []byte
	err := b.db.GetContext(ctx, &cur, b.q(`SELECT cursor FROM cursors WHERE connection = ?`), connection)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cursor of connection %q: %w", connection, err)
	}
	if cur == nil {
		cur = []byte{}
	}
	return cur, nil
}

// Marked reports whether connection recorded mark.
func (b *Base) Marked(ctx context.Context, connection, mark string) (bool, error) {
	var n int
	err := b.db.GetContext(ctx, &n, b.q(`SELECT COUNT(*) FROM marks WHERE connection = ? AND mark = ?`), connection, mark)
	if err != nil {
		return false, fmt.Errorf("read mark %q of connection %q: %w", mark, connection, err)
	}
	return n > 0, nil
}

// TargetState returns target's state; a target never set is active.
func (b *Base) TargetState(ctx context.Context, target string) (outbox.TargetState, error) {
	var r TargetStateRow
	// Prepared once: a streaming delivery step asks before each batch.
	st, err := b.stmts.Get(ctx, b.q(`SELECT `+TargetStateCols+` FROM target_state WHERE target = ?`))
	if err == nil {
		err = st.GetContext(ctx, &r, target)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return outbox.TargetState{Target: target}, nil
	}
	if err != nil {
		return outbox.TargetState{}, fmt.Errorf("read state of target %q: %w", target, err)
	}
	return r.State(), nil
}

// SetTargetState stores st.
func (b *Base) SetTargetState(ctx context.Context, st outbox.TargetState) error {
	if st.Target == "" {
		return errors.New("set target state: target name is empty")
	}
	b.writes.Lock()
	defer b.writes.Unlock()
	_, err := b.db.ExecContext(ctx, b.q(`INSERT INTO target_state (`+TargetStateCols+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (target) DO UPDATE SET paused = excluded.paused, reason = excluded.reason,
			paused_at = excluded.paused_at, next_probe_at = excluded.next_probe_at`),
		st.Target, st.Paused, st.Reason, Millis(st.PausedAt), Millis(st.NextProbeAt))
	if err != nil {
		return fmt.Errorf("store state of target %q: %w", st.Target, err)
	}
	return nil
}
