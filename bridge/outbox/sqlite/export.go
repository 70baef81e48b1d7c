package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlinbound"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxcopy"
)

var _ outboxcopy.Source = (*Store)(nil)

// BeginExport starts reading the whole store from one snapshot (a read
// transaction, which in WAL mode does not hold up writers), for copying it
// to another store.
func (s *Store) BeginExport(ctx context.Context) (outboxcopy.Exporter, error) {
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin outbox export: %w", err)
	}
	return &exporter{s: s, tx: tx}, nil
}

// exporter reads one snapshot of the store.
type exporter struct {
	s  *Store
	tx *sqlx.Tx
}

// Close ends the snapshot.
func (e *exporter) Close() error {
	if err := e.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("end outbox export: %w", err)
	}
	return nil
}

// Counts counts the snapshot's rows. The last result, inbound message and
// OAuth token ids come from sqlite_sequence, which AUTOINCREMENT keeps above
// every id ever given out, including those of purged rows.
func (e *exporter) Counts(ctx context.Context) (outboxcopy.Counts, error) {
	c := outboxcopy.Counts{States: map[outbox.State]int64{}}
	for _, q := range []struct {
		dst   *int64
		query string
	}{
		{&c.Results, `SELECT COUNT(*) FROM results`},
		{&c.Attempts, `SELECT COUNT(*) FROM attempts`},
		{&c.Cursors, `SELECT COUNT(*) FROM cursors`},
		{&c.Marks, `SELECT COUNT(*) FROM marks`},
		{&c.TargetStates, `SELECT COUNT(*) FROM target_state`},
		{&c.LastResultID, `SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'results'), 0),
			COALESCE((SELECT MAX(id) FROM results), 0))`},
		{&c.LastAttemptID, `SELECT COALESCE(MAX(id), 0) FROM attempts`},
		{&c.InboundMessages, `SELECT COUNT(*) FROM inbound_messages`},
		{&c.OAuthTokens, `SELECT COUNT(*) FROM oauth_tokens`},
		{&c.Enrolments, `SELECT COUNT(*) FROM enrolments`},
		{&c.LastInboundMessageID, `SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'inbound_messages'), 0),
			COALESCE((SELECT MAX(id) FROM inbound_messages), 0))`},
		{&c.LastOAuthTokenID, `SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'oauth_tokens'), 0),
			COALESCE((SELECT MAX(id) FROM oauth_tokens), 0))`},
	} {
		if err := e.tx.GetContext(ctx, q.dst, q.query); err != nil {
			return c, fmt.Errorf("count outbox rows (%s): %w", q.query, err)
		}
	}
	var states []struct {
		State string `db:"state"`
		N     int64  `db:"n"`
	}
	if err := e.tx.SelectContext(ctx, &states, `SELECT state, COUNT(*) AS n FROM results GROUP BY state`); err != nil {
		return c, fmt.Errorf("count outbox results per state: %w", err)
	}
	for _, st := range states {
		c.States[outbox.State(st.State)] = st.N
	}
	states = nil
	if err := e.tx.SelectContext(ctx, &states, `SELECT state, COUNT(*) AS n FROM inbound_messages GROUP BY state`); err != nil {
		return c, fmt.Errorf("count inbound messages per state: %w", err)
	}
	c.InboundStates = make(map[inboundstore.State]int64, len(states))
	for _, st := range states {
		c.InboundStates[inboundstore.State(st.State)] = st.N
	}
	return c, nil
}

// Results returns up to limit results with ids above afterID, by id.
func (e *exporter) Results(ctx context.Context, afterID int64, limit int) ([]outboxcopy.Result, error) {
	var rows []struct {
		sqlcore.ResultRow
		PersonKey string `db:"person_key"`
		BodyHash  []byte `db:"body_hash"`
	}
	if err := e.tx.SelectContext(ctx, &rows, `SELECT `+sqlcore.ResultCols+`, person_key, body_hash FROM results
		WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, fmt.Errorf("export results after #%d: %w", afterID, err)
	}
	out := make([]outboxcopy.Result, len(rows))
	for i, r := range rows {
		out[i] = outboxcopy.Result{Item: r.Item(), PersonKey: r.PersonKey, BodyHash: r.BodyHash}
	}
	return out, nil
}

// Attempts returns up to limit attempts with ids above afterID, by id.
func (e *exporter) Attempts(ctx context.Context, afterID int64, limit int) ([]outbox.Attempt, error) {
	var rows []sqlcore.AttemptRow
	if err := e.tx.SelectContext(ctx, &rows, `SELECT id, result_id, at, status, class, response, error, duration_ns
		FROM attempts WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, fmt.Errorf("export attempts after #%d: %w", afterID, err)
	}
	out := make([]outbox.Attempt, len(rows))
	for i, a := range rows {
		out[i] = a.Attempt()
	}
	return out, nil
}

