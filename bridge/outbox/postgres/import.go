package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlinbound"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxcopy"
	"github.com/cvbridge/cvbridge/bridge/source"
)

var _ outboxcopy.Sink = (*Store)(nil)

// importTables are the tables an import writes, locked against other
// writers while it runs (reads go on).
const importTables = `results, attempts, cursors, marks, target_state, inbound_messages, oauth_tokens, enrolments`

// importLockTimeout bounds the wait for a daemon's transaction to end before
// the import takes its tables.
const importLockTimeout = "10s"

// BeginImport starts one transaction that writes rows as they are, for
// copying another store into this one. It locks the outbox tables against
// other writers until it ends; a daemon still running on the database makes
// it fail after a few seconds rather than wait.
func (s *Store) BeginImport(ctx context.Context) (outboxcopy.Importer, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin outbox import: %w", err)
	}
	for _, stmt := range []string{
		`SET LOCAL lock_timeout = '` + importLockTimeout + `'`,
		`LOCK TABLE ` + importTables + ` IN EXCLUSIVE MODE`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("begin outbox import: %s (is a daemon still running on this database?): %w", stmt, err)
		}
	}
	return &importer{tx: tx}, nil
}

// importer writes one import's rows in its transaction.
type importer struct {
	tx *sqlx.Tx
}

// Counts counts the rows the transaction sees. The last result, attempt,
// inbound message and OAuth token ids are what the identity sequences last
// gave out (or were set to).
func (im *importer) Counts(ctx context.Context) (outboxcopy.Counts, error) {
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
		{&c.LastResultID, `SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('results', 'id')), 0)`},
		{&c.LastAttemptID, `SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('attempts', 'id')), 0)`},
		{&c.InboundMessages, `SELECT COUNT(*) FROM inbound_messages`},
		{&c.OAuthTokens, `SELECT COUNT(*) FROM oauth_tokens`},
		{&c.Enrolments, `SELECT COUNT(*) FROM enrolments`},
		{&c.LastInboundMessageID, `SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('inbound_messages', 'id')), 0)`},
		{&c.LastOAuthTokenID, `SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('oauth_tokens', 'id')), 0)`},
	} {
		if err := im.tx.GetContext(ctx, q.dst, q.query); err != nil {
			return c, fmt.Errorf("count outbox rows (%s): %w", q.query, err)
		}
	}
	var states []struct {
		State string `db:"state"`
		N     int64  `db:"n"`
	}
	if err := im.tx.SelectContext(ctx, &states, `SELECT state, COUNT(*) AS n FROM results GROUP BY state`); err != nil {
		return c, fmt.Errorf("count outbox results per state: %w", err)
	}
	for _, st := range states {
		c.States[outbox.State(st.State)] = st.N
	}
	states = nil
	if err := im.tx.SelectContext(ctx, &states, `SELECT state, COUNT(*) AS n FROM inbound_messages GROUP BY state`); err != nil {
		return c, fmt.Errorf("count inbound messages per state: %w", err)
	}
	c.InboundStates = make(map[inboundstore.State]int64, len(states))
	for _, st := range states {
		c.InboundStates[inboundstore.State(st.State)] = st.N
	}
	return c, nil
}

// Clear deletes every outbox and inbound row (leases stay) and restarts the
// ids. TRUNCATE fires no row triggers, so the results' counters are
// emptied with them; the imported rows count themselves as they go in.
func (im *importer) Clear(ctx context.Context) error {
	if _, err := im.tx.ExecContext(ctx, `TRUNCATE `+importTables+`, result_counts, result_hours, result_changes RESTART IDENTITY`); err != nil {
		return fmt.Errorf("clear outbox tables: %w", err)
	}
	return nil
}

