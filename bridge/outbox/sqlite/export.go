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
	outboxcopy "github.com/cvbridge/cvbridge/bridge/outbox/copy"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
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
	var rows []struct {
		ID            int64         `db:"id"`
		Source        string        `db:"source"`
		DedupeKey     string        `db:"dedupe_key"`
		ReceivedAt    int64         `db:"received_at"`
		Verified      string        `db:"verified"`
		Event         string        `db:"event"`
		Body          []byte        `db:"body"`
		Action        string        `db:"action"`
		PersonID      string        `db:"person_id"`
		ElearningCode string        `db:"elearningcode"`
		FirstName     string        `db:"first_name"`
		Infix         string        `db:"infix"`
		LastName      string        `db:"last_name"`
		Email         string        `db:"email"`
		State         string        `db:"state"`
		Attempts      int           `db:"attempts"`
		NextAttemptAt sql.NullInt64 `db:"next_attempt_at"`
		LeaseOwner    string        `db:"lease_owner"`
		LeaseUntil    sql.NullInt64 `db:"lease_until"`
		LastError     string        `db:"last_error"`
		Requests      int           `db:"requests"`
		UpdatedAt     int64         `db:"updated_at"`
		ErasedAt      sql.NullInt64 `db:"erased_at"`
	}
	if err := e.tx.SelectContext(ctx, &rows, `SELECT id, source, dedupe_key, received_at, verified, event, body, action,
		person_id, elearningcode, first_name, infix, last_name, email, state, attempts, next_attempt_at,
		lease_owner, lease_until, last_error, requests, updated_at, erased_at
		FROM inbound_messages WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, fmt.Errorf("export inbound messages after #%d: %w", afterID, err)
	}
	out := make([]inboundstore.Message, len(rows))
	for i, r := range rows {
		out[i] = inboundstore.Message{
			ID: r.ID, Source: r.Source, DedupeKey: r.DedupeKey, ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC(),
			Verified: r.Verified, Event: r.Event, Body: r.Body, Action: inboundstore.Action(r.Action),
			PersonID: r.PersonID, ElearningCode: r.ElearningCode,
			FirstName: r.FirstName, Infix: r.Infix, LastName: r.LastName, Email: r.Email,
			State: inboundstore.State(r.State), Attempts: r.Attempts, NextAttemptAt: sqlcore.FromMillis(r.NextAttemptAt),
			LeaseOwner: r.LeaseOwner, LeaseUntil: sqlcore.FromMillis(r.LeaseUntil), LastError: r.LastError,
			Requests: r.Requests, UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC(), ErasedAt: sqlcore.FromMillis(r.ErasedAt),
		}
	}
	return out, nil
}

// OAuthTokens returns up to limit OAuth code and token records with ids
// above afterID, by id, as stored: hashes only, "" where a hash is NULL.
func (e *exporter) OAuthTokens(ctx context.Context, afterID int64, limit int) ([]inboundstore.Token, error) {
	var rows []struct {
		ID                  int64          `db:"id"`
		GrantID             string         `db:"grant_id"`
		ClientID            string         `db:"client_id"`
		UserID              string         `db:"user_id"`
		RedirectURI         string         `db:"redirect_uri"`
		Scope               string         `db:"scope"`
		CodeHash            sql.NullString `db:"code_hash"`
		CodeChallenge       string         `db:"code_challenge"`
		CodeChallengeMethod string         `db:"code_challenge_method"`
		CodeExpiresAt       sql.NullInt64  `db:"code_expires_at"`
		AccessHash          sql.NullString `db:"access_hash"`
		AccessExpiresAt     sql.NullInt64  `db:"access_expires_at"`
		RefreshHash         sql.NullString `db:"refresh_hash"`
		RefreshExpiresAt    sql.NullInt64  `db:"refresh_expires_at"`
		CreatedAt           int64          `db:"created_at"`
		RevokedAt           sql.NullInt64  `db:"revoked_at"`
		RevokeReason        string         `db:"revoke_reason"`
	}
	if err := e.tx.SelectContext(ctx, &rows, `SELECT id, grant_id, client_id, user_id, redirect_uri, scope,
		code_hash, code_challenge, code_challenge_method, code_expires_at, access_hash, access_expires_at,
		refresh_hash, refresh_expires_at, created_at, revoked_at, revoke_reason
		FROM oauth_tokens WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, fmt.Errorf("export OAuth tokens after #%d: %w", afterID, err)
	}
	out := make([]inboundstore.Token, len(rows))
	for i, r := range rows {
		out[i] = inboundstore.Token{
			ID: r.ID, GrantID: r.GrantID, ClientID: r.ClientID, UserID: r.UserID, RedirectURI: r.RedirectURI, Scope: r.Scope,
			CodeHash: r.CodeHash.String, CodeChallenge: r.CodeChallenge, CodeChallengeMethod: r.CodeChallengeMethod,
			CodeExpiresAt: sqlcore.FromMillis(r.CodeExpiresAt), AccessHash: r.AccessHash.String,
			AccessExpiresAt: sqlcore.FromMillis(r.AccessExpiresAt), RefreshHash: r.RefreshHash.String,
			RefreshExpiresAt: sqlcore.FromMillis(r.RefreshExpiresAt), CreatedAt: time.UnixMilli(r.CreatedAt).UTC(),
			RevokedAt: sqlcore.FromMillis(r.RevokedAt), RevokeReason: r.RevokeReason,
		}
	}
	return out, nil
}