// Cursors returns up to limit cursors of connections after afterConnection.
func (e *exporter) Cursors(ctx context.Context, afterConnection string, limit int) ([]outboxcopy.Cursor, error) {
	var rows []struct {
		Connection string `db:"connection"`
		Cursor     []byte `db:"cursor"`
		UpdatedAt  int64  `db:"updated_at"`
	}
	if err := e.tx.SelectContext(ctx, &rows, `SELECT connection, cursor, updated_at FROM cursors
		WHERE connection > ? ORDER BY connection LIMIT ?`, afterConnection, limit); err != nil {
		return nil, fmt.Errorf("export cursors: %w", err)
	}
	out := make([]outboxcopy.Cursor, len(rows))
	for i, r := range rows {
		cur := r.Cursor
		if cur == nil {
			cur = []byte{}
		}
		out[i] = outboxcopy.Cursor{Connection: r.Connection, Cursor: cur, UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	}
	return out, nil
}

// Marks returns up to limit marks after after, by connection and mark.
func (e *exporter) Marks(ctx context.Context, after outboxcopy.Mark, limit int) ([]outboxcopy.Mark, error) {
	var rows []struct {
		Connection string `db:"connection"`
		Mark       string `db:"mark"`
		CreatedAt  int64  `db:"created_at"`
	}
	if err := e.tx.SelectContext(ctx, &rows, `SELECT connection, mark, created_at FROM marks
		WHERE (connection, mark) > (?, ?) ORDER BY connection, mark LIMIT ?`, after.Connection, after.Mark, limit); err != nil {
		return nil, fmt.Errorf("export marks: %w", err)
	}
	out := make([]outboxcopy.Mark, len(rows))
	for i, r := range rows {
		out[i] = outboxcopy.Mark{Connection: r.Connection, Mark: r.Mark, CreatedAt: time.UnixMilli(r.CreatedAt).UTC()}
	}
	return out, nil
}

// TargetStates returns up to limit target states of targets after afterTarget.
func (e *exporter) TargetStates(ctx context.Context, afterTarget string, limit int) ([]outbox.TargetState, error) {
	var rows []sqlcore.TargetStateRow
	if err := e.tx.SelectContext(ctx, &rows, `SELECT target, paused, reason, paused_at, next_probe_at FROM target_state
		WHERE target > ? ORDER BY target LIMIT ?`, afterTarget, limit); err != nil {
		return nil, fmt.Errorf("export target states: %w", err)
	}
	out := make([]outbox.TargetState, len(rows))
	for i, r := range rows {
		out[i] = r.State()
	}
	return out, nil
}

// InboundMessages returns up to limit inbound messages with ids above
// afterID, by id, as stored: a NULL body (none kept, or erased) stays nil.
func (e *exporter) InboundMessages(ctx context.Context, afterID int64, limit int) ([]inboundstore.Message, error) {
	var rows []sqlinbound.MessageRow
	if err := e.tx.SelectContext(ctx, &rows, `SELECT `+sqlinbound.MessageCols+`
		FROM inbound_messages WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, fmt.Errorf("export inbound messages after #%d: %w", afterID, err)
	}
	out := make([]inboundstore.Message, len(rows))
	for i, r := range rows {
		out[i] = r.Message()
	}
	return out, nil
}

// OAuthTokens returns up to limit OAuth code and token records with ids
// above afterID, by id, as stored: hashes only, "" where a hash is NULL.
func (e *exporter) OAuthTokens(ctx context.Context, afterID int64, limit int) ([]inboundstore.Token, error) {
	var rows []sqlinbound.TokenRow
	if err := e.tx.SelectContext(ctx, &rows, `SELECT `+sqlinbound.TokenCols+`
		FROM oauth_tokens WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, fmt.Errorf("export OAuth tokens after #%d: %w", afterID, err)
	}
	out := make([]inboundstore.Token, len(rows))
	for i, r := range rows {
		out[i] = r.Token()
	}
	return out, nil
}