// insertRows inserts rows into table's cols as one multi-row INSERT.
func insertRows[T any](ctx context.Context, tx *sqlx.Tx, table, cols string, rows []T, values func(T) []any) error {
	if len(rows) == 0 {
		return nil
	}
	ncols := strings.Count(cols, ",") + 1
	var b strings.Builder
	args := make([]any, 0, len(rows)*ncols)
	b.WriteString("INSERT INTO " + table + " (" + cols + ") VALUES ")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range ncols {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", len(args)+j+1)
		}
		b.WriteByte(')')
		vals := values(r)
		if len(vals) != ncols {
			return fmt.Errorf("insert into %s: %d values for %d columns", table, len(vals), ncols)
		}
		args = append(args, vals...)
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// maxParams is PostgreSQL's limit of parameters in one statement.
const maxParams = 65535

// chunked calls fn on successive chunks of rows small enough that a chunk's
// INSERT stays under maxParams.
func chunked[T any](rows []T, ncols int, fn func([]T) error) error {
	per := maxParams / ncols
	for len(rows) > 0 {
		n := min(per, len(rows))
		if err := fn(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// Results inserts results with their ids.
func (im *importer) Results(ctx context.Context, rows []outboxcopy.Result) error {
	const cols = `id, target, connection, elearningcode, person_id, person_key, source_ref, completed_at, body, body_hash,
		state, active, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at,
		lease_owner, lease_until, created_at, updated_at, delivered_at, outcome_unknown, waiting_id`
	return chunked(rows, 26, func(rows []outboxcopy.Result) error {
		return insertRows(ctx, im.tx, "results", cols, rows, func(r outboxcopy.Result) []any {
			return []any{r.ID, r.Target, r.Connection, r.ElearningCode, r.PersonID, r.PersonKey, r.SourceRef,
				sqlcore.Millis(r.CompletedAt), sqlcore.Nullable(r.Body), sqlcore.Nullable(r.BodyHash),
				string(r.State), r.State.Active(), r.Tries, r.Streak, sqlcore.Millis(r.StreakSince), r.LastClass, r.LastStatus, r.LastError,
				sqlcore.Millis(r.NextAttemptAt), r.LeaseOwner, sqlcore.Millis(r.LeaseUntil),
				r.CreatedAt.UnixMilli(), r.UpdatedAt.UnixMilli(), sqlcore.Millis(r.DeliveredAt), r.OutcomeUnknown,
				sql.NullInt64{Int64: r.WaitingID, Valid: r.WaitingID != 0}}
		})
	})
}

// Attempts inserts attempts with their ids.
func (im *importer) Attempts(ctx context.Context, rows []outbox.Attempt) error {
	const cols = `id, result_id, at, status, class, response, error, duration_ns`
	return chunked(rows, 8, func(rows []outbox.Attempt) error {
		return insertRows(ctx, im.tx, "attempts", cols, rows, func(a outbox.Attempt) []any {
			return []any{a.ID, a.ResultID, a.At.UnixMilli(), a.Status, a.Class, a.Response, a.Error, int64(a.Duration)}
		})
	})
}

// Cursors inserts cursors.
func (im *importer) Cursors(ctx context.Context, rows []outboxcopy.Cursor) error {
	return chunked(rows, 3, func(rows []outboxcopy.Cursor) error {
		return insertRows(ctx, im.tx, "cursors", "connection, cursor, updated_at", rows, func(c outboxcopy.Cursor) []any {
			cur := c.Cursor
			if cur == nil {
				cur = []byte{}
			}
			return []any{c.Connection, cur, c.UpdatedAt.UnixMilli()}
		})
	})
}

// Marks inserts marks.
func (im *importer) Marks(ctx context.Context, rows []outboxcopy.Mark) error {
	return chunked(rows, 3, func(rows []outboxcopy.Mark) error {
		return insertRows(ctx, im.tx, "marks", "connection, mark, created_at", rows, func(m outboxcopy.Mark) []any {
			return []any{m.Connection, m.Mark, m.CreatedAt.UnixMilli()}
		})
	})
}

// TargetStates inserts target states.
func (im *importer) TargetStates(ctx context.Context, rows []outbox.TargetState) error {
	return chunked(rows, 5, func(rows []outbox.TargetState) error {
		return insertRows(ctx, im.tx, "target_state", "target, paused, reason, paused_at, next_probe_at", rows, func(s outbox.TargetState) []any {
			return []any{s.Target, s.Paused, s.Reason, sqlcore.Millis(s.PausedAt), sqlcore.Millis(s.NextProbeAt)}
		})
	})
}

// InboundMessages inserts inbound messages with their ids, leases and
// erasure as they are; a nil body stays NULL. Each is keyed by
// source.PersonKey of its person id, as the store keys them.
func (im *importer) InboundMessages(ctx context.Context, rows []inboundstore.Message) error {
	return chunked(rows, 24, func(rows []inboundstore.Message) error {
		return insertRows(ctx, im.tx, "inbound_messages", sqlinbound.MessageCols+`, person_key`, rows, func(m inboundstore.Message) []any {
			return []any{m.ID, m.Source, m.DedupeKey, m.ReceivedAt.UnixMilli(), m.Verified, m.Event, sqlcore.Nullable(m.Body),
				string(m.Action), m.PersonID, m.ElearningCode, m.FirstName, m.Infix, m.LastName, m.Email,
				string(m.State), m.Attempts, sqlcore.Millis(m.NextAttemptAt), m.LeaseOwner, sqlcore.Millis(m.LeaseUntil),
				m.LastError, m.Requests, m.UpdatedAt.UnixMilli(), sqlcore.Millis(m.ErasedAt), source.PersonKey(m.PersonID)}
		})
	})
}

// OAuthTokens inserts OAuth code and token records with their ids; an
// empty hash is stored as NULL, as the store does, so unset hashes do not
// collide in the unique indexes.
func (im *importer) OAuthTokens(ctx context.Context, rows []inboundstore.Token) error {
	return chunked(rows, 17, func(rows []inboundstore.Token) error {
		return insertRows(ctx, im.tx, "oauth_tokens", sqlinbound.TokenCols, rows, func(t inboundstore.Token) []any {
			return []any{t.ID, t.GrantID, t.ClientID, t.UserID, t.RedirectURI, t.Scope,
				nullString(t.CodeHash), t.CodeChallenge, t.CodeChallengeMethod, sqlcore.Millis(t.CodeExpiresAt),
				nullString(t.AccessHash), sqlcore.Millis(t.AccessExpiresAt), nullString(t.RefreshHash), sqlcore.Millis(t.RefreshExpiresAt),
				t.CreatedAt.UnixMilli(), sqlcore.Millis(t.RevokedAt), t.RevokeReason}
		})
	})
}

// nullString is s as stored in a nullable unique column: NULL for "".
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// SetLastIDs sets the identity sequences so new results, attempts, inbound
// messages and OAuth token records get ids above the copied ones (and
// above the source's purged ids).
func (im *importer) SetLastIDs(ctx context.Context, last outboxcopy.Counts) error {
	for _, seq := range []struct {
		table string
		last  int64
	}{
		{"results", last.LastResultID},
		{"attempts", last.LastAttemptID},
		{"inbound_messages", last.LastInboundMessageID},
		{"oauth_tokens", last.LastOAuthTokenID},
	} {
		// setval(seq, 1, false) makes the next id 1: nothing given out yet.
		v, called := seq.last, true
		if v <= 0 {
			v, called = 1, false
		}
		if _, err := im.tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), $2, $3)`, seq.table, v, called); err != nil {
			return fmt.Errorf("set the id sequence of %s to %d: %w", seq.table, seq.last, err)
		}
	}
	return nil
}

// Commit commits the import.
func (im *importer) Commit() error {
	if err := im.tx.Commit(); err != nil {
		return fmt.Errorf("commit outbox import: %w", err)
	}
	return nil
}

// Rollback undoes the import; after Commit it does nothing.
func (im *importer) Rollback() error {
	if err := im.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("roll back outbox import: %w", err)
	}
	return nil
}
